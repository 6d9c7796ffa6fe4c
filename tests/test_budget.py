"""kdlib.core.budget: the GPU budget model's arithmetic on tiny cases (work counted, calibration, the max of the
launch floor and the FLOPs), not timings."""
import pytest
import torch

from kdlib.core.budget import Calibration, Work, calibrate, count_work, section_seconds, step_seconds


def test_count_work_counts_matmul_flops_and_ops():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    work = count_work(lambda: torch.relu(a @ b))
    assert work.flops == 2 * 8 * 16 * 4  # one multiply and one add per term
    assert work.ops == 2  # mm, relu


def test_step_seconds_is_the_larger_of_floor_and_arithmetic():
    cal = Calibration(per_op_s=1e-5, flops_per_s=1e12)
    assert step_seconds(Work(ops=100, flops=1e6), cal) == pytest.approx(1e-3)  # launch-bound: 100 x 10 us
    assert step_seconds(Work(ops=100, flops=1e10), cal) == pytest.approx(1e-2)  # FLOP-bound: 1e10 / 1e12
    assert section_seconds(391, Work(100, 1e6), cal) == pytest.approx(0.391)
    with pytest.raises(ValueError):
        section_seconds(-1, Work(1, 1.0), cal)


def test_calibrate_inverts_the_two_measurements():
    launch, compute = Work(ops=75, flops=8e8), Work(ops=1500, flops=9e11)
    cal = calibrate(0.52 / 391, launch, 294 / 6000, compute)
    assert cal.per_op_s == pytest.approx(0.52 / 391 / 75)
    assert cal.flops_per_s == pytest.approx(9e11 / (294 / 6000))
    assert step_seconds(launch, cal) == pytest.approx(0.52 / 391)  # reproduces its own calibration points
    assert step_seconds(compute, cal) == pytest.approx(294 / 6000)
    with pytest.raises(ValueError, match="launch floor"):  # a launch-bound step cannot calibrate throughput
        calibrate(0.52 / 391, launch, 1e-3, Work(ops=1500, flops=1e6))
