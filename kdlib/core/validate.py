"""Validation of hyperparameters and values, and the switch that keeps value checks out of the hot path.

Every loss validates its *hyperparameters* (T, alpha, beta, kinds) and *shapes* when called: free, no host
read. *Value* checks (NaN or infinite logits, labels out of range) read tensor contents on the host, which on
a GPU waits for every queued kernel; ``check_finite`` and ``check_labels`` run only while value checks are on
(the default: a learner calling a loss by hand gets a clear error at once). ``kdlib.core.fit`` turns them off
inside its training steps (``value_checks(False)``) and checks the loss itself at its logging points, where one
host read per interval is paid anyway. Notebook 01 teaches why ``T > 0``.
"""
from __future__ import annotations

import contextvars
import math
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
