"""Supervised fine-tuning on (prompt, completion) pairs for any ``transformers`` causal LM, with prompt tokens
masked; answering a batch of questions and scoring the answers. Notebooks 06 and 07.

* ``SFTData``: right-padded ``input_ids``, ``attention_mask`` and ``completion_mask`` (1 on the completion and
  its end-of-sequence token, 0 on prompt and padding: the convention of ``kdlib.lm_generate.Samples``, so
  ``kdlib.lm_generate.sequence_logprobs`` scores it directly). Prompt and completion are tokenised *separately*
  and joined, so the prompt's tokens are exactly those the model sees at generation time.
* ``sft_step(data)`` and ``multitask_step(label, rationale, lam)``: step functions for
  ``kdlib.lm_train.train_lm`` (the one LM loop: AdamW, warm-up, cosine decay, a tqdm bar). Each batch is cut
  to its longest row, so short problems do not pay for long ones.
* ``answer(model, tokenizer, prompts)``: batched greedy (or sampled) completions through
  ``kdlib.lm_generate.generate``; ``evaluate_answers`` turns them into accuracy overall and by step count.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .lm_generate import generate
from .lm_losses import completion_loss, multitask_loss
from .lm_train import train_lm
from .rationale import verify_answers
from .serving import call_latency

__all__ = ["SFTData", "sft_data", "sft_step", "multitask_step", "train_sft", "answer", "evaluate_answers",
           "answer_cost"]


@dataclass
class SFTData:
    """Right-padded token rows: ``input_ids``, ``attention_mask``, ``completion_mask`` (n, L); ``lengths`` (n,)
    real tokens per row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    lengths: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, idx: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``idx`` cut to their longest real length, on ``device``."""
        idx = idx.cpu()
        width = int(self.lengths[idx].max())
        return tuple(t[idx, :width].to(device) for t in (self.input_ids, self.attention_mask, self.completion_mask))


def sft_data(tokenizer, prompts: list[str], completions: list[str], max_length: int | None = None) -> SFTData:
    """Tokenise ``prompt + completion + <eos>`` per pair (prompt and completion separately, no other special
    tokens), right-pad with the pad token; raise ValueError when a row exceeds ``max_length``."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if not prompts:
        raise ValueError("no examples to tokenise")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no end-of-sequence token; set tokenizer.eos_token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    p_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    rows = [(p, c + [tokenizer.eos_token_id]) for p, c in zip(p_ids, c_ids)]
    width = max(len(p) + len(c) for p, c in rows)
    if max_length is not None and width > max_length:
        raise ValueError(f"the longest example has {width} tokens, more than max_length={max_length}")
    n = len(rows)
    ids = torch.full((n, width), pad, dtype=torch.long)
    attn = torch.zeros(n, width, dtype=torch.long)
    comp = torch.zeros(n, width, dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        ids[i, :len(p) + len(c)] = torch.tensor(p + c)
        attn[i, :len(p) + len(c)] = 1
        comp[i, len(p):len(p) + len(c)] = 1
    return SFTData(ids, attn, comp, attn.sum(1))


def sft_step(data: SFTData):
    """A ``train_lm`` step: ``completion_loss`` on rows ``idx`` of ``data`` (prompt tokens masked). Rows are
    right-padded, so the causal mask alone keeps every real token from seeing padding."""
    def step(model, input_ids, idx):
        ids, _, comp = data.batch(idx, input_ids.device)
        return completion_loss(model(input_ids=ids).logits, ids, comp)
    return step


def multitask_step(label: SFTData, rationale: SFTData, lam: float = 1.0):
    """A ``train_lm`` step for the multi-task student: ``L_label + lam * L_rationale`` on the same problems
    ``idx`` (row i of ``label`` and of ``rationale`` is the same problem, with its task prefix)."""
    if len(label) != len(rationale):
        raise ValueError(f"label data has {len(label)} rows, rationale data {len(rationale)}: row i of both must be "
                         "the same problem")

    def step(model, input_ids, idx):
        l_ids, _, l_comp = label.batch(idx, input_ids.device)
        r_ids, _, r_comp = rationale.batch(idx, input_ids.device)
        return multitask_loss(model(input_ids=l_ids).logits, l_ids, l_comp, model(input_ids=r_ids).logits, r_ids,
                              r_comp, lam)
    return step


def train_sft(model, data: SFTData, *, steps: int, batch_size: int = 64, lr: float = 3e-3, step=None,
              device="cpu", seed: int = 0, desc: str = "sft", progress: bool = True, **kw) -> dict:
    """``kdlib.lm_train.train_lm`` over the rows of ``data`` with ``step`` (default ``sft_step(data)``);
    returns its history ``{"loss": [...], "seconds": ..., "tokens": ...}`` (tokens counts padded rows)."""
    return train_lm(model, data.input_ids, step or sft_step(data), steps=steps, batch_size=batch_size, lr=lr,
                    device=device, seed=seed, desc=desc, progress=progress, **kw)


def answer(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, num_samples: int = 1,
           do_sample: bool = False, temperature: float = 1.0, batch_size: int = 256, seed: int = 0) -> list[str]:
    """Completions for ``prompts`` (``num_samples`` per prompt, grouped by prompt), greedy unless ``do_sample``."""
    return generate(model, tokenizer, prompts, num_samples=num_samples, max_new_tokens=max_new_tokens,
                    do_sample=do_sample, temperature=temperature, batch_size=batch_size, seed=seed).texts


def evaluate_answers(texts: list[str], problems) -> dict:
    """Accuracy of the answers extracted from ``texts`` against the problems' gold answers: overall
    (``accuracy``), by number of steps (``by_steps``, {steps: accuracy}) and ``n``."""
    right = verify_answers(texts, [p.answer for p in problems])
    by_steps: dict[int, list[float]] = {}
    for r, p in zip(right.tolist(), problems):
        by_steps.setdefault(p.steps, []).append(r)
    return {"accuracy": float(right.mean()) if len(right) else float("nan"), "n": len(problems),
            "by_steps": {s: sum(v) / len(v) for s, v in sorted(by_steps.items())}}


def answer_cost(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, warmup: int = 2) -> dict:
    """What an answer costs at serving time, one question at a time (batch 1, greedy): ``tokens`` (mean
    generated tokens per answer, end-of-sequence included) and the latency per answer in ms (``p50_ms``,
    ``p95_ms``, ``p99_ms``, ``mean_ms``, from ``kdlib.serving.call_latency`` over the prompts)."""
    device = next(model.parameters()).device
    counts: list[int] = []

    def one(i):
        out = generate(model, tokenizer, [prompts[i]], max_new_tokens=max_new_tokens, do_sample=False)
        counts.append(int(out.completion_mask.sum()))

    lat = call_latency(one, device, warmup=warmup, repeats=len(prompts))
    timed = counts[warmup:]
    return {"tokens": sum(timed) / len(timed), **lat}
