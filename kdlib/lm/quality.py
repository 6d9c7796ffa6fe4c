"""A trivial baseline and a generation metric for LM students. Notebook 05.

* ``UnigramLM``: predicts every next token from the training tokens' frequencies, add-one smoothed,
  ``p(v) = (count(v) + 1) / (N + V)``, whatever came before: the perplexity a student must beat to have
  learnt anything about context.
* ``teacher_nll_of_samples``: each model continues the same prompts by sampling; the teacher scores the
  continuations: ``- (1 / |C|) sum_{t in C} log p_teacher(y_t | y_<t)`` over the generated tokens C. Held-out
  perplexity measures a student on *true* text; this measures the text the student *writes*, the states
  on-policy distillation trains on (lower is more teacher-like; the teacher's own samples give its floor).
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from kdlib.core.inference import eval_mode
from kdlib.lm.generate import generate, sequence_logprobs


class UnigramLM(nn.Module):
    """Next-token log-probabilities from token counts of ``blocks`` (add-one smoothing over ``vocab_size``);
    ``model(input_ids=x).logits`` has shape ``(*x.shape, vocab_size)`` like a causal LM's."""

    def __init__(self, blocks: torch.Tensor, vocab_size: int):
        super().__init__()
        if blocks.is_floating_point() or blocks.numel() == 0:
            raise ValueError(f"blocks must be non-empty token ids, got {blocks.dtype} {tuple(blocks.shape)}")
        if int(blocks.min()) < 0 or int(blocks.max()) >= vocab_size:
            raise ValueError(f"token ids must lie in [0, {vocab_size}), got {int(blocks.min())}..{int(blocks.max())}")
        counts = torch.bincount(blocks.flatten(), minlength=vocab_size).float() + 1
        self.register_buffer("log_p", (counts / counts.sum()).log())

    def forward(self, input_ids: torch.Tensor, **_) -> SimpleNamespace:
        return SimpleNamespace(logits=self.log_p.expand(*input_ids.shape, -1))


@torch.no_grad()
def teacher_nll_of_samples(teacher, models: dict, tokenizer, prompts: list[str], max_new_tokens: int,
                           temperature: float = 1.0, seed: int = 0, batch_size: int = 16) -> dict[str, float]:
    """Per model (the teacher included, as ``"teacher"``): the teacher's mean negative log-likelihood per
    generated token of the model's sampled continuations of ``prompts`` (same prompts and seed for all)."""
    if not prompts:
        raise ValueError("prompts is empty: give at least one opening to continue")
    scores = {}
    with eval_mode(teacher):
        for name, model in {"teacher": teacher, **models}.items():
            out = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                           seed=seed, batch_size=batch_size)
            device = next(teacher.parameters()).device
            logps = sequence_logprobs(teacher, out.input_ids.to(device), out.attention_mask.to(device),
                                      out.completion_mask.to(device), reduction="sum")
            tokens = out.completion_mask[:, 1:].sum()
            scores[name] = float(-logps.sum() / tokens.clamp(min=1))
    return scores
