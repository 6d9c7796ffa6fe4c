"""Supervised fine-tuning on (prompt, completion) pairs for any ``transformers`` causal LM, with prompt tokens
masked; answering a batch of questions and scoring the answers. Notebooks 06 and 07.

* ``SFTData``: right-padded ``input_ids``, ``attention_mask`` and ``completion_mask`` (1 on the completion and
  its end-of-sequence token, 0 on prompt and padding: the convention of ``kdlib.lm.generate.Samples``, so
  ``kdlib.lm.generate.sequence_logprobs`` scores it directly). Prompt and completion are tokenised *separately*
  and joined, so the prompt's tokens are exactly those the model sees at generation time.
* ``sft_step`` and ``multitask_step(lam, loss)`` (on ``MultitaskData``): step functions for ``kdlib.core.fit``.
  ``SFTData.batch`` cuts each batch to its longest row on the CPU (the data side, like a DataLoader's
  collate), so short problems do not pay for long ones and the step itself reads nothing on the host.
* ``answer(model, tokenizer, prompts)``: batched greedy (or sampled) completions through
  ``kdlib.lm.generate``; ``kdlib.reasoning.rationale.evaluate_answers`` scores them against gold answers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlib.lm.generate import generate
from kdlib.core.validate import check_number
from kdlib.losses.tokens import completion_loss, multitask_loss
from kdlib.core.serving import call_latency

__all__ = ["SFTData", "MultitaskData", "sft_data", "sft_step", "multitask_step", "answer", "answer_cost"]


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

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``idx`` (a CPU index) as ``(input_ids, attention_mask, completion_mask)``, cut to their longest
        real length; on the CPU, where ``kdlib.core.fit`` cuts batches."""
        width = int(self.lengths[idx].max())
        return tuple(t[idx, :width] for t in (self.input_ids, self.attention_mask, self.completion_mask))


@dataclass
class MultitaskData:
    """The same problems twice, row i of each being problem i: ``label`` (``[label]`` prefix -> answer) and
    ``rationale`` (``[rationale]`` prefix -> rationale). A batch is both cuts of the same rows."""

    label: SFTData
    rationale: SFTData

    def __post_init__(self):
        if len(self.label) != len(self.rationale):
            raise ValueError(f"label data has {len(self.label)} rows, rationale data {len(self.rationale)}: row i of "
                             "both must be the same problem")

    def __len__(self) -> int:
        return len(self.label)

    def batch(self, idx: torch.Tensor):
        return self.label.batch(idx), self.rationale.batch(idx)


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


def _on_model(model, tensors):
    device = next(model.parameters()).device
    return [t.to(device, non_blocking=True) for t in tensors]


def sft_step(model, batch, idx: torch.Tensor) -> torch.Tensor:
    """A ``kdlib.core.fit`` step on ``SFTData``: ``completion_loss`` (prompt tokens masked). Rows are
    right-padded, so the causal mask alone keeps every real token from seeing padding."""
    ids, _, comp = _on_model(model, batch)
    return completion_loss(model(input_ids=ids).logits, ids, comp)


def multitask_step(lam: float = 1.0, loss=None):
    """A ``kdlib.core.fit`` step on ``MultitaskData`` for Distilling step-by-step's multi-task student, on the
    same problems (lam is checked here, once)::

        L = L_label + lam * L_rationale   (each the next-token cross-entropy on its completion tokens)

    computed by ``kdlib.losses.tokens.multitask_loss``, or by ``loss`` when given: a function with its
    signature ``loss(label_logits, label_ids, label_mask, rationale_logits, rationale_ids, rationale_mask,
    lam)``, such as notebook 06's learner-written ``multitask_loss``, so that the learner's function trains the
    student and a wrong one shows in the results."""
    lam = check_number("lam", lam, low=0.0, hint="the weight of the rationale loss; 0 is answer-only training")
    if loss is not None and not callable(loss):
        raise ValueError(f"loss must be a function like kdlib.losses.tokens.multitask_loss, got {loss!r:.60}")
    loss_fn = multitask_loss if loss is None else loss

    def step(model, batch, idx):
        (l_ids, _, l_comp), (r_ids, _, r_comp) = (_on_model(model, part) for part in batch)
        return loss_fn(model(input_ids=l_ids).logits, l_ids, l_comp, model(input_ids=r_ids).logits, r_ids, r_comp,
                       lam)
    return step


def answer(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, num_samples: int = 1,
           do_sample: bool = False, temperature: float = 1.0, batch_size: int = 256, seed: int = 0) -> list[str]:
    """Completions for ``prompts`` (``num_samples`` per prompt, grouped by prompt), greedy unless ``do_sample``."""
    return generate(model, tokenizer, prompts, num_samples=num_samples, max_new_tokens=max_new_tokens,
                    do_sample=do_sample, temperature=temperature, batch_size=batch_size, seed=seed).texts


def answer_cost(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, warmup: int = 2,
                logits_processor=None) -> dict:
    """What an answer costs at serving time, one question at a time (batch 1, greedy): ``tokens`` (mean
    generated tokens per answer, end-of-sequence included) and the latency per answer in ms (``p50_ms``,
    ``p95_ms``, ``p99_ms``, ``mean_ms``, from ``kdlib.core.serving.call_latency`` over the prompts).
    ``logits_processor``: as for ``kdlib.lm.generate.generate`` (notebook 08 times answers with the tool runtime,
    tool execution included)."""
    device = next(model.parameters()).device
    counts: list[int] = []

    def one(i):
        out = generate(model, tokenizer, [prompts[i]], max_new_tokens=max_new_tokens, do_sample=False,
                       logits_processor=logits_processor)
        counts.append(int(out.completion_mask.sum()))

    lat = call_latency(one, device, warmup=warmup, repeats=len(prompts))
    timed = counts[warmup:]
    return {"tokens": sum(timed) / len(timed), **lat}
