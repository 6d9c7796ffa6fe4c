"""Quantized weights on real integer kernels, with ``torchao`` (notebook 10): what a quantized student weighs and how
fast it answers on this machine, beside ``kdlib.lm.quantize``, which simulates the rounding in floating point to
measure quality and to train through it.

* 8 bits (``integer_kernels(model, 8)``): torchao's ``Int8DynamicActivationInt8WeightConfig``: int8 weights (one
  scale per output channel) and activations quantized to int8 on the fly per token, so the matrix products run
  in integer arithmetic;
* 4 bits (``integer_kernels(model, 4, group_size)``): ``IntxWeightOnlyConfig`` with int4 weights and one scale per
  group of ``group_size`` input channels; on an x86 CPU torchao keeps the int4 values unpacked in int8 and
  dequantizes them at every product, so it saves no time here (notebook 10 measures it).

Only the decoder's linear layers are converted (``model.model``), as in ``kdlib.lm.quantize``; the tied embeddings
and output head stay in floating point. The input model is never changed.
"""
from __future__ import annotations

import copy

import torch

from kdlib.core.validate import whole
from kdlib.lm.quantize import decoder_linears

__all__ = ["integer_kernels", "KERNEL_BITS"]

KERNEL_BITS = (4, 8)


def _torchao():
    try:
        import torchao.quantization as tq
    except ImportError as err:
        raise ImportError("integer kernels need torchao: pip install 'torchao==0.18.0' (the kit pins it; `make lab` "
                          "installs it)") from err
    return tq


def _config(tq, bits: int, group_size: int):
    if bits == 8:
        return tq.Int8DynamicActivationInt8WeightConfig()
    return tq.IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=tq.PerGroup(group_size))


def integer_kernels(model, bits: int, group_size: int = 32):
    """A copy of ``model`` whose decoder linear layers run on torchao's integer kernels at ``bits`` (8, or 4 with
    ``group_size`` input channels per scale); see the module docstring. CPU or CUDA, inference only."""
    bits, group_size = whole("bits", bits, 1), whole("group_size", group_size, 1)
    if bits not in KERNEL_BITS:
        raise ValueError(f"torchao's CPU kernels here take bits in {KERNEL_BITS}, got {bits}; simulate other "
                         "bit-widths with kdlib.lm.quantize.quantize_weights")
    linears = decoder_linears(model)
    if bits == 4 and any(m.in_features % group_size for m in linears):
        raise ValueError(f"group_size {group_size} does not divide every layer's input channels "
                         f"{sorted({m.in_features for m in linears})}; choose a common divisor such as 32")
    tq = _torchao()
    out = copy.deepcopy(model).eval()
    tq.quantize_(out.model, _config(tq, bits, group_size), filter_fn=lambda m, _: isinstance(m, torch.nn.Linear))
    return out
