"""Types the data loaders share. ``Split``: one split of a labelled data set as in-memory tensors
(notebooks 02-04)."""
from __future__ import annotations

from typing import NamedTuple

import torch


class Split(NamedTuple):
    """One split of a data set: inputs ``x`` (N, ...) float32 and integer labels ``y`` (N,)."""

    x: torch.Tensor
    y: torch.Tensor
