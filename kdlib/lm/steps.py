"""Training steps for causal LMs on token blocks: plain LM and token-level KD on cached top-k teacher logits.
Notebook 05 (and the own-teacher fallback of ``kdlib.lm.load``).

A step is ``step(model, input_ids, idx) -> loss`` for ``kdlib.core.fit``: ``input_ids`` are the blocks ``idx``
of the training tensor, already on the model's device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_number
from kdlib.losses.tokens import TopK, topk_loss


def lm_step(model, input_ids: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Plain language modelling: cross-entropy of each next token, mean over tokens."""
    logits = model(input_ids=input_ids).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), input_ids[:, 1:].reshape(-1))


def topk_kd_step(cache: TopK, kind: str = "forward", alpha: float = 0.0):
    """Token-level KD on cached top-k teacher log-probs (``kdlib.losses.tokens.topk_loss``), plus ``alpha`` times
    the plain LM loss on the true next tokens. The cache moves to the training device on the first step."""
    alpha = check_number("alpha", alpha, 0.0, 1.0, hint="alpha is the weight of the plain LM loss")
    if kind not in ("forward", "reverse", "jsd"):
        raise ValueError(f"kind must be 'forward', 'reverse' or 'jsd', got {kind!r}")
    on_device = {}

    def step(model, input_ids, idx):
        logits = model(input_ids=input_ids).logits[:, :-1]
        if idx.device not in on_device:
            on_device[idx.device] = cache.to(idx.device)
        loss = topk_loss(logits, on_device[idx.device][idx], kind=kind)
        if alpha:
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), input_ids[:, 1:].reshape(-1))
            loss = alpha * ce + (1 - alpha) * loss
        return loss
    return step
