"""Cost of one MNIST training epoch, side by side in one run (notebook 02's student 784-800-800-10):

1. plain cross-entropy on hard labels;
2. distillation with teacher logits cached by sample index (``kdlib.teacher.TeacherCache``);
3. distillation with the teacher (784-1200-1200-10) run online on every batch.

Reports seconds per epoch and the ratios to the plain epoch (target: cached KD at most 1.15x plain). The three
variants are interleaved over ``--repeats`` rounds and the median is taken, so machine noise hits all alike.
Usage: ``python benchmarks/kd_epoch_cost.py [--repeats 3] [--size 20000]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdlib.data import Split, load_mnist
from kdlib.losses import distillation_loss
from kdlib.models import mlp
from kdlib.teacher import TeacherCache
from kdlib.train import cross_entropy_step, kd_step, train


def online_kd_step(teacher, T, alpha):
    """The teacher runs forward on every batch (what the cache avoids)."""
    def step(model, x, y, idx):
        with torch.no_grad():
            teacher_logits = teacher(x)
        return distillation_loss(model(x), teacher_logits, y, T=T, alpha=alpha)
    return step


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
    variants = {"plain CE": cross_entropy_step, "KD, cached teacher": kd_step(cache, 20.0, 0.1),
                "KD, online teacher": online_kd_step(teacher, 20.0, 0.1)}
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, step in variants.items():
            start = time.perf_counter()
            train(mlp([784, 800, 800, 10]), data, epochs=1, step=step, progress=False)
            times[name].append(time.perf_counter() - start)
    plain = statistics.median(times["plain CE"])
    print(f"{args.size} images per epoch, batch 128, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'variant':<22}{'s/epoch':>9}{'x plain':>9}")
    for name, ts in times.items():
        print(f"{name:<22}{statistics.median(ts):>9.2f}{statistics.median(ts) / plain:>9.2f}")


if __name__ == "__main__":
    main()
