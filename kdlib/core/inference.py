"""Batched inference in eval mode: one helper for every "run the model over all of x" in the kit.

Notebooks 02-07 (predictions, teacher logits and features to cache, sampling, scoring). ``eval_mode(model)``
switches a model to eval mode (dropout off) and restores the previous mode of every submodule afterwards, even
when the body raises (a wrapper in training mode around a frozen teacher in eval mode comes back exactly so).
``model_device(model)``: where a model lives (the CPU for one without parameters or buffers). ``predict`` refuses
an empty ``x`` and a ``batch_size`` < 1 with a ValueError.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn


@contextmanager
def eval_mode(*models: nn.Module):
    """Put ``models`` in eval mode for the ``with`` block and afterwards restore the previous ``training`` flag of
    each of their submodules, one by one (``m.train(mode)`` would set a whole tree to one mode), even when the
    block raises."""
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError(f"eval_mode needs one or more torch.nn.Module, got {[type(m).__name__ for m in models]}")
    tops = [m.training for m in models]
    modes = [(m, m.training) for model in models for m in model.modules()]
    try:
        for m in models:
            m.eval()
        yield models[0] if len(models) == 1 else models
    finally:
        for m, mode in zip(models, tops):
            m.train(mode)  # the model's own train() (a subclass may do more than set flags)
        for m, mode in modes:
            m.training = mode  # then each submodule's own flag


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model that has neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096, device: torch.device | str | None = None,
            fn: Callable | None = None) -> torch.Tensor:
    """``model(x)`` (or ``fn(x_batch)``, e.g. ``teacher.features``) for all of ``x`` in batches, in eval mode
    (dropout off; the model's mode is restored afterwards), as float32 on the CPU. ``device``: where the batches
    go (default: the model's device)."""
    if not isinstance(x, torch.Tensor) or x.dim() == 0 or len(x) == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a non-empty tensor of examples (N, ...), got {shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got batch_size={batch_size!r}")
    device = torch.device(device) if device is not None else model_device(model)
    fn = fn or model
    with eval_mode(model):
        return torch.cat([fn(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
