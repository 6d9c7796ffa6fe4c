"""Distillation objectives as plain functions of tensors.

Taught in notebook 01 (soft targets, temperature, why T^2) and used by notebook 02 (MNIST, Hinton-style);
notebook 03 adds the feature losses ``hint_loss`` (FitNets) and ``cosine_feature_loss``.

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
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["kd_loss", "distillation_loss", "soft_cross_entropy", "hint_loss", "cosine_feature_loss", "LOSSES",
           "check_temperature"]


def check_temperature(T: float) -> None:
    """Raise ValueError unless T is a finite number > 0."""
    if isinstance(T, torch.Tensor):
        T = float(T)
    if not isinstance(T, (int, float)) or not math.isfinite(T) or T <= 0:
        raise ValueError(f"temperature T must be a finite number > 0, got T={T!r}; "
                         "T=1 is the ordinary softmax, larger T gives softer targets")


def _check_finite(name: str, logits: torch.Tensor) -> None:
    if not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); check the model's outputs "
                         "(a diverged teacher or student, or a learning rate that is too high)")


def _check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits has shape {tuple(student_logits.shape)} but teacher_logits has shape "
            f"{tuple(teacher_logits.shape)}; they must match (same batch, same number of classes). "
            "Check that teacher and student were built for the same classes and that the teacher "
            "logits were looked up for the same samples as the batch.")
    if student_logits.dim() < 2:
        raise ValueError(f"logits must have shape (batch, classes), got {tuple(student_logits.shape)}")
    _check_finite("student_logits", student_logits)
    _check_finite("teacher_logits", teacher_logits)


def _check_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    n_classes = logits.shape[-1]
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels have shape {tuple(labels.shape)} but logits have shape "
                         f"{tuple(logits.shape)}; expected one label per row of logits")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes - 1}] for {n_classes} classes, "
                         f"got values from {int(labels.min())} to {int(labels.max())}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Soft-target loss: ``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, batchmean.

    Summed over classes, averaged over rows (examples). Zero when student == teacher.
    Teacher logits are treated as constants (no gradient flows into the teacher).
    Notebook 01 derives it; notebook 02 trains with it.
    """
    check_temperature(T)
    _check_pair(student_logits, teacher_logits)
    n_classes = student_logits.shape[-1]
    log_p_s = F.log_softmax(student_logits.reshape(-1, n_classes) / T, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().reshape(-1, n_classes) / T, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    return T * T * kl


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """``T^2 * H(p_T, p_S) = -T^2 * sum_c p_T log p_S``, batchmean.

    Equals ``kd_loss`` plus ``T^2`` times the teacher's entropy, a constant for the student, so the
    gradients agree; shown in notebook 01. Not zero when student == teacher, which is why kdlib uses KL.
    """
    check_temperature(T)
    _check_pair(student_logits, teacher_logits)
    n_classes = student_logits.shape[-1]
    log_p_s = F.log_softmax(student_logits.reshape(-1, n_classes) / T, dim=-1)
    p_t = F.softmax(teacher_logits.detach().reshape(-1, n_classes) / T, dim=-1)
    return -T * T * (p_t * log_p_s).sum(-1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      T: float, alpha: float) -> torch.Tensor:
    """Hard + soft mix: ``alpha * CE(labels, student) + (1 - alpha) * kd_loss(student, teacher, T)``.

    ``alpha`` is the weight of the hard-label cross-entropy (at T = 1): alpha = 1 is plain supervised
    training, alpha = 0 is pure distillation. Both terms are averaged over examples.
    Notebook 01 explores alpha with a slider; notebook 02 uses it on MNIST.
    """
    if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is the weight of the hard-label loss and must lie in [0, 1], got {alpha!r}")
    _check_pair(student_logits, teacher_logits)
    _check_labels(labels, student_logits)
    n_classes = student_logits.shape[-1]
    hard = F.cross_entropy(student_logits.reshape(-1, n_classes), labels.reshape(-1))
    if alpha == 1.0:
        check_temperature(T)
        return hard
    return alpha * hard + (1.0 - alpha) * kd_loss(student_logits, teacher_logits, T)


def _check_features(student_features: torch.Tensor, teacher_features: torch.Tensor, what: str) -> None:
    if student_features.shape != teacher_features.shape:
        raise ValueError(f"{what}: student features have shape {tuple(student_features.shape)} but teacher "
                         f"features have shape {tuple(teacher_features.shape)}; pass a regressor that maps the "
                         "student's features to the teacher's shape, or pool the teacher's features to the "
                         "student's size")
    _check_finite("student_features", student_features)
    _check_finite("teacher_features", teacher_features)


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, regressor=None) -> torch.Tensor:
    """FitNets hint: ``mean((r(f_S) - f_T)^2)`` over every element (batch, channels, positions).

    ``r`` is the trainable ``regressor`` (for example a 3x3 conv from the student's channels to the teacher's)
    or the identity when None; then the shapes must match, else ValueError naming both. This is PyTorch's
    ``MSELoss`` (mean reduction, as in the PyTorch KD tutorial), FitNets' ``1/2 ||.||^2`` up to a constant.
    The teacher's features are constants (detached). Notebook 03.
    """
    mapped = student_features if regressor is None else regressor(student_features)
    _check_features(mapped, teacher_features, "hint_loss" + (" (after the regressor)" if regressor else ""))
    return F.mse_loss(mapped, teacher_features.detach(), reduction="mean")


def cosine_feature_loss(student_features: torch.Tensor, teacher_features: torch.Tensor,
                        eps: float = 1e-8) -> torch.Tensor:
    """``mean_i (1 - cos(f_S[i], f_T[i]))`` with each example's features flattened to a vector.

    ``CosineEmbeddingLoss`` with target +1: zero when the vectors point the same way, whatever their
    lengths; 2 when opposite. Shapes must match (ValueError naming both); the PyTorch KD tutorial
    average-pools the teacher's longer vector to the student's length. Teacher detached. Notebook 03.
    """
    _check_features(student_features, teacher_features, "cosine_feature_loss")
    s = student_features.reshape(len(student_features), -1)
    t = teacher_features.detach().reshape(len(teacher_features), -1)
    return (1.0 - F.cosine_similarity(s, t, dim=1, eps=eps)).mean()


LOSSES = {
    "kd": kd_loss,
    "distillation": distillation_loss,
    "soft_cross_entropy": soft_cross_entropy,
    "hint": hint_loss,
    "cosine_feature": cosine_feature_loss,
}


# ---- notebook 04: transformer losses (hidden states, attention maps, MiniLM relations), kept in their own module
from .transformer_losses import (attention_loss, embedding_loss, hidden_state_loss, layer_map,  # noqa: E402
                                 minilm_relation_loss, value_relation)

__all__ += ["layer_map", "hidden_state_loss", "embedding_loss", "attention_loss", "value_relation",
            "minilm_relation_loss"]
LOSSES.update({"hidden_state": hidden_state_loss, "embedding": embedding_loss, "attention": attention_loss,
               "minilm_relation": minilm_relation_loss})


# ---- notebook 07: DPO lives with the other preference code in kdlib.preference; re-exported here
from .preference import dpo_loss  # noqa: E402

__all__.append("dpo_loss")
LOSSES["dpo"] = dpo_loss
