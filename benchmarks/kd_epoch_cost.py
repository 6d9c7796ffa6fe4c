"""Cost of one MNIST training epoch, side by side in one run (notebook 02's student 784-800-800-10):

1. a minimal hand-written loop: shuffle, forward, cross-entropy, backward, Adam (no schedule, bar or history);
2. ``kdlib.core.fit`` with plain cross-entropy on hard labels (same model, batch and optimiser);
3. ``fit`` with distillation from teacher logits cached by sample index (``kdlib.core.teacher_cache``);
4. ``fit`` with the teacher (784-1200-1200-10) run online on every batch.

Reports seconds per epoch and ratios (targets: fit at most 1.10x the hand-written loop; cached KD at most 1.15x
plain ``fit``). The variants are interleaved over ``--repeats`` rounds and the median is taken, so machine noise
hits all alike.
Usage: ``python benchmarks/kd_epoch_cost.py [--repeats 3] [--size 20000]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import torch.nn.functional as F

from kdlib.core import TeacherCache, cross_entropy_step, fit
from kdlib.data import Split, load_mnist
from kdlib.losses import distillation_loss
from kdlib.vision import kd_step, mlp


def online_kd_step(teacher, T, alpha):
    """The teacher runs forward on every batch (what the cache avoids)."""
    def step(model, batch, idx):
        with torch.no_grad():
            teacher_logits = teacher(batch.x)
        return distillation_loss(model(batch.x), teacher_logits, batch.y, T=T, alpha=alpha)
    return step


def hand_loop(model, data: Split, batch_size: int = 128, lr: float = 1e-3, seed: int = 0) -> None:
    """The least a training epoch can do: what ``fit`` is measured against."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for idx in torch.randperm(len(data.x), generator=torch.Generator().manual_seed(seed)).split(batch_size):
        loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=20000, help="training images per epoch (50000 = full)")
    args = parser.parse_args()
    torch.manual_seed(0)
    full = load_mnist()["train"]
    data = Split(full.x[: args.size], full.y[: args.size])
    teacher = mlp([784, 1200, 1200, 10]).eval()
    cache = TeacherCache.build(teacher, data.x)
    steps = {"fit, plain CE": cross_entropy_step, "fit, KD cached teacher": kd_step(cache, 20.0, 0.1),
             "fit, KD online teacher": online_kd_step(teacher, 20.0, 0.1)}
    times = {name: [] for name in ["hand-written loop", *steps]}
    for _ in range(args.repeats):
        start = time.perf_counter()
        hand_loop(mlp([784, 800, 800, 10]), data)
        times["hand-written loop"].append(time.perf_counter() - start)
        for name, step in steps.items():
            start = time.perf_counter()
            fit(mlp([784, 800, 800, 10]), data, step, epochs=1, batch_size=128, optimizer="adam", lr=1e-3,
                progress=False)
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    hand, plain = med["hand-written loop"], med["fit, plain CE"]
    print(f"{args.size} images per epoch, batch 128, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'variant':<24}{'s/epoch':>9}{'x hand':>8}{'x plain fit':>13}")
    for name, s in med.items():
        print(f"{name:<24}{s:>9.2f}{s / hand:>8.2f}{s / plain:>13.2f}")
    print(f"fit vs hand-written loop: {plain / hand:.2f}x (target <= 1.10); "
          f"cached KD vs plain fit: {med['fit, KD cached teacher'] / plain:.2f}x (target <= 1.15)")


if __name__ == "__main__":
    main()
