"""The batches, optimisers and learning-rate schedule of ``kdlib.core.fit`` (and of ``kdlib.core.ensemble``, which
trains K models in the same batch order). Notebooks 02-11 train through them.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

OPTIMIZERS = ("adam", "adamw", "sgd")


def index_batches(n: int, batch_size: int, generator: torch.Generator, epochs: int | None = None,
                  steps: int | None = None) -> Iterator[tuple[int, bool, torch.Tensor]]:
    """``(epoch, last_of_epoch, idx)`` for each optimiser step. With ``epochs``: one permutation of ``range(n)``
    per epoch cut into batches, the last one possibly smaller. With ``steps``: full batches only, drawn from
    a permutation that is renewed when fewer than ``batch_size`` samples remain in it."""
    if epochs is not None:
        for epoch in range(1, epochs + 1):
            parts = torch.randperm(n, generator=generator).split(batch_size)
            for i, idx in enumerate(parts):
                yield epoch, i == len(parts) - 1, idx
        return
    order, pos, epoch = torch.randperm(n, generator=generator), 0, 1
    for i in range(steps):
        if pos + batch_size > n:
            order, pos, epoch = torch.randperm(n, generator=generator), 0, epoch + 1
        idx = order[pos:pos + batch_size]
        pos += batch_size
        renew = pos + batch_size > n
        yield epoch, renew or i == steps - 1, idx


def make_optimizer(params, optimizer: str, lr: float, weight_decay: float, betas: tuple[float, float],
                   momentum: float, fused: bool = False) -> torch.optim.Optimizer:
    """``adam`` (Adam, L2 weight decay), ``adamw`` (decoupled weight decay) or ``sgd`` (Nesterov momentum);
    ``fused``: Adam's and AdamW's fused kernel (``fit`` asks for it when the parameters are on CUDA)."""
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused or None)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused or None)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")


def warmup_cosine(total: int, warmup: int = 0) -> Callable[[int], float]:
    """Learning-rate factor at optimiser step i: ``min(1, (i + 1) / warmup) * (1 + cos(pi * i / total)) / 2``
    (no warm-up when ``warmup`` is 0), reaching zero after ``total`` steps."""
    return lambda i: min(1.0, (i + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(i, total) / total))
