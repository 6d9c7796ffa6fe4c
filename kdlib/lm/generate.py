"""Generation helpers for LM distillation: batched sampling with the chat template, several samples per
prompt, and sequence log-probabilities. Notebook 05 (sequence-level and on-policy KD), later DPO notebooks.

``sequence_logprobs`` is the *sum* of the completion tokens' log-probabilities (prompt and padding masked):
the quantity DPO and sequence-level scoring need (a mean would favour long, rambling completions).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdlib.core.inference import eval_mode
from kdlib.core.profiles import seeded
from kdlib.core.validate import values_checked
from kdlib.losses.tokens import shift_for_next_token

__all__ = ["Samples", "pack_right", "pad_rows", "chat_prompts", "generate", "completion_logprobs", "sequence_logprobs",
           "token_logprobs"]


@dataclass
class Samples:
    """``input_ids`` (n, P + C), left-padded prompts followed by completions; ``attention_mask`` 1 on real
    tokens; ``completion_mask`` 1 on generated tokens up to and including the first end-of-sequence token;
    ``prompt_index[i]`` is the prompt that row i answers; ``texts`` the decoded completions."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    prompt_index: list[int]
    texts: list[str]


def pack_right(samples: Samples, pad_id: int = 0) -> Samples:
    """The same samples with each row's left padding moved to its end (prompt, completion, then ``pad_id``), so
    that a causal LM can be trained on them without an attention mask (the causal mask alone keeps real tokens
    from seeing padding; positions start at 0 in every row). Done once, on the CPU. Notebook 05."""
    ids, attn, comp = (t.cpu() for t in (samples.input_ids, samples.attention_mask, samples.completion_mask))
    real = (attn > 0) | (comp > 0)
    order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)  # real tokens first, in their order
    keep = real.gather(1, order)
    return Samples(torch.where(keep, ids.gather(1, order), torch.full_like(ids, pad_id)), keep.long(),
                   torch.where(keep, comp.gather(1, order), torch.zeros_like(comp)), list(samples.prompt_index),
                   list(samples.texts))


def chat_prompts(tokenizer, questions: list[str], system: str | None = None) -> list[str]:
    """Each question wrapped in the tokenizer's chat template, ending with the assistant's turn."""
    out = []
    for q in questions:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q}]
        out.append(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return out


def pad_rows(ids: list[list[int]], pad: int, device="cpu", side: str = "left") -> dict[str, torch.Tensor]:
    """Token rows padded to one width by hand, on the ``left`` (prompts to generate from) or the ``right`` (texts
    to score), as ``input_ids`` and ``attention_mask``: a fast tokenizer's padding is state of its shared backend,
    so a thread that asks it to pad can encode with another thread's setting (no padding: ragged rows)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, row in enumerate(ids):
        if row:
            cols = slice(width - len(row), width) if side == "left" else slice(0, len(row))
            input_ids[r, cols] = torch.tensor(row)
            mask[r, cols] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], num_samples: int = 1, max_new_tokens: int = 32,
             temperature: float = 1.0, do_sample: bool = True, batch_size: int = 16, seed: int = 0,
             add_special_tokens: bool = False, logits_processor=None) -> Samples:
    """Sample ``num_samples`` completions for each prompt (already formatted: use ``chat_prompts`` for chat
    models), in batches of ``batch_size`` prompts, left-padded; greedy when ``do_sample=False``. Sampling runs
    inside ``kdlib.core.profiles.seeded(seed)`` (the same samples for the same seed, the caller's RNG untouched)
    and in eval mode (``kdlib.core.inference.eval_mode``: the model's mode is restored afterwards). The tokenizer
    is neither changed nor asked to pad (the prompts are padded here: a fast tokenizer's padding setting is shared
    state), so models can generate in threads with one tokenizer (``kdlib.core.concurrently``).
    ``logits_processor(prompt_length, first_row)``, when given, makes a ``transformers`` logits processor for
    each batch (its rows are the samples ``first_row, first_row + 1, ...`` of the result, ``prompt_length`` the
    padded prompt width): notebook 08's tool runtime forces tool results into the text this way."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    rows, index = [], []
    # sampling draws from the global RNG (transformers takes no generator): seeded(seed) makes the samples
    # depend on ``seed`` alone and leaves the caller's RNG as it was; greedy decoding draws nothing
    with seeded(seed) if do_sample else nullcontext(), eval_mode(model):
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            enc = pad_rows(tokenizer(chunk, add_special_tokens=add_special_tokens)["input_ids"], pad, device)
            p_len = enc["input_ids"].shape[1]
            extra = {}
            if logits_processor is not None:
                from transformers import LogitsProcessorList
                extra["logits_processor"] = LogitsProcessorList([logits_processor(p_len, len(rows))])
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                 temperature=temperature if do_sample else None, top_p=None, top_k=None,
                                 num_return_sequences=num_samples, pad_token_id=pad, eos_token_id=eos, **extra)
            prompt_mask = enc["attention_mask"].repeat_interleave(num_samples, 0)
            for r in range(out.shape[0]):
                rows.append((out[r, :p_len], prompt_mask[r], out[r, p_len:]))
                index.append(start + r // num_samples)
    width_p = max(len(p) for p, _, _ in rows)
    width_c = max(len(c) for _, _, c in rows)
    n = len(rows)
    ids = torch.full((n, width_p + width_c), pad, dtype=torch.long)
    attn = torch.zeros(n, width_p + width_c, dtype=torch.long)
    comp = torch.zeros(n, width_p + width_c, dtype=torch.long)
    texts = []
    for r, (p, pm, c) in enumerate(rows):
        ids[r, width_p - len(p):width_p] = p.cpu()
        attn[r, width_p - len(p):width_p] = pm.cpu()
        c = c.cpu()
        ended = (c == eos).nonzero()
        n_c = int(ended[0]) + 1 if len(ended) else len(c)  # keep the first end-of-sequence token
        ids[r, width_p:width_p + len(c)] = c
        attn[r, width_p:width_p + n_c] = 1
        comp[r, width_p:width_p + n_c] = 1
        texts.append(tokenizer.decode(c[:n_c], skip_special_tokens=True))
    return Samples(ids, attn, comp, index, texts)


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``log p(x_t | x_<t)`` for t = 1..L-1, shape (n, L-1) (position t-1 of the result scores token t; token 0
    has no prediction, ``kdlib.losses.tokens.shift_for_next_token``)."""
    return _next_token_logprobs(model(input_ids=input_ids, attention_mask=attention_mask).logits, input_ids)


def _next_token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    logits, targets, _ = shift_for_next_token(logits, input_ids)
    return _target_logprobs(logits, targets)


def _target_logprobs(shifted_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(shifted_logits)[target]`` per position, in float32."""
    return torch.gather(F.log_softmax(shifted_logits.float(), -1), -1, targets[..., None]).squeeze(-1)


def completion_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor,
                        reduction: str = "sum") -> torch.Tensor:
    """Log-probability of each row's completion from a causal LM's ``logits`` (n, L, V) on ``input_ids`` (n, L).

    ``logits[:, t]`` is the distribution of token ``t + 1``, so token t is scored by ``logits[:, t - 1]``::

        log pi(y | x) = sum_{t >= 1} completion_mask[t] * log softmax(logits[t - 1])[input_ids[t]]

    ``completion_mask`` (n, L) is 1 on completion tokens and 0 on prompt and padding, which are ignored
    whatever the logits there. Position 0 is never scored: no earlier token predicts it, so its mask value is
    dropped by the shift (``kdlib.losses.tokens.shift_for_next_token``, the convention ``completion_loss``
    shares); a completion must follow at least one prompt token (e.g. a beginning-of-sequence token).
    ``reduction="sum"`` (what DPO needs: the log-probability of the whole sequence) or ``"mean"`` (per
    completion token: length-normalised, which is *not* a sequence log-probability; a row without completion
    tokens is a ValueError while value checks are on, NaN inside ``kdlib.core.fit``). Notebook 07.
    """
    if logits.dim() != 3 or input_ids.shape != logits.shape[:2] or completion_mask.shape != input_ids.shape:
        raise ValueError(f"expected logits (n, L, V) with input_ids and completion_mask (n, L); got logits "
                         f"{tuple(logits.shape)}, input_ids {tuple(input_ids.shape)}, completion_mask "
                         f"{tuple(completion_mask.shape)}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    logits, targets, mask = shift_for_next_token(logits, input_ids, completion_mask)
    logp = _target_logprobs(logits, targets)
    mask = mask.to(logp.dtype)
    total = (logp * mask).sum(-1)
    if reduction == "sum":
        return total
    count = mask.sum(-1)
    if values_checked() and bool((count == 0).any()):
        raise ValueError("reduction='mean' needs at least one completion token (after position 0) in every row")
    return total / count


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      completion_mask: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Sum (or, with ``reduction="mean"``, mean) over completion tokens of ``log p(token | everything before
    it)``; prompt and padding masked (``completion_logprobs``). Returns shape (n,). Gradients flow when
    called outside ``torch.no_grad``."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return completion_logprobs(logits, input_ids, completion_mask, reduction)
