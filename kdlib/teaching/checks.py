"""Exercise checks: compare a learner's function with the reference on fixed cases.

Every exercise cell in ``notebooks/`` ends with ``kd_loss = check("kd_loss", kd_loss)``:

* the function agrees with the reference on every case: prints a pass and returns the learner's function;
* it disagrees: prints the first differing case (inputs, expected, got) and hands back the reference,
  so the rest of the notebook still runs on correct numbers;
* it is still a stub (raises ``NotImplementedError``): says "not solved yet: using the reference";
* it raises, returns None (a forgotten ``return``), a string, a number for a tensor, a wrong dtype, device or
  shape, NaN, or changes its inputs in place: says which case and what went wrong, and hands back the reference.

The references run first on pristine inputs and every call gets its own copy (``kdlib.teaching.verdicts``), so
``check`` is a pure function of the learner's function and never crashes on what it does.

Later notebooks add their own exercises with ``register(name, reference, cases)``; notebook 03 registers
``hint_loss`` and ``expected_calibration_error``.

In a course (``KDLIB_COURSE=1``, set by the notebooks and the ``nbgrader_config.py`` that
``kdlib.teaching.classroom`` writes), ``check`` prints the same verdicts but never falls back: it returns the
learner's function as written, so what the autograder grades is what the learner's code earns.
"""
from __future__ import annotations

import importlib
import inspect
import os
from typing import Callable

import torch

from kdlib.core.validate import check_temperature
from kdlib.teaching.verdicts import NOT_SOLVED, describe, fresh, judge

_REGISTRY: dict[str, tuple[Callable | str, Callable[[], list[tuple]]]] = {}
COURSE = "KDLIB_COURSE"  # set to 1 in a course release: no fallback to the reference


def course_mode() -> bool:
    """True in a course release (``KDLIB_COURSE`` set to anything but empty or 0): ``check`` keeps the learner's
    function."""
    return os.environ.get(COURSE, "").strip() not in ("", "0")


def register(name: str, reference: Callable | str, cases: Callable[[], list[tuple]] | str) -> None:
    """Make ``check(name, fn)`` compare ``fn(*case)`` with ``reference(*case)`` for each case. ``reference`` and
    ``cases`` may be named ``"module:function"``; they are imported on the first check, so importing this module
    imports no lesson's code."""
    _REGISTRY[name] = (reference, cases)


def _imported(obj):
    if isinstance(obj, str):
        module, _, attr = obj.partition(":")
        return getattr(importlib.import_module(module), attr)
    return obj


def _reference(name: str) -> Callable:
    reference, cases = (_imported(obj) for obj in _REGISTRY[name])
    _REGISTRY[name] = (reference, cases)
    return reference


def _argument_names(reference: Callable) -> list[str]:
    try:
        return list(inspect.signature(reference).parameters)
    except (TypeError, ValueError):
        return []


def check(name: str, fn: Callable, rtol: float = 1e-4, atol: float = 1e-5, verbose: bool = True) -> Callable:
    """Check ``fn`` against the reference named ``name``; return the function the notebook should use.

    The reference outputs are computed first, each on its own copy of a case's inputs; then each call of ``fn``
    gets its own copy (``verdicts.fresh``), which is compared with the pristine inputs afterwards, so a function
    that changes its inputs in place is caught (and cannot spoil the reference). Any mistake of ``fn`` (an
    exception, None, a non-tensor, a wrong dtype, device or shape, NaN, a mutation, wrong values) is printed as
    a verdict and the reference is returned (in course mode, ``fn`` itself); an exception in the reference itself is
    a bug of kdlib and raises."""
    if name not in _REGISTRY:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    reference, cases = _reference(name), _REGISTRY[name][1]  # _reference imported both
    say = print if verbose else (lambda *a: None)
    pristine = cases()
    wants = [reference(*fresh(args)) for args in pristine]
    course = course_mode()
    fallback = ("    course mode: your function is kept as written (no fallback to the reference); the cells that use "
                "it use yours") if course else "    using the reference for the rest of the notebook"
    kept = fn if course else reference
    if not callable(fn):
        say(f"[x] {name}: expected a function, got {describe(fn, 60)}\n{fallback}")
        return kept
    names = _argument_names(reference)
    for i, (args, want) in enumerate(zip(pristine, wants)):
        verdict = judge(fn, args, want, rtol, atol, names)
        if verdict == NOT_SOLVED:
            say(f"[ ] {name}: not solved yet: " + ("course mode, so no reference stands in: the cells that use it "
                                                    "fail until you write it" if course else
                                                    "using the reference implementation so the notebook runs on"))
            return kept
        if verdict:
            say(f"[x] {name}: case {i} {verdict}\n{fallback}")
            return kept
    say(f"[v] {name}: passed all {len(pristine)} checks")
    return fn


def softmax_with_temperature(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Reference: ``softmax(logits / T)`` over the last dimension (notebook 01)."""
    check_temperature(T)
    return torch.softmax(logits / T, dim=-1)


def best_bias_shift(logits: torch.Tensor, labels: torch.Tensor, cls: int, shifts: torch.Tensor) -> float:
    """Reference (notebook 02): the shift added to class ``cls``'s logit that maximises accuracy
    (the first such shift in ``shifts`` on ties)."""
    bump = torch.zeros(logits.shape[1])
    scores = []
    for s in shifts:
        bump[cls] = s
        scores.append(((logits + bump).argmax(-1) == labels).float().mean())
    return float(shifts[int(torch.stack(scores).argmax())])


def _logit_cases(with_labels: bool = False) -> list[tuple]:
    gen = torch.Generator().manual_seed(0)
    cases = []
    for n, c, T, alpha in [(4, 10, 1.0, 0.5), (8, 3, 4.0, 0.1), (5, 10, 20.0, 0.0), (3, 5, 0.5, 1.0)]:
        s = torch.randn(n, c, generator=gen) * 3
        t = torch.randn(n, c, generator=gen) * 3
        y = torch.randint(0, c, (n,), generator=gen)
        cases.append((s, t, y, T, alpha) if with_labels else (s, t, T))
    return cases


def _softmax_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(3, 5, generator=gen) * 4, T) for T in (1.0, 0.5, 4.0, 20.0)] + \
           [(torch.tensor([[1000.0, 999.0, -5.0]]), 2.0)]  # large logits: a stable softmax is needed


def _bias_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(200, 10, generator=gen)
    labels = torch.randint(0, 10, (200,), generator=gen)
    labels[:40] = 3
    return [(logits, labels, 3, torch.linspace(0, 5, 21)), (logits - 1.0, labels, 7, torch.linspace(0, 3, 13))]


register("softmax_with_temperature", softmax_with_temperature, _softmax_cases)
register("kd_loss", "kdlib.losses.logits:kd_loss", lambda: _logit_cases(False))
register("distillation_loss", "kdlib.losses.logits:distillation_loss", lambda: _logit_cases(True))
register("best_bias_shift", best_bias_shift, _bias_cases)


# ---- notebook 03: the FitNets hint with its regressor, and ECE
def _hint_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(3)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(3)
    regressor = torch.nn.Conv2d(4, 6, kernel_size=3, padding=1)
    linear = torch.nn.Linear(5, 3)
    torch.random.set_rng_state(torch_state)
    return [(torch.randn(2, 4, 5, 5, generator=gen), torch.randn(2, 6, 5, 5, generator=gen), regressor),
            (torch.randn(3, 5, generator=gen), torch.randn(3, 3, generator=gen), linear),
            (torch.randn(4, 8, generator=gen), torch.randn(4, 8, generator=gen), None)]


def _ece_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(4)
    cases = []
    for n, c, scale, bins in [(500, 10, 3.0, 15), (200, 3, 1.0, 10), (64, 5, 8.0, 5)]:
        probs = torch.softmax(torch.randn(n, c, generator=gen) * scale, -1)
        labels = torch.randint(0, c, (n,), generator=gen)
        labels[: n // 2] = probs[: n // 2].argmax(-1)  # half right, half random
        cases.append((probs, labels, bins))
    return cases


register("hint_loss", "kdlib.losses.features:hint_loss", _hint_cases)
register("expected_calibration_error", "kdlib.core.metrics:expected_calibration_error", _ece_cases)


# ---- notebook 05: token-level KL with masks, and the top-k cache with its tail bucket
def _masked_kl_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(5)
    cases = []
    for b, length, v in [(2, 5, 7), (3, 4, 11), (1, 6, 5)]:
        s = torch.randn(b, length, v, generator=gen) * 2
        t = torch.randn(b, length, v, generator=gen) * 2
        mask = (torch.rand(b, length, generator=gen) > 0.4).long()
        mask[0, -1] = 1  # at least one token counts
        cases.append((s, t, mask))
    return cases


def topk_with_tail(teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference (notebook 05): the k largest teacher log-probs, their ids (int64), and log of the tail mass."""
    from kdlib.losses.tokens import topk_from_logits
    cache = topk_from_logits(teacher_logits, k)
    return cache.log_probs, cache.indices.long(), cache.tail


def _topk_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(6)
    return [(torch.randn(2, 3, 20, generator=gen) * 3, 4), (torch.randn(4, 50, generator=gen), 10),
            (torch.randn(1, 2, 9, generator=gen) * 5, 8)]


register("forward_kl", "kdlib.losses.tokens:forward_kl", _masked_kl_cases)
register("reverse_kl", "kdlib.losses.tokens:reverse_kl", _masked_kl_cases)
register("topk_with_tail", topk_with_tail, _topk_cases)


# ---- notebook 04: the hidden-state loss with a projection, the attention loss with padding masked
def hidden_state_mse(student_state: torch.Tensor, teacher_state: torch.Tensor, projection, mask: torch.Tensor
                     ) -> torch.Tensor:
    """Reference (notebook 04): one mapped layer of ``hidden_state_loss``: ``MSE(W h_S, h_T)`` averaged over
    real tokens (mask 1) and the teacher's hidden units; ``projection`` W may be None for equal widths."""
    from kdlib.losses.transformer import embedding_loss
    return embedding_loss(student_state, teacher_state, projection, mask)


def attention_mse(student_attention: torch.Tensor, teacher_attention: torch.Tensor, mask: torch.Tensor
                  ) -> torch.Tensor:
    """Reference (notebook 04): one layer of ``attention_loss(kind="mse")``: per head and real query, the squared
    error summed over real keys divided by their number, averaged over heads and real queries."""
    from kdlib.losses.transformer import attention_loss
    return attention_loss([student_attention], [teacher_attention], {1: 1}, mask, kind="mse")


def _encoder_mask(gen: torch.Generator, b: int, length: int) -> torch.Tensor:
    lengths = torch.randint(2, length + 1, (b,), generator=gen)
    lengths[0] = length  # one full row
    return (torch.arange(length)[None, :] < lengths[:, None]).long()


def _hidden_mse_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(7)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(7)
    up = torch.nn.Linear(6, 10)
    torch.random.set_rng_state(torch_state)
    cases = []
    for b, length, ws, wt, proj in [(2, 5, 6, 10, up), (3, 4, 8, 8, None), (2, 7, 6, 10, up)]:
        cases.append((torch.randn(b, length, ws, generator=gen), torch.randn(b, length, wt, generator=gen) * 2,
                      proj, _encoder_mask(gen, b, length)))
    return cases


def _attention_mse_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(8)
    cases = []
    for b, heads, length in [(2, 3, 5), (3, 2, 6), (1, 4, 4)]:
        mask = _encoder_mask(gen, b, length)
        keys = ~mask.bool()[:, None, None, :]
        s = torch.randn(b, heads, length, length, generator=gen).masked_fill(keys, float("-inf")).softmax(-1)
        t = torch.randn(b, heads, length, length, generator=gen).masked_fill(keys, float("-inf")).softmax(-1)
        cases.append((s, t, mask))
    return cases


register("hidden_state_mse", hidden_state_mse, _hidden_mse_cases)
register("attention_mse", attention_mse, _attention_mse_cases)


# ---- notebooks 06 and 07 (cases in kdlib.teaching.cases): answer verification, the multi-task loss of Distilling
# step-by-step, summed completion log-probs with the prompt and padding masked, the DPO loss
register("verify_answers", "kdlib.reasoning.rationale:verify_answers", "kdlib.teaching.cases:verify_cases")
register("multitask_loss", "kdlib.losses.tokens:multitask_loss", "kdlib.teaching.cases:multitask_cases")
register("completion_logprobs", "kdlib.lm.generate:completion_logprobs",
         "kdlib.teaching.cases:completion_logprob_cases")
register("dpo_loss", "kdlib.losses.preference:dpo_loss", "kdlib.teaching.cases:dpo_cases")


# ---- notebook 08: the trace parser and executor, and the exact near-duplicate filter
register("run_trace", "kdlib.reasoning.tools:run_trace", "kdlib.teaching.cases:run_trace_cases")
register("jaccard_duplicates", "kdlib.reasoning.pipeline:jaccard_duplicates", "kdlib.teaching.cases:jaccard_cases")


# ---- notebooks 10 and 11 (their notebooks are to come): the width-pruning importance and the speculative speed-up
register("neuron_importance", "kdlib.lm.prune:neuron_importance", "kdlib.teaching.cases:neuron_importance_cases")
register("speculative_speedup", "kdlib.lm.speculative:speedup", "kdlib.teaching.cases:speedup_cases")


# ---- notebook 09: the cascade's router and the break-even volume (their cases live beside the references)
register("route_to_teacher", "kdlib.core.cascade:route_to_teacher", "kdlib.core.cascade:router_cases")
register("break_even_requests", "kdlib.core.costs:break_even_requests", "kdlib.core.costs:break_even_cases")
