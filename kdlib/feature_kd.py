"""Feature distillation for conv nets: FitNets hints and cosine feature matching. Notebook 03.

Training steps for ``kdlib.train.train`` (``step(model, x, y, idx) -> loss``) that look the teacher's
features up by sample index in a ``TeacherCache`` built with ``outputs="features"``, so shuffling cannot
misalign them:

* ``hint_step``: ``(1 - w) * CE(y, student(x)) + w * mean((r(F_S) - F_T)^2)`` where ``F`` are the last conv
  blocks' maps and ``r`` a trainable regressor (a 3x3 conv from the student's channels to the teacher's);
* ``cosine_step``: ``(1 - w) * CE + w * mean_i(1 - cos(f_S[i], pool(f_T)[i]))`` on the flattened features,
  the teacher's vector average-pooled to the student's length.

``w = 0.25`` as in the PyTorch KD tutorial. ``WithRegressor`` wraps student and regressor in one module so
``train()`` optimises both; its ``forward`` is the student's, so evaluation needs no special case.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .losses import cosine_feature_loss, hint_loss


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
    def step(model: WithRegressor, x, y, idx):
        fmap = model.student.feature_map(x)
        logits = model.student.classify(torch.flatten(fmap, 1))
        target = teacher_features[idx].view(len(idx), *map_shape)
        return (1 - weight) * F.cross_entropy(logits, y) + weight * loss(fmap, target, model.regressor)
    return step


def cosine_step(pooled_teacher_features, weight: float = 0.25):
    """Hard labels plus ``1 - cos`` between the student's features and the teacher's pooled features."""
    def step(model, x, y, idx):
        feats = model.features(x)
        loss = cosine_feature_loss(feats, pooled_teacher_features[idx])
        return (1 - weight) * F.cross_entropy(model.classify(feats), y) + weight * loss
    return step
