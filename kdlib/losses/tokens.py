"""Token-level distillation objectives for language models, and the top-k teacher-logit cache. Notebook 05.

Shapes: logits ``(batch, length, vocab)``; ``mask`` ``(batch, length)``, 1 (True) where a token counts and 0
over padding and prompt tokens. Position ``t`` holds the distribution of the token *after* position ``t``
(the usual causal-LM shift is the caller's business; ``shift_for_next_token`` does it).

With ``p = softmax(teacher / T)`` and ``q = softmax(student / T)`` at each position:

* forward KL  ``KL(p || q) = sum_v p_v (log p_v - log q_v)``: mode covering, the student must put mass
  wherever the teacher does (classic KD, "token-level KD" of Kim and Rush 2016 at T = 1);
* reverse KL  ``KL(q || p) = sum_v q_v (log q_v - log p_v)``: mode seeking (MiniLLM);
* generalized JSD of GKD (Agarwal et al. 2024), with ``m = beta p + (1 - beta) q``::

      JSD_beta(p || q) = beta KL(p || m) + (1 - beta) KL(q || m)

  which tends to ``beta * KL(p || q)`` as beta -> 0 and to ``(1 - beta) * KL(q || p)`` as beta -> 1. kdlib
  returns it divided by ``beta (1 - beta)`` (``scaled=True``, the default), so the loss is continuous in beta
  and *equals* forward KL at beta = 0 and reverse KL at beta = 1 (as TRL's ``GKDTrainer`` defines the end
  points); ``scaled=False`` gives the paper's unscaled value (0 at both ends).

Reduction, for every loss here: summed over the vocabulary, then the **mean over unmasked tokens** (not over
sequences, not over vocabulary entries). Each is multiplied by ``T^2`` as in ``kdlib.losses.kd_loss`` (no
effect at the usual T = 1). Teacher logits are constants (detached). A student equal to its teacher scores 0.

Top-k cache: storing 49,152 logits per token is 196 kB per token in fp32; ``TopK`` keeps the teacher's k largest
log-probabilities and their token ids, and the remaining mass as one *tail bucket*. Losses on the cache compare
teacher and student over k + 1 buckets (the student's tail is its exact probability outside the teacher's top
k), which by the data-processing inequality never exceeds the full-vocabulary loss; ``topk_relative_error``
measures how far below it is.

Checks (``kdlib.losses.inputs``, one rule for every loss here): logits are floating point ``(..., vocab)``,
teacher and student of one shape (else both shapes are named), never empty; ``mask`` is None, bool or 0/1
(other values raise while value checks are on). Masked positions are set to 0 before any softmax, so NaN or inf
there (padding) reaches neither the loss nor the gradients. While value checks are on, NaN or inf logits at a
position that counts raise, naming the argument, and so does a mask that selects nothing ("every position is
masked out"); without value checks (``kdlib.core.fit``'s later steps) NaN propagates to the loss (never 0) and a
fully masked batch gives 0. The completion losses of notebook 06 live in ``kdlib.losses.completion`` and are
re-exported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_number, check_temperature
from kdlib.losses import inputs
from kdlib.losses.completion import completion_loss, multitask_loss, shift_for_next_token
from kdlib.losses.registry import register

__all__ = ["forward_kl", "reverse_kl", "generalized_jsd", "TopK", "topk_from_logits", "bucket_log_probs",
           "topk_loss", "topk_relative_error", "shift_for_next_token", "completion_loss",
           "multitask_loss"]

KINDS = ("forward", "reverse", "jsd")
LAYOUT = "(batch, length, vocab)"


def _check(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask) -> torch.Tensor | None:
    """The mask as bool (None when None) after the checks every token loss shares (module docstring)."""
    inputs.tensor("student_logits", student_logits, min_dims=2, layout=LAYOUT)
    inputs.tensor("teacher_logits", teacher_logits, min_dims=2, layout=LAYOUT)
    inputs.pair("student_logits", student_logits, "teacher_logits", teacher_logits,
                "A different last dimension means the vocabularies differ (see kdlib.lm.check_vocab)")
    m = inputs.mask("mask", mask, student_logits.shape[:-1], student_logits.device, "token position")
    inputs.some("mask", m)
    return m


def _hyper(kind: str, beta: float, scaled: bool = True) -> float:
    inputs.choice("kind", kind, KINDS)
    inputs.flag("scaled", scaled)
    return check_number("beta", beta, 0.0, 1.0, hint="GKD's JSD weight: 0 is forward KL, 1 reverse KL")


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``sum_v p_v (log p_v - log q_v)`` per position. A term with ``p_v == 0`` counts as 0 (0 log 0 = 0, also
    where ``log p_v = -inf``); NaN propagates (``NaN == 0`` is False, where ``torch.where(p > 0, ...)`` turned
    NaN into 0): a NaN logit makes its whole row of log-probabilities NaN, so a term with ``p_v > 0`` carries it.
    Bit-identical to the old form on finite logits (``tests/test_lm_losses.py``)."""
    p = log_p.exp()
    return torch.where(p == 0, 0.0, p * (log_p - log_q)).sum(-1)


def _divergence(log_p: torch.Tensor, log_q: torch.Tensor, kind: str, beta: float = 0.5, scaled: bool = True
                ) -> torch.Tensor:
    """Per-position divergence between teacher ``log_p`` and student ``log_q`` (``kind`` and ``beta`` checked)."""
    if kind == "forward":
        return _kl(log_p, log_q)
    if kind == "reverse":
        return _kl(log_q, log_p)
    if beta in (0.0, 1.0):  # the scaled end points are the KLs; the unscaled value is 0 there (NaN stays NaN)
        kl = _kl(log_p, log_q) if beta == 0.0 else _kl(log_q, log_p)
        return kl if scaled else torch.where(kl.isnan(), kl, torch.zeros_like(kl))
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1.0 - beta)]), dim=0)
    jsd = beta * _kl(log_p, log_m) + (1.0 - beta) * _kl(log_q, log_m)
    return jsd / (beta * (1.0 - beta)) if scaled else jsd


def _token_loss(student_logits, teacher_logits, mask, T, kind, beta=0.5, scaled=True):
    T = check_temperature(T)
    beta = _hyper(kind, beta, scaled)
    m = _check(student_logits, teacher_logits, mask)
    student, teacher = inputs.keep(student_logits, m), inputs.keep(teacher_logits.detach(), m)
    inputs.finite("student_logits", student)
    inputs.finite("teacher_logits", teacher)
    log_q = F.log_softmax(inputs.up(student) / T, dim=-1)
    log_p = F.log_softmax(inputs.up(teacher) / T, dim=-1).to(log_q.dtype)
    return T * T * inputs.masked_mean(_divergence(log_p, log_q, kind, beta, scaled), m)


@register("forward_kl")
def forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None,
               T: float = 1.0) -> torch.Tensor:
    """``T^2 * mean over unmasked tokens of KL(p_T || p_S)``, summed over the vocabulary (mode covering)."""
    return _token_loss(student_logits, teacher_logits, mask, T, "forward")


@register("reverse_kl")
def reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None,
               T: float = 1.0) -> torch.Tensor:
    """``T^2 * mean over unmasked tokens of KL(p_S || p_T)``, summed over the vocabulary (mode seeking)."""
    return _token_loss(student_logits, teacher_logits, mask, T, "reverse")


@register("generalized_jsd")
def generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None,
                    beta: float = 0.5, T: float = 1.0, scaled: bool = True) -> torch.Tensor:
    """GKD's ``JSD_beta = beta KL(p || m) + (1 - beta) KL(q || m)``, ``m = beta p + (1 - beta) q``, p teacher,
    q student; divided by ``beta (1 - beta)`` when ``scaled`` so that beta = 0 gives forward KL and beta = 1
    reverse KL exactly. ``T^2`` times the mean over unmasked tokens."""
    return _token_loss(student_logits, teacher_logits, mask, T, "jsd", beta, scaled)


# ---------------------------------------------------------------- top-k teacher cache
@dataclass
class TopK:
    """The teacher's k most probable tokens per position: ``log_probs`` and ``indices`` ``(..., k)`` and the
    log of the remaining probability mass ``tail`` ``(...)``, all at temperature ``T``."""

    log_probs: torch.Tensor
    indices: torch.Tensor
    tail: torch.Tensor
    T: float = 1.0

    @property
    def k(self) -> int:
        return self.log_probs.shape[-1]

    def __getitem__(self, index) -> "TopK":
        return TopK(self.log_probs[index], self.indices[index], self.tail[index], self.T)

    def to(self, device) -> "TopK":
        return TopK(self.log_probs.to(device), self.indices.to(device), self.tail.to(device), self.T)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.log_probs, self.indices, self.tail))


def topk_from_logits(teacher_logits: torch.Tensor, k: int, T: float = 1.0) -> TopK:
    """Keep the k largest teacher log-probabilities (at temperature T), their token ids (int32) and the log
    tail mass ``log(1 - sum of the top k probabilities)``, computed stably from the logits left out.
    ``1 <= k <= vocab - 1`` (the tail holds at least one token)."""
    T = check_temperature(T)
    inputs.tensor("teacher_logits", teacher_logits, layout="(..., vocab)")
    k = inputs.whole("k", k, 1, teacher_logits.shape[-1] - 1,
                     hint=f"the cache keeps k of the {teacher_logits.shape[-1]} tokens and one tail bucket for the "
                          "rest")
    inputs.finite("teacher_logits", teacher_logits)
    log_p = F.log_softmax(teacher_logits.detach().float() / T, dim=-1)
    values, indices = log_p.topk(k, dim=-1)
    rest = log_p.scatter(-1, indices, float("-inf"))
    return TopK(values, indices.to(torch.int32), torch.logsumexp(rest, dim=-1), T)


def _check_topk(student_logits: torch.Tensor, topk: TopK) -> None:
    """Shapes, dtypes and devices of a student's logits and a top-k cache (metadata only)."""
    if not isinstance(topk, TopK):
        raise ValueError(f"topk must be a TopK cache (see topk_from_logits), got {type(topk).__name__}")
    inputs.tensor("student_logits", student_logits, min_dims=2, layout=LAYOUT)
    inputs.tensor("topk.log_probs", topk.log_probs, min_dims=2, layout="(batch, length, k)")
    positions, vocab = student_logits.shape[:-1], student_logits.shape[-1]
    if topk.log_probs.shape[:-1] != positions:
        raise ValueError(f"student_logits has positions {tuple(positions)} but the top-k cache has "
                         f"{tuple(topk.log_probs.shape[:-1])}; look the cache up for the same tokens")
    if topk.k >= vocab:
        raise ValueError(f"the top-k cache keeps k={topk.k} tokens but student_logits has a vocabulary of {vocab}; "
                         "the cache was built for another vocabulary (k must be at most vocab - 1)")
    inputs.same_device("topk.log_probs", topk.log_probs, student_logits.device)
    inputs.ids("topk.indices", topk.indices, topk.log_probs.shape, student_logits.device)
    inputs.tensor("topk.tail", topk.tail, min_dims=0)
    if topk.tail.shape != positions:
        raise ValueError(f"topk.tail has shape {tuple(topk.tail.shape)}, expected the positions {tuple(positions)} "
                         "of topk.log_probs; build the cache with topk_from_logits")
    inputs.same_device("topk.tail", topk.tail, student_logits.device)
    check_temperature(topk.T)


def _buckets(student_logits: torch.Tensor, topk: TopK) -> tuple[torch.Tensor, torch.Tensor]:
    z = student_logits.float() if topk.T == 1 else student_logits.float() / topk.T
    idx = topk.indices.long()
    student_top = z.gather(-1, idx) - torch.logsumexp(z, dim=-1, keepdim=True)
    top_mass = torch.logsumexp(student_top, dim=-1)
    student_tail = (-torch.expm1(top_mass)).clamp_min(torch.finfo(z.dtype).tiny).log()
    teacher = torch.cat([topk.log_probs.float(), topk.tail.float().unsqueeze(-1)], dim=-1)
    student = torch.cat([student_top, student_tail.unsqueeze(-1)], dim=-1)
    return teacher, student


def bucket_log_probs(student_logits: torch.Tensor, topk: TopK) -> tuple[torch.Tensor, torch.Tensor]:
    """``(teacher, student)`` log-probabilities over k + 1 buckets: the teacher's top-k tokens and the tail.
    The student's tail is the exact log of its probability outside the teacher's top k.

    One pass over the full vocabulary (the log-normaliser ``logsumexp(z / T)``); the k gathered log-probs and
    the tail ``log(1 - sum_k q_k) = log(-expm1(logsumexp(log q_top)))`` cost O(k) per position, where a
    ``log_softmax`` plus a masked ``logsumexp`` would walk the vocabulary twice more."""
    _check_topk(student_logits, topk)
    inputs.finite("student_logits", student_logits)
    inputs.finite("topk.log_probs", topk.log_probs)
    inputs.finite("topk.tail", topk.tail)
    return _buckets(student_logits, topk)


@register("topk")
def topk_loss(student_logits: torch.Tensor, topk: TopK, mask: torch.Tensor | None = None, kind: str = "forward",
              beta: float = 0.5) -> torch.Tensor:
    """``forward`` / ``reverse`` KL or scaled ``jsd`` between the teacher's top-k + tail buckets and the
    student's; ``T^2`` times the mean over unmasked tokens (T is the cache's). Masked positions of the logits and
    of the cache are set to 0 first; with value checks on, NaN or inf there and token ids outside the
    vocabulary raise."""
    beta = _hyper(kind, beta)
    _check_topk(student_logits, topk)
    m = inputs.mask("mask", mask, student_logits.shape[:-1], student_logits.device, "token position")
    inputs.some("mask", m)
    student = inputs.keep(student_logits, m)
    cache = TopK(inputs.keep(topk.log_probs, m), inputs.keep(topk.indices, m), inputs.keep(topk.tail, m), topk.T)
    inputs.finite("student_logits", student)
    inputs.finite("topk.log_probs", cache.log_probs)
    inputs.finite("topk.tail", cache.tail)
    inputs.in_range("topk.indices", cache.indices, student.shape[-1])
    teacher, student = _buckets(student, cache)
    return topk.T ** 2 * inputs.masked_mean(_divergence(teacher, student, kind, beta), m)


def topk_relative_error(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int,
                        mask: torch.Tensor | None = None, kind: str = "forward", T: float = 1.0) -> float:
    """``|loss(top-k + tail) - loss(full logits)| / loss(full logits)`` for these logits and this k (a host
    read: an analysis tool, not for a training step)."""
    full = _token_loss(student_logits, teacher_logits, mask, T, kind)
    m = inputs.mask("mask", mask, student_logits.shape[:-1], student_logits.device, "token position")
    approx = topk_loss(student_logits, topk_from_logits(inputs.keep(teacher_logits, m), k, T), mask, kind)
    return float(((approx - full).abs() / full.clamp_min(1e-12)).detach())
