"""When does distillation pay? The business equation of notebook 09, as arithmetic on measured numbers:

    offline teacher cost + student training cost  <  serving savings over time

Prices are stated per compute-second (a CPU- or GPU-second), times are measured in this kit:

* cost per request = seconds per request x price per second; per 1,000 requests, x 1000;
* cost per successful task = cost per request / accuracy (a cheap model that is often wrong is not cheap);
* savings per request = teacher's cost per request - the student's (or the cascade's);
* break-even volume = (teacher labelling cost + student training cost) / savings per request, infinite when the
  student saves nothing; after it, every request served by the student is profit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from kdlib.core.validate import check_number

__all__ = ["cost_per_request", "cost_per_1k", "cost_per_success", "break_even_requests", "cumulative_cost"]


def _nonneg(name: str, value, hint: str = "") -> float:
    return check_number(name, value, low=0, hint=hint)


def cost_per_request(seconds_per_request: float, price_per_second: float) -> float:
    """``seconds_per_request * price_per_second`` (both >= 0)."""
    return (_nonneg("seconds_per_request", seconds_per_request, "a measured time, e.g. p50_ms / 1000")
            * _nonneg("price_per_second", price_per_second, "the price of one CPU- or GPU-second"))


def cost_per_1k(seconds_per_request: float, price_per_second: float) -> float:
    """The cost of 1,000 requests."""
    return 1000 * cost_per_request(seconds_per_request, price_per_second)


def cost_per_success(cost: float, accuracy: float) -> float:
    """``cost / accuracy``: what one right answer costs (infinite at accuracy 0)."""
    cost = _nonneg("cost", cost)
    accuracy = check_number("accuracy", accuracy, low=0, high=1)
    return math.inf if accuracy == 0 else cost / accuracy


def break_even_requests(teacher_labelling_cost: float, student_training_cost: float, teacher_cost: float,
                        student_cost: float) -> float:
    """Requests after which distilling has paid for itself: ``(labelling + training) / (teacher_cost -
    student_cost)`` with per-request costs; ``math.inf`` when the student does not save anything per request."""
    fixed = (_nonneg("teacher_labelling_cost", teacher_labelling_cost)
             + _nonneg("student_training_cost", student_training_cost))
    savings = _nonneg("teacher_cost", teacher_cost) - _nonneg("student_cost", student_cost)
    return math.inf if savings <= 0 else fixed / savings


def cumulative_cost(requests: Sequence[float], fixed_cost: float, per_request: float) -> list[float]:
    """``fixed_cost + n * per_request`` for each n in ``requests``: one line of the cost plot."""
    fixed_cost, per_request = _nonneg("fixed_cost", fixed_cost), _nonneg("per_request", per_request)
    return [fixed_cost + _nonneg("requests", n) * per_request for n in requests]


def break_even_cases() -> list[tuple]:
    """The exercise checks of ``break_even_requests`` (notebook 09): (labelling, training, teacher per request,
    student per request) costs, including a student that saves nothing (never pays off) or costs more."""
    return [(10.0, 5.0, 0.003, 0.001), (0.0, 2.0, 1e-4, 2e-5), (3.0, 4.0, 0.002, 0.002), (3.0, 4.0, 0.001, 0.002),
            (120.0, 0.0, 0.05, 0.0)]
