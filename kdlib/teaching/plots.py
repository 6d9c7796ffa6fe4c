"""Figures the notebooks show: probability bars, training curves, sweeps. Notebooks 01 and 02."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from kdlib.core.metrics import expected_calibration_error, reliability_bins


def probability_bars(probs: dict[str, torch.Tensor], class_names, ax=None, title: str | None = None):
    """Grouped bars of one distribution per entry of ``probs`` (name -> (classes,) probabilities)."""
    ax = ax or plt.gca()
    n = len(probs)
    width = 0.8 / max(n, 1)
    for i, (name, p) in enumerate(probs.items()):
        positions = [c + (i - (n - 1) / 2) * width for c in range(len(class_names))]
        ax.bar(positions, p.detach().cpu().tolist(), width=width, label=name)
    ax.set_xticks(range(len(class_names)), class_names, rotation=30)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def training_curves(histories: dict, metric: str = "val_accuracy", ax=None):
    """One line per run (name -> ``kdlib.core.fit.History``) of ``metric`` against epoch."""
    ax = ax or plt.gca()
    for name, history in histories.items():
        ax.plot(history.epoch, getattr(history, metric), marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend()
    return ax


def sweep(xs, ys: dict[str, list[float]], xlabel: str, ylabel: str, ax=None, logx: bool = False,
          reference: dict[str, float] | None = None):
    """Lines of ``ys`` (name -> values) against ``xs``, with optional horizontal reference lines."""
    ax = ax or plt.gca()
    for name, values in ys.items():
        ax.plot(xs, values, marker="o", label=name)
    for name, value in (reference or {}).items():
        ax.axhline(value, ls="--", lw=1, color="gray")
        ax.annotate(name, (xs[0], value), textcoords="offset points", xytext=(2, 3), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def reliability_diagram(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, ax=None, label: str | None = None):
    """Draw accuracy against confidence per bin (the diagonal is perfect calibration); returns the axes."""
    import matplotlib.pyplot as plt

    bins = reliability_bins(probs, labels, n_bins)
    ax = ax or plt.gca()
    centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
    filled = bins["count"] > 0
    ece = expected_calibration_error(probs, labels, n_bins)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.plot(centers[filled], bins["accuracy"][filled], "o-", label=f"{label or 'model'} (ECE {ece:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend()
    return ax
