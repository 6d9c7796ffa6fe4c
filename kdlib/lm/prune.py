"""Structured pruning of a Llama-family causal LM, by importance measured on calibration text (notebook 10:
Minitron in miniature, Muralidharan et al. 2024 and Sreenivas et al. 2024).

* **Width** (``mlp_importance``, ``prune_mlp``): the importance of MLP neuron ``j`` of a layer is its mean
  absolute activation over the calibration tokens, ``I_j = mean_t |act(gate(x_t))_j * up(x_t)_j|`` (the input of
  ``down_proj``; padding excluded), Minitron's activation-based score. Pruning keeps the ``keep`` most important
  neurons of every layer: rows of ``gate_proj`` and ``up_proj``, columns of ``down_proj``.
* **Heads** (``head_importance``, ``prune_heads``): the importance of a key-value group is the mean norm of its
  query heads' outputs; pruning keeps whole groups (a key-value head with the query heads that share it), so
  grouped-query attention stays valid.
* **Depth** (``layer_importance``, ``drop_layers``): the importance of a decoder layer is how much the
  calibration loss rises when it is skipped, ``I_l = L(model without layer l) - L(model)``; pruning drops the
  layers of least importance.

Both return new models (the input is never changed) whose config says their new size, so that
``transformers``' generation and saving work on them; a pruned model is then *recovered* by training, with the
language-modelling loss or by distillation from the unpruned teacher (notebook 10 compares the two).
"""
from __future__ import annotations

import copy

import torch

__all__ = ["neuron_importance", "mlp_importance", "head_importance", "prune_heads", "prune_mlp", "layer_importance",
           "drop_layers", "calibration_loss"]


def _layers(model) -> torch.nn.ModuleList:
    try:
        return model.model.layers
    except AttributeError as err:
        raise TypeError(f"expected a Llama-family causal LM (model.model.layers), got {type(model).__name__}") from err


def _batches(batches):
    for batch in batches:
        ids = batch["input_ids"] if isinstance(batch, dict) else batch
        mask = batch.get("attention_mask") if isinstance(batch, dict) else None
        yield ids, (torch.ones_like(ids) if mask is None else mask)


@torch.no_grad()
def calibration_loss(model, batches) -> float:
    """Mean next-token cross-entropy per predicted token over ``batches`` (tensors of ids, or dicts with
    ``input_ids`` and ``attention_mask``; padding is not predicted)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for ids, mask in _batches(batches):
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        total, count = total + float(loss), count + int((target != -100).sum())
    if not count:
        raise ValueError("the calibration batches hold no token to predict")
    return total / count


def neuron_importance(activations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``I_j = mean_t |a_tj|`` over the tokens where ``mask`` is 1: ``activations`` of shape ``(batch, length,
    neurons)``, ``mask`` of shape ``(batch, length)``; returns ``(neurons,)``. Notebook 10's exercise."""
    if activations.shape[:2] != mask.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must match the activations' (batch, length) "
                         f"{tuple(activations.shape[:2])}")
    weights = mask.to(activations.dtype)
    return (activations.abs() * weights[..., None]).sum(dim=(0, 1)) / weights.sum().clamp_min(1)


@torch.no_grad()
def _input_importance(model, batches, pick, transform=lambda a: a, score=None) -> list[torch.Tensor]:
    """Per layer, ``neuron_importance`` of ``transform(input of pick(layer))`` over all calibration tokens."""
    layers = _layers(model)
    device = next(model.parameters()).device
    sums: list[torch.Tensor | float] = [0.0] * len(layers)
    tokens, current = [0], {}
    score = neuron_importance if score is None else score

    def hook(i):
        def record(module, inputs):  # importance per batch, weighted by its tokens: the mean over all of them
            sums[i] = sums[i] + score(transform(inputs[0].float()), current["mask"]) * current["mask"].sum()
        return record

    handles = [pick(layer).register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        for ids, mask in _batches(batches):
            current["mask"] = mask.to(device).float()
            model(input_ids=ids.to(device), attention_mask=mask.to(device))
            tokens[0] += int(mask.sum())
    finally:
        for handle in handles:
            handle.remove()
    if not tokens[0]:
        raise ValueError("the calibration batches hold no token")
    return [s / tokens[0] for s in sums]


def mlp_importance(model, batches, score=None) -> list[torch.Tensor]:
    """Per layer, the mean absolute activation of each MLP neuron over the calibration tokens (the module
    docstring's ``I_j``): a list of tensors of shape ``(intermediate_size,)``. ``score``, when given, replaces
    ``neuron_importance`` (notebook 10 passes the learner's function, so it ranks the neurons that are pruned)."""
    if score is not None and not callable(score):
        raise ValueError(f"score must be a function score(activations, mask) like neuron_importance, got {score!r:.60}")
    return _input_importance(model, batches, lambda layer: layer.mlp.down_proj, score=score)


def _heads(config) -> tuple[int, int, int]:
    heads, groups = config.num_attention_heads, config.num_key_value_heads
    return heads, groups, getattr(config, "head_dim", None) or config.hidden_size // heads


def head_importance(model, batches) -> list[torch.Tensor]:
    """Per layer, the importance of each key-value group (a key-value head and the query heads that share it):
    the mean over tokens of the L2 norm of each query head's output (the input of ``o_proj``, split into heads),
    summed over the group: a list of tensors of shape ``(num_key_value_heads,)``."""
    heads, groups, dim = _heads(model.config)
    per_head = _input_importance(model, batches, lambda layer: layer.self_attn.o_proj,
                                 lambda a: a.view(*a.shape[:2], heads, dim).norm(dim=-1))
    return [score.view(groups, heads // groups).sum(-1) for score in per_head]


def prune_heads(model, keep: int, importance: list[torch.Tensor]):
    """A copy of ``model`` whose every attention layer keeps its ``keep`` most important key-value groups
    (``head_importance``) with their query heads; the config's head counts follow and ``head_dim`` is kept."""
    heads, groups, dim = _heads(model.config)
    per = heads // groups
    if not 0 < keep <= groups:
        raise ValueError(f"keep must lie in 1..{groups} (the key-value groups of each layer), got {keep}")
    if len(importance) != len(_layers(model)) or any(s.shape != (groups,) for s in importance):
        raise ValueError(f"importance must hold one score per key-value group ({groups}) for each layer; compute it "
                         "with head_importance(model, batches)")
    pruned = copy.deepcopy(model)
    for layer, score in zip(_layers(pruned), importance):
        kept = score.topk(keep).indices.sort().values
        query = ((kept[:, None] * per + torch.arange(per))[..., None] * dim + torch.arange(dim)).flatten()
        shared = (kept[:, None] * dim + torch.arange(dim)).flatten()
        attn = layer.self_attn
        for linear, rows in ((attn.q_proj, query), (attn.k_proj, shared), (attn.v_proj, shared)):
            _keep_rows(linear, rows.to(linear.weight.device))
        attn.o_proj.weight = torch.nn.Parameter(attn.o_proj.weight[:, query.to(attn.o_proj.weight.device)].clone())
        attn.o_proj.in_features = len(query)
    pruned.config.head_dim = dim
    pruned.config.num_attention_heads, pruned.config.num_key_value_heads = keep * per, keep
    return pruned


def _keep_rows(linear: torch.nn.Linear, rows: torch.Tensor) -> None:
    linear.weight = torch.nn.Parameter(linear.weight[rows].clone())
    linear.out_features = len(rows)
    if linear.bias is not None:
        linear.bias = torch.nn.Parameter(linear.bias[rows].clone())


def prune_mlp(model, keep: int, importance: list[torch.Tensor]):
    """A copy of ``model`` whose every MLP keeps its ``keep`` most important neurons (``importance`` from
    ``mlp_importance``), in their original order; ``config.intermediate_size`` becomes ``keep``."""
    layers = _layers(model)
    width = layers[0].mlp.down_proj.in_features
    if not 0 < keep <= width:
        raise ValueError(f"keep must lie in 1..{width} (the MLP width), got {keep}")
    if len(importance) != len(layers) or any(s.shape != (width,) for s in importance):
        raise ValueError(f"importance must hold one score per neuron ({width}) for each of the {len(layers)} layers; "
                         "compute it with mlp_importance(model, batches)")
    pruned = copy.deepcopy(model)
    for layer, score in zip(_layers(pruned), importance):
        kept = score.topk(keep).indices.sort().values.to(layer.mlp.down_proj.weight.device)
        for name in ("gate_proj", "up_proj"):
            _keep_rows(getattr(layer.mlp, name), kept)
        down = layer.mlp.down_proj
        down.weight = torch.nn.Parameter(down.weight[:, kept].clone())
        down.in_features = keep
    pruned.config.intermediate_size = keep
    return pruned


def _without(model, drop: set[int]):
    """The model's layers without ``drop``, renumbered (``layer_idx``: the key-value cache's slot)."""
    kept = [layer for i, layer in enumerate(_layers(model)) if i not in drop]
    for new, layer in enumerate(kept):
        if hasattr(layer.self_attn, "layer_idx"):
            layer.self_attn.layer_idx = new
    return torch.nn.ModuleList(kept)


@torch.no_grad()
def layer_importance(model, batches) -> list[float]:
    """Per decoder layer, the calibration loss without it minus the loss with all layers (the module docstring's
    ``I_l``). The model is restored afterwards."""
    batches = list(batches)
    base = calibration_loss(model, batches)
    layers, n = _layers(model), model.config.num_hidden_layers
    out = []
    try:
        for i in range(len(layers)):
            _restore(model, layers)
            model.model.layers = _without(model, {i})
            model.config.num_hidden_layers = n - 1
            out.append(calibration_loss(model, batches) - base)
    finally:
        _restore(model, layers)
        model.config.num_hidden_layers = n
    return out


def _restore(model, layers: torch.nn.ModuleList):
    for i, layer in enumerate(layers):
        if hasattr(layer.self_attn, "layer_idx"):
            layer.self_attn.layer_idx = i
    model.model.layers = layers
    return model


def drop_layers(model, drop) -> torch.nn.Module:
    """A copy of ``model`` without the decoder layers ``drop`` (0-based indices); the config's layer count (and
    its per-layer ``layer_types``, where it has them) follows."""
    n = len(_layers(model))
    drop = set(drop)
    bad = sorted(i for i in drop if not (isinstance(i, int) and 0 <= i < n))
    if bad or len(drop) >= n:
        raise ValueError(f"drop must name some, not all, of the layers 0..{n - 1}; got {sorted(drop, key=str)}")
    pruned = copy.deepcopy(model)
    pruned.model.layers = _without(pruned, drop)
    pruned.config.num_hidden_layers = n - len(drop)
    types = getattr(pruned.config, "layer_types", None)
    if types is not None and len(types) == n:
        pruned.config.layer_types = [t for i, t in enumerate(types) if i not in drop]
    return pruned
