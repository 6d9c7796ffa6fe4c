"""Feature losses for conv nets: the FitNets hint and the cosine feature loss. Notebook 03.

Both compare a student's intermediate features with the teacher's (constants, detached); shapes must match,
else a ValueError names both and says how to make them match (a regressor, or pooling the teacher's).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_finite
from kdlib.losses.registry import register


def _check_features(student_features: torch.Tensor, teacher_features: torch.Tensor, what: str) -> None:
    if student_features.shape != teacher_features.shape:
        raise ValueError(f"{what}: student features have shape {tuple(student_features.shape)} but teacher "
                         f"features have shape {tuple(teacher_features.shape)}; pass a regressor that maps the "
                         "student's features to the teacher's shape, or pool the teacher's features to the "
                         "student's size")
    check_finite("student_features", student_features)
    check_finite("teacher_features", teacher_features)


@register("hint")
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


@register("cosine_feature")
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
