"""Feature distillation for conv nets: FitNets hints and cosine feature matching. Notebook 03.

Training steps for ``kdlib.core.fit`` (``step(model, batch, idx) -> loss``) that look the teacher's
features up by sample index in a ``TeacherCache`` built with ``outputs="features"``, so shuffling cannot
misalign them:

* ``hint_step``: ``(1 - w) * CE(y, student(x)) + w * mean((r(F_S) - F_T)^2)`` where ``F`` are the last conv
  blocks' maps and ``r`` a trainable regressor (a 3x3 conv from the student's channels to the teacher's);
* ``cosine_step``: ``(1 - w) * CE + w * mean_i(1 - cos(f_S[i], pool(f_T)[i]))`` on the flattened features,
  the teacher's vector average-pooled to the student's length.

``w = 0.25`` as in the PyTorch KD tutorial. ``WithRegressor`` wraps student and regressor in one module so
``fit()`` optimises both; its ``forward`` is the student's, so evaluation needs no special case.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdlib.core.teacher_cache import by_index
from kdlib.core.validate import check_number
from kdlib.losses.features import cosine_feature_loss, hint_loss


class WithRegressor(nn.Module):
    """A student plus the regressor of its hint loss, trained together; ``forward`` is the student's."""

    def __init__(self, student: nn.Module, regressor: nn.Module):
        super().__init__()
        self.student, self.regressor = student, regressor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def conv_regressor(student_channels: int, teacher_channels: int) -> nn.Module:
    """FitNets' regressor as in the PyTorch tutorial: a 3x3 conv (padding 1) between the two feature maps."""
    return nn.Conv2d(student_channels, teacher_channels, kernel_size=3, padding=1)


def pool_features(features: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool each row of (N, D) features to (N, size) (``adaptive_avg_pool1d``)."""
    return F.adaptive_avg_pool1d(features.reshape(len(features), 1, -1), size).squeeze(1)


def hint_step(teacher_features, map_shape: tuple[int, int, int], weight: float = 0.25, loss=hint_loss):
    """Hard labels plus a FitNets hint on the last conv maps; ``map_shape`` is the teacher's (C, H, W).
    ``loss`` is the hint loss to use (the notebook passes the learner's checked function)."""
    weight = check_number("weight", weight, 0.0, 1.0, hint="the share of the hint in the loss")
    lookup = by_index(teacher_features)

    def step(model: WithRegressor, batch, idx):
        fmap = model.student.feature_map(batch.x)
        logits = model.student.classify(torch.flatten(fmap, 1))
        target = lookup(idx).view(len(idx), *map_shape)
        return (1 - weight) * F.cross_entropy(logits, batch.y) + weight * loss(fmap, target, model.regressor)
    return step


def cosine_step(pooled_teacher_features, weight: float = 0.25):
    """Hard labels plus ``1 - cos`` between the student's features and the teacher's pooled features."""
    weight = check_number("weight", weight, 0.0, 1.0, hint="the share of the cosine loss in the loss")
    lookup = by_index(pooled_teacher_features)

    def step(model, batch, idx):
        feats = model.features(batch.x)
        loss = cosine_feature_loss(feats, lookup(idx))
        return (1 - weight) * F.cross_entropy(model.classify(feats), batch.y) + weight * loss
    return step
