"""A GPU time budget from work counted on the CPU: how the ``gpu`` profile sizes of notebooks 02-11 are chosen.

Every training step (or decoding forward) is priced by a roofline with a launch floor::

    GPU seconds per step = max(ops * per_op_s, flops / flops_per_s)
    GPU seconds of a section = steps * GPU seconds per step

``ops`` is the number of ATen operators one step dispatches (forward, loss, backward, optimiser: each is at
least one kernel launch on a GPU, plus Python around it), ``flops`` the floating-point operations of that step
(``torch.utils.flop_counter``), both counted by ``count_work`` on the CPU at the GPU shapes. The two constants
are calibrated from GPU measurements by ``calibrate``: ``per_op_s`` from a step that is all launches (notebook
02's MLP), ``flops_per_s`` from a step that is all arithmetic (notebook 06's transformer teacher). Used by
``benchmarks/gpu_budget.py``; the arithmetic is a model, not a measurement, and says nothing about memory.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from kdlib.core.validate import check_number

__all__ = ["Work", "Calibration", "count_work", "calibrate", "step_seconds", "section_seconds"]


@dataclass(frozen=True)
class Work:
    """What one step dispatches: ``ops`` ATen operators and ``flops`` floating-point operations."""

    ops: int
    flops: float


@dataclass(frozen=True)
class Calibration:
    """``per_op_s``: seconds per dispatched operator when launches dominate; ``flops_per_s``: sustained
    arithmetic throughput when FLOPs dominate. ``source`` says which measurements they came from."""

    per_op_s: float
    flops_per_s: float
    source: str = ""


class _OpCounter(TorchDispatchMode):
    """Counts every ATen operator dispatched inside the mode."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def count_work(fn: Callable[[], object]) -> Work:
    """``Work`` of one call of ``fn`` (e.g. one optimiser step), counted on whatever device it runs."""
    ops = _OpCounter()
    flops = FlopCounterMode(display=False)
    with flops, ops:
        fn()
    return Work(sum(ops.counts.values()), float(flops.get_total_flops()))


def calibrate(launch_step_s: float, launch_work: Work, compute_step_s: float, compute_work: Work,
              source: str = "") -> Calibration:
    """Constants from two GPU measurements: ``per_op_s = launch_step_s / launch_work.ops`` (a step whose FLOPs
    are negligible) and ``flops_per_s = compute_work.flops / compute_step_s`` (a step that is arithmetic-bound).
    Raises ValueError when the second step would be launch-bound under the first constant (then it cannot
    calibrate throughput)."""
    launch_step_s = check_number("launch_step_s", launch_step_s, low=0, low_open=True)
    compute_step_s = check_number("compute_step_s", compute_step_s, low=0, low_open=True)
    if launch_work.ops < 1 or compute_work.flops <= 0:
        raise ValueError(f"need ops >= 1 and flops > 0, got {launch_work} and {compute_work}")
    per_op_s = launch_step_s / launch_work.ops
    if compute_work.ops * per_op_s >= compute_step_s:
        raise ValueError(f"the compute step ({compute_step_s:.4g} s) is no slower than its launch floor "
                         f"({compute_work.ops} ops x {per_op_s:.3g} s): it cannot calibrate the throughput")
    return Calibration(per_op_s, compute_work.flops / compute_step_s, source)


def step_seconds(work: Work, cal: Calibration) -> float:
    """``max(ops * per_op_s, flops / flops_per_s)``: the launch floor or the arithmetic, whichever is longer."""
    return max(work.ops * cal.per_op_s, work.flops / cal.flops_per_s)


def section_seconds(steps: int, work: Work, cal: Calibration) -> float:
    """``steps * step_seconds(work, cal)``."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return steps * step_seconds(work, cal)
