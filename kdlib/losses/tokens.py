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
"""
from __future__ import annotations

from kdlib.losses.registry import register

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_temperature, values_checked

__all__ = ["forward_kl", "reverse_kl", "generalized_jsd", "TopK", "topk_from_logits", "bucket_log_probs",
           "topk_loss", "topk_relative_error", "shift_for_next_token", "completion_loss",
           "multitask_loss"]


def _check(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits has shape {tuple(student_logits.shape)} but teacher_logits has shape "
                         f"{tuple(teacher_logits.shape)}; they must match. A different last dimension means the "
                         "vocabularies differ (see kdlib.lm.check_vocab)")
    if mask is None:
        return torch.ones(student_logits.shape[:-1], dtype=torch.bool, device=student_logits.device)
    if mask.shape != student_logits.shape[:-1]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(student_logits.shape[:-1])} "
                         "(one entry per token position)")
    return mask.bool()


def _up(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (half-precision logits are upcast; float64 stays float64)."""
    return x if x.dtype == torch.float64 else x.float()


def _masked_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_token`` over the positions where ``mask`` is set. An empty mask is a ValueError while value
    checks are on; inside ``kdlib.core.fit`` it gives NaN, which the loop reports at its next logging point."""
    n = mask.sum()
    if values_checked() and int(n) == 0:
        raise ValueError("the mask selects no token; nothing to average over")
    return (per_token * mask).sum() / n


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``sum_v p_v (log p_v - log q_v)`` per position; 0 * log 0 counts as 0."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def _divergence(log_p: torch.Tensor, log_q: torch.Tensor, kind: str, beta: float = 0.5, scaled: bool = True
                ) -> torch.Tensor:
    """Per-position divergence between teacher ``log_p`` and student ``log_q``."""
    if kind == "forward":
        return _kl(log_p, log_q)
    if kind == "reverse":
        return _kl(log_q, log_p)
    if kind != "jsd":
        raise ValueError(f"kind must be 'forward', 'reverse' or 'jsd', got {kind!r}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta!r}")
    if beta == 0.0:
        return _kl(log_p, log_q) if scaled else torch.zeros(log_p.shape[:-1], device=log_p.device)
    if beta == 1.0:
        return _kl(log_q, log_p) if scaled else torch.zeros(log_p.shape[:-1], device=log_p.device)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1.0 - beta)]), dim=0)
    jsd = beta * _kl(log_p, log_m) + (1.0 - beta) * _kl(log_q, log_m)
    return jsd / (beta * (1.0 - beta)) if scaled else jsd


def _token_loss(student_logits, teacher_logits, mask, T, kind, beta=0.5, scaled=True):
    check_temperature(T)
    mask = _check(student_logits, teacher_logits, mask)
    log_q = F.log_softmax(_up(student_logits) / T, dim=-1)
    log_p = F.log_softmax(_up(teacher_logits.detach()) / T, dim=-1)
    return T * T * _masked_mean(_divergence(log_p, log_q, kind, beta, scaled), mask)


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


def shift_for_next_token(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Align a causal LM's outputs with the tokens they predict: ``logits[:, :-1]`` (position t predicts token
    t + 1), the targets ``input_ids[:, 1:]`` and the mask of the *target* tokens ``mask[:, 1:]`` (None when
    ``mask`` is None). Notebooks 05-07.

    The position-0 convention, shared by ``completion_loss`` and ``kdlib.lm.generate.completion_logprobs``:
    token 0 has no earlier token to predict it, so it is never a target, and ``mask[:, 0]`` is **dropped**
    (a 1 there changes nothing; a completion must follow at least one prompt token to be scored whole). The
    last position's logits predict a token beyond the sequence and are dropped too. Nothing is read on the
    host, so the shift is free inside a training step."""
    return logits[:, :-1], input_ids[:, 1:], None if mask is None else mask[:, 1:]


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
    tail mass ``log(1 - sum of the top k probabilities)``, computed stably from the logits left out."""
    check_temperature(T)
    if not 1 <= k < teacher_logits.shape[-1]:
        raise ValueError(f"k must lie in [1, {teacher_logits.shape[-1] - 1}], got {k}")
    log_p = F.log_softmax(teacher_logits.detach().float() / T, dim=-1)
    values, indices = log_p.topk(k, dim=-1)
    rest = log_p.scatter(-1, indices, float("-inf"))
    return TopK(values, indices.to(torch.int32), torch.logsumexp(rest, dim=-1), T)


def bucket_log_probs(student_logits: torch.Tensor, topk: TopK) -> tuple[torch.Tensor, torch.Tensor]:
    """``(teacher, student)`` log-probabilities over k + 1 buckets: the teacher's top-k tokens and the tail.
    The student's tail is the exact log of its probability outside the teacher's top k.

    One pass over the full vocabulary (the log-normaliser ``logsumexp(z / T)``); the k gathered log-probs and
    the tail ``log(1 - sum_k q_k) = log(-expm1(logsumexp(log q_top)))`` cost O(k) per position, where a
    ``log_softmax`` plus a masked ``logsumexp`` would walk the vocabulary twice more."""
    z = student_logits.float() if topk.T == 1 else student_logits.float() / topk.T
    idx = topk.indices.long()
    student_top = z.gather(-1, idx) - torch.logsumexp(z, dim=-1, keepdim=True)
    top_mass = torch.logsumexp(student_top, dim=-1)
    student_tail = (-torch.expm1(top_mass)).clamp_min(torch.finfo(z.dtype).tiny).log()
    teacher = torch.cat([topk.log_probs.float(), topk.tail.float().unsqueeze(-1)], dim=-1)
    student = torch.cat([student_top, student_tail.unsqueeze(-1)], dim=-1)
    return teacher, student


@register("topk")
def topk_loss(student_logits: torch.Tensor, topk: TopK, mask: torch.Tensor | None = None, kind: str = "forward",
              beta: float = 0.5) -> torch.Tensor:
    """``forward`` / ``reverse`` KL or scaled ``jsd`` between the teacher's top-k + tail buckets and the
    student's; ``T^2`` times the mean over unmasked tokens (T is the cache's)."""
    if student_logits.shape[:-1] != topk.indices.shape[:-1]:
        raise ValueError(f"student_logits has positions {tuple(student_logits.shape[:-1])} but the top-k cache "
                         f"has {tuple(topk.indices.shape[:-1])}; look the cache up for the same tokens")
    teacher, student = bucket_log_probs(student_logits, topk)
    mask = _check(student, teacher, mask)
    return topk.T ** 2 * _masked_mean(_divergence(teacher, student, kind, beta), mask)


def topk_relative_error(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int,
                        mask: torch.Tensor | None = None, kind: str = "forward", T: float = 1.0) -> float:
    """``|loss(top-k + tail) - loss(full logits)| / loss(full logits)`` for these logits and this k."""
    full = _token_loss(student_logits, teacher_logits, mask, T, kind)
    approx = topk_loss(student_logits, topk_from_logits(teacher_logits, k, T), mask, kind)
    return float((approx - full).abs() / full.clamp_min(1e-12))


# ---------------------------------------------------------------- notebook 06: supervised completions
@register("completion")
def completion_loss(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on completion tokens only, the **mean over completion tokens** of the batch:
    ``-(1/N) sum_{t >= 1: completion_mask[t] = 1} log p(x_t | x_<t)`` (``N`` = number of such tokens).

    ``logits`` ``(batch, length, vocab)`` from the model on ``input_ids`` ``(batch, length)``;
    ``completion_mask`` is 1 on the tokens to learn (the answer or rationale and its end-of-sequence token)
    and 0 on prompt and padding tokens, the convention of ``kdlib.lm.generate.Samples``. Prompt tokens are
    never targets: the student learns to answer, not to write questions. Position 0 is never a target
    either: its mask value is dropped by ``shift_for_next_token`` (as in ``kdlib.lm.generate.completion_logprobs``,
    so ``completion_loss == -sum(completion_logprobs) / N`` on the same inputs). Notebook 06.
    """
    if logits.shape[:-1] != input_ids.shape or completion_mask.shape != input_ids.shape:
        raise ValueError(f"logits {tuple(logits.shape)}, input_ids {tuple(input_ids.shape)} and completion_mask "
                         f"{tuple(completion_mask.shape)} must agree on (batch, length)")
    logits, targets, mask = shift_for_next_token(logits, input_ids, completion_mask)
    per_token = F.cross_entropy(_up(logits).reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return _masked_mean(per_token.view_as(targets), mask.bool())


@register("multitask")
def multitask_loss(label_logits: torch.Tensor, label_ids: torch.Tensor, label_mask: torch.Tensor,
                   rationale_logits: torch.Tensor, rationale_ids: torch.Tensor, rationale_mask: torch.Tensor,
                   lam: float = 1.0) -> torch.Tensor:
    """Distilling step-by-step's multi-task objective ``L = L_label + lam * L_rationale`` (Hsieh et al. 2023).

    The same problems appear twice, with task prefixes: ``[label] question -> answer`` and
    ``[rationale] question -> rationale``; each term is ``completion_loss`` on its own batch (mean over its
    completion tokens). At inference the student is asked with the ``[label]`` prefix and answers without
    writing a rationale. ``lam >= 0``; ``lam = 0`` is plain answer-only training. Notebook 06.
    """
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"lam must be a finite number >= 0, got {lam}")
    label = completion_loss(label_logits, label_ids, label_mask)
    if lam == 0:
        return label
    return label + lam * completion_loss(rationale_logits, rationale_ids, rationale_mask)


