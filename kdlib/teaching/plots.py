"""Figures the notebooks show: probability bars, training curves, sweeps (01, 02), reliability diagrams (03), the
two scorecards (09)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from kdlib.core.metrics import expected_calibration_error, reliability_bins
from kdlib.core.scorecard import scorecard_table


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


QUALITY_BARS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("teacher_agreement", "agrees with teacher"),
                ("shifted_accuracy", "accuracy, shifted set"))


def scorecard_plot(cards: dict[str, dict], axes=None):
    """Notebook 09's two scorecards as a figure: left, the quality card's numbers per model (bars); right, system
    value, accuracy against the cost of 1,000 requests (up and to the left is better), labelled with each
    model's share of requests that reach the teacher. ``cards``: {name: {**quality_card, **system_card}}."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1.4, 1]})
    shown = [(key, title) for key, title in QUALITY_BARS if any(key in card for card in cards.values())]
    width = 0.8 / max(1, len(cards))
    for i, (name, card) in enumerate(cards.items()):
        axes[0].bar([j + i * width for j in range(len(shown))], [card.get(key, float("nan")) for key, _ in shown],
                    width, label=name)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(shown))], [title for _, title in shown])
    axes[0].set_ylim(0, 1)
    axes[0].set_title("model quality")
    axes[0].legend(fontsize=8, loc="lower center", ncol=min(4, len(cards)))
    for name, card in cards.items():
        if "cost_per_1k" in card:
            axes[1].scatter(card["cost_per_1k"], card["accuracy"], s=40)
            share = f", {card['teacher_fraction']:.0%} to teacher" if "teacher_fraction" in card else ""
            axes[1].annotate(name + share, (card["cost_per_1k"], card["accuracy"]), textcoords="offset points",
                             xytext=(4, 4), fontsize=8)
    axes[1].set_xlabel("cost per 1,000 requests")
    axes[1].set_ylabel("accuracy")
    axes[1].set_title("system value")
    return axes


def show_scorecard(cards: dict[str, dict]):
    """One call, both scorecards: prints ``kdlib.core.scorecard.scorecard_table(cards)`` and draws
    ``scorecard_plot(cards)`` (notebooks 04 and 09); returns the axes."""
    print(scorecard_table(cards))
    axes = scorecard_plot(cards)
    plt.tight_layout()
    plt.show()
    return axes
