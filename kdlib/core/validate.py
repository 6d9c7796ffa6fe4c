"""Validation of hyperparameters and values, and the switch that keeps value checks out of the hot path.

Every loss validates its *hyperparameters* (T, alpha, beta, kinds) and *shapes* when called: free, no host
read. *Value* checks (NaN or infinite logits, labels out of range) read tensor contents on the host, which on
a GPU waits for every queued kernel; ``check_finite`` and ``check_labels`` run only while value checks are on
(the default: a learner calling a loss by hand gets a clear error at once). ``kdlib.core.fit`` turns them off
inside its training steps (``value_checks(False)``) and checks the loss itself at its logging points, where one
host read per interval is paid anyway. Notebook 01 teaches why ``T > 0``. ``check_classification`` validates the
inputs of every classification metric (an empty set, shapes, label dtype and range, finite logits).
"""
from __future__ import annotations

import contextvars
import math
import numbers
from contextlib import contextmanager

import torch


_VALUE_CHECKS = contextvars.ContextVar("kdlib_value_checks", default=True)


@contextmanager
def value_checks(enabled: bool):
    """Turn value checks (``check_finite``, ``check_labels``) on or off inside the ``with`` block."""
    token = _VALUE_CHECKS.set(enabled)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def values_checked() -> bool:
    """True unless inside ``value_checks(False)`` (the hot path of ``kdlib.core.fit``)."""
    return _VALUE_CHECKS.get()


def check_number(name: str, value, low: float | None = None, high: float | None = None, low_open: bool = False,
                 hint: str = "") -> float:
    """``value`` as a float, or ValueError naming ``name`` unless it is a finite number in the range
    (``low < value`` when ``low_open``, else ``low <= value``; ``value <= high``). A 0-dim tensor is read once,
    here, where a step is built, never inside a step."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low)) and (high is None or value <= high)
    if not ok:
        where = (f" {'>' if low_open else '>='} {low}" if low is not None else "") + (
            f"{' and' if low is not None else ''} <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be a finite number{where}, got {name}={value!r}" + (f"; {hint}" if hint else ""))
    return float(value)


def whole(name: str, value, low: int, high: int | None = None, hint: str = "") -> int:
    """``value`` as an int, or ValueError unless it is a whole number (not a bool) in [low, high]."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        where = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a whole number {where}, got {name}={value!r}" + (f"; {hint}" if hint else ""))
    return int(value)


def check_temperature(T: float) -> float:
    """``T`` as a float, or ValueError unless it is a finite number > 0."""
    return check_number("T", T, low=0, low_open=True,
                        hint="the temperature T=1 is the ordinary softmax, larger T gives softer targets")


def check_finite(name: str, values: torch.Tensor) -> None:
    """Raise ValueError naming ``name`` if ``values`` holds NaN or infinite entries (a host read: skipped inside
    ``value_checks(False)``)."""
    if values_checked() and not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); check the model's outputs "
                         "(a diverged teacher or student, or a learning rate that is too high)")


def check_labels(labels: torch.Tensor, n_classes: int) -> None:
    """Raise ValueError unless every label lies in [0, n_classes) (a host read: skipped inside
    ``value_checks(False)``)."""
    if values_checked() and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= n_classes:
            raise ValueError(f"labels must lie in [0, {n_classes - 1}] for {n_classes} classes, "
                             f"got values from {low} to {high}")


def check_classification(logits: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None,
                         what: str = "logits") -> int:
    """Validate the inputs of a classification metric (``kdlib.core.metrics``, ``kdlib.core.calibration``):
    ``logits`` (N, classes) and integer ``labels`` (N,) with N >= 1 ("no examples" otherwise: a metric of an empty
    set is undefined), labels in [0, classes) and finite logits (host reads: only while value checks are on).
    ``what`` names the first argument in messages. Returns the number of classes (``n_classes`` if given: at least
    ``logits.shape[1]``)."""
    if not isinstance(logits, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ValueError(f"{what} and labels must be tensors, got {type(logits).__name__} and {type(labels).__name__}")
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected {what} (N, classes) and labels (N,), got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError(f"no examples: {what} of shape {tuple(logits.shape)} and labels of shape "
                         f"{tuple(labels.shape)}; a metric of an empty set is undefined (check the split or subset)")
    if logits.shape[1] == 0:
        raise ValueError(f"{what} have 0 classes (shape {tuple(logits.shape)}); expected (N, classes >= 1)")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices (int64), got dtype {labels.dtype}; use labels.long()")
    if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, int)
                                  or n_classes < logits.shape[1]):
        raise ValueError(f"n_classes must be a whole number >= the {logits.shape[1]} columns of {what}, "
                         f"got n_classes={n_classes!r}")
    n_classes = n_classes or logits.shape[1]
    check_finite(what, logits)
    check_labels(labels, n_classes)
    return n_classes
