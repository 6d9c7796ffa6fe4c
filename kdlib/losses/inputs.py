"""Checks on a loss's inputs, shared by every module of ``kdlib.losses``: one rule for tensors, masks, empty and
all-masked batches. Used by every loss of notebooks 01-07; ``tests/test_fuzz_losses.py`` pins the rule for each.

* Tensors: a floating-point ``torch.Tensor`` (integer or boolean logits raise: a loss needs probabilities),
  never empty ("empty batch": a mean over no example is NaN), of the documented number of dimensions; pairs of
  tensors match in shape and device (the message gives both shapes). Metadata only: free, always on.
* Masks: ``None`` (every position counts), or a tensor of the positions' shape that is ``bool`` or numeric
  holding only 0 and 1 (1 / True: the position counts). Other values (0.5, NaN) raise while value checks are on.
  Masked-out positions are replaced by 0 (``keep``) *before* any softmax or log, so a NaN or inf there (padding,
  garbage) changes neither the loss nor its gradients; it is never multiplied by 0, which would give NaN.
* All masked out: while value checks are on, ValueError ("every position is masked out"); without them
  (``kdlib.core.fit``'s later steps) the mean over no position is 0 (its denominator is clamped to 1), one rule
  for the token and the transformer losses.
* Values: NaN or inf where a position counts raise (``kdlib.core.validate.check_finite``) while value checks
  are on; without them the loss propagates NaN (never 0), so ``fit``'s periodic loss read catches divergence.
  Every value check reads the host only while ``kdlib.core.validate.values_checked()`` is True.
"""
from __future__ import annotations

import torch

from kdlib.core.validate import check_finite, values_checked, whole  # noqa: F401 (callers use inputs.whole)


def shape_of(x) -> tuple:
    return tuple(x.shape)


def tensor(name: str, x, dims: int | None = None, min_dims: int = 1, layout: str = "") -> torch.Tensor:
    """``x`` unchanged, or ValueError naming ``name`` unless it is a non-empty floating-point tensor with ``dims``
    dimensions (at least ``min_dims``); ``layout`` names the dimensions for the message, e.g. ``"(batch, classes)"``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor{' ' + layout if layout else ''}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} has dtype {x.dtype}, but a loss needs floating point values (logits, features "
                         f"or log-probabilities); pass {name}.float()")
    if (dims is not None and x.dim() != dims) or x.dim() < min_dims:
        want = f"{dims}" if dims is not None else f"at least {min_dims}"
        raise ValueError(f"{name} must have {want} dimensions{' ' + layout if layout else ''}, got shape "
                         f"{shape_of(x)}")
    if x.numel() == 0:
        raise ValueError(f"empty batch: {name} has shape {shape_of(x)}, which holds no values; pass at least one "
                         "example, with at least one entry along every dimension")
    return x


def ids(name: str, x, shape: tuple, device: torch.device) -> torch.Tensor:
    """``x`` unchanged, or ValueError unless it is an integer tensor of ``shape`` on ``device`` (token ids, labels)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of integer ids, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} has dtype {x.dtype}; it must hold integer ids (torch.long): pass {name}.long()")
    if shape_of(x) != tuple(shape):
        raise ValueError(f"{name} has shape {shape_of(x)}, expected {tuple(shape)}")
    same_device(name, x, device)
    return x


def in_range(name: str, x: torch.Tensor, n: int) -> None:
    """ValueError unless every entry of the integer tensor ``x`` lies in [0, n) (a host read: value checks only)."""
    if values_checked() and x.numel():
        low, high = int(x.min()), int(x.max())
        if low < 0 or high >= n:
            raise ValueError(f"{name} must lie in [0, {n - 1}] (one of {n} entries), got values from {low} to {high}")


def same_device(name: str, x: torch.Tensor, device: torch.device) -> None:
    if x.device != device:
        raise ValueError(f"{name} is on {x.device} but the other inputs are on {device}; move it with "
                         f"{name}.to({str(device)!r})")


def pair(a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor, hint: str = "") -> None:
    """ValueError giving both shapes unless ``a`` and ``b`` match in shape, and naming both devices unless they
    share one."""
    if a.shape != b.shape:
        raise ValueError(f"{a_name} has shape {shape_of(a)} but {b_name} has shape {shape_of(b)}; they must match"
                         + (f". {hint}" if hint else ""))
    same_device(b_name, b, a.device)


def mask(name: str, m, shape: tuple, device: torch.device, what: str = "position") -> torch.Tensor | None:
    """The mask as a bool tensor (None stays None), or ValueError naming ``name``: wrong shape or device (always),
    values other than 0 and 1 in a numeric mask (value checks only)."""
    if m is None:
        return None
    if not isinstance(m, torch.Tensor):
        raise ValueError(f"{name} must be a bool or 0/1 torch.Tensor of shape {tuple(shape)}, got "
                         f"{type(m).__name__}")
    if shape_of(m) != tuple(shape):
        raise ValueError(f"{name} has shape {shape_of(m)}, expected {tuple(shape)} (one entry per {what})")
    same_device(name, m, device)
    if m.dtype == torch.bool:
        return m
    if m.is_complex():
        raise ValueError(f"{name} has dtype {m.dtype}; a mask is bool or holds 0 and 1")
    if values_checked():
        bad = (m != 0) & (m != 1)
        if bool(bad.any()):
            raise ValueError(f"{name} must be bool or hold only 0 and 1, got {int(bad.sum())} other value(s) such "
                             f"as {m[bad].flatten()[0].item()!r}; 1 (True) marks a {what} that counts, 0 one that "
                             "does not (weights are not masks)")
    return m != 0


def some(name: str, m: torch.Tensor | None) -> None:
    """ValueError if the bool mask ``m`` selects nothing (a host read: value checks only)."""
    if m is not None and values_checked() and not bool(m.any()):
        raise ValueError(f"every position is masked out: {name} is all 0 (False), so the mask selects no token "
                         "and there is nothing to average over; check the padding or prompt mask of this batch")


def keep(x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """``x`` with the positions where the bool mask ``m`` (a prefix of ``x``'s shape) is False set to 0, so that
    NaN or inf there reaches neither the loss nor its gradients (``torch.where``, not a product with the mask)."""
    if m is None:
        return x
    return torch.where(m.reshape(m.shape + (1,) * (x.dim() - m.dim())), x, 0)


def masked_mean(values: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``m`` is True (all when None); 0 when ``m`` selects nothing
    (the count is clamped to 1: no host read). Callers check ``some(name, m)`` first."""
    if m is None:
        return values.mean()
    return torch.where(m, values, 0).sum() / m.sum().clamp_min(1)


def up(x: torch.Tensor) -> torch.Tensor:
    """Half-precision values as float32 (float32 and float64 unchanged): logs, softmaxes and small epsilons
    (1e-12 is 0 in float16) need float32's range."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def choice(name: str, value, options: tuple) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {name}={value!r}")
    return value




def flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {name}={value!r}")
    return value


def finite(name: str, x: torch.Tensor) -> None:
    """ValueError naming ``name`` if ``x`` holds NaN or inf (value checks only); see ``check_finite``."""
    check_finite(name, x)
