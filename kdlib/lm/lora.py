"""LoRA students with ``peft``, and what their training state costs (notebook 11).

LoRA (Hu et al. 2021) freezes a weight ``W`` (out x in) and learns a low-rank update: the layer computes
``W x + (alpha / r) * B A x`` with ``A`` (r x in) random and ``B`` (out x r) zero at the start, so the model is
unchanged until it trains. Only ``A`` and ``B`` are trained: ``r (in + out)`` parameters per adapted layer instead
of ``in * out``, and the optimizer keeps its moments for those only.

* ``lora_student(model, r, alpha, targets)``: a copy of ``model`` wrapped by ``peft`` with adapters on the named
  linear layers (a name that matches no layer is an error that lists the names there are);
* ``adam_state_mb(model)``: the megabytes of AdamW state (two moments per trainable parameter) that training
  ``model`` allocates, measured on a real optimizer step;
* ``merged(model)``: a plain model with the adapters folded into the weights, for serving and generation.
"""
from __future__ import annotations

import copy

import torch

from kdlib.core.validate import check_number, whole

__all__ = ["lora_student", "adam_state_mb", "merged", "LINEAR_TARGETS"]

LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _linear_names(model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def lora_student(model, r: int = 8, alpha: float = 16.0, targets=LINEAR_TARGETS, dropout: float = 0.0):
    """A ``peft`` LoRA copy of ``model`` with rank-``r`` adapters scaled by ``alpha / r`` on every linear layer
    named in ``targets`` (their last name part, e.g. ``"q_proj"``); everything else is frozen. ``model`` is not
    changed."""
    from peft import LoraConfig, get_peft_model

    r = whole("r", r, 1)
    alpha = check_number("alpha", alpha, low=0, hint="LoRA's scale is alpha / r; 2 * r is a common choice")
    dropout = check_number("dropout", dropout, low=0, high=1)
    targets = [targets] if isinstance(targets, str) else list(targets)
    present = _linear_names(model)
    missing = [t for t in targets if t not in present]
    if not targets or missing:
        raise ValueError(f"LoRA target modules {missing or targets} are not linear layers of this model; it has "
                         f"{sorted(present)}")
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=dropout, bias="none")
    return get_peft_model(copy.deepcopy(model), config)


def adam_state_mb(model) -> float:
    """Megabytes (10^6 bytes) of AdamW state for ``model``'s trainable parameters, read from the optimizer after
    one step at learning rate 0 on zero gradients (the weights do not move; gradients are cleared afterwards)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=0.0, weight_decay=0.0)
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p in params:
        p.grad = None
    return sum(t.numel() * t.element_size() for state in optimizer.state.values() for t in state.values()
               if isinstance(t, torch.Tensor) and t.dim() > 0) / 1e6


def merged(model):
    """A plain ``transformers`` model with the LoRA adapters folded into its weights (a copy; ``model`` itself,
    when it has no adapters)."""
    if not hasattr(model, "merge_and_unload"):
        return model
    return copy.deepcopy(model).merge_and_unload()
