"""Token-id training data that cuts each batch's padding on the data side. Notebook 04.

``EncoderClassifier`` cuts a batch of right-padded ids down to its longest sequence, which reads that length
on the host: on a GPU, a sync in every training step. ``TokenSplit`` does the same cut where
``kdlib.core.fit`` selects the batch (``data.batch(idx)``, on the CPU and outside the step, like a DataLoader's
collate, and like ``kdlib.lm.sft.SFTData``), from lengths computed once. Its batches are ``TokenBatch``es: the
encoder steps (``kdlib.encoders.train``) move them to the model's device (non-blocking) and run the model with
``trim=False``. Same rows, same width, same mask: the same logits as a ``Split`` whose batches the model cuts
itself::

    fit(model, TokenSplit(train.x, train.y, pad_id=tokenizer.pad_token_id), encoder_step(cache, ...), ...)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from kdlib.data.types import Split

__all__ = ["TokenBatch", "TokenSplit"]


class TokenBatch(Split):
    """A ``Split`` batch of token ids already cut to its longest real sequence (by ``TokenSplit.batch``), and its
    labels; the encoder steps give its ids to the model with ``trim=False``."""

    __slots__ = ()


@dataclass
class TokenSplit:
    """Right-padded token ids ``x`` (N, L) with pad id ``pad_id``, and labels ``y`` (N,), kept on the CPU;
    ``lengths`` (N,) counts the real tokens of each row (computed once).

    ``kdlib.core.fit`` trains on it like on a ``Split`` (same length, same permutation, same rows per batch),
    but takes each batch from ``batch(idx)``. There is no ``to``: ``fit`` leaves the data on the CPU, where
    batches are cut, and the step moves each batch to the model's device.
    """

    x: torch.Tensor
    y: torch.Tensor
    pad_id: int = 0
    lengths: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        self.x, self.y = torch.as_tensor(self.x).cpu(), torch.as_tensor(self.y).cpu()
        if self.x.ndim != 2:
            raise ValueError(f"x must be token ids of shape (N, L), got shape {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)} labels")
        self.lengths = (self.x != self.pad_id).sum(1)

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: torch.Tensor) -> TokenBatch:
        """Rows ``idx`` (a CPU index) cut to their longest real length (at least 1), as
        ``EncoderClassifier.trim`` would cut them; on the CPU, where ``kdlib.core.fit`` cuts batches."""
        width = max(1, int(self.lengths[idx].max()))
        return TokenBatch(self.x[idx, :width], self.y[idx])
