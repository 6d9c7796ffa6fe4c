"""Distillation objectives as plain functions of tensors.

Taught in notebook 01 (soft targets, temperature, why T^2) and used by notebook 02 (MNIST, Hinton-style);
the feature losses of notebook 03 live in ``kdlib.losses.features``.

Conventions, pinned by ``tests/test_losses.py``:

* ``p_T = softmax(teacher_logits / T)``, ``p_S = softmax(student_logits / T)``.
* KL, not soft cross-entropy, so that a student equal to its teacher scores exactly zero:
  ``KL(p_T || p_S) = sum_c p_T[c] * (log p_T[c] - log p_S[c])``.
  Soft cross-entropy ``-sum_c p_T log p_S`` equals KL plus the teacher's entropy, which does not depend
  on the student, so both give the same gradient (notebook 01 shows it numerically).
* ``batchmean``: the KL is summed over classes and averaged over examples (rows). ``reduction="mean"``
  in PyTorch would also divide by the number of classes, a classic silent bug.
* The soft term is multiplied by ``T^2``: the gradient of the KL with respect to the student's logits
  scales as ``1/T^2``, so the factor keeps the soft term's weight independent of T (Hinton et al. 2015).

Checks (``kdlib.losses.inputs``): hyperparameters, dtypes (floating logits, integer labels), shapes and empty
batches on every call (free); NaN logits and labels out of range only while value checks are on
(``kdlib.core.validate``): always when called by hand, never inside ``kdlib.core.fit``'s steps, where NaN logits
give a NaN loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_labels, check_number, check_temperature
from kdlib.losses import inputs
from kdlib.losses.registry import register

__all__ = ["kd_loss", "distillation_loss", "soft_cross_entropy"]


def _check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Both floating point, non-empty, (batch, classes) or more, same shape and device; finite (value checks)."""
    for name, x in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        inputs.tensor(name, x, min_dims=2, layout="(batch, classes)")
    inputs.pair("student_logits", student_logits, "teacher_logits", teacher_logits,
                "Check that teacher and student were built for the same classes and that the teacher logits were "
                "looked up for the same samples as the batch")
    inputs.finite("student_logits", student_logits)
    inputs.finite("teacher_logits", teacher_logits)


def _kl_batchmean(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` summed over classes, mean over rows (unchecked)."""
    n_classes = student_logits.shape[-1]
    log_p_s = F.log_softmax(inputs.up(student_logits).reshape(-1, n_classes) / T, dim=-1)
    log_p_t = F.log_softmax(inputs.up(teacher_logits.detach()).reshape(-1, n_classes) / T, dim=-1)
    return T * T * F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")


@register("kd")
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Soft-target loss: ``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, batchmean.

    Summed over classes, averaged over rows (examples). Zero when student == teacher.
    Teacher logits are treated as constants (no gradient flows into the teacher).
    Notebook 01 derives it; notebook 02 trains with it.
    """
    T = check_temperature(T)
    _check_pair(student_logits, teacher_logits)
    return _kl_batchmean(student_logits, teacher_logits, T)


@register("soft_cross_entropy")
def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """``T^2 * H(p_T, p_S) = -T^2 * sum_c p_T log p_S``, batchmean.

    Equals ``kd_loss`` plus ``T^2`` times the teacher's entropy, a constant for the student, so the
    gradients agree; shown in notebook 01. Not zero when student == teacher, which is why kdlib uses KL.
    """
    T = check_temperature(T)
    _check_pair(student_logits, teacher_logits)
    n_classes = student_logits.shape[-1]
    log_p_s = F.log_softmax(inputs.up(student_logits).reshape(-1, n_classes) / T, dim=-1)
    p_t = F.softmax(inputs.up(teacher_logits.detach()).reshape(-1, n_classes) / T, dim=-1)
    return -T * T * (p_t * log_p_s).sum(-1).mean()


@register("distillation")
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      T: float, alpha: float) -> torch.Tensor:
    """Hard + soft mix: ``alpha * CE(labels, student) + (1 - alpha) * kd_loss(student, teacher, T)``.

    ``alpha`` is the weight of the hard-label cross-entropy (at T = 1): alpha = 1 is plain supervised
    training, alpha = 0 is pure distillation. Both terms are averaged over examples. Inputs are checked once
    here (the soft term is not checked again). Notebook 01 explores alpha with a slider; notebook 02 uses it.
    """
    alpha = check_number("alpha", alpha, 0.0, 1.0, hint="alpha is the weight of the hard-label loss")
    T = check_temperature(T)
    _check_pair(student_logits, teacher_logits)
    if isinstance(labels, torch.Tensor) and labels.shape != student_logits.shape[:-1]:
        raise ValueError(f"labels have shape {tuple(labels.shape)} but logits have shape "
                         f"{tuple(student_logits.shape)}; expected one label per row of logits")
    inputs.ids("labels", labels, student_logits.shape[:-1], student_logits.device)
    n_classes = student_logits.shape[-1]
    check_labels(labels, n_classes)
    hard = F.cross_entropy(inputs.up(student_logits).reshape(-1, n_classes), labels.reshape(-1).long())
    if alpha == 1.0:
        return hard
    return alpha * hard + (1.0 - alpha) * _kl_batchmean(student_logits, teacher_logits, T)


def member_distillation_losses(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                               T: list[float], alpha: list[float]) -> torch.Tensor:
    """``distillation_loss`` of each of K ensemble members at once, each with its own ``T[k]`` and ``alpha[k]``:
    logits ``(K, B, C)``, labels ``(K, B)``; returns the K losses
    ``alpha_k * CE + (1 - alpha_k) * T_k^2 * KL(softmax(z_T / T_k) || softmax(z_S / T_k))``, batchmean each.
    For ``kdlib.core.ensemble.fit_ensemble`` (notebook 02's seeds and temperature sweep as one batched model)."""
    inputs.tensor("student_logits", student_logits, dims=3, layout="(members, batch, classes)")
    _check_pair(student_logits, teacher_logits)
    k, _, n_classes = student_logits.shape
    if len(T) != k or len(alpha) != k:
        raise ValueError(f"need one T and one alpha per member ({k}), got {len(T)} and {len(alpha)}")
    temps = [check_temperature(t) for t in T]
    alphas = [check_number("alpha", a, 0.0, 1.0, hint="alpha is the weight of the hard-label loss") for a in alpha]
    inputs.ids("labels", labels, student_logits.shape[:-1], student_logits.device)
    check_labels(labels, n_classes)
    z_s, z_t = inputs.up(student_logits), inputs.up(teacher_logits.detach())
    t = torch.tensor(temps, device=z_s.device, dtype=z_s.dtype).view(k, 1, 1)
    a = torch.tensor(alphas, device=z_s.device, dtype=z_s.dtype)
    hard = F.cross_entropy(z_s.reshape(-1, n_classes), labels.reshape(-1).long(), reduction="none").view(k, -1)
    log_p_s, log_p_t = F.log_softmax(z_s / t, dim=-1), F.log_softmax(z_t / t, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean(-1)
    return a * hard.mean(-1) + (1 - a) * t.view(k) ** 2 * kl
