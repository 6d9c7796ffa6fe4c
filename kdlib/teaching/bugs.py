"""The classic mistakes of each exercise, written as code, and the extra cases that expose them: what the course's
hidden tests (``kdlib.teaching.grading``) use to name a learner's bug instead of saying only "differs".

``BUGS[name]`` lists ``(label, buggy_function)`` pairs: ``kd_loss`` without the ``T^2`` factor, with the KL
reversed, averaged over classes (``mean``) instead of examples (``batchmean``); ``completion_logprobs`` with the
prompt scored or token log-probs averaged instead of summed; ``dpo_loss`` without ``beta``;
``neuron_importance`` without the absolute value; ``speculative_speedup`` without the draft's cost; notebook 00's
spot-the-bug snippets as shipped; and so on. Each
buggy function takes the exercise's arguments and is right except for its one bug.
``EXTRA_CASES[name]`` adds hidden cases to the visible ones. ``tests/test_classroom.py`` checks that the hidden
cases tell every listed bug from the reference, and that a submission with the bug is named by its label.
"""
from __future__ import annotations

import re
from typing import Callable

import torch
import torch.nn.functional as F


def _ref(name: str) -> Callable:
    from kdlib.teaching.checks import _reference  # the registry imports references lazily; so do the bugs
    return _reference(name)


def _call(name: str) -> Callable:
    return lambda *args: _ref(name)(*args)


def _entropy(logits: torch.Tensor, T: float) -> torch.Tensor:
    p = torch.softmax(logits / T, -1)
    return -(p * p.clamp_min(1e-30).log()).sum(-1).mean() * T * T


def _ones(mask: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(mask)


def _through_last(mask: torch.Tensor) -> torch.Tensor:
    """1 on every position up to each row's last completion token: the prompt counted, the right padding not."""
    return mask.flip(-1).cummax(-1).values.flip(-1)


def _unshifted_logprobs(logits, ids, mask):
    token = torch.log_softmax(logits.float(), -1).gather(-1, ids[..., None]).squeeze(-1)
    return (token * mask.float()).sum(-1)


def _unweighted_ece(probs, labels, n_bins=15):
    confidence, predicted = probs.max(-1)
    which = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)
    gaps = [((predicted[which == b] == labels[which == b]).float().mean() - confidence[which == b].mean()).abs()
            for b in range(n_bins) if (which == b).any()]
    return float(torch.stack(gaps).mean())


def _first_answer(texts, gold):
    found = [re.findall(r"Answer:\s*(-?\d+)", t) for t in texts]
    return torch.tensor([float(bool(f) and int(f[0]) == int(g)) for f, g in zip(found, gold)])


def _last_best_shift(logits, labels, cls, shifts):
    return _ref("best_bias_shift")(logits, labels, cls, shifts.flip(0))


def _unsorted_uld(student_logits, teacher_logits, mask=None):
    s, t = student_logits.float().softmax(-1), teacher_logits.float().softmax(-1)
    size = max(s.shape[-1], t.shape[-1])
    gap = (F.pad(s, (0, size - s.shape[-1])) - F.pad(t, (0, size - t.shape[-1]))).abs().sum(-1)
    keep = torch.ones(gap.shape) if mask is None else mask.float()
    return (gap * keep).sum() / keep.sum()


def _unshifted_multitask(ll, li, lm, rl, ri, rm, lam):
    def loss(logits, ids, mask):
        return -_unshifted_logprobs(logits, ids, mask).sum() / mask.float().sum()
    return loss(ll, li, lm) + lam * loss(rl, ri, rm)


BUGS: dict[str, list[tuple[str, Callable]]] = {
    "softmax_with_temperature": [
        ("T ignored: softmax(logits) instead of softmax(logits / T)", lambda z, T: torch.softmax(z, -1)),
        ("logits multiplied by T instead of divided", lambda z, T: torch.softmax(z * T, -1)),
        ("softmax over the batch dimension instead of the classes", lambda z, T: torch.softmax(z / T, 0))],
    "kd_loss": [
        ("T^2 missing: the soft loss is not multiplied by T^2", lambda s, t, T: _ref("kd_loss")(s, t, T) / T ** 2),
        ("KL reversed: KL(p_S || p_T) instead of KL(p_T || p_S)", lambda s, t, T: _ref("kd_loss")(t, s, T)),
        ("mean instead of batchmean: averaged over classes too, not only over examples",
         lambda s, t, T: _ref("kd_loss")(s, t, T) / s.shape[-1]),
        ("soft cross-entropy instead of KL: the teacher's entropy is added",
         lambda s, t, T: _ref("kd_loss")(s, t, T) + _entropy(t, T))],
    "distillation_loss": [
        ("alpha on the wrong term: alpha weighs the hard labels",
         lambda s, t, y, T, a: _ref("distillation_loss")(s, t, y, T, 1 - a)),
        ("T^2 missing in the soft term", lambda s, t, y, T, a: a * F.cross_entropy(s, y)
         + (1 - a) * _ref("kd_loss")(s, t, T) / T ** 2),
        ("hard term at temperature T: the cross-entropy takes logits / T, it should take the raw logits",
         lambda s, t, y, T, a: a * F.cross_entropy(s / T, y) + (1 - a) * _ref("kd_loss")(s, t, T))],
    "best_bias_shift": [
        ("the last best shift on ties instead of the first", _last_best_shift)],
    "hint_loss": [
        ("summed instead of averaged", lambda s, t, r: ((s if r is None else r(s)) - t).pow(2).sum())],
    "expected_calibration_error": [
        ("bins averaged without weights: each bin must count by its share of the samples", _unweighted_ece)],
    "hidden_state_mse": [
        ("padding not masked", lambda s, t, p, m: _ref("hidden_state_mse")(s, t, p, _ones(m))),
        ("averaged over tokens only, not over the hidden units too",
         lambda s, t, p, m: _ref("hidden_state_mse")(s, t, p, m) * t.shape[-1])],
    "attention_kl": [
        ("KL reversed: KL(A_S || A_T) instead of KL(A_T || A_S)", lambda s, t, m: _ref("attention_kl")(t, s, m)),
        ("padding not masked", lambda s, t, m: _ref("attention_kl")(s, t, _ones(m)))],
    "forward_kl": [
        ("KL reversed: this is the reverse KL(p_S || p_T)", _call("reverse_kl")),
        ("mask ignored: padding tokens counted", lambda s, t, m: _ref("forward_kl")(s, t, _ones(m))),
        ("summed over tokens instead of averaged", lambda s, t, m: _ref("forward_kl")(s, t, m) * m.float().sum())],
    "reverse_kl": [
        ("KL the wrong way round: this is the forward KL(p_T || p_S)", _call("forward_kl")),
        ("mask ignored: padding tokens counted", lambda s, t, m: _ref("reverse_kl")(s, t, _ones(m)))],
    "topk_with_tail": [
        ("the tail as a probability, not its log", lambda z, k: (*_ref("topk_with_tail")(z, k)[:2],
                                                                 _ref("topk_with_tail")(z, k)[2].exp())),
        ("top-k of the raw logits instead of the log-probabilities",
         lambda z, k: (z.float().topk(k, -1).values, *_ref("topk_with_tail")(z, k)[1:]))],
    "uld_loss": [("probabilities not sorted: ULD compares sorted vectors", _unsorted_uld)],
    "verify_answers": [("the first 'Answer:' counted instead of the last", _first_answer)],
    "multitask_loss": [
        ("lambda on the wrong task: it weighs the rationale loss",
         lambda ll, li, lm, rl, ri, rm, lam: _ref("multitask_loss")(rl, ri, rm, ll, li, lm, lam)),
        ("logits not shifted: position t must predict token t + 1", _unshifted_multitask)],
    "completion_logprobs": [
        ("prompt not masked: prompt tokens scored as completion",
         lambda z, ids, m: _ref("completion_logprobs")(z, ids, _through_last(m))),
        ("mean instead of sum of the token log-probs",
         lambda z, ids, m: _ref("completion_logprobs")(z, ids, m) / m[:, 1:].float().sum(-1)),
        ("logits not shifted: position t must predict token t + 1", _unshifted_logprobs)],
    "dpo_loss": [
        ("beta missing", lambda pc, pr, rc, rr, beta: _ref("dpo_loss")(pc, pr, rc, rr, 1.0)),
        ("chosen and rejected swapped", lambda pc, pr, rc, rr, beta: _ref("dpo_loss")(pr, pc, rr, rc, beta)),
        ("reference model ignored", lambda pc, pr, rc, rr, beta: _ref("dpo_loss")(pc, pr, rc * 0, rr * 0, beta))],
    "route_to_teacher": [
        ("T ignored: confidence from softmax(logits), not softmax(logits / T)",
         lambda z, thr, T: _ref("route_to_teacher")(z, thr, 1.0)),
        ("the confident inputs routed to the teacher instead of the unsure ones",
         lambda z, thr, T: ~_ref("route_to_teacher")(z, thr, T))],
    "break_even_requests": [
        ("no infinity when the student saves nothing: a negative or undefined volume returned",
         lambda a, b, c, d: (a + b) / (c - d) if c != d else 0.0),
        ("the teacher's labelling cost left out", lambda a, b, c, d: b / (c - d) if c > d else float("inf"))],
    "neuron_importance": [
        ("signed mean: negative activations cancel positive ones (|a| missing)",
         lambda a, m: (a * m[..., None]).sum((0, 1)) / m.sum()),
        ("padding counted: the mean over every position, mask ignored",
         lambda a, m: _ref("neuron_importance")(a, torch.ones_like(m)))],
    "speculative_speedup": [
        ("the draft's cost left out: E instead of E / (gamma c + 1)",
         lambda alpha, gamma, c: _ref("speculative_speedup")(alpha, gamma, 0.0)),
        ("every draft token assumed accepted: gamma + 1 tokens per round",
         lambda alpha, gamma, c: (gamma + 1) / (gamma * c + 1))],
}


def _kd_extra() -> list[tuple]:
    gen = torch.Generator().manual_seed(11)
    return [(torch.randn(6, 100, generator=gen) * 2, torch.randn(6, 100, generator=gen) * 2, 2.0)]


def _logprob_extra() -> list[tuple]:
    gen = torch.Generator().manual_seed(12)
    ids = torch.randint(0, 10, (3, 12), generator=gen)
    mask = torch.zeros(3, 12, dtype=torch.long)
    mask[0, 7:], mask[1, 3:10], mask[2, 10:] = 1, 1, 1  # long and short prompts, right padding on row 1
    return [(torch.randn(3, 12, 10, generator=gen) * 3, ids, mask)]


EXTRA_CASES: dict[str, Callable[[], list[tuple]]] = {"kd_loss": _kd_extra, "completion_logprobs": _logprob_extra}


def _spot_bugs() -> dict[str, list[tuple[str, Callable]]]:
    """Notebook 00's spot-the-bug drills: each one's bug is the snippet as shipped."""
    from kdlib.teaching.spot_bugs import SPOT_BUGS, buggy
    return {f"spot_{name}": [(f"the snippet as shipped ({bug.title})", buggy(name))] for name, bug in SPOT_BUGS.items()}


BUGS.update(_spot_bugs())
