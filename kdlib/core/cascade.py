"""A cascade of a student and its teacher: every request goes to the student first and on to the teacher when the
student is not confident (notebook 09).

Confidence of the student's softmax ``p = softmax(z / T)`` (``T`` from ``kdlib.core.calibration.fit_temperature`` on
validation, or 1):

* ``max_prob``: ``max_c p_c``;
* ``margin``: ``p_(1) - p_(2)``, the gap between the two most probable classes.

A request goes to the teacher when its confidence is *below* the threshold, so threshold 0 is the student alone and
a threshold above every confidence is the teacher alone. The **oracle router** sends exactly the requests the
student gets wrong: no router can do better at that teacher fraction, so it bounds the sweep from above.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kdlib.core.metrics import accuracy, macro_f1
from kdlib.core.validate import check_classification, check_number, check_temperature

__all__ = ["CONFIDENCES", "confidence", "route", "route_to_teacher", "cascade_logits", "threshold_sweep",
           "oracle_route", "choose_threshold", "Cascade"]

CONFIDENCES = ("max_prob", "margin")


def confidence(logits: torch.Tensor, kind: str = "max_prob", T: float = 1.0) -> torch.Tensor:
    """Per-request confidence (N,) of ``logits`` (N, classes) at temperature ``T``: ``max_prob`` or ``margin``."""
    if kind not in CONFIDENCES:
        raise ValueError(f"kind must be one of {', '.join(CONFIDENCES)}, got {kind!r}")
    T = check_temperature(T)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"expected logits (N, classes >= 2), got {getattr(logits, 'shape', type(logits).__name__)}")
    p = torch.softmax(logits.float() / T, -1)
    top = p.topk(2, dim=-1).values
    return top[:, 0] if kind == "max_prob" else top[:, 0] - top[:, 1]


def route(conf: torch.Tensor, threshold: float) -> torch.Tensor:
    """True where a request goes to the teacher: its confidence is below ``threshold``."""
    if not isinstance(conf, torch.Tensor) or conf.dim() != 1:
        raise ValueError(f"confidence must be a tensor (N,), got {getattr(conf, 'shape', type(conf).__name__)}")
    return conf < float(threshold)


def route_to_teacher(student_logits: torch.Tensor, threshold: float, T: float = 1.0, kind: str = "max_prob"
                     ) -> torch.Tensor:
    """The router of notebook 09's exercise: True where the student's confidence at temperature ``T`` is below
    ``threshold``, ``confidence(student_logits, kind, T) < threshold``."""
    return route(confidence(student_logits, kind, T), threshold)


def router_cases() -> list[tuple]:
    """The exercise checks of ``route_to_teacher`` (notebook 09): (logits, threshold, T) cases."""
    gen = torch.Generator().manual_seed(9)
    cases = [(torch.randn(12, 3, generator=gen) * scale, threshold, T)
             for scale, threshold, T in [(2.0, 0.6, 1.0), (4.0, 0.9, 1.0), (3.0, 0.5, 2.5), (1.0, 0.0, 1.0)]]
    return cases + [(torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), 0.5, 0.5)]  # T < 1 sharpens


def _check_router(to_teacher, n: int) -> torch.Tensor:
    if not isinstance(to_teacher, torch.Tensor) or to_teacher.dtype != torch.bool or to_teacher.shape != (n,):
        got = (f"dtype {to_teacher.dtype}, shape {tuple(to_teacher.shape)}" if isinstance(to_teacher, torch.Tensor)
               else type(to_teacher).__name__)
        raise ValueError(f"a router must return one boolean per request (True: ask the teacher), a bool tensor of "
                         f"shape ({n},); got {got}")
    return to_teacher


def cascade_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor, to_teacher: torch.Tensor
                   ) -> torch.Tensor:
    """The cascade's answer per request: the teacher's logits where ``to_teacher`` (bool (N,)), else the student's."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape (the same requests and classes)")
    to_teacher = _check_router(to_teacher, len(student_logits))
    return torch.where(to_teacher[:, None].to(student_logits.device), teacher_logits.to(student_logits.device),
                       student_logits)


def threshold_sweep(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    thresholds: Sequence[float], kind: str = "max_prob", T: float = 1.0) -> list[dict]:
    """For each threshold: ``{"threshold", "teacher_fraction", "accuracy", "macro_f1", "gap", "gap_se"}`` of the
    cascade on ``labels``. ``gap`` is the cascade's accuracy minus the teacher's on the same requests, and
    ``gap_se`` its paired standard error, ``stdev_i(right_cascade_i - right_teacher_i) / sqrt(N)`` (the two differ
    only where the student answers and disagrees with the teacher, so the paired error is small). Include 0
    (student alone) and a value above 1 (teacher alone) to get the endpoints."""
    check_classification(student_logits, labels, what="student logits")
    conf = confidence(student_logits, kind, T)
    labels = labels.to(student_logits.device)
    teacher_right = (teacher_logits.to(student_logits.device).argmax(-1) == labels).float()
    rows = []
    for threshold in thresholds:
        to_teacher = route(conf, threshold)
        answer = cascade_logits(student_logits, teacher_logits, to_teacher)
        diff = (answer.argmax(-1) == labels).float() - teacher_right
        se = float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else float("nan")
        rows.append({"threshold": float(threshold), "teacher_fraction": float(to_teacher.float().mean()),
                     "accuracy": accuracy(answer, labels), "macro_f1": macro_f1(answer, labels),
                     "gap": float(diff.mean()), "gap_se": se})
    return rows


def oracle_route(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The oracle router: True exactly where the student's argmax is wrong (it needs the labels: an upper bound)."""
    check_classification(student_logits, labels, what="student logits")
    return student_logits.argmax(-1) != labels.to(student_logits.device)


def choose_threshold(sweep: list[dict], target_accuracy: float | None = None, tolerance: float = 0.01,
                     z: float = 0.0) -> dict:
    """The row of a (validation) sweep with the smallest teacher fraction that keeps the quality target, or the
    most accurate row when none does.

    With ``target_accuracy`` (for example the teacher's validation accuracy) a row qualifies when its ``accuracy -
    z * gap_se >= target_accuracy - tolerance``; without it, when its paired gap to the teacher does, ``gap - z *
    gap_se >= -tolerance``: within ``tolerance`` of the teacher with the confidence that ``z`` standard errors
    give (``z=2``: about 97.5%, one-sided), so that a threshold that matches the teacher on validation by luck is
    not taken (notebook 09)."""
    if not sweep:
        raise ValueError("the sweep is empty: give threshold_sweep at least one threshold")
    z = check_number("z", z, low=0, hint="the number of standard errors of margin, e.g. 2")
    tolerance = check_number("tolerance", tolerance, low=0, hint="how far below the target is still fine, e.g. 0.01")

    def lower(row, value):
        return value - z * row.get("gap_se", 0.0) if z else value

    if target_accuracy is None:
        good = [r for r in sweep if lower(r, r["gap"]) >= -tolerance]
    else:
        good = [r for r in sweep if lower(r, r["accuracy"]) >= target_accuracy - tolerance]
    if not good:
        return max(sweep, key=lambda r: (r["accuracy"], -r["teacher_fraction"]))
    return min(good, key=lambda r: (r["teacher_fraction"], -r["accuracy"]))


class Cascade(nn.Module):
    """A served cascade: ``cascade(x)`` runs the student on the whole batch, and the teacher only on the rows whose
    student confidence (``kind`` at temperature ``T``) is below ``threshold``; returns the answered logits.

    Which rows go on is known only after the student has answered, so each call reads the routing on the host
    (that is the cascade's cost, and the clock of ``kdlib.core.serving`` sees it). ``requests`` and
    ``teacher_requests`` count what was served, so ``teacher_requests / requests`` is the measured share of
    teacher calls; ``reset()`` sets both to 0."""

    def __init__(self, student: nn.Module, teacher: nn.Module, threshold: float, kind: str = "max_prob",
                 T: float = 1.0):
        super().__init__()
        if kind not in CONFIDENCES:
            raise ValueError(f"kind must be one of {', '.join(CONFIDENCES)}, got {kind!r}")
        self.student, self.teacher, self.threshold, self.kind = student, teacher, float(threshold), kind
        self.T = check_temperature(T)
        self.reset()

    def reset(self) -> None:
        self.requests = self.teacher_requests = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.student(x)
        unsure = route_to_teacher(logits, self.threshold, self.T, self.kind)
        rows = unsure.nonzero().squeeze(1)
        self.requests += len(x)
        self.teacher_requests += len(rows)
        if len(rows):
            logits = logits.clone()
            logits[rows] = self.teacher(x[rows.to(x.device)]).to(logits.dtype)
        return logits
