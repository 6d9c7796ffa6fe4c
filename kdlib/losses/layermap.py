"""Layer maps and the padding mask shared by the transformer losses (``kdlib.losses.transformer`` and
``kdlib.losses.attention``, notebook 04): ``layer_map`` builds {student layer: teacher layer} (1-based), and the
checks of a map, a per-layer sequence and a padding mask (``kdlib.losses.inputs``'s rule: bool or 0/1; a mask
with no real token raises while value checks are on).
"""
from __future__ import annotations

import numbers

import torch

from kdlib.losses import inputs

__all__ = ["layer_map"]


def _whole(n) -> bool:
    return isinstance(n, numbers.Integral) and not isinstance(n, bool)


def check_mapping(mapping) -> dict[int, int]:
    """The layer map as {int: int}, or ValueError unless it is a non-empty dict of whole layer numbers."""
    if not isinstance(mapping, dict):
        raise ValueError(f"mapping must be a dict {{student layer: teacher layer}} (see layer_map), got "
                         f"{type(mapping).__name__}")
    if not mapping:
        raise ValueError("the layer map is empty: map at least one student layer to a teacher layer")
    bad = {s: t for s, t in mapping.items() if not (_whole(s) and _whole(t))}
    if bad:
        raise ValueError(f"mapping must map whole layer numbers to whole layer numbers, got {bad}")
    return {int(s): int(t) for s, t in mapping.items()}


def layer_map(n_student: int, n_teacher: int, kind="uniform") -> dict[int, int]:
    """{student layer: teacher layer}, 1-based. ``kind``: "uniform", "last" or a dict given explicitly."""
    n_student = inputs.whole("n_student", n_student, 1, hint="the student needs at least one layer")
    n_teacher = inputs.whole("n_teacher", n_teacher, 1, hint="the teacher needs at least one layer")
    if isinstance(kind, dict):
        mapping = check_mapping(kind)
    elif kind == "uniform":
        if n_student > n_teacher:
            raise ValueError(f"a uniform map needs n_student <= n_teacher, got {n_student} > {n_teacher}")
        mapping = {l: l * n_teacher // n_student for l in range(1, n_student + 1)}
    elif kind == "last":
        if n_student > n_teacher:
            raise ValueError(f"a 'last' map needs n_student <= n_teacher, got {n_student} > {n_teacher}")
        mapping = {l: n_teacher - n_student + l for l in range(1, n_student + 1)}
    else:
        raise ValueError(f"layer map kind must be 'uniform', 'last' or a dict {{student: teacher}}, got {kind!r}")
    bad_s = [s for s in mapping if not 1 <= s <= n_student]
    bad_t = [f"{s}->{t}" for s, t in mapping.items() if not 1 <= t <= n_teacher]
    if bad_s or bad_t:
        raise ValueError(f"layer map {mapping} names layers that do not exist: student layers {bad_s or 'ok'} "
                         f"(the student has 1..{n_student}), teacher layers {bad_t or 'ok'} (the teacher has "
                         f"1..{n_teacher}); layer 0 is the embedding output, use embedding_loss for it")
    return mapping


def padding_mask(mask, batch: int, length: int, device) -> torch.Tensor:
    """The padding mask as bool (B, L), all True when None; checked by ``kdlib.losses.inputs``."""
    if mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    m = inputs.mask("mask", mask, (batch, length), device, "token")
    inputs.some("mask", m)
    return m


def check_sequence(name: str, states) -> None:
    """ValueError naming ``name`` unless ``states`` is indexable by layer (a list or tuple of per-layer tensors)."""
    one_tensor = isinstance(states, torch.Tensor) and states.dim() < 4
    if one_tensor or not (hasattr(states, "__len__") and hasattr(states, "__getitem__")):
        raise ValueError(f"{name} must be a sequence of per-layer tensors (a list or tuple), got "
                         f"{type(states).__name__}")
