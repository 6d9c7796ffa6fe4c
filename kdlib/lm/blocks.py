"""Text as token blocks, a cached top-k teacher, and LM metrics. Notebook 05.

* ``token_blocks``: articles tokenised, joined with the end-of-sequence token and cut into fixed-length
  blocks (no padding: every position is a real next-token target).
* ``cache_topk``: the teacher runs once over the training blocks and keeps its top-k log-probabilities and
  the tail mass per position (``kdlib.losses.tokens.TopK``), looked up by block index like ``TeacherCache``
  and stamped like it (``TopKCache``: teacher and blocks fingerprints, one checksum per block), so that
  ``kdlib.lm.steps.topk_kd_step`` refuses a stale cache (another teacher, other tokens). Under several processes
  (``kdlib.core.parallel``) each caches its share of the blocks and every process gets the whole cache.
* training: ``kdlib.core.fit`` on the blocks with a step of ``kdlib.lm.steps`` (plain LM, top-k KD, on-policy
  KD; sequence-level KD trains on the teacher's generated text).
* ``evaluate_lms``: runs the teacher once per held-out batch and every student beside it: perplexity on
  the true text, top-1 agreement with the teacher, exact forward KL(teacher || student) per token.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kdlib.losses.tokens import TopK, forward_kl, topk_from_logits
from kdlib.core.inference import eval_mode
from kdlib.core.parallel import gather_rows, world
from kdlib.core.serving import synchronize
from kdlib.core.teacher_cache import fingerprint, row_checksums
from kdlib.core.validate import check_temperature, values_checked

__all__ = ["token_blocks", "TopKCache", "cache_topk", "summed_nll", "evaluate_lms", "tokens_per_second"]


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


def _whole(name: str, value, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {name}={value!r}")
    return value


@dataclass
class TopKCache(TopK):
    """The ``TopK`` of ``cache_topk``, for whole token blocks (row i is block i), stamped like ``TeacherCache``:
    ``teacher_id`` and ``inputs_id`` are the fingerprints of the teacher and of the blocks
    (``kdlib.core.teacher_cache.fingerprint``), ``rows`` one checksum per block (``row_checksums``), so that a
    step can check the blocks it trains on. Everything else (lookup, ``nbytes``, the losses) is ``TopK``'s."""

    teacher_id: str = ""
    inputs_id: str = ""
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.indices.shape[0]

    def to(self, device) -> "TopKCache":
        moved = super().to(device)
        return TopKCache(moved.log_probs, moved.indices, moved.tail, self.T, self.teacher_id, self.inputs_id,
                         None if self.rows is None else self.rows.to(device))

    def check(self, teacher=None, blocks: torch.Tensor | None = None) -> "TopKCache":
        """Raise ValueError if this cache was built from another teacher or other blocks."""
        how = "rebuild it with cache_topk(teacher, blocks, k) for the teacher and blocks you train with"
        blocks = None if blocks is None else torch.as_tensor(blocks)
        if teacher is not None and fingerprint(teacher) != self.teacher_id:
            raise ValueError(f"stale top-k cache: it was built from teacher {self.teacher_id}, not from this "
                             f"teacher ({fingerprint(teacher)}); {how}")
        if blocks is not None and (tuple(blocks.shape[:1]) != tuple(self.indices.shape[:1])
                                   or fingerprint(blocks) != self.inputs_id):
            raise ValueError(f"stale top-k cache: it holds {len(self)} blocks of tokens {self.inputs_id}, but "
                             f"these blocks are {len(blocks)} ({fingerprint(blocks)}); {how}")
        return self

    def check_batch(self, input_ids: torch.Tensor, idx: torch.Tensor) -> None:
        """Raise if ``idx`` is out of range or the blocks ``input_ids`` are not rows ``idx`` of the blocks this
        cache was built from. Reads on the host, so it runs only while value checks are on
        (``kdlib.core.validate``: the first step of ``fit``, or a step called by hand)."""
        if not values_checked() or not idx.numel():
            return
        if int(idx.min()) < 0 or int(idx.max()) >= len(self):
            raise IndexError(f"block index out of range for a top-k cache of {len(self)} blocks (got "
                             f"{int(idx.min())}..{int(idx.max())}); was it built for other blocks?")
        if self.rows is not None and bool((row_checksums(input_ids) != self.rows[idx]).any()):
            raise ValueError("stale top-k cache: the blocks this step trains on are not the blocks the cache "
                             "was built from (other tokens at the same block index); rebuild it with "
                             "cache_topk(teacher, blocks, k) on the training blocks")


@torch.no_grad()
def cache_topk(teacher, blocks: torch.Tensor, k: int, batch_size: int = 8, T: float = 1.0,
               progress: bool = True, select=None) -> tuple[TopKCache, float]:
    """The teacher's top-k cache for next-token positions 0..L-2 of every block (a ``TopKCache`` stamped with
    the teacher's and the blocks' fingerprints), and its tokens per second (the fingerprints not timed).

    ``select``, when given, is a function ``select(teacher_logits, k) -> (top-k log-probs, ids, log tail mass)``
    (notebook 05's learner-written ``topk_with_tail``, at T = 1) used in place of
    ``kdlib.losses.tokens.topk_from_logits``, so the learner's function builds the cache the student trains on."""
    k, batch_size, T = _whole("k", k), _whole("batch_size", batch_size), check_temperature(T)
    if select is not None and (not callable(select) or T != 1.0):
        raise ValueError(f"select must be a function select(teacher_logits, k) and needs T=1, got {select!r:.60}, "
                         f"T={T}")
    if not isinstance(blocks, torch.Tensor) or blocks.dim() != 2 or blocks.shape[0] < 1 or blocks.shape[1] < 2 \
            or blocks.is_floating_point():
        raise ValueError(f"blocks must be token ids of shape (n_blocks >= 1, block_size >= 2) (token_blocks' "
                         f"output), got {type(blocks).__name__} {tuple(getattr(blocks, 'shape', ()))}")
    vocab = getattr(getattr(teacher, "config", None), "vocab_size", None)
    if isinstance(vocab, int) and k >= vocab:
        raise ValueError(f"k must be smaller than the teacher's vocabulary ({vocab}), got k={k}")
    rank, size = world()  # several processes: each caches blocks rank::size, then all rows are gathered
    mine = blocks[rank::size]
    with eval_mode(teacher):
        device = next(teacher.parameters()).device
        parts = []
        start = time.perf_counter()
        for i in tqdm(range(0, len(mine), batch_size), desc="teacher top-k", disable=not progress, leave=False):
            logits = teacher(input_ids=mine[i:i + batch_size].to(device)).logits[:, :-1]
            parts.append(topk_from_logits(logits, k, T).to("cpu") if select is None else _selected(select, logits, k))
    seconds = time.perf_counter() - start
    log_probs, indices, tail = (gather_rows(torch.cat([getattr(p, name) for p in parts]), len(blocks), rank, size)
                                for name in ("log_probs", "indices", "tail"))
    cache = TopKCache(log_probs, indices, tail, T, fingerprint(teacher), fingerprint(blocks),
                      row_checksums(blocks.cpu()))
    return cache, mine.numel() / seconds


def _selected(select, logits: torch.Tensor, k: int) -> TopK:
    """``select(logits, k)`` as a TopK on the CPU, or ValueError saying what the function returned."""
    out = select(logits, k)
    shape = (*logits.shape[:-1], k)
    if not (isinstance(out, tuple) and len(out) == 3 and all(isinstance(t, torch.Tensor) for t in out)
            and out[0].shape == shape and out[1].shape == shape and out[2].shape == logits.shape[:-1]):
        raise ValueError(f"select(teacher_logits, k) must return (log-probs {shape}, ids {shape}, tail "
                         f"{tuple(logits.shape[:-1])}), got {type(out).__name__}")
    values, ids, tail = out
    return TopK(values.detach().float().cpu(), ids.to(torch.int32).cpu(), tail.detach().float().cpu(), 1.0)


def summed_nll(logits: torch.Tensor, ids: torch.Tensor) -> float:
    """``sum_t -log p(ids[:, t + 1] | ids[:, :t + 1])`` over every next-token position of ``ids`` (B, L), from the
    model's ``logits[:, :-1]`` (B, L - 1, V): the numerator of a held-out perplexity ``exp(sum / positions)``.
    Notebooks 05 (``evaluate_lms``) and 05b (``kdlib.lm.cross.perplexity``)."""
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"))


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
                nll[name] += summed_nll(logits, x)
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
