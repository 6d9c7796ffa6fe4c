"""Seeds and error bars: is a gain larger than seed-to-seed noise, or than test-set noise? Notebooks 03 and 04.

For each method, accuracies over seeds give a mean and a sample standard deviation ``s`` (ddof = 1).
A gain ``g = mean_B - mean_A`` is called *larger than the seed noise* when
``|g| > 2 * sqrt(s_A^2 / n_A + s_B^2 / n_B)``: 2 x standard error of the difference (of the means; the
standard error itself is ``sqrt(s_A^2 / n_A + s_B^2 / n_B)``), roughly a two-sided 95% test; otherwise it is
*within the seed noise* (notebook 03). One seed gives no estimate of the noise at all: the noise functions need
at least 2 seeds per method and raise ValueError otherwise (a spread of 0 from one seed would call any gain
significant).

For two models scored on the *same* test items, ``paired_bootstrap_se`` gives the standard error of the
difference of their accuracies from resampling the items (notebook 04).
"""
from __future__ import annotations

import math
import statistics

import torch


def _values(values, name: str) -> list[float]:
    """``values`` as a list of finite floats, or ValueError naming ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().flatten().tolist()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"{name} must be a list of per-seed scores, got {type(values).__name__} {values!r:.60}")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers (one score per seed), got {list(values)!r:.80}") from None
    if not out:
        raise ValueError(f"{name} is empty: no seeds to take a mean over")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} holds NaN or infinite scores {out}: a run diverged; fix it before comparing")
    return out


def mean_std(values: list[float], name: str = "values") -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value, which says nothing about the noise:
    ``noise_of_difference`` refuses one seed). ValueError for no values or NaN/inf ones."""
    values = _values(values, name)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def noise_of_difference(a: list[float], b: list[float]) -> float:
    """``2 * sqrt(s_a^2/n_a + s_b^2/n_b)``, 2 x standard error of the difference of the means: the seed-noise
    threshold. ValueError unless each list has at least 2 seeds (one seed cannot estimate the noise)."""
    a, b = _values(a, "a"), _values(b, "b")
    few = [f"{name} has {len(v)}" for name, v in (("a", a), ("b", b)) if len(v) < 2]
    if few:
        raise ValueError(f"at least 2 seeds per method are needed to estimate the seed noise, but {', '.join(few)}; "
                         "run more seeds (3 or more is better) before calling a gain larger than the noise")
    (_, sa), (_, sb) = mean_std(a), mean_std(b)
    return 2 * math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))


def compare(baseline: list[float], other: list[float], name: str = "method", base: str = "baseline",
            paired: bool = False, scale: float = 100.0, unit: str = "points") -> dict:
    """Gain of ``other`` over ``baseline``, its noise threshold, and a sentence that says which wins.

    Unpaired: gain = difference of means, noise = 2 x standard error of the difference (``noise_of_difference``).
    ``paired=True``, when run i of both methods shares seed i (initial weights, batch order, subset): the per-seed
    differences ``d_i = other_i - baseline_i`` give gain = mean(d) and noise = ``2 * stdev(d) / sqrt(n)``, which
    cancels what the two runs of one seed have in common (notebooks 02 and 03). The text shows ``scale * gain``
    in ``unit`` (accuracies: 100 and "points"; error counts: 1 and "errors"). ValueError with fewer than 2 seeds in
    either list (one seed cannot tell a gain from noise), or lists of different lengths when paired.
    """
    baseline, other = _values(baseline, f"baseline ({base})"), _values(other, f"other ({name})")
    few = [f"{label} has {len(v)}" for label, v in ((base, baseline), (name, other)) if len(v) < 2]
    if few:
        raise ValueError(f"at least 2 seeds per method are needed to estimate the seed noise, but {', '.join(few)} "
                         "(compare(baseline, other) takes one score per seed); run more seeds (3 or more is better)")
    if paired:
        if len(baseline) != len(other):
            raise ValueError(f"paired=True needs one score per seed for both methods, got {len(baseline)} for {base} "
                             f"and {len(other)} for {name}")
        diffs = [o - b for o, b in zip(other, baseline)]
        gain, noise = statistics.fmean(diffs), 2 * statistics.stdev(diffs) / math.sqrt(len(diffs))
        how = f"2 x standard error of the per-seed differences = {scale * noise:.2f} {unit}, {len(diffs)} paired seeds"
    else:
        gain = statistics.fmean(other) - statistics.fmean(baseline)
        noise = noise_of_difference(baseline, other)
        seeds = f"{len(other)} seeds" if len(other) == len(baseline) else f"{len(baseline)} and {len(other)} seeds"
        how = f"2 x standard error of the difference = {scale * noise:.2f} {unit}, {seeds}"
    beyond = abs(gain) > noise
    verdict = ("larger than the seed noise" if beyond else "within the seed noise")
    text = f"{name}: {scale * gain:+.2f} {unit} over {base}, {verdict} ({how})"
    return {"gain": gain, "noise": noise, "beyond_noise": beyond, "paired": paired, "text": text}


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
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("correct_a and correct_b must hold finite per-item scores (1 right, 0 wrong), got NaN or inf")
    gen = torch.Generator().manual_seed(seed)
    boot = torch.randint(0, len(a), (resamples, len(a)), generator=gen)
    return float((a[boot].mean(1) - b[boot].mean(1)).std())


def table(results: dict[str, list[float]]) -> str:
    """A plain-text table: method, mean and std of accuracy (in %), number of seeds."""
    lines = [f"{'method':<14} {'mean acc %':>10} {'std':>6} {'seeds':>5}"]
    for name, values in results.items():
        m, s = mean_std(values, name)
        lines.append(f"{name:<14} {100 * m:>10.2f} {100 * s:>6.2f} {len(values):>5}")
    return "\n".join(lines)
