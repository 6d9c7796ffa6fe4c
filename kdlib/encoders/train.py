"""Fine-tuning the encoder teacher once, and the distillation step for encoder students. Notebook 04.

* ``prepare_encoder_teacher``: the pretrained encoder plus a classification head, fine-tuned (head and
  encoder) on the task with ``kdlib.core.fit`` and a progress bar over steps, cached under
  ``datasets/cache/teachers`` keyed by its recipe (``kdlib.core.teacher_cache.prepare_teacher``).
* ``predict_by_length``: logits for many sequences, batched in order of length so that each batch is cut
  to little padding (about twice as fast on tweets as batches in data order), returned in data order.
* ``encoder_step``: one loss for every training signal of notebook 04's table:
  ``alpha * CE + (1 - alpha) * T^2 * KL(p_T || p_S)`` (``kd_loss``; alpha = 1 is labels only)
  ``+ beta_hidden * (embedding_loss + hidden_state_loss)`` ``+ beta_attention * attention_loss``
  ``+ beta_relation * minilm_relation_loss``, with every teacher tensor read from an
  ``EncoderTeacherCache`` by sample index.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kdlib.data.types import Split
from kdlib.encoders.models import EncoderClassifier
from kdlib.losses.logits import distillation_loss
from kdlib.core.teacher_cache import by_index, prepare_teacher
from kdlib.core.fit import cross_entropy_step, fit
from kdlib.losses.transformer import attention_loss, embedding_loss, hidden_state_loss, minilm_relation_loss

__all__ = ["prepare_encoder_teacher", "predict_by_length", "encoder_step", "Distillable"]


def prepare_encoder_teacher(build: Callable[[], EncoderClassifier], data: Split, recipe: dict,
                            device: torch.device | str = "cpu", log=print) -> EncoderClassifier:
    """The fine-tuned teacher: from the cache when ``recipe`` (which must name ``epochs``, ``batch_size`` and
    ``lr``, and everything else that changes the result) matches, else ``build()`` (the pretrained encoder
    with a fresh head) fine-tuned on ``data`` (ids, labels) with Adam and a cosine schedule, then cached."""
    for key in ("epochs", "batch_size", "lr"):
        if key not in recipe:
            raise ValueError(f"the teacher recipe must name {key!r} (it has {', '.join(sorted(recipe))})")

    def fine_tune(model):
        fit(model, data, cross_entropy_step, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
            optimizer="adam", lr=recipe["lr"], device=device, seed=recipe.get("seed", 0), desc="fine-tune teacher",
            step_bar=True)

    teacher = prepare_teacher("encoder-" + recipe.get("name", "teacher"), recipe, build, fine_tune, log=log)
    return teacher.to(device).eval()


@torch.no_grad()
def predict_by_length(model: nn.Module, ids: torch.Tensor, batch_size: int = 256, pad_id: int = 0) -> torch.Tensor:
    """Logits of ``model`` (eval mode) for every row of ``ids``, computed shortest first, in data order."""
    device = next(model.parameters()).device
    model.eval()
    order = (ids != pad_id).sum(1).argsort()
    out = torch.empty(0)
    for i in range(0, len(ids), batch_size):
        logits = model(ids[order[i:i + batch_size]].to(device)).float().cpu()
        out = logits.new_empty(len(ids), logits.shape[1]) if i == 0 else out
        out[order[i:i + batch_size]] = logits
    return out


class Distillable(nn.Module):
    """A student plus the trainable projections its losses need (not part of the student that is served):
    ``forward`` is the student's, so ``kdlib.core.fit`` optimises both."""

    def __init__(self, student: EncoderClassifier, projections: nn.ModuleDict | None = None):
        super().__init__()
        self.student, self.projections = student, projections

    def forward(self, ids):
        return self.student(ids)


def encoder_step(cache, mapping: dict[int, int] | None = None, T: float = 2.0, alpha: float = 0.5,
                 beta_hidden: float = 0.0, beta_attention: float = 0.0, beta_relation: float = 0.0,
                 attention_kind: str = "kl"):
    """A ``kdlib.core.fit`` step for a ``Distillable`` (or a plain ``EncoderClassifier`` when no projection is
    needed). ``cache`` is an ``EncoderTeacherCache`` (None only for labels only, ``alpha=1`` and no betas);
    ``mapping`` is the layer map {student layer: teacher layer} (1-based) for the hidden and attention terms."""
    internal = beta_hidden or beta_attention or beta_relation
    if cache is None and (alpha < 1 or internal):
        raise ValueError("distillation signals need a teacher cache; only alpha=1 with no betas trains on labels only")
    if (beta_hidden or beta_attention) and not mapping:
        raise ValueError("beta_hidden and beta_attention need a layer map {student layer: teacher layer}")

    teacher_logits = by_index(cache.logits) if cache is not None else None

    def step(model, batch, idx):
        x, y = batch
        student = model.student if isinstance(model, Distillable) else model
        projections = model.projections if isinstance(model, Distillable) else None
        if not internal:
            logits = student(x)
            if alpha == 1:
                return F.cross_entropy(logits, y)
            return distillation_loss(logits, teacher_logits(idx), y, T=T, alpha=alpha)
        n_layers = student.config.num_hidden_layers
        out = student.outputs(x, value_layers=(n_layers - 1,) if beta_relation else ())
        length = out.mask.shape[1]
        loss = distillation_loss(out.logits, teacher_logits(idx), y, T=T, alpha=alpha)
        if beta_hidden:
            t_states = cache.hidden_states(idx, length)
            proj = projections
            loss = loss + beta_hidden * (
                embedding_loss(out.hidden_states[0], t_states[0], None if proj is None else proj["0"], out.mask)
                + hidden_state_loss(out.hidden_states, t_states, mapping, proj, out.mask))
        if beta_attention:
            loss = loss + beta_attention * attention_loss(out.attentions, cache.attentions(idx, length), mapping,
                                                          out.mask, kind=attention_kind)
        if beta_relation:
            t_last = cache.attentions(idx, length)[-1]
            loss = loss + beta_relation * minilm_relation_loss(
                out.attentions[-1], t_last, out.values[n_layers - 1],
                cache.values(cache.value_layers[-1], idx, length), out.mask)
        return loss
    return step
