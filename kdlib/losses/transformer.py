"""Transformer distillation losses: hidden states, attention maps, MiniLM relations, embeddings. Notebook 04.

Re-exported by ``kdlib.losses`` (and listed in its ``LOSSES`` dict). Shapes follow ``transformers``:
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
"""
from __future__ import annotations

from kdlib.losses.registry import register

import math

import torch
import torch.nn.functional as F

__all__ = ["layer_map", "hidden_state_loss", "embedding_loss", "attention_loss", "value_relation",
           "minilm_relation_loss"]

_EPS = 1e-12


def layer_map(n_student: int, n_teacher: int, kind="uniform") -> dict[int, int]:
    """{student layer: teacher layer}, 1-based. ``kind``: "uniform", "last" or a dict given explicitly."""
    if n_student < 1 or n_teacher < 1:
        raise ValueError(f"need at least one layer, got n_student={n_student}, n_teacher={n_teacher}")
    if isinstance(kind, dict):
        mapping = {int(s): int(t) for s, t in kind.items()}
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


def _mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones(like.shape[:2], dtype=like.dtype, device=like.device)
    if mask.shape != like.shape[:2]:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but the states have (batch, length) "
                         f"{tuple(like.shape[:2])}")
    return mask.to(like.dtype)


def _check_index(states, index: int, who: str) -> None:
    if not 0 <= index < len(states):
        raise ValueError(f"{who} layer {index} does not exist: {who} states hold layers 0..{len(states) - 1} "
                         f"(0 = embeddings)")
    if states[index] is None:
        raise ValueError(f"{who} layer {index} was not cached; cache the layers the layer map uses")


def _state_mse(student: torch.Tensor, teacher: torch.Tensor, projection, mask, what: str) -> torch.Tensor:
    mapped = student if projection is None else projection(student)
    if mapped.shape != teacher.shape:
        how = "" if projection is None else " after the projection"
        raise ValueError(f"{what}: the student's state has shape {tuple(mapped.shape)}{how} (width "
                         f"{mapped.shape[-1]}) but the teacher's has {tuple(teacher.shape)} (width "
                         f"{teacher.shape[-1]}); pass a projection (e.g. nn.Linear({student.shape[-1]}, "
                         f"{teacher.shape[-1]})) that maps the student's width to the teacher's")
    m = _mask(mask, teacher)
    sq = (mapped - teacher.detach().to(mapped.dtype)).pow(2).sum(-1) * m
    return sq.sum() / (m.sum() * teacher.shape[-1]).clamp_min(1)


def _projection(projections, student_layer: int):
    if isinstance(projections, torch.nn.ModuleDict):
        return projections[str(student_layer)]
    if isinstance(projections, dict):
        return projections[student_layer]
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
    if not mapping:
        raise ValueError("the layer map is empty: map at least one student layer to a teacher layer")
    total = 0.0
    for s, t in mapping.items():
        _check_index(student_states, s, "student")
        _check_index(teacher_states, t, "teacher")
        total = total + _state_mse(student_states[s], teacher_states[t], _projection(projections, s), mask,
                                   f"hidden_state_loss, student layer {s} -> teacher layer {t}")
    return total


@register("embedding")
def embedding_loss(student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor, projection=None,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """``MSE(W_e e_S, e_T)`` on the embedding-layer outputs (hidden state 0), over real tokens."""
    return _state_mse(student_embeddings, teacher_embeddings, projection, mask, "embedding_loss")


def _row_mask(mask, attn: torch.Tensor):
    """(B, 1, L, 1) weights of real queries and (B, 1, 1, L) real keys."""
    m = _mask(mask, attn[:, 0]) if mask is not None else torch.ones(attn.shape[0], attn.shape[-1],
                                                                     dtype=attn.dtype, device=attn.device)
    return m[:, None, :, None], m[:, None, None, :]


def _attention_distance(student: torch.Tensor, teacher: torch.Tensor, mask, kind: str) -> torch.Tensor:
    if student.shape != teacher.shape:
        raise ValueError(f"attention maps differ in shape: student {tuple(student.shape)}, teacher "
                         f"{tuple(teacher.shape)} (batch, heads, length, length); the student needs the "
                         "teacher's number of heads for the attention loss (MiniLM's relation loss does not)")
    teacher = teacher.detach().to(student.dtype)
    q, k = _row_mask(mask, student)
    if kind == "mse":
        per_query = ((student - teacher).pow(2) * k).sum(-1) / k.sum(-1).clamp_min(1)
    elif kind == "kl":
        log_t, log_s = teacher.clamp_min(_EPS).log(), student.clamp_min(_EPS).log()
        per_query = (teacher * (log_t - log_s) * k).sum(-1)
    else:
        raise ValueError(f"attention loss kind must be 'mse' or 'kl', got {kind!r}")
    q = q.squeeze(-1)  # (B, 1, L)
    return (per_query * q).sum() / (q.sum() * student.shape[1]).clamp_min(1)


@register("attention")
def attention_loss(student_attentions, teacher_attentions, mapping: dict[int, int],
                   mask: torch.Tensor | None = None, kind: str = "mse") -> torch.Tensor:
    """TinyBERT's attention loss: ``sum_{l in mapping} mean_{heads, real queries} d(A_T^{g(l)}, A_S^l)``.

    ``*_attentions``: per-layer (B, heads, L, L) as ``outputs.attentions`` (0-based: layer l is entry l-1);
    ``mapping`` is 1-based like ``layer_map``. ``kind="mse"``: squared error averaged over real keys;
    ``"kl"``: KL(A_T || A_S) per query. Padded queries and keys are masked out.
    """
    if not mapping:
        raise ValueError("the layer map is empty: map at least one student layer to a teacher layer")
    total = 0.0
    for s, t in mapping.items():
        if not 1 <= s <= len(student_attentions) or not 1 <= t <= len(teacher_attentions):
            raise ValueError(f"attention_loss: student layer {s} -> teacher layer {t} does not exist (the student "
                             f"has layers 1..{len(student_attentions)}, the teacher 1..{len(teacher_attentions)})")
        if teacher_attentions[t - 1] is None:
            raise ValueError(f"attention_loss: teacher layer {t} was not cached; cache the layers the map uses")
        total = total + _attention_distance(student_attentions[s - 1], teacher_attentions[t - 1], mask, kind)
    return total


def value_relation(values: torch.Tensor, n_heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Log of MiniLM's value relation ``softmax(V_h V_h^T / sqrt(d_h))`` per head, (B, heads, L, L), with
    padded keys excluded from the softmax. ``values``: (B, L, H), H a multiple of ``n_heads``."""
    b, length, width = values.shape
    if width % n_heads:
        raise ValueError(f"value width {width} is not a multiple of {n_heads} heads")
    d = width // n_heads
    v = values.view(b, length, n_heads, d).transpose(1, 2)
    scores = v @ v.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        scores = scores.masked_fill(~mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def _masked_kl(log_t: torch.Tensor, log_s: torch.Tensor, mask) -> torch.Tensor:
    q, k = _row_mask(mask, log_s)
    per_query = (log_t.exp() * (log_t - log_s) * k).sum(-1)
    q = q.squeeze(-1)
    return (per_query * q).sum() / (q.sum() * log_s.shape[1]).clamp_min(1)


@register("minilm_relation")
def minilm_relation_loss(student_attention: torch.Tensor, teacher_attention: torch.Tensor,
                         student_values: torch.Tensor, teacher_values: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiniLM's last-layer self-attention transfer: ``KL(A_T || A_S) + KL(VR_T || VR_S)``.

    ``*_attention``: (B, heads, L, L) attention maps of the last layers; ``*_values``: (B, L, H_S) and
    (B, L, H_T) value vectors of the same layers, split into the same number of heads (head sizes may
    differ: both relations are L x L). Averaged over heads and real queries; padded keys masked.
    """
    if student_attention.shape != teacher_attention.shape:
        raise ValueError(f"attention maps differ in shape: student {tuple(student_attention.shape)}, teacher "
                         f"{tuple(teacher_attention.shape)}; MiniLM needs the same number of heads (the head "
                         "size may differ)")
    heads = student_attention.shape[1]
    if student_values.shape[:2] != teacher_values.shape[:2]:
        raise ValueError(f"values differ in (batch, length): student {tuple(student_values.shape)}, teacher "
                         f"{tuple(teacher_values.shape)}")
    t_att = teacher_attention.detach().to(student_attention.dtype)
    attn = _masked_kl(t_att.clamp_min(_EPS).log(), student_attention.clamp_min(_EPS).log(), mask)
    vr_t = value_relation(teacher_values.detach().to(student_values.dtype), heads, mask)
    vr_s = value_relation(student_values, heads, mask)
    return attn + _masked_kl(vr_t, vr_s, mask)
