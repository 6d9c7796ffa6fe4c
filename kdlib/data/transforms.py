"""Augmentation and subsets of in-memory tensors (no per-image Python work in the training loop).

Used by notebook 02 (the teacher's +-2 pixel jitter, the 3% subset).
"""
from __future__ import annotations

import torch

from kdlib.data.types import Split


def jitter(x: torch.Tensor, pixels: int = 2, generator: torch.Generator | None = None,
           side: int = 28) -> torch.Tensor:
    """Shift each flattened ``side x side`` image by its own random offset in [-pixels, pixels]^2.

    The input jitter of Hinton et al. (2015) for the MNIST teacher; zeros fill the uncovered border.
    """
    n = x.shape[0]
    images = x.reshape(n, side, side)
    padded = torch.nn.functional.pad(images, (pixels, pixels, pixels, pixels))
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n, 1, 1), generator=generator, device=x.device)
    grid = torch.arange(side, device=x.device)
    rows = dy + grid.view(1, side, 1)
    cols = dx + grid.view(1, 1, side)
    out = padded[torch.arange(n, device=x.device).view(n, 1, 1), rows, cols]
    return out.reshape(x.shape)


def subset(split: Split, fraction: float | None = None, size: int | None = None, seed: int = 0,
           exclude_classes: tuple[int, ...] = ()) -> tuple[Split, torch.Tensor]:
    """A seeded random subset (by fraction or size), optionally without some classes.

    Returns the subset and the indices it took from ``split``, so cached teacher outputs stay aligned.
    """
    keep = torch.ones(len(split.y), dtype=torch.bool)
    for label in exclude_classes:
        keep &= split.y != label
    pool = keep.nonzero().squeeze(1)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        size = max(1, round(fraction * len(pool)))
    size = len(pool) if size is None else size
    if not 0 < size <= len(pool):
        raise ValueError(f"subset size {size} is not in [1, {len(pool)}]")
    gen = torch.Generator().manual_seed(seed)
    index = pool[torch.randperm(len(pool), generator=gen)[:size]].sort().values
    return Split(split.x[index], split.y[index]), index
