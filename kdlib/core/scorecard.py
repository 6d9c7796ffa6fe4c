"""The two scorecards of a distilled model (notebook 09): model quality and system value, side by side.

* ``quality_card``: accuracy, macro-F1, calibration (ECE of the softmax), agreement with the teacher, accuracy per
  slice (boolean masks over the evaluation set, e.g. long tweets or the teacher's low-confidence region) and on a
  shifted set. Agreement with the teacher and accuracy on trusted labels can part ways: a student that copies its
  teacher's mistakes scores high on the first and not on the second (the scorecard trap).
* ``system_card``: latency percentiles, throughput, parameters, memory, cost per 1,000 requests and per successful
  task at a stated price per compute-second (``kdlib.core.costs``), and the share of requests that still reach the
  teacher (1 for the teacher, 0 for the student alone, in between for a cascade).
* ``scorecard_table``: several models' cards as one text table.
"""
from __future__ import annotations

import torch

from kdlib.core.costs import cost_per_1k, cost_per_success
from kdlib.core.metrics import accuracy, agreement, expected_calibration_error, macro_f1
from kdlib.core.validate import check_classification, check_number, whole

__all__ = ["quality_card", "system_card", "scorecard_table"]


def quality_card(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                 slices: dict[str, torch.Tensor] | None = None,
                 shifted: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Quality of ``logits`` (N, classes) against trusted ``labels`` (N,): ``accuracy``, ``macro_f1``, ``ece``,
    ``teacher_agreement`` (with ``teacher_logits``), ``slices`` ({name: {"accuracy", "n"}, plus
    "teacher_agreement" when ``teacher_logits`` are given} for each boolean mask of shape (N,)) and
    ``shifted_accuracy`` (``shifted = (logits, labels)`` of another set)."""
    check_classification(logits, labels)
    card = {"accuracy": accuracy(logits, labels), "macro_f1": macro_f1(logits, labels),
            "ece": expected_calibration_error(torch.softmax(logits.float(), -1), labels)}
    if teacher_logits is not None:
        card["teacher_agreement"] = agreement(logits, teacher_logits)
    if slices:
        card["slices"] = {}
        for name, mask in slices.items():
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != labels.shape:
                raise ValueError(f"slice {name!r} must be a bool mask of shape {tuple(labels.shape)} (one entry per "
                                 f"example), got {getattr(mask, 'dtype', type(mask).__name__)} "
                                 f"{tuple(getattr(mask, 'shape', ()))}")
            n = int(mask.sum())
            card["slices"][name] = {"accuracy": accuracy(logits[mask], labels[mask]) if n else float("nan"), "n": n}
            if teacher_logits is not None:
                card["slices"][name]["teacher_agreement"] = (agreement(logits[mask], teacher_logits[mask]) if n
                                                             else float("nan"))
    if shifted is not None:
        card["shifted_accuracy"] = accuracy(*shifted)
    return card


def system_card(latency_ms: dict, batch: int, params: int, size_mb: float, price_per_second: float,
                accuracy: float, teacher_fraction: float) -> dict:
    """System value from measured numbers: ``latency_ms`` (``p50_ms``, ``p95_ms``, ``p99_ms``, ``mean_ms`` of one
    call on ``batch`` requests, as ``kdlib.core.serving.latency`` returns), the model's ``params`` and ``size_mb``,
    a ``price_per_second`` of compute, its ``accuracy`` and the ``teacher_fraction`` of requests that reach the
    teacher. Adds ``requests_per_s``, ``cost_per_1k`` and ``cost_per_1k_successes``."""
    missing = [k for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms") if k not in latency_ms]
    if missing:
        raise ValueError(f"latency_ms lacks {', '.join(missing)}; pass what kdlib.core.serving.latency returns")
    batch = whole("batch", batch, 1)
    mean_s = check_number("mean_ms", latency_ms["mean_ms"], low=0, low_open=True) / 1000
    per_request = mean_s / batch
    teacher_fraction = check_number("teacher_fraction", teacher_fraction, low=0, high=1)
    cost = cost_per_1k(per_request, price_per_second)
    return {**{k: float(latency_ms[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")}, "batch": batch,
            "requests_per_s": 1 / per_request, "params": int(params), "size_mb": float(size_mb),
            "cost_per_1k": cost, "cost_per_1k_successes": cost_per_success(cost, accuracy),
            "teacher_fraction": teacher_fraction}


COLUMNS = (("accuracy", "accuracy", "{:.3f}"), ("macro_f1", "macro-F1", "{:.3f}"), ("ece", "ECE", "{:.3f}"),
           ("teacher_agreement", "agrees w/ teacher", "{:.3f}"), ("shifted_accuracy", "shifted acc.", "{:.3f}"),
           ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"), ("requests_per_s", "req/s", "{:,.0f}"),
           ("params", "params", "{:,}"), ("cost_per_1k", "cost/1k", "{:.4f}"),
           ("cost_per_1k_successes", "cost/1k right", "{:.4f}"), ("teacher_fraction", "to teacher", "{:.2f}"))


def scorecard_table(cards: dict[str, dict]) -> str:
    """One row per model (``{name: {**quality_card, **system_card}}``), the columns any card has; "-" where a
    model's card lacks one."""
    if not cards:
        raise ValueError("no cards: pass {model name: {**quality_card(...), **system_card(...)}}")
    columns = [(key, title, fmt) for key, title, fmt in COLUMNS if any(key in card for card in cards.values())]
    width = max(len("model"), *(len(name) for name in cards))
    rows = {name: [fmt.format(card[key]) if key in card else "-" for key, _, fmt in columns]
            for name, card in cards.items()}
    widths = [max(len(title), *(len(cells[i]) for cells in rows.values())) + 2
              for i, (_, title, _) in enumerate(columns)]
    lines = [f"{'model':<{width}}" + "".join(f"{title:>{w}}" for (_, title, _), w in zip(columns, widths))]
    for name, cells in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{cell:>{w}}" for cell, w in zip(cells, widths)))
    return "\n".join(lines)
