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

from kdlib.core.metrics import accuracy, macro_f1
from kdlib.core.validate import check_classification, check_temperature

__all__ = ["CONFIDENCES", "confidence", "route", "cascade_logits", "threshold_sweep", "oracle_route",
           "choose_threshold"]

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
    """For each threshold: ``{"threshold", "teacher_fraction", "accuracy", "macro_f1"}`` of the cascade on
    ``labels``. Include 0 (student alone) and a value above 1 (teacher alone) to get the endpoints."""
    check_classification(student_logits, labels, what="student logits")
    conf = confidence(student_logits, kind, T)
    rows = []
    for threshold in thresholds:
        to_teacher = route(conf, threshold)
        answer = cascade_logits(student_logits, teacher_logits, to_teacher)
        rows.append({"threshold": float(threshold), "teacher_fraction": float(to_teacher.float().mean()),
                     "accuracy": accuracy(answer, labels), "macro_f1": macro_f1(answer, labels)})
    return rows


def oracle_route(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The oracle router: True exactly where the student's argmax is wrong (it needs the labels: an upper bound)."""
    check_classification(student_logits, labels, what="student logits")
    return student_logits.argmax(-1) != labels.to(student_logits.device)


def choose_threshold(sweep: list[dict], target_accuracy: float, tolerance: float = 0.01) -> dict:
    """The row of a (validation) sweep with the smallest teacher fraction whose accuracy is at least
    ``target_accuracy - tolerance`` (for example the teacher's validation accuracy and one point); the row with
    the highest accuracy when none qualifies."""
    if not sweep:
        raise ValueError("the sweep is empty: give threshold_sweep at least one threshold")
    good = [r for r in sweep if r["accuracy"] >= target_accuracy - tolerance]
    if not good:
        return max(sweep, key=lambda r: (r["accuracy"], -r["teacher_fraction"]))
    return min(good, key=lambda r: (r["teacher_fraction"], -r["accuracy"]))
