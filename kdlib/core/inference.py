"""Batched inference in eval mode: one helper for every "run the model over all of x" in the kit.

Notebooks 02-07 (predictions, teacher logits and features to cache, sampling, scoring). ``eval_mode(model)``
switches a model to eval mode (dropout off) and restores the previous mode of every submodule afterwards, even
when the body raises (a wrapper in training mode around a frozen teacher in eval mode comes back exactly so).
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


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096, device: torch.device | str | None = None,
            fn: Callable | None = None) -> torch.Tensor:
    """``model(x)`` (or ``fn(x_batch)``, e.g. ``teacher.features``) for all of ``x`` in batches, in eval mode
    (dropout off; the model's mode is restored afterwards), as float32 on the CPU. ``device``: where the batches
    go (default: the model's device)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    fn = fn or model
    with eval_mode(model):
        return torch.cat([fn(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
