"""Weight quantization of a student, simulated in floating point: post-training (PTQ) and quantization-aware
training (QAT), so that the teacher's KD loss can train through the rounding (notebook 10).

* ``fake_quantize(weight, bits, group_size)``: symmetric round-to-nearest per group of ``group_size`` consecutive
  input channels of each output row: ``scale = max|w| / (2^(bits-1) - 1)``, ``q = clamp(round(w / scale),
  -2^(bits-1), 2^(bits-1) - 1)``, returned as ``q * scale``: the values an integer kernel computes with.
* ``quantize_weights``: PTQ, a copy whose linear layers hold their fake-quantized weights.
* ``prepare_qat`` / ``finish_qat``: QAT, a copy whose linear weights are fake-quantized on every forward pass
  with a straight-through estimator, ``w + (fake_quantize(w) - w).detach()`` (the gradient passes the rounding as
  if it were the identity; Bengio et al. 2013), through ``torch.nn.utils.parametrize``; ``finish_qat`` bakes the
  quantized weights in.
* ``quantized_size_mb``: the storage the quantized model needs: ``bits`` per linear weight plus a 16-bit scale per
  group, every other tensor at its own dtype.

Only the linear layers of the decoder blocks are quantized (``model.model``); the embeddings and the output head,
tied in small LMs, stay in floating point, as in most weight-only schemes.
"""
from __future__ import annotations

import copy

import torch
from torch.nn.utils import parametrize

from kdlib.core.validate import whole

__all__ = ["fake_quantize", "quantize_weights", "prepare_qat", "finish_qat", "quantized_size_mb"]


def _check(bits: int, group_size: int, in_features: int | None = None) -> tuple[int, int]:
    bits, group_size = whole("bits", bits, 2), whole("group_size", group_size, 1)
    if bits > 16:
        raise ValueError(f"bits must lie in 2..16 for integer weight quantization, got {bits}")
    if in_features is not None and in_features % group_size:
        raise ValueError(f"group_size {group_size} does not divide the layer's {in_features} input channels; "
                         "choose a divisor (e.g. 32 or 64) or the full width")
    return bits, group_size


def fake_quantize(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """The module docstring's ``q * scale`` for a 2-D ``weight`` (out, in), groups along the input channels."""
    bits, group_size = _check(bits, group_size, weight.shape[-1])
    levels = 2 ** (bits - 1) - 1
    groups = weight.reshape(weight.shape[0], -1, group_size)
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / levels
    q = torch.clamp(torch.round(groups / scale), -levels - 1, levels)
    return (q * scale).reshape_as(weight)


def decoder_linears(model) -> list[torch.nn.Linear]:
    body = getattr(model, "model", None)
    if body is None:
        raise TypeError(f"expected a causal LM with its decoder in .model, got {type(model).__name__}")
    return [m for m in body.modules() if isinstance(m, torch.nn.Linear)]


def quantize_weights(model, bits: int, group_size: int = 32):
    """PTQ: a copy of ``model`` whose decoder linear weights are replaced by ``fake_quantize(w, bits, group_size)``."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for linear in decoder_linears(out):
            linear.weight.copy_(fake_quantize(linear.weight, bits, group_size))
    return out


class _FakeQuant(torch.nn.Module):
    def __init__(self, bits: int, group_size: int):
        super().__init__()
        self.bits, self.group_size = bits, group_size

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (fake_quantize(weight, self.bits, self.group_size) - weight).detach()


def prepare_qat(model, bits: int, group_size: int = 32):
    """QAT: a copy of ``model`` whose decoder linear weights are fake-quantized on every forward pass, with the
    straight-through gradient. Train it with any step of the kit (plain LM loss or the teacher's KD loss)."""
    out = copy.deepcopy(model)
    for linear in decoder_linears(out):
        _check(bits, group_size, linear.in_features)
        parametrize.register_parametrization(linear, "weight", _FakeQuant(bits, group_size))
    return out


def finish_qat(model):
    """The QAT model with its quantized weights baked in (the parametrizations removed), in place; returned."""
    for linear in decoder_linears(model):
        if parametrize.is_parametrized(linear, "weight"):
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=True)
    return model


def quantized_size_mb(model, bits: int, group_size: int = 32) -> float:
    """Megabytes (10^6 bytes) to store ``model`` with its decoder linear weights at ``bits`` bits plus a 16-bit
    scale per group of ``group_size``; shared tensors (tied embeddings) are counted once."""
    bits, group_size = _check(bits, group_size)
    quantized = {id(linear.parametrizations.weight.original if parametrize.is_parametrized(linear, "weight")
                    else linear.weight) for linear in decoder_linears(model)}
    seen, total = set(), 0.0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if id(tensor) in quantized:
            total += tensor.numel() * bits / 8 + tensor.numel() / group_size * 2
        else:
            total += tensor.numel() * tensor.element_size()
    return total / 1e6
