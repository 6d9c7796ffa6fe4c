"""Feature losses for conv nets: the FitNets hint and the cosine feature loss. Notebook 03.

Both compare a student's intermediate features with the teacher's (constants, detached); shapes must match,
else a ValueError names both and says how to make them match (a regressor, or pooling the teacher's). Features
are floating point, (batch, ...) with at least one example (an empty batch raises); NaN or inf raise while value
checks are on (``kdlib.losses.inputs``) and give a NaN loss without them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_number
from kdlib.losses import inputs
from kdlib.losses.registry import register

LAYOUT = "(batch, channels, ...) or (batch, features)"


def _check_features(student_features: torch.Tensor, teacher_features: torch.Tensor, what: str,
                    student_name: str = "student_features") -> None:
    inputs.tensor("teacher_features", teacher_features, min_dims=2, layout=LAYOUT)
    if student_features.shape != teacher_features.shape:
        raise ValueError(f"{what}: student features have shape {tuple(student_features.shape)} but teacher "
                         f"features have shape {tuple(teacher_features.shape)}; pass a regressor that maps the "
                         "student's features to the teacher's shape, or pool the teacher's features to the "
                         "student's size")
    inputs.same_device("teacher_features", teacher_features, student_features.device)
    inputs.finite(student_name, student_features)
    inputs.finite("teacher_features", teacher_features)


@register("hint")
def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, regressor=None) -> torch.Tensor:
    """FitNets hint: ``mean((r(f_S) - f_T)^2)`` over every element (batch, channels, positions).

    ``r`` is the trainable ``regressor`` (for example a 3x3 conv from the student's channels to the teacher's)
    or the identity when None; then the shapes must match, else ValueError naming both. This is PyTorch's
    ``MSELoss`` (mean reduction, as in the PyTorch KD tutorial), FitNets' ``1/2 ||.||^2`` up to a constant.
    The teacher's features are constants (detached). Notebook 03.
    """
    inputs.tensor("student_features", student_features, min_dims=2, layout=LAYOUT)
    inputs.finite("student_features", student_features)
    if regressor is None:
        mapped = student_features
    else:
        try:
            mapped = regressor(student_features)
        except RuntimeError as err:  # a conv or linear layer built for another number of channels
            raise ValueError(f"hint_loss: the regressor cannot take student_features of shape "
                             f"{tuple(student_features.shape)}: {err}; build it for the student's channels") from err
    _check_features(mapped, teacher_features, "hint_loss" + (" (after the regressor)" if regressor else ""),
                    "student_features" if regressor is None else "regressor(student_features)")
    return F.mse_loss(mapped, teacher_features.detach().to(mapped.dtype), reduction="mean")


@register("cosine_feature")
def cosine_feature_loss(student_features: torch.Tensor, teacher_features: torch.Tensor,
                        eps: float = 1e-8) -> torch.Tensor:
    """``mean_i (1 - cos(f_S[i], f_T[i]))`` with each example's features flattened to a vector.

    ``CosineEmbeddingLoss`` with target +1: zero when the vectors point the same way, whatever their
    lengths; 2 when opposite. Shapes must match (ValueError naming both); the PyTorch KD tutorial
    average-pools the teacher's longer vector to the student's length. ``eps > 0`` bounds the norms away from
    zero. Teacher detached. Notebook 03.
    """
    check_number("eps", eps, low=0, low_open=True, hint="it keeps the cosine finite for an all-zero vector")
    inputs.tensor("student_features", student_features, min_dims=2, layout=LAYOUT)
    _check_features(student_features, teacher_features, "cosine_feature_loss")
    s = student_features.reshape(len(student_features), -1)
    t = teacher_features.detach().to(s.dtype).reshape(len(teacher_features), -1)
    return (1.0 - F.cosine_similarity(s, t, dim=1, eps=eps)).mean()
