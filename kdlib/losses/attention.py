"""Attention losses of notebook 04: TinyBERT's attention-map loss and MiniLM's self-attention relations (formulas
in ``kdlib.losses.transformer``'s docstring; re-exported there). Maps are (batch, heads, length, length); padded
queries and keys are set to 0 before any log and never count.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdlib.losses import inputs
from kdlib.losses.layermap import check_mapping, check_sequence, padding_mask
from kdlib.losses.registry import register

__all__ = ["attention_loss", "attention_kl", "attention_exercise_cases", "value_relation", "minilm_relation_loss"]

_EPS = 1e-12
STATES, MAPS = "(batch, length, hidden)", "(batch, heads, length, length)"


def _key_query(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bool (B, 1, L, 1) real queries, (B, 1, 1, L) real keys, and their product for (B, heads, L, L) maps."""
    q, k = m[:, None, :, None], m[:, None, None, :]
    return q, k, q & k


def _maps(name: str, x) -> None:
    inputs.tensor(name, x, dims=4, layout=MAPS)
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; attention maps are {MAPS}, square in the last two")


def _attention_distance(student, teacher, mask, kind: str, names=("student", "teacher")) -> torch.Tensor:
    _maps(names[0], student)
    _maps(names[1], teacher)
    if student.shape != teacher.shape:
        raise ValueError(f"attention maps differ in shape: student {tuple(student.shape)}, teacher "
                         f"{tuple(teacher.shape)} (batch, heads, length, length); the student needs the "
                         "teacher's number of heads for the attention loss (MiniLM's relation loss does not)")
    inputs.same_device(names[1], teacher, student.device)
    q, k, both = _key_query(padding_mask(mask, student.shape[0], student.shape[-1], student.device))
    student = inputs.up(torch.where(both, student, 0))
    teacher = torch.where(both, teacher.detach(), 0).to(student.dtype)
    inputs.finite(names[0], student)
    inputs.finite(names[1], teacher)
    if kind == "mse":
        per_query = torch.where(k, (student - teacher).pow(2), 0).sum(-1) / k.sum(-1).clamp_min(1)
    else:
        log_t, log_s = teacher.clamp_min(_EPS).log(), student.clamp_min(_EPS).log()
        per_query = torch.where(k, teacher * (log_t - log_s), 0).sum(-1)
    q = q.squeeze(-1)  # (B, 1, L)
    return torch.where(q, per_query, 0).sum() / (q.sum() * student.shape[1]).clamp_min(1)


@register("attention")
def attention_loss(student_attentions, teacher_attentions, mapping: dict[int, int],
                   mask: torch.Tensor | None = None, kind: str = "mse") -> torch.Tensor:
    """TinyBERT's attention loss: ``sum_{l in mapping} mean_{heads, real queries} d(A_T^{g(l)}, A_S^l)``.

    ``*_attentions``: per-layer (B, heads, L, L) as ``outputs.attentions`` (0-based: layer l is entry l-1);
    ``mapping`` is 1-based like ``layer_map``. ``kind="mse"``: squared error averaged over real keys;
    ``"kl"``: KL(A_T || A_S) per query. Padded queries and keys are masked out.
    """
    if kind not in ("mse", "kl"):
        raise ValueError(f"attention loss kind must be 'mse' or 'kl', got kind={kind!r}")
    mapping = check_mapping(mapping)
    check_sequence("student_attentions", student_attentions)
    check_sequence("teacher_attentions", teacher_attentions)
    total = 0.0
    for s, t in mapping.items():
        if not 1 <= s <= len(student_attentions) or not 1 <= t <= len(teacher_attentions):
            raise ValueError(f"attention_loss: student layer {s} -> teacher layer {t} does not exist (the student "
                             f"has layers 1..{len(student_attentions)}, the teacher 1..{len(teacher_attentions)})")
        if teacher_attentions[t - 1] is None:
            raise ValueError(f"attention_loss: teacher layer {t} was not cached; cache the layers the map uses")
        total = total + _attention_distance(student_attentions[s - 1], teacher_attentions[t - 1], mask, kind,
                                            (f"student_attentions[{s - 1}]", f"teacher_attentions[{t - 1}]"))
    return total


def attention_kl(student_attention: torch.Tensor, teacher_attention: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """One layer of ``attention_loss(kind="kl")``, the attention term notebook 04 trains with (its exercise):
    ``(1 / (heads * |Q|)) sum_{h, q in Q} sum_{k in K} A_T[h, q, k] * (log A_T[h, q, k] - log A_S[h, q, k])``
    with Q and K the real (unpadded) positions of each sample, maps (B, heads, L, L), ``mask`` (B, L) 1 on real
    tokens. A padded query or key never counts, whatever its row holds; logs of 0 are clamped at 1e-12."""
    return _attention_distance(student_attention, teacher_attention, mask, "kl",
                               ("student_attention", "teacher_attention"))


def attention_exercise_cases() -> list[tuple]:
    """Fixed cases ``(student_attention, teacher_attention, mask)`` for notebook 04's attention exercise: softmax
    maps over the real keys of random scores, masks (0/1, one full row per batch) with padded queries, and
    padded query rows filled with arbitrary rows (they must not count). Seeded; the same on every call."""
    gen = torch.Generator().manual_seed(8)
    cases = []
    for b, heads, length in [(2, 3, 5), (3, 2, 6), (1, 4, 4), (2, 2, 7)]:
        lengths = torch.randint(2, length + 1, (b,), generator=gen)
        lengths[0] = length
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        keys = ~mask.bool()[:, None, None, :]
        s = torch.randn(b, heads, length, length, generator=gen).masked_fill(keys, float("-inf")).softmax(-1)
        t = torch.randn(b, heads, length, length, generator=gen).masked_fill(keys, float("-inf")).softmax(-1)
        queries = ~mask.bool()[:, None, :, None]
        s = torch.where(queries, torch.rand(b, heads, length, length, generator=gen), s)  # padded query rows
        cases.append((s, t, mask))
    return cases


def _value_relation(values: torch.Tensor, n_heads: int, m: torch.Tensor, name: str) -> torch.Tensor:
    """``value_relation`` on checked inputs (``m`` a bool (B, L) mask); padded values are set to 0 first."""
    b, length, width = values.shape
    if width % n_heads:
        raise ValueError(f"{name} has width {width}, which is not a multiple of {n_heads} heads; the value width "
                         "must split into the attention's heads")
    values = inputs.keep(values, m)
    inputs.finite(name, values)
    values = inputs.up(values)  # the scores and the masked-key fill need float32's range
    d = width // n_heads
    v = values.reshape(b, length, n_heads, d).transpose(1, 2)
    with torch.autocast(v.device.type, enabled=False):  # float32 under fit's bf16 autocast too
        scores = v @ v.transpose(-1, -2) / math.sqrt(d)
        scores = scores.masked_fill(~m[:, None, None, :], torch.finfo(scores.dtype).min)
        return F.log_softmax(scores, dim=-1)


def value_relation(values: torch.Tensor, n_heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Log of MiniLM's value relation ``softmax(V_h V_h^T / sqrt(d_h))`` per head, (B, heads, L, L), with
    padded keys excluded from the softmax. ``values``: (B, L, H), H a multiple of ``n_heads``."""
    inputs.tensor("values", values, dims=3, layout=STATES)
    n_heads = inputs.whole("n_heads", n_heads, 1)
    return _value_relation(values, n_heads, padding_mask(mask, *values.shape[:2], values.device), "values")


def _masked_kl(log_t: torch.Tensor, log_s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    q, k, _ = _key_query(m)
    per_query = torch.where(k, log_t.exp() * (log_t - log_s), 0).sum(-1)
    q = q.squeeze(-1)
    return torch.where(q, per_query, 0).sum() / (q.sum() * log_s.shape[1]).clamp_min(1)


@register("minilm_relation")
def minilm_relation_loss(student_attention: torch.Tensor, teacher_attention: torch.Tensor,
                         student_values: torch.Tensor, teacher_values: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiniLM's last-layer self-attention transfer: ``KL(A_T || A_S) + KL(VR_T || VR_S)``.

    ``*_attention``: (B, heads, L, L) attention maps of the last layers; ``*_values``: (B, L, H_S) and
    (B, L, H_T) value vectors of the same layers, split into the same number of heads (head sizes may
    differ: both relations are L x L). Averaged over heads and real queries; padded keys masked.
    """
    _maps("student_attention", student_attention)
    _maps("teacher_attention", teacher_attention)
    if student_attention.shape != teacher_attention.shape:
        raise ValueError(f"attention maps differ in shape: student {tuple(student_attention.shape)}, teacher "
                         f"{tuple(teacher_attention.shape)}; MiniLM needs the same number of heads (the head "
                         "size may differ)")
    b, heads, length, _ = student_attention.shape
    device = student_attention.device
    for name, v in (("student_values", student_values), ("teacher_values", teacher_values)):
        inputs.tensor(name, v, dims=3, layout=STATES)
        if v.shape[:2] != (b, length):
            raise ValueError(f"values differ in (batch, length): {name} has shape {tuple(v.shape)} but the attention "
                             f"maps have (batch, length) ({b}, {length})")
        inputs.same_device(name, v, device)
    inputs.same_device("teacher_attention", teacher_attention, device)
    m = padding_mask(mask, b, length, device)
    both = _key_query(m)[2]
    s_att = inputs.up(torch.where(both, student_attention, 0))
    t_att = torch.where(both, teacher_attention.detach(), 0).to(s_att.dtype)
    inputs.finite("student_attention", s_att)
    inputs.finite("teacher_attention", t_att)
    attn = _masked_kl(t_att.clamp_min(_EPS).log(), s_att.clamp_min(_EPS).log(), m)
    vr_t = _value_relation(teacher_values.detach().to(student_values.dtype), heads, m, "teacher_values")
    vr_s = _value_relation(student_values, heads, m, "student_values")
    return attn + _masked_kl(vr_t, vr_s, m)
