"""Post-hoc temperature scaling (Guo et al. 2017). Notebook 03.

A trained model's logits ``z`` are divided by one scalar ``T > 0`` fitted on a validation split to minimise
the negative log-likelihood ``NLL(T) = -mean_i log softmax(z_i / T)[y_i]``. Accuracy does not change (the
argmax is the same); confidence falls when ``T > 1`` (an overconfident model) and rises when ``T < 1``.
ECE (``kdlib.core.metrics.expected_calibration_error``) is then measured on the *test* split.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_classification, check_temperature


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The ``T`` minimising ``NLL(softmax(logits / T), labels)``: LBFGS on ``log T`` (so T stays positive),
    started from a coarse grid's best point over T in [0.05, 20]."""
    check_classification(logits, labels)  # shapes, N >= 1, integer labels in range, finite logits: as every metric
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a whole number >= 1, got max_iter={max_iter!r}")
    logits, labels = logits.detach().double(), labels.to(logits.device).long()
    grid = torch.logspace(-1.3, 1.3, 27, dtype=torch.float64)
    nll = torch.stack([F.cross_entropy(logits / t, labels) for t in grid])
    log_t = grid[int(nll.argmin())].log().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def apply_temperature(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Calibrated probabilities ``softmax(logits / T)`` over the last dimension (``T > 0``)."""
    T = check_temperature(T)
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1:
        raise ValueError(f"logits must be a tensor with classes in the last dimension, got {logits!r:.80}")
    return torch.softmax(logits / T, dim=-1)
