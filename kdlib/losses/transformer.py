"""Transformer distillation losses: hidden states, attention maps, MiniLM relations, embeddings. Notebook 04.

The hidden-state and embedding losses live here; the attention losses in ``kdlib.losses.attention`` and
``layer_map`` in ``kdlib.losses.layermap``, both re-exported here and by ``kdlib.losses`` (and listed in its
``LOSSES`` dict). Shapes follow ``transformers``:
hidden states (B, L, H) with index 0 the embedding output and index l the output of layer l (1-based);
attention maps (B, heads, L, L) per layer (0-based, as ``outputs.attentions`` lists them); ``mask`` (B, L)
is True (or 1) on real tokens and False on padding. Teacher tensors are detached (constants).

* Layer map ``g``: a dict {student layer l: teacher layer g(l)} over 1-based layer numbers, made by
  ``layer_map(n_student, n_teacher, "uniform" | "last" | {l: g(l)})``: uniform ``g(l) = l * n_T / n_S``
  (TinyBERT), last ``g(l) = n_T - n_S + l``, or a custom dict, checked against both depths.
* ``hidden_state_loss = sum_{l in map} MSE(W_l h_S^l, h_T^{g(l)})``, the MSE averaged over real tokens and
  hidden units. ``W_l`` is a learned projection from the student's width to the teacher's (TinyBERT's
  ``W_h``): the *student* is projected, because a learned projection of the teacher could shrink the target
  to zero and make the loss trivially small. Equal widths need no projection; unequal ones without it raise.
* ``embedding_loss = MSE(W_e e_S, e_T)``: the same on the embedding outputs (hidden state 0).
* ``attention_loss = sum_{l in map} mean_{heads, real queries} d(A_T^{g(l)}[q], A_S^l[q])`` with ``d`` the
  squared error summed over real keys divided by their number (``"mse"``) or ``KL(A_T[q] || A_S[q])``
  (``"kl"``); padded queries and keys never count. Head counts must match.
* ``minilm_relation_loss`` (MiniLM, Wang et al. 2020), on the last layer only:
  ``KL(A_T || A_S) + KL(VR_T || VR_S)`` with value relation ``VR = softmax(V_h V_h^T / sqrt(d_h))`` per head
  ``h``; both are (L, L) per head whatever the head size, so the student may be narrower than the teacher.
  KLs are averaged over heads and real query positions, with padded keys masked out of the softmax.

Checks (``kdlib.losses.inputs``, the rule of every loss): states and maps are non-empty floating-point tensors
of the shapes above, student and teacher agree (else both shapes are named); ``mask`` is None, bool or 0/1
(other values raise while value checks are on). Padded positions are set to 0 before any projection, log or
softmax, so NaN or inf there reaches neither the loss nor the gradients. While value checks are on, NaN or inf
at real positions raise, and so does a mask with no real token ("every position is masked out"); without them
NaN propagates to the loss and a fully masked batch gives 0 (every denominator is clamped to 1).
"""
from __future__ import annotations

import torch

from kdlib.losses import inputs
from kdlib.losses.attention import attention_loss, minilm_relation_loss, value_relation
from kdlib.losses.layermap import check_mapping, check_sequence, layer_map, padding_mask
from kdlib.losses.registry import register

__all__ = ["layer_map", "hidden_state_loss", "embedding_loss", "attention_loss", "value_relation",
           "minilm_relation_loss"]

STATES = "(batch, length, hidden)"


def _check_index(states, index: int, who: str) -> None:
    if not 0 <= index < len(states):
        raise ValueError(f"{who} layer {index} does not exist: {who} states hold layers 0..{len(states) - 1} "
                         f"(0 = embeddings)")
    if states[index] is None:
        raise ValueError(f"{who} layer {index} was not cached; cache the layers the layer map uses")


def _project(projection, student: torch.Tensor, what: str, name: str) -> torch.Tensor:
    try:
        mapped = projection(student)
    except RuntimeError as err:  # a linear layer built for another width
        raise ValueError(f"{what}: the projection cannot take {name} of shape {tuple(student.shape)}: {err}; "
                         f"build it as nn.Linear({student.shape[-1]}, teacher width)") from err
    if not isinstance(mapped, torch.Tensor):
        raise ValueError(f"{what}: the projection returned {type(mapped).__name__}, expected a tensor")
    return mapped


def _state_mse(student, teacher, projection, mask, what: str, names=("student", "teacher")) -> torch.Tensor:
    s_name, t_name = names
    inputs.tensor(s_name, student, dims=3, layout=STATES)
    inputs.tensor(t_name, teacher, dims=3, layout=STATES)
    if student.shape[:2] != teacher.shape[:2]:
        raise ValueError(f"{what}: {s_name} has shape {tuple(student.shape)} but {t_name} has "
                         f"{tuple(teacher.shape)}; they must agree on (batch, length)")
    inputs.same_device(t_name, teacher, student.device)
    m = padding_mask(mask, *student.shape[:2], student.device)
    student, teacher = inputs.keep(student, m), inputs.keep(teacher.detach(), m)
    inputs.finite(s_name, student)
    inputs.finite(t_name, teacher)
    mapped = student if projection is None else _project(projection, student, what, s_name)
    if mapped.shape != teacher.shape:
        how = "" if projection is None else " after the projection"
        raise ValueError(f"{what}: the student's state has shape {tuple(mapped.shape)}{how} (width "
                         f"{mapped.shape[-1]}) but the teacher's has {tuple(teacher.shape)} (width "
                         f"{teacher.shape[-1]}); pass a projection (e.g. nn.Linear({student.shape[-1]}, "
                         f"{teacher.shape[-1]})) that maps the student's width to the teacher's")
    sq = (mapped - teacher.to(mapped.dtype)).pow(2).sum(-1)
    return torch.where(m, sq, 0).sum() / (m.sum() * teacher.shape[-1]).clamp_min(1)


def _projection(projections, student_layer: int):
    if isinstance(projections, (torch.nn.ModuleDict, dict)):
        key = str(student_layer) if isinstance(projections, torch.nn.ModuleDict) else student_layer
        if key not in projections:
            raise ValueError(f"projections has no entry for student layer {student_layer} (keys: "
                             f"{list(projections.keys())}); give one projection per mapped student layer")
        return projections[key]
    if projections is not None and not callable(projections):
        raise ValueError(f"projections must be None, a module, or a dict of modules, got {type(projections).__name__}")
    return projections  # None, or one module for every layer


@register("hidden_state")
def hidden_state_loss(student_states, teacher_states, mapping: dict[int, int], projections=None,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_{l in mapping} MSE(W_l h_S^l, h_T^{g(l)})`` over real tokens (see the module docstring).

    ``student_states``/``teacher_states``: sequences of (B, L, H) indexed by layer (0 = embeddings);
    ``mapping``: {student layer: teacher layer} (``layer_map``); ``projections``: None (equal widths), one
    module used for every layer, or a dict / ModuleDict keyed by student layer. Raises ValueError naming the
    layers or widths that do not fit.
    """
    mapping = check_mapping(mapping)
    check_sequence("student_states", student_states)
    check_sequence("teacher_states", teacher_states)
    total = 0.0
    for s, t in mapping.items():
        _check_index(student_states, s, "student")
        _check_index(teacher_states, t, "teacher")
        total = total + _state_mse(student_states[s], teacher_states[t], _projection(projections, s), mask,
                                   f"hidden_state_loss, student layer {s} -> teacher layer {t}",
                                   (f"student_states[{s}]", f"teacher_states[{t}]"))
    return total


@register("embedding")
def embedding_loss(student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor, projection=None,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """``MSE(W_e e_S, e_T)`` on the embedding-layer outputs (hidden state 0), over real tokens."""
    if projection is not None and not callable(projection):
        raise ValueError(f"projection must be None or a module, got {type(projection).__name__}")
    return _state_mse(student_embeddings, teacher_embeddings, projection, mask, "embedding_loss",
                      ("student_embeddings", "teacher_embeddings"))
