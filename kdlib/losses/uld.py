"""Universal Logit Distillation (ULD, Boizard et al. 2024): a token-level loss between a teacher and a student that
do not share a vocabulary. Notebook 05b.

KL needs both distributions over one set of outcomes; two tokenizers give two sets (``V_S`` and ``V_T`` tokens,
unrelated ids). ULD compares the *shapes* of the two next-token distributions instead: with
``p = softmax(teacher / T)`` and ``q = softmax(student / T)`` at one aligned position, sort each in decreasing
order, pad the shorter with zeros to ``V = max(V_S, V_T)`` entries and take the L1 distance::

    ULD(p, q) = sum_{i=1}^{V} | q_(i) - p_(i) |       (q_(1) >= q_(2) >= ..., likewise p)

This is the closed form of the 1-D Wasserstein distance ULD uses (both distributions placed on the ranks 1..V
with a unit cost for a wrong rank). It is 0 when the sorted vectors agree (a student confident as the teacher, on
*any* token), so it teaches calibration and entropy, not which token: the caller adds the student's own
cross-entropy (``kdlib.lm.steps.lm_step``'s loss), as the paper does. It is symmetric under any permutation of
either vocabulary, lies in [0, 2], and needs no token mapping: only aligned positions (the same place in the
text, ``kdlib.lm.vocab.align_tokens``).

Reduction: summed over the ranks, mean over unmasked positions; no ``T^2`` factor (the paper uses none).
Checks follow ``kdlib.losses.inputs`` (the rule every loss applies): floating point ``(..., V_S)`` and
``(..., V_T)`` logits with the same positions (leading shape) on one device, a 0/1 or bool mask of the positions'
shape, masked positions set to 0 before the softmax (NaN there never reaches the loss), NaN or inf where a
position counts and an all-masked batch raise while value checks are on. The teacher is detached.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_temperature
from kdlib.losses import inputs
from kdlib.losses.registry import register

__all__ = ["uld_loss", "sorted_probs", "uld_exercise_cases"]

LAYOUT = "(..., vocab)"


def sorted_probs(logits: torch.Tensor, size: int, T: float = 1.0) -> torch.Tensor:
    """``softmax(logits / T)`` sorted in decreasing order along the last axis and padded with zeros to ``size``
    entries (``size`` >= the vocabulary): the vector ULD compares. Unchecked helper of ``uld_loss``; notebook 05b
    prints it for a confident and an unsure position."""
    p = F.softmax(inputs.up(logits) / T, dim=-1).sort(dim=-1, descending=True).values
    return F.pad(p, (0, size - p.shape[-1]))


@register("uld")
def uld_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None,
             T: float = 1.0) -> torch.Tensor:
    """ULD: ``mean over unmasked positions of sum_i |sort(q)_i - sort(p)_i|`` with ``q = softmax(student / T)``
    (``(..., V_S)``), ``p = softmax(teacher / T)`` (``(..., V_T)``), both sorted in decreasing order and the
    shorter padded with zeros (module docstring). ``V_S`` and ``V_T`` may differ; the positions (every axis but
    the last) must agree. Gradients reach the student only. Notebook 05b trains a student
    with its own tokenizer with it and has it written as an exercise."""
    T = check_temperature(T)
    inputs.tensor("student_logits", student_logits, layout=LAYOUT)
    inputs.tensor("teacher_logits", teacher_logits, layout=LAYOUT)
    positions = student_logits.shape[:-1]
    if teacher_logits.shape[:-1] != positions:
        raise ValueError(f"student_logits has shape {tuple(student_logits.shape)} and teacher_logits has shape "
                         f"{tuple(teacher_logits.shape)}: their positions {tuple(positions)} and "
                         f"{tuple(teacher_logits.shape[:-1])} must match (only the vocabularies, the last axis, may "
                         "differ). Align the two tokenisations by text position first (kdlib.lm.vocab.align_tokens) "
                         "and gather the teacher's logits at the aligned positions")
    inputs.same_device("teacher_logits", teacher_logits, student_logits.device)
    m = inputs.mask("mask", mask, positions, student_logits.device, "token position")
    inputs.some("mask", m)
    student = inputs.keep(student_logits, m)
    teacher = inputs.keep(teacher_logits.detach(), m)
    inputs.finite("student_logits", student)
    inputs.finite("teacher_logits", teacher)
    size = max(student.shape[-1], teacher.shape[-1])
    q = sorted_probs(student, size, T)
    p = sorted_probs(teacher, size, T).to(q.dtype)
    return inputs.masked_mean((q - p).abs().sum(-1), m)


def uld_exercise_cases() -> list[tuple]:
    """Fixed cases ``(student_logits, teacher_logits, mask)`` for notebook 05b's ULD exercise: student and
    teacher vocabularies of different sizes (either one larger), a peaked and a flat teacher, 0/1 masks with a
    masked position whose logits hold NaN (it must not count), and a case without a mask. Seeded; the same on
    every call."""
    gen = torch.Generator().manual_seed(20)
    cases = []
    for b, length, v_s, v_t, scale in [(2, 4, 7, 11, 3.0), (1, 5, 12, 6, 1.0), (3, 3, 9, 9, 5.0), (2, 6, 4, 15, 0.3)]:
        s = torch.randn(b, length, v_s, generator=gen) * 2
        t = torch.randn(b, length, v_t, generator=gen) * scale
        lengths = torch.randint(1, length + 1, (b,), generator=gen)
        lengths[0] = length
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        if b > 1 and bool((mask == 0).any()):
            s = s.masked_fill(~mask.bool()[..., None], float("nan"))  # padding: must not reach the loss
        cases.append((s, t, mask))
    cases.append((torch.randn(4, 8, generator=gen), torch.randn(4, 5, generator=gen) * 2, None))
    return cases
