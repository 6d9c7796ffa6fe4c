"""Teacher hidden states, attention maps and value vectors of an encoder, cached once in half precision.

Notebook 04. Running the 6-layer teacher in every training step would cost more than the 2-layer student's
own step, so ``EncoderTeacherCache.build`` runs it once over the (un-shuffled) training ids and keeps, per
sample index i and only for the layers the losses use:

* ``logits``: a ``kdlib.core.teacher_cache.TeacherCache`` (fp32, looked up by index like every other notebook);
* hidden states of ``hidden_layers`` (0 = embeddings) and value vectors of ``value_layers``: L_i x H each;
* attention maps of ``attention_layers`` (1-based like the layer map): heads x L_i x L_i each;

stored in float16 at each sample's own length L_i (no padding), so memory is
``2 bytes * sum_i (L_i * H * (n_hidden + n_values) + heads * L_i^2 * n_attention)`` and ``nbytes`` reports
it. Lookups ``hidden_states(idx, length)`` etc. return float32 tensors padded with zeros to the batch's
``length``, for sample indices ``idx``, so shuffling never misaligns teacher and student. They run in every
training step, so they are tensor ops: the stored values move to ``idx``'s device on first use (once, like
``TeacherCache``), and each lookup is one gather at offsets computed from the stored lengths (no Python loop
over samples, no host reads of tensor values while value checks are off). The cache is stamped with the
teacher's and the ids' fingerprints (``check`` raises on a stale cache) and keeps one checksum per sample
(``check_batch(idx, ids)``, for a step's first call while value checks are on, raises when the ids trained on are
not the ones cached).
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from kdlib.core.inference import eval_mode
from kdlib.core.teacher_cache import TeacherCache, fingerprint, row_checksums
from kdlib.core.validate import values_checked
from kdlib.encoders.models import EncoderClassifier

__all__ = ["EncoderTeacherCache"]


class _Ragged:
    """Per-sample fp16 tensors of one layer, concatenated flat in sample order, looked up by sample index with
    vectorised index arithmetic. A sample of length L is (L, inner) for hidden states and values, or
    (inner, L, L) for attention maps (``square``, inner = heads)."""

    def __init__(self):
        self.parts, self.shapes = [], []

    def add(self, tensor: torch.Tensor) -> None:
        self.parts.append(tensor.to(torch.float16).reshape(-1))
        self.shapes.append(tuple(tensor.shape))

    def finish(self) -> None:
        self.square = bool(self.shapes) and len(self.shapes[0]) == 3
        self.inner = (self.shapes[0][0] if self.square else self.shapes[0][-1]) if self.shapes else 0
        self.lengths = torch.tensor([shape[-1] if self.square else shape[0] for shape in self.shapes],
                                    dtype=torch.long)
        sizes = torch.tensor([p.numel() for p in self.parts], dtype=torch.long)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
        self.flat = torch.cat(self.parts) if self.parts else torch.empty(0, dtype=torch.float16)
        self.parts = self.shapes = None

    def get(self, i: int) -> torch.Tensor:
        """Sample i as stored (fp16, its own length); for inspection and tests, not for training steps."""
        n, inner = int(self.lengths[i]), self.inner
        shape = (inner, n, n) if self.square else (n, inner)
        return self.flat[self.offsets[i]:self.offsets[i + 1]].view(shape)

    def to(self, device: torch.device) -> None:
        """Move the stored values to ``device`` (once; later lookups there copy nothing)."""
        self.flat, self.offsets, self.lengths = (t.to(device) for t in (self.flat, self.offsets, self.lengths))

    def gather(self, idx: torch.Tensor, length: int) -> torch.Tensor:
        """Samples ``idx`` (on the stored values' device) zero-padded to ``length`` as float32: (B, length,
        inner), or (B, inner, length, length) when square. Element (t, h) of sample i sits at
        ``offsets[i] + t * inner + h``; element (h, r, c) of a square one at ``offsets[i] + (h * L_i + r) * L_i
        + c``; positions at or past L_i are zeros. One gather, no host reads of tensor values. ``length`` is at
        least the longest sample of the batch (the trimmed batch length is); a shorter one crops."""
        device = self.flat.device
        start, n = self.offsets[idx], self.lengths[idx]
        t = torch.arange(length, device=device)
        h = torch.arange(self.inner, device=device)
        if self.square:
            n = n[:, None, None, None]
            rows, cols = t[None, None, :, None], t[None, None, None, :]
            where = start[:, None, None, None] + (h[None, :, None, None] * n + rows) * n + cols
            valid = (rows < n) & (cols < n)
        else:
            where = start[:, None, None] + t[None, :, None] * self.inner + h[None, None, :]
            valid = t[None, :, None] < n[:, None, None]
        if self.flat.numel() == 0:  # every sample empty: nothing to gather
            return torch.zeros(where.shape, device=device)
        values = self.flat[where.masked_fill(~valid, 0)].float()
        return values.masked_fill(~valid, 0.0)


class EncoderTeacherCache:
    """See the module docstring. Build with ``EncoderTeacherCache.build(teacher, ids, ...)``."""

    def __init__(self, teacher_id: str, inputs_id: str, n_layers: int, hidden_layers, attention_layers,
                 value_layers):
        self.teacher_id, self.inputs_id, self.n_layers = teacher_id, inputs_id, n_layers
        self.hidden_layers, self.attention_layers = tuple(hidden_layers), tuple(attention_layers)
        self.value_layers = tuple(value_layers)
        self._hidden = {layer: _Ragged() for layer in self.hidden_layers}
        self._attn = {layer: _Ragged() for layer in self.attention_layers}
        self._values = {layer: _Ragged() for layer in self.value_layers}
        self.logits: TeacherCache | None = None
        self.pad_id: int | None = None
        self.rows: torch.Tensor | None = None  # one checksum per sample (row_checksums), set by build

    @classmethod
    @torch.no_grad()
    def build(cls, teacher: EncoderClassifier, ids: torch.Tensor, hidden_layers=(), attention_layers=(),
              value_layers=(), batch_size: int = 64, progress: bool = True) -> "EncoderTeacherCache":
        """Run ``teacher`` once over ``ids`` (shortest first) and keep what the listed layers need.
        ``hidden_layers``: 0..n (0 = embeddings); ``attention_layers`` and ``value_layers``: 1..n."""
        n = teacher.config.num_hidden_layers
        for name, layers, low in (("hidden", hidden_layers, 0), ("attention", attention_layers, 1),
                                  ("value", value_layers, 1)):
            bad = [layer for layer in layers if not low <= layer <= n]
            if bad:
                raise ValueError(f"{name} layers {bad} do not exist: the teacher has {low}..{n}")
        cache = cls(fingerprint(teacher), fingerprint(ids), n, hidden_layers, attention_layers, value_layers)
        device = next(teacher.parameters()).device
        lengths = (ids != teacher.pad_id).sum(1)
        order = lengths.argsort()
        per_sample: dict[int, tuple] = {}
        logits = torch.empty(len(ids), teacher.config.num_labels)
        internal = bool(hidden_layers or attention_layers or value_layers)
        with eval_mode(teacher):
            for start in tqdm(range(0, len(ids), batch_size), desc="teacher cache", disable=not progress,
                              leave=False):
                idx = order[start:start + batch_size]
                x = ids[idx].to(device)
                if not internal:
                    logits[idx] = teacher(x).float().cpu()
                    continue
                out = teacher.outputs(x, value_layers=[v - 1 for v in value_layers])
                logits[idx] = out.logits.float().cpu()
                for row, i in enumerate(idx.tolist()):
                    length = int(lengths[i])
                    per_sample[i] = (
                        [out.hidden_states[layer][row, :length].half().cpu() for layer in hidden_layers],
                        [out.attentions[layer - 1][row, :, :length, :length].half().cpu()
                         for layer in attention_layers],
                        [out.values[layer - 1][row, :length].half().cpu() for layer in value_layers])
        for i in range(len(ids) if internal else 0):
            hidden, attn, values = per_sample.pop(i)
            for layer, t in zip(hidden_layers, hidden):
                cache._hidden[layer].add(t)
            for layer, t in zip(attention_layers, attn):
                cache._attn[layer].add(t)
            for layer, t in zip(value_layers, values):
                cache._values[layer].add(t)
        for store in (*cache._hidden.values(), *cache._attn.values(), *cache._values.values()):
            store.finish()
        cache.logits = TeacherCache(logits, cache.teacher_id, cache.inputs_id)
        cache.pad_id, cache.rows = teacher.pad_id, row_checksums(ids, teacher.pad_id)
        return cache

    def __len__(self) -> int:
        return len(self.logits)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached states (fp16) and logits (fp32)."""
        stores = (*self._hidden.values(), *self._attn.values(), *self._values.values())
        return sum(s.flat.numel() * 2 for s in stores) + self.logits.logits.numel() * 4

    @staticmethod
    def bound_bytes(n: int, max_length: int, hidden: int, heads: int, n_hidden: int, n_attention: int,
                    n_values: int, n_classes: int = 3) -> int:
        """Upper bound of ``nbytes`` for ``n`` samples of at most ``max_length`` tokens."""
        per = max_length * hidden * (n_hidden + n_values) + heads * max_length ** 2 * n_attention
        return 2 * n * per + 4 * n * n_classes

    def _gather(self, store: dict, layer: int, idx, length: int, what: str) -> torch.Tensor:
        """``store[layer]`` for samples ``idx`` padded to ``length``, float32 on ``idx``'s device. The stored
        values move there on first use (once, like ``TeacherCache``); the index range check reads ``idx`` on
        the host, so it runs only while value checks are on (``kdlib.core.validate``)."""
        if layer not in store:
            raise KeyError(f"teacher {what} of layer {layer} were not cached (cached: {sorted(store)}); rebuild "
                           f"the cache with this layer in {what.split()[0]}_layers")
        idx = torch.as_tensor(idx)
        if values_checked() and idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise IndexError(f"sample index out of range for a teacher cache of {len(self)} samples")
        ragged = store[layer]
        if ragged.flat.device != idx.device:
            ragged.to(idx.device)
        return ragged.gather(idx, length)

    def hidden_states(self, idx, length: int) -> list:
        """A list indexed by teacher layer 0..n: (B, length, H) float32 for cached layers, None otherwise."""
        return [self._gather(self._hidden, layer, idx, length, "hidden states") if layer in self._hidden else None
                for layer in range(self.n_layers + 1)]

    def attentions(self, idx, length: int) -> list:
        """A list like ``outputs.attentions`` (entry l-1 for layer l): (B, heads, length, length) or None."""
        return [self._gather(self._attn, layer, idx, length, "attention maps") if layer in self._attn else None
                for layer in range(1, self.n_layers + 1)]

    def values(self, layer: int, idx, length: int) -> torch.Tensor:
        """Value vectors of (1-based) ``layer``: (B, length, H) float32."""
        return self._gather(self._values, layer, idx, length, "value vectors")

    def check(self, teacher=None, ids: torch.Tensor | None = None) -> "EncoderTeacherCache":
        """Raise ValueError if the cache was built from another teacher or other ids."""
        self.logits.check(teacher, ids)
        return self

    def check_batch(self, idx, ids: torch.Tensor) -> None:
        """Raise ValueError if the batch ``ids`` (possibly cut to its longest row) are not samples ``idx`` of
        the ids this cache was built from: a stale cache (other ids at the same sample index). Reads on the
        host, so it runs only while value checks are on (the first step of ``fit``, or a call by hand)."""
        rows = self.rows
        if not values_checked() or rows is None:
            return
        idx = torch.as_tensor(idx)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise IndexError(f"sample index out of range for a teacher cache of {len(self)} samples")
        if rows.device != ids.device:
            self.rows = rows = rows.to(ids.device)
        if bool((row_checksums(ids, self.pad_id) != rows[idx.to(ids.device)]).any()):
            raise ValueError("stale encoder teacher cache: the ids this step trains on are not the ids the cache "
                             "was built from (other tokens at the same sample index); rebuild it with "
                             "EncoderTeacherCache.build(teacher, ids, ...) on the training ids")
