"""Seeds and error bars: is a gain larger than seed-to-seed noise? Notebook 03.

For each method, accuracies over seeds give a mean and a sample standard deviation ``s`` (ddof = 1).
A gain ``g = mean_B - mean_A`` is called *larger than the seed noise* when
``|g| > 2 * sqrt(s_A^2 / n_A + s_B^2 / n_B)``, twice the standard error of the difference of means
(roughly a two-sided 95% test); otherwise it is *within the seed noise*.
"""
from __future__ import annotations

import math
import statistics


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


def table(results: dict[str, list[float]]) -> str:
    """A plain-text table: method, mean and std of accuracy (in %), number of seeds."""
    lines = [f"{'method':<14} {'mean acc %':>10} {'std':>6} {'seeds':>5}"]
    for name, values in results.items():
        m, s = mean_std(values)
        lines.append(f"{name:<14} {100 * m:>10.2f} {100 * s:>6.2f} {len(values):>5}")
    return "\n".join(lines)
