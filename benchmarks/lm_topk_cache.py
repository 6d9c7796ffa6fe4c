"""Token-level LM distillation: cached top-k teacher logits vs running the teacher online every step,
side by side in one run (notebook 05's teacher SmolLM2-135M-Instruct and a small student).

Reports, per variant, the median seconds per training step (interleaved over ``--repeats`` rounds so that
machine noise hits all alike), the ratio to a plain LM step, and memory: the teacher's weights (needed in
memory only online), the top-k cache for the whole transfer set, and what full fp32 logits would take.
The one-off cost of building the cache (a teacher forward over the transfer set) is reported separately.
Usage: ``python benchmarks/lm_topk_cache.py [--repeats 3] [--steps 4] [--k 32] [--tokens 2048]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdlib.core import fit, model_size_mb
from kdlib.data.bbc import load_bbc_news
from kdlib.lm import build_student, cache_topk, lm_step, load_teacher, token_blocks, topk_kd_step
from kdlib.losses import forward_kl


def online_step(teacher):
    def step(model, input_ids, idx):
        with torch.no_grad():
            t_logits = teacher(input_ids=input_ids).logits[:, :-1]
        return forward_kl(model(input_ids=input_ids).logits[:, :-1], t_logits)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    loaded = load_teacher(log=lambda *a: None)
    teacher, tok = loaded.model.eval(), loaded.tokenizer
    blocks = token_blocks(tok, [a.text for a in load_bbc_news()[:200]], args.block, args.tokens)
    start = time.perf_counter()
    cache, tps = cache_topk(teacher, blocks, args.k, args.batch, progress=False)
    build_s = time.perf_counter() - start
    variants = {"plain LM": lm_step, f"KD, cached top-{args.k}": topk_kd_step(cache, kind="forward"),
                "KD, teacher online": online_step(teacher)}
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, step in variants.items():
            student = build_student(teacher.config, num_layers=2, hidden_size=128, seed=0)
            h = fit(student, blocks, step, steps=args.steps, batch_size=args.batch, optimizer="adamw", lr=2e-3,
                    betas=(0.9, 0.95), weight_decay=0.01, warmup=10, clip=1.0, progress=False)
            times[name].append(h["seconds"] / args.steps)
    base = statistics.median(times["plain LM"])
    print(f"teacher {loaded.reason}; {blocks.numel()} tokens in blocks of {args.block}, batch {args.batch}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'variant':24s} {'s/step':>8s} {'x plain':>8s}")
    for name, ts in times.items():
        print(f"{name:24s} {statistics.median(ts):8.3f} {statistics.median(ts) / base:8.2f}")
    print(f"cached top-{args.k} KD vs plain LM: {statistics.median(times[f'KD, cached top-{args.k}']) / base:.2f}x "
          "(target <= 1.25)")
    print(f"one-off cache build: {build_s:.1f} s ({tps:.0f} teacher tokens/s)")
    print(f"memory: teacher weights {model_size_mb(teacher):.0f} MB (online only); top-{args.k} cache "
          f"{cache.nbytes() / 1e6:.2f} MB for {blocks.numel()} tokens ({cache.nbytes() / blocks.numel():.0f} B/token); "
          f"full fp32 logits would be {blocks.numel() * teacher.config.vocab_size * 4 / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
