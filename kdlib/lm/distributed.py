"""Notebooks 05-08's LM pipelines as a script that runs in one process or data-parallel across processes, with the
notebooks' own functions and no code change (issue 17: beyond one machine):

* the teacher's top-k cache (``kdlib.lm.blocks.cache_topk``: each process caches its share of the blocks and every
  process receives the whole cache) and token KD on it (``topk_kd_step``, notebook 05);
* sequence KD on the teacher's generations (``generate``, ``pack_right``, ``sequence_kd_step``, notebooks 05-06);
* SFT on prompt/completion pairs (``sft_data``, ``sft_step``, notebooks 06-08);
* DPO on preference pairs against a frozen reference (``PreferencePairs``, ``reference_logprobs``, ``dpo_step``, 07).

Each is trained by ``kdlib.core.fit``, which under several processes gives each its shard of every batch and
averages the gradients (``kdlib.core.parallel``), so every process ends with the same weights::

    python -m torch.distributed.run --nproc_per_node 2 -m kdlib.lm.distributed OUT      # 2 CPU processes (gloo)
    accelerate launch --multi_gpu --num_processes 8 -m kdlib.lm.distributed OUT         # 8 GPUs (NCCL)
    python -m kdlib.lm.distributed OUT                                                  # one process

``pipelines`` runs the four at tiny sizes (a word-level vocabulary and tiny Llamas; the check ``make test`` runs with
two CPU processes) and writes ``OUT/rank<i>.json``: per pipeline the sample indices this process trained on, its
losses, a digest of its final weights and their first values (the shards must be disjoint, the digests equal, and
the weights those of one process training on the whole batches, up to rounding), and the cache's digest. The
gradients are weighted by samples, so for the losses averaged over tokens (sequence KD, SFT) with rows of unequal
length the several-process step is close to, not equal to, the one-process step. FSDP (sharding the weights
themselves) is not wired in: these students fit on one device.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from kdlib.core.fit import fit
from kdlib.core.parallel import world
from kdlib.core.teacher_cache import fingerprint
from kdlib.lm.blocks import cache_topk
from kdlib.lm.dpo import PreferencePairs, dpo_step, reference_logprobs
from kdlib.lm.generate import generate, pack_right
from kdlib.lm.sft import sft_data, sft_step
from kdlib.lm.small import build_tokenizer, small_llama
from kdlib.lm.steps import sequence_kd_step, topk_kd_step

__all__ = ["pipelines"]
WORDS = "the cat sat on a mat and then ran to see dog who was by door".split()


def _train(model, data, step, steps: int, batch_size: int) -> dict:
    """``fit`` with a step that also records the sample indices this process trained on."""
    seen = []

    def recorded(m, batch, idx):
        seen.extend(idx.tolist())  # a host read, fine for this check
        return step(m, batch, idx)

    history = fit(model, data, recorded, steps=steps, batch_size=batch_size, optimizer="adamw", lr=1e-2,
                  progress=False)
    head = torch.cat([p.detach().reshape(-1) for p in model.parameters()])[:256]
    return {"seen": seen, "losses": history.loss, "weights": fingerprint(model), "head": head.tolist()}


def pipelines(steps: int = 4, batch_size: int = 4) -> dict:
    """The four pipelines of the module docstring at tiny sizes; returns this process's record."""
    rank, size = world()
    gen = torch.Generator().manual_seed(0)
    tok = build_tokenizer([" ".join(WORDS)])
    teacher = small_llama(tok, 2, 32, 2, seed=0)
    student = lambda seed: small_llama(tok, 1, 16, 2, seed=seed)  # noqa: E731 - the same tiny student each time
    ids = tok(" ".join(WORDS), add_special_tokens=False)["input_ids"]
    blocks = torch.tensor(ids)[torch.randint(0, len(ids), (32, 12), generator=gen)]
    cache, _ = cache_topk(teacher, blocks, k=4, progress=False)
    out = {"rank": rank, "processes": size,
           "cache": "-".join(fingerprint(t) for t in (cache.log_probs, cache.indices, cache.tail))}
    out["topk_kd"] = _train(student(1), blocks, topk_kd_step(cache), steps, batch_size)
    phrase = lambda start, n: " ".join(WORDS[(start + j) % len(WORDS)] for j in range(n))  # noqa: E731
    prompts = [phrase(i, 3) for i in range(16)]
    samples = pack_right(generate(teacher, tok, prompts, max_new_tokens=5, seed=0), tok.pad_token_id)
    out["sequence_kd"] = _train(student(2), samples.input_ids, sequence_kd_step(samples), steps, batch_size)
    completions = [phrase(i + 3, 3) for i in range(16)]
    out["sft"] = _train(student(3), sft_data(tok, prompts, completions), sft_step, steps, batch_size)
    encode = lambda texts: [tok(t, add_special_tokens=False)["input_ids"] for t in texts]  # noqa: E731
    pairs = PreferencePairs.from_tokens(encode(prompts), encode(completions), encode(prompts[::-1]), tok.pad_token_id)
    reference = student(4)
    out["dpo"] = _train(student(4), pairs, dpo_step(reference_logprobs(reference, pairs), beta=0.5), steps, batch_size)
    return out


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    record = pipelines()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{record['rank']}.json").write_text(json.dumps(record))
