"""Seeds and error bars: is a gain larger than seed-to-seed noise, or than test-set noise? Notebooks 03 and 04.

For each method, accuracies over seeds give a mean and a sample standard deviation ``s`` (ddof = 1).
A gain ``g = mean_B - mean_A`` is called *larger than the seed noise* when
``|g| > 2 * sqrt(s_A^2 / n_A + s_B^2 / n_B)``, twice the standard error of the difference of means
(roughly a two-sided 95% test); otherwise it is *within the seed noise* (notebook 03).

For two models scored on the *same* test items, ``paired_bootstrap_se`` gives the standard error of the
difference of their accuracies from resampling the items (notebook 04).
"""
from __future__ import annotations

import math
import statistics

import torch


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def noise_of_difference(a: list[float], b: list[float]) -> float:
    """``2 * sqrt(s_a^2/n_a + s_b^2/n_b)``: the seed-noise threshold for a difference of means."""
    (_, sa), (_, sb) = mean_std(a), mean_std(b)
    return 2 * math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))


def compare(baseline: list[float], other: list[float], name: str = "method", base: str = "baseline") -> dict:
    """Gain of ``other`` over ``baseline``, its noise threshold, and a sentence that says which wins."""
    gain = mean_std(other)[0] - mean_std(baseline)[0]
    noise = noise_of_difference(baseline, other)
    beyond = abs(gain) > noise
    verdict = ("larger than the seed noise" if beyond else "within the seed noise")
    text = (f"{name}: {100 * gain:+.2f} points over {base}, {verdict} "
            f"(2 x standard error of the difference = {100 * noise:.2f} points, {len(other)} seeds)")
    return {"gain": gain, "noise": noise, "beyond_noise": beyond, "text": text}


def paired_bootstrap_se(correct_a: torch.Tensor, correct_b: torch.Tensor, resamples: int = 1000,
                        seed: int = 0) -> float:
    """Standard error of ``mean(correct_a) - mean(correct_b)`` for two models scored on the same n test items,
    by the paired bootstrap. Notebook 04.

    ``correct_a[i]``, ``correct_b[i]``: each model's score on item i (1 right, 0 wrong; bools are fine). Each of
    ``resamples`` (B) rounds draws n item indices ``i_1..i_n`` with replacement, the same for both models (paired:
    an item that is hard for both stays hard for both, so their shared noise cancels), and computes
    ``d_b = (1/n) sum_k correct_a[i_k] - (1/n) sum_k correct_b[i_k]``; the result is the sample standard
    deviation of ``d_1..d_B`` (ddof = 1), about ``sqrt(var(correct_a - correct_b) / n)``. It is 0 when the
    two models are right on exactly the same items. The draws come from a local ``torch.Generator`` seeded
    with ``seed`` (the global RNG is untouched), so the result is reproducible.
    """
    a, b = torch.as_tensor(correct_a), torch.as_tensor(correct_b)
    if a.dim() != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"correct_a and correct_b must be two non-empty 1-D tensors of the same length (one score "
                         f"per test item, for the same items), got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 2:
        raise ValueError(f"resamples must be a whole number >= 2 (a standard deviation needs two), got {resamples!r}")
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    gen = torch.Generator().manual_seed(seed)
    boot = torch.randint(0, len(a), (resamples, len(a)), generator=gen)
    return float((a[boot].mean(1) - b[boot].mean(1)).std())


def table(results: dict[str, list[float]]) -> str:
    """A plain-text table: method, mean and std of accuracy (in %), number of seeds."""
    lines = [f"{'method':<14} {'mean acc %':>10} {'std':>6} {'seeds':>5}"]
    for name, values in results.items():
        m, s = mean_std(values)
        lines.append(f"{name:<14} {100 * m:>10.2f} {100 * s:>6.2f} {len(values):>5}")
    return "\n".join(lines)
