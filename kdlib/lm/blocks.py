"""Text as token blocks, a cached top-k teacher, and LM metrics. Notebook 05.

* ``token_blocks``: articles tokenised, joined with the end-of-sequence token and cut into fixed-length
  blocks (no padding: every position is a real next-token target).
* ``cache_topk``: the teacher runs once over the training blocks and keeps its top-k log-probabilities and
  the tail mass per position (``kdlib.losses.tokens.TopK``), looked up by block index like ``TeacherCache``.
* training: ``kdlib.core.fit`` on the blocks with a step of ``kdlib.lm.steps`` (plain LM, top-k KD, on-policy
  KD; sequence-level KD trains on the teacher's generated text).
* ``evaluate_lms``: runs the teacher once per held-out batch and every student beside it: perplexity on
  the true text, top-1 agreement with the teacher, exact forward KL(teacher || student) per token.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kdlib.losses.tokens import TopK, forward_kl, topk_from_logits
from kdlib.core.inference import eval_mode
from kdlib.core.serving import synchronize

__all__ = ["token_blocks", "cache_topk", "evaluate_lms", "tokens_per_second"]


def token_blocks(tokenizer, texts: list[str], block_size: int, max_tokens: int | None = None) -> torch.Tensor:
    """``(n_blocks, block_size)`` token ids: the texts joined by the end-of-sequence token, cut into blocks;
    stops after ``max_tokens`` tokens (rounded down to whole blocks)."""
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if max_tokens is not None and len(ids) >= max_tokens:
            break
    n = (min(len(ids), max_tokens or len(ids))) // block_size
    if n == 0:
        raise ValueError(f"{len(ids)} tokens do not fill one block of {block_size}")
    return torch.tensor(ids[: n * block_size]).view(n, block_size)


@torch.no_grad()
def cache_topk(teacher, blocks: torch.Tensor, k: int, batch_size: int = 8, T: float = 1.0,
               progress: bool = True) -> tuple[TopK, float]:
    """The teacher's top-k cache for next-token positions 0..L-2 of every block, and its tokens per second."""
    with eval_mode(teacher):
        device = next(teacher.parameters()).device
        parts = []
        start = time.perf_counter()
        for i in tqdm(range(0, len(blocks), batch_size), desc="teacher top-k", disable=not progress, leave=False):
            logits = teacher(input_ids=blocks[i:i + batch_size].to(device)).logits[:, :-1]
            parts.append(topk_from_logits(logits, k, T).to("cpu"))
    seconds = time.perf_counter() - start
    cache = TopK(torch.cat([p.log_probs for p in parts]), torch.cat([p.indices for p in parts]),
                 torch.cat([p.tail for p in parts]), T)
    return cache, blocks.numel() / seconds


@torch.no_grad()
def evaluate_lms(teacher, students: dict, blocks: torch.Tensor, batch_size: int = 8, progress: bool = True
                 ) -> dict[str, dict[str, float]]:
    """Per model (the teacher under ``"teacher"``, then each student): held-out perplexity on the true next
    tokens, top-1 agreement with the teacher's next-token prediction, and the exact forward
    KL(teacher || model) per token (full vocabulary), each averaged over all next-token positions."""
    device = next(teacher.parameters()).device
    names = ["teacher", *students]
    nll = dict.fromkeys(names, 0.0)
    agree = dict.fromkeys(names, 0.0)
    kl = dict.fromkeys(names, 0.0)
    n = 0
    with eval_mode(teacher, *students.values()):
        for i in tqdm(range(0, len(blocks), batch_size), desc="evaluate", disable=not progress, leave=False):
            x = blocks[i:i + batch_size].to(device)
            t_logits = teacher(input_ids=x).logits[:, :-1].float()
            t_top = t_logits.argmax(-1)
            count = t_top.numel()
            for name in names:
                logits = t_logits if name == "teacher" else students[name](input_ids=x).logits[:, :-1].float()
                nll[name] += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                   reduction="sum"))
                agree[name] += float((logits.argmax(-1) == t_top).sum())
                kl[name] += float(forward_kl(logits, t_logits)) * count
            n += count
    return {name: {"heldout_perplexity": math.exp(nll[name] / n), "teacher_top1_agreement": agree[name] / n,
                   "kl_to_teacher": kl[name] / n} for name in names}


@torch.no_grad()
def tokens_per_second(model, blocks: torch.Tensor, batch_size: int = 8, max_batches: int = 4) -> float:
    """Forward-pass throughput (tokens/s) over up to ``max_batches`` batches, after one warm-up batch."""
    device = next(model.parameters()).device
    with eval_mode(model):
        model(input_ids=blocks[:batch_size].to(device))
        synchronize(device)
        start, tokens = time.perf_counter(), 0
        for i in range(0, min(len(blocks), batch_size * max_batches), batch_size):
            x = blocks[i:i + batch_size].to(device)
            model(input_ids=x)
            tokens += x.numel()
        synchronize(device)
    return tokens / (time.perf_counter() - start)
