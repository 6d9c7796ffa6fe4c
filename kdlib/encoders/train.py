"""Fine-tuning the encoder teacher once, and the distillation step for encoder students. Notebook 04.

* ``prepare_encoder_teacher``: the pretrained encoder plus a classification head, fine-tuned (head and
  encoder) on the task with ``kdlib.core.fit`` and a progress bar over steps, cached under
  ``datasets/cache/teachers`` keyed by its recipe (``kdlib.core.teacher_cache.prepare_teacher``).
* ``predict_by_length``: logits for many sequences, batched in order of length so that each batch is cut
  to little padding (about twice as fast on tweets as batches in data order), returned in data order.
* Training data: a ``TokenSplit`` (``kdlib.encoders.batches``), whose batches are cut to their longest tweet on
  the data side, so the steps below read no tensor value on the host (``trim=False``); a plain ``Split`` still
  works, with the model cutting each batch itself (one host read per forward pass), and gives the same losses.
* ``encoder_step``: one loss for every training signal of notebook 04's table:
  ``alpha * CE + (1 - alpha) * T^2 * KL(p_T || p_S)`` (``kd_loss``; alpha = 1 is labels only)
  ``+ beta_hidden * (embedding_loss + hidden_state_loss)`` ``+ beta_attention * attention_loss``
  ``+ beta_relation * minilm_relation_loss``, with every teacher tensor read from an
  ``EncoderTeacherCache`` by sample index.
* ``low_label_step``: the low-label student of notebook 04's section 10, trained on a pool of a few labelled
  rows plus unlabelled transfer rows (label -1): ``alpha * CE`` on the labelled rows ``+ (1 - alpha) * T^2 * KL``
  on every row.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kdlib.core.fit import cross_entropy_step, fit
from kdlib.core.inference import predict
from kdlib.core.profiles import seeded
from kdlib.core.teacher_cache import by_index, prepare_teacher
from kdlib.core.validate import check_number, check_temperature
from kdlib.data.types import Split
from kdlib.encoders.batches import TokenBatch
from kdlib.encoders.cache import EncoderTeacherCache
from kdlib.encoders.models import EncoderClassifier
from kdlib.losses.layermap import check_mapping
from kdlib.losses.logits import distillation_loss, kd_loss
from kdlib.losses.transformer import attention_loss, embedding_loss, hidden_state_loss, minilm_relation_loss

__all__ = ["prepare_encoder_teacher", "predict_by_length", "encoder_step", "Distillable", "low_label_step"]


def prepare_encoder_teacher(build: Callable[[], EncoderClassifier], data: Split, recipe: dict,
                            device: torch.device | str = "cpu", log=print) -> EncoderClassifier:
    """The fine-tuned teacher: from the cache when ``recipe`` (which must name ``epochs``, ``batch_size`` and
    ``lr``, and everything else that changes the result) matches, else ``build()`` (the pretrained encoder
    with a fresh head) fine-tuned on ``data`` (ids, labels) with Adam and a cosine schedule, then cached."""
    for key in ("epochs", "batch_size", "lr"):
        if key not in recipe:
            raise ValueError(f"the teacher recipe must name {key!r} (it has {', '.join(sorted(recipe))})")

    seed = recipe.get("seed", 0)

    def fine_tune(model):
        with seeded(seed):  # dropout masks from the recipe's seed, whatever the notebook drew before
            fit(model, data, cross_entropy_step, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                optimizer="adam", lr=recipe["lr"], device=device, seed=seed, desc="fine-tune teacher", step_bar=True)

    # "rng": until the move to fit(), the teacher's dropout drew from a global RNG that loading the encoder had
    # just reseeded; now it draws inside seeded(seed). Same recipe, other weights, so the key changes with it.
    key = dict(recipe, rng="seeded-fine-tune")
    teacher = prepare_teacher("encoder-" + recipe.get("name", "teacher"), key, build, fine_tune, log=log)
    return teacher.to(device).eval()


def predict_by_length(model: nn.Module, ids: torch.Tensor, batch_size: int = 256, pad_id: int = 0) -> torch.Tensor:
    """Logits of ``model`` (eval mode) for every row of ``ids``, computed shortest first (each batch is then cut
    to little padding, about twice as fast on tweets) with ``kdlib.core.predict``, returned in data order."""
    order = (ids != pad_id).sum(1).argsort()
    out = predict(model, ids[order], batch_size)
    return out.index_copy(0, order, out)


class Distillable(nn.Module):
    """A student plus the trainable projections its losses need (not part of the student that is served):
    ``forward`` is the student's, so ``kdlib.core.fit`` optimises both."""

    def __init__(self, student: EncoderClassifier, projections: nn.ModuleDict | None = None):
        super().__init__()
        self.student, self.projections = student, projections

    def forward(self, ids, trim: bool = True):
        return self.student(ids, trim=trim)


def _on_device(batch, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(x, y, trim)`` for a step: a ``TokenBatch`` (cut on the data side, on the CPU) moves to ``idx``'s device,
    which ``fit`` makes the model's, without waiting (``non_blocking``), and needs no trim; a plain ``Split``
    batch is already there and is cut by the model (``trim=True``, a host read)."""
    if isinstance(batch, TokenBatch):
        return batch.x.to(idx.device, non_blocking=True), batch.y.to(idx.device, non_blocking=True), False
    return batch.x, batch.y, True


def encoder_step(cache, mapping: dict[int, int] | None = None, T: float = 2.0, alpha: float = 0.5,
                 beta_hidden: float = 0.0, beta_attention: float = 0.0, beta_relation: float = 0.0,
                 attention_kind: str = "kl", attention_fn: Callable | None = None, unlabelled: bool = False):
    """A ``kdlib.core.fit`` step for a ``Distillable`` (or a plain ``EncoderClassifier`` when no projection is
    needed). ``cache`` is an ``EncoderTeacherCache`` (None only for labels only, ``alpha=1`` and no betas);
    ``mapping`` is the layer map {student layer: teacher layer} (1-based) for the hidden and attention terms.
    ``attention_fn(student_map, teacher_map, mask)``, when given, is the attention term of one mapped layer
    (maps (B, heads, L, L), ``mask`` (B, L) 0/1 int): the step adds ``beta_attention * sum_l attention_fn(A_S^l,
    A_T^g(l), mask)`` instead of ``attention_loss(kind=attention_kind)``, so a learner's loss (notebook 04's
    exercise, ``kdlib.losses.attention.attention_kl``) trains the student. ``unlabelled=True``: rows labelled -1
    are teacher-labelled transfer data, and the prediction term is ``low_label_step``'s (hard term over the
    labelled rows only, soft term over all).
    With ``TokenSplit`` data (batches cut on the data side) the step reads no tensor value on the host."""
    internal = beta_hidden or beta_attention or beta_relation
    if cache is None and (alpha < 1 or internal):
        raise ValueError("distillation signals need a teacher cache; only alpha=1 with no betas trains on labels only")
    if (beta_hidden or beta_attention) and not mapping:
        raise ValueError("beta_hidden and beta_attention need a layer map {student layer: teacher layer}")
    if attention_fn is not None and not callable(attention_fn):
        raise ValueError(f"attention_fn must be a function (student_map, teacher_map, mask) -> loss, got "
                         f"{type(attention_fn).__name__}")
    if attention_fn is not None and not beta_attention:
        raise ValueError("attention_fn is the attention term; give it a weight beta_attention > 0")
    if attention_fn is not None:
        mapping = check_mapping(mapping)

    if unlabelled:
        T = check_temperature(T)
        alpha = check_number("alpha", alpha, 0.0, 1.0, hint="alpha is the weight of the hard-label loss")
    teacher_logits = by_index(cache.logits) if cache is not None else None

    def prediction(logits, idx, y):
        if unlabelled:
            return _mixed_loss(logits, None if alpha == 1 else teacher_logits(idx), y, T, alpha)
        if alpha == 1:
            return F.cross_entropy(logits, y)
        return distillation_loss(logits, teacher_logits(idx), y, T=T, alpha=alpha)

    def step(model, batch, idx):
        x, y, trim = _on_device(batch, idx)
        if cache is not None:
            cache.check_batch(idx, x)  # a stale cache raises; reads on the host only while value checks are on
        student = model.student if isinstance(model, Distillable) else model
        projections = model.projections if isinstance(model, Distillable) else None
        if not internal:
            return prediction(student(x, trim=trim), idx, y)
        n_layers = student.config.num_hidden_layers
        out = student.outputs(x, value_layers=(n_layers - 1,) if beta_relation else (), trim=trim)
        length = out.mask.shape[1]
        loss = prediction(out.logits, idx, y)
        if beta_hidden:
            t_states = cache.hidden_states(idx, length)
            proj = projections
            loss = loss + beta_hidden * (
                embedding_loss(out.hidden_states[0], t_states[0], None if proj is None else proj["0"], out.mask)
                + hidden_state_loss(out.hidden_states, t_states, mapping, proj, out.mask))
        if beta_attention and attention_fn is not None:
            t_maps, mask01 = cache.attentions(idx, length), out.mask.long()
            loss = loss + beta_attention * sum(attention_fn(out.attentions[s - 1], t_maps[t - 1], mask01)
                                               for s, t in mapping.items())
        elif beta_attention:
            loss = loss + beta_attention * attention_loss(out.attentions, cache.attentions(idx, length), mapping,
                                                          out.mask, kind=attention_kind)
        if beta_relation:
            t_last = cache.attentions(idx, length)[-1]
            loss = loss + beta_relation * minilm_relation_loss(
                out.attentions[-1], t_last, out.values[n_layers - 1],
                cache.values(cache.value_layers[-1], idx, length), out.mask)
        return loss
    return step


def low_label_step(teacher_logits, T: float, alpha: float):
    """A ``kdlib.core.fit`` step for a student trained on few labels plus unlabelled transfer data. Notebook 04.

    The data is a ``Split`` or, for an encoder student, a ``TokenSplit`` (batches cut on the data side, no host
    read in the model) whose label is -1 (any negative value) on unlabelled rows. For a batch B with
    labelled rows K = {i in B : y_i >= 0}::

        loss = alpha * (1 / max(1, |K|)) * sum_{i in K} CE(y_i, z_S[i])
               + (1 - alpha) * T^2 * (1 / |B|) * sum_{i in B} KL(softmax(z_T[i] / T) || softmax(z_S[i] / T))

    so the hard term is the mean cross-entropy over the labelled rows only (0 for a batch without any) and the
    soft term (``kd_loss``) uses every row. ``teacher_logits`` z_T: a ``TeacherCache``, an
    ``EncoderTeacherCache`` (its logits) or a tensor, looked up by sample index. T and alpha are checked here,
    once; the step reads no tensor value on the host (the labelled rows are a mask, not an index).
    """
    T = check_temperature(T)
    alpha = check_number("alpha", alpha, 0.0, 1.0, hint="alpha is the weight of the hard-label loss")
    encoder_cache = teacher_logits if isinstance(teacher_logits, EncoderTeacherCache) else None
    if encoder_cache is not None:
        if encoder_cache.logits is None:
            raise ValueError("this EncoderTeacherCache holds no logits; build it with EncoderTeacherCache.build")
        teacher_logits = encoder_cache.logits
    lookup = by_index(teacher_logits)

    def step(model, batch, idx):
        x, y, trim = _on_device(batch, idx)
        if encoder_cache is not None:
            encoder_cache.check_batch(idx, x)  # a stale cache raises (only while value checks are on)
        logits = model(x) if trim else model(x, trim=False)  # any classifier for a Split; an encoder otherwise
        return _mixed_loss(logits, lookup(idx), y, T, alpha)
    return step


def _mixed_loss(logits, teacher_logits, y, T: float, alpha: float):
    """``low_label_step``'s loss on checked T and alpha: mean CE over the rows with y >= 0 (0 without any),
    times alpha, plus ``(1 - alpha) * kd_loss`` over every row (skipped, and ``teacher_logits`` unused, at
    alpha = 1). Tensor ops only: the labelled rows are a mask, not an index."""
    known = y >= 0
    per_row = F.cross_entropy(logits, y.clamp(min=0), reduction="none")
    hard = per_row.masked_fill(~known, 0.0).sum() / known.sum().clamp(min=1)
    if alpha == 1:
        return hard
    return alpha * hard + (1 - alpha) * kd_loss(logits, teacher_logits, T)
