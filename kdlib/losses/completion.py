"""Supervised completion losses for language models: the next-token shift, the completion loss (notebooks 05-06)
and the multi-task loss of Distilling step-by-step (notebook 06). Re-exported by ``kdlib.losses.tokens``.

Checks (``kdlib.losses.inputs``): logits are floating point ``(batch, length, vocab)``, token ids integer
``(batch, length)``, the completion mask bool or 0/1 of the same shape; an empty batch, or rows of one token
(nothing to predict), raise. Positions outside the completion are replaced by 0 before the softmax, so padding
may hold anything. While value checks are on, NaN or inf logits at a completion position, ids outside the
vocabulary there, and a mask that selects no target raise; without them NaN propagates and a batch without
targets gives 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_number
from kdlib.losses import inputs
from kdlib.losses.registry import register

__all__ = ["shift_for_next_token", "completion_loss", "multitask_loss"]


def shift_for_next_token(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Align a causal LM's outputs with the tokens they predict: ``logits[:, :-1]`` (position t predicts token
    t + 1), the targets ``input_ids[:, 1:]`` and the mask of the *target* tokens ``mask[:, 1:]`` (None when
    ``mask`` is None). Notebooks 05-07.

    The position-0 convention, shared by ``completion_loss`` and ``kdlib.lm.generate.completion_logprobs``:
    token 0 has no earlier token to predict it, so it is never a target, and ``mask[:, 0]`` is **dropped**
    (a 1 there changes nothing; a completion must follow at least one prompt token to be scored whole). The
    last position's logits predict a token beyond the sequence and are dropped too. Nothing is read on the
    host, so the shift is free inside a training step."""
    return logits[:, :-1], input_ids[:, 1:], None if mask is None else mask[:, 1:]


def _completion(logits, input_ids, completion_mask, names=("logits", "input_ids", "completion_mask")):
    """``completion_loss`` with the arguments named ``names`` in its messages."""
    logits_name, ids_name, mask_name = names
    inputs.tensor(logits_name, logits, dims=3, layout="(batch, length, vocab)")
    if logits.shape[1] < 2:
        raise ValueError(f"{logits_name} has shape {tuple(logits.shape)}: a row of one token has nothing to "
                         "predict (token 0 is never a target); pass sequences of at least 2 tokens")
    shape = logits.shape[:-1]
    if isinstance(input_ids, torch.Tensor) and isinstance(completion_mask, torch.Tensor) and (
            input_ids.shape != shape or completion_mask.shape != shape):
        raise ValueError(f"{logits_name} {tuple(logits.shape)}, {ids_name} {tuple(input_ids.shape)} and "
                         f"{mask_name} {tuple(completion_mask.shape)} must agree on (batch, length)")
    inputs.ids(ids_name, input_ids, shape, logits.device)
    if completion_mask is None:
        raise ValueError(f"{mask_name} is None; pass the completion mask (1 on the tokens to learn, 0 elsewhere)")
    mask = inputs.mask(mask_name, completion_mask, shape, logits.device, "token")
    logits, targets, mask = shift_for_next_token(logits, input_ids, mask)
    inputs.some(mask_name + "[:, 1:]", mask)
    logits, targets = inputs.keep(logits, mask), inputs.keep(targets, mask)
    inputs.finite(logits_name, logits)
    inputs.in_range(ids_name, targets, logits.shape[-1])
    per_token = F.cross_entropy(inputs.up(logits).reshape(-1, logits.shape[-1]), targets.reshape(-1).long(),
                                reduction="none")
    return inputs.masked_mean(per_token.view_as(targets), mask)


@register("completion")
def completion_loss(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on completion tokens only, the **mean over completion tokens** of the batch:
    ``-(1/N) sum_{t >= 1: completion_mask[t] = 1} log p(x_t | x_<t)`` (``N`` = number of such tokens).

    ``logits`` ``(batch, length, vocab)`` from the model on ``input_ids`` ``(batch, length)``;
    ``completion_mask`` is 1 on the tokens to learn (the answer or rationale and its end-of-sequence token)
    and 0 on prompt and padding tokens, the convention of ``kdlib.lm.generate.Samples``. Prompt tokens are
    never targets: the student learns to answer, not to write questions. Position 0 is never a target
    either: its mask value is dropped by ``shift_for_next_token`` (as in ``kdlib.lm.generate.completion_logprobs``,
    so ``completion_loss == -sum(completion_logprobs) / N`` on the same inputs). A mask with no target raises
    while value checks are on and gives 0 without them. Notebook 06.
    """
    return _completion(logits, input_ids, completion_mask)


@register("multitask")
def multitask_loss(label_logits: torch.Tensor, label_ids: torch.Tensor, label_mask: torch.Tensor,
                   rationale_logits: torch.Tensor, rationale_ids: torch.Tensor, rationale_mask: torch.Tensor,
                   lam: float = 1.0) -> torch.Tensor:
    """Distilling step-by-step's multi-task objective ``L = L_label + lam * L_rationale`` (Hsieh et al. 2023).

    The same problems appear twice, with task prefixes: ``[label] question -> answer`` and
    ``[rationale] question -> rationale``; each term is ``completion_loss`` on its own batch (mean over its
    completion tokens). At inference the student is asked with the ``[label]`` prefix and answers without
    writing a rationale. ``lam >= 0``; ``lam = 0`` is plain answer-only training (the rationale batch is then
    not used). Notebook 06.
    """
    lam = check_number("lam", lam, low=0, hint="lam weighs the rationale loss; 0 trains on answers only")
    label = _completion(label_logits, label_ids, label_mask, ("label_logits", "label_ids", "label_mask"))
    if lam == 0:
        return label
    return label + lam * _completion(rationale_logits, rationale_ids, rationale_mask,
                                     ("rationale_logits", "rationale_ids", "rationale_mask"))
