"""Training a student whose tokenizer is not the teacher's: its own byte-level BPE tokenizer, token blocks aligned
with the teacher's tokenisation of the same text, ULD against a cached teacher, sequence-level KD on re-tokenised
teacher text, and the metrics that compare such students. Notebook 05b (``kdlib.lm.vocab`` decides which case a
pair is in; this module trains the "different" case).

* ``bpe_tokenizer`` (from ``kdlib.lm.load``): the byte-level BPE tokenizer of ``train_own_teacher``, alone.
* ``aligned_blocks``: windows of ``block`` consecutive student tokens inside each text; the teacher tokenises each
  window's text, and ``kdlib.lm.vocab.align_tokens`` says, per student position j, which teacher position has
  read exactly the same characters (``exact[j]``: both tokens end at the same character).
* ``rank_buckets`` / ``uld_topk`` / ``uld_cache`` / ``uld_step``: ULD needs only the *sorted* teacher probabilities,
  so the teacher runs once and keeps, per aligned position, its k largest log-probabilities in decreasing order plus
  the log of the rest (k + 1 rank buckets, ``b``). The student's logits go through the same ``rank_buckets``, and
  ``uld_topk`` is ULD on the top k ranks plus one term for the tails (the tail stays last, never re-sorted)::

      ULD_k(q, p) = sum_{i <= k} |q_(i) - p_(i)| + |sum_{i > k} q_(i) - sum_{i > k} p_(i)|  <=  ULD(q, p)

  a lower bound of the exact ULD (triangle inequality on the tails), equal to it when neither tail crosses the
  other. The step adds the student's own cross-entropy (Boizard et al. 2024, the teacher cut to its top k plus a
  tail as notebook 05's top-k cache does)::

      L = CE(x_{t+1}, q_t) + w * mean_{t exact} ULD_k(q_t, p_{a(t)})     (a(t): the aligned teacher position)

* ``retokenize``: the teacher's continuations of text prompts as the student's tokens (sequence-level KD: prompt
  masked), optionally after the true training rows (whose every token counts).
* ``perplexity`` (in the student's own tokens) and ``text_agreement`` (word by word, against the teacher's text).
* ``align_exercise`` / ``align_exercise_cases``: the reference and fixed cases of notebook 05b's alignment exercise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kdlib.core.inference import eval_mode
from kdlib.core.validate import check_number, values_checked
from kdlib.lm.blocks import summed_nll
from kdlib.lm.generate import Samples
from kdlib.lm.load import bpe_tokenizer
from kdlib.lm.vocab import align_tokens
from kdlib.losses import inputs

__all__ = ["bpe_tokenizer", "AlignedBlocks", "aligned_blocks", "rank_buckets", "uld_topk", "ULDCache", "uld_cache",
           "uld_step",
           "retokenize", "perplexity", "text_agreement", "align_exercise", "align_exercise_cases"]



def _pad_id(tokenizer) -> int:
    """The tokenizer's padding id, else its end-of-sequence id, else 0 (padding is never trained on)."""
    return next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)


@dataclass
class AlignedBlocks:
    """``student_ids`` (n, block); ``teacher_ids`` (n, L_T) right-padded, ``teacher_lengths`` (n,); per student
    position the aligned ``teacher_index`` and ``exact`` (n, block); the window ``texts`` and the character
    ``ends`` (n, block) of the student's tokens in them."""
    student_ids: torch.Tensor
    teacher_ids: torch.Tensor
    teacher_lengths: torch.Tensor
    teacher_index: torch.Tensor
    exact: torch.Tensor
    texts: list[str]
    ends: torch.Tensor

    def __len__(self) -> int:
        return len(self.student_ids)

    def prompts(self, n_tokens: int) -> list[str]:
        """Each window's text up to the end of its ``n_tokens``-th student token (the openings to continue)."""
        n_tokens = inputs.whole("n_tokens", n_tokens, 1, self.ends.shape[1] - 1)
        return [text[:int(end)] for text, end in zip(self.texts, self.ends[:, n_tokens - 1])]


def aligned_blocks(teacher_tokenizer, student_tokenizer, texts: list[str], block: int,
                   max_tokens: int | None = None) -> AlignedBlocks:
    """Cut each text into windows of ``block`` consecutive student tokens (no window crosses two texts; each
    text's remainder is dropped), stop after ``max_tokens`` student tokens, and tokenise each window's text with
    the teacher (no special tokens). ``exact`` marks the student positions where teacher and student have read
    the same characters (``align_tokens``). ValueError when no text fills a block. Notebook 05b."""
    block = inputs.whole("block", block, 2)
    pad = _pad_id(teacher_tokenizer)
    rows = []
    for text in texts:
        enc = student_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        for a in range(0, len(ids) - block + 1, block):
            start = offsets[a - 1][1] if a else 0
            piece = text[start:offsets[a + block - 1][1]]
            s_off = [(max(s - start, 0), e - start) for s, e in offsets[a:a + block]]
            t_enc = teacher_tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True)
            al = align_tokens(piece, t_enc["offset_mapping"], s_off)
            rows.append((ids[a:a + block], t_enc["input_ids"], al, piece, [e for _, e in s_off]))
            if max_tokens is not None and len(rows) * block >= max_tokens:
                break
        if max_tokens is not None and len(rows) * block >= max_tokens:
            break
    if not rows:
        raise ValueError(f"no text holds {block} student tokens: nothing to cut into blocks")
    width = max(len(r[1]) for r in rows)
    teacher_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        teacher_ids[i, :len(r[1])] = torch.tensor(r[1])
    return AlignedBlocks(torch.tensor([r[0] for r in rows]), teacher_ids, torch.tensor([len(r[1]) for r in rows]),
                         torch.stack([r[2].teacher_index for r in rows]), torch.stack([r[2].exact for r in rows]),
                         [r[3] for r in rows], torch.tensor([r[4] for r in rows]))


def rank_buckets(logits: torch.Tensor, k: int, T: float = 1.0) -> torch.Tensor:
    """``(..., k + 1)`` log-probabilities: the k largest of ``log_softmax(logits / T)`` in decreasing order, then
    ``log sum`` of the rest (one tail bucket). Differentiable (the student's side of the cached ULD); ``k`` below
    the vocabulary. Notebook 05b."""
    inputs.tensor("logits", logits, layout="(..., vocab)")
    k = inputs.whole("k", k, 1, logits.shape[-1] - 1, hint="k tokens plus a tail bucket of at least one token")
    log_p = F.log_softmax(inputs.up(logits) / T, dim=-1)
    values, idx = log_p.topk(k, dim=-1)
    tail = torch.logsumexp(log_p.scatter(-1, idx, float("-inf")), -1, keepdim=True)
    return torch.cat([values, tail.clamp_min(math.log(torch.finfo(torch.float32).tiny))], -1)


def uld_topk(student_buckets: torch.Tensor, teacher_buckets: torch.Tensor, mask: torch.Tensor | None = None
             ) -> torch.Tensor:
    """``ULD_k``: ``sum_b |exp(s_b) - exp(t_b)|`` over two ``rank_buckets`` vectors (``(..., k + 1)`` log-probs, top k
    in decreasing order then the tail), mean over unmasked positions: ULD on the top k ranks plus one tail term, a
    lower bound of ``kdlib.losses.uld.uld_loss`` on the full distributions (module docstring). Gradients reach the
    student only. Notebook 05b's ULD student trains on it."""
    inputs.tensor("student_buckets", student_buckets, layout="(..., k + 1)")
    inputs.tensor("teacher_buckets", teacher_buckets, layout="(..., k + 1)")
    inputs.pair("student_buckets", student_buckets, "teacher_buckets", teacher_buckets,
                hint="both must come from rank_buckets with the same k, at the same positions")
    m = inputs.mask("mask", mask, student_buckets.shape[:-1], student_buckets.device, "token position")
    inputs.some("mask", m)
    q = inputs.keep(inputs.up(student_buckets), m).exp()
    p = inputs.keep(inputs.up(teacher_buckets.detach()), m).exp().to(q.dtype)
    return inputs.masked_mean((q - p).abs().sum(-1), m)


@dataclass
class ULDCache:
    """The teacher's ``rank_buckets`` at the student positions 0..block-2 of every aligned block (``log_probs``
    (n, block - 1, k + 1)), ``mask`` (n, block - 1): exact positions, and the blocks' ``student_ids``, so a step
    can check that it trains on the rows the cache was built for."""
    log_probs: torch.Tensor
    mask: torch.Tensor
    student_ids: torch.Tensor

    def to(self, device) -> "ULDCache":
        return ULDCache(self.log_probs.to(device), self.mask.to(device), self.student_ids.to(device))


@torch.no_grad()
def uld_cache(teacher, blocks: AlignedBlocks, k: int, batch_size: int = 8, progress: bool = True) -> ULDCache:
    """Run the teacher once over the blocks' teacher tokens and keep, at each student position t < block - 1, the
    ``rank_buckets(teacher_logits[a(t)], k)`` of its aligned teacher position ``a(t)`` (``teacher_index``); the
    mask is ``exact[:, :-1]``. Rows are right-padded, so the causal mask alone keeps real tokens from padding.
    Notebook 05b."""
    if not isinstance(blocks, AlignedBlocks):
        raise ValueError(f"blocks must be the AlignedBlocks of aligned_blocks(...), got {type(blocks).__name__}")
    device = next(teacher.parameters()).device
    parts = []
    with eval_mode(teacher):
        for i in tqdm(range(0, len(blocks), batch_size), desc="teacher ULD cache", disable=not progress, leave=False):
            width = int(blocks.teacher_lengths[i:i + batch_size].max())
            logits = teacher(input_ids=blocks.teacher_ids[i:i + batch_size, :width].to(device)).logits
            index = blocks.teacher_index[i:i + batch_size, :-1].clamp_min(0).to(device)
            gathered = logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))
            parts.append(rank_buckets(gathered, k).cpu())
    return ULDCache(torch.cat(parts), blocks.exact[:, :-1].clone(), blocks.student_ids.clone())


def uld_step(cache: ULDCache, weight: float = 1.0, loss=None):
    """The step for ``fit(student, blocks.student_ids, uld_step(cache), ...)``: the student's cross-entropy on the
    true next tokens plus ``weight`` times ``uld_topk`` between its ``rank_buckets`` and the cached teacher's, at the
    exact positions (module docstring). Returns ``(loss, {"ce", "uld"})``. ``loss``, when given, replaces
    ``uld_topk``: ``loss(student_buckets, teacher_buckets, mask)`` on the k + 1 bucket log-probs. While value checks
    are on (the first step) the rows trained on must be the cache's rows ``idx``. Notebook 05b."""
    if not isinstance(cache, ULDCache):
        raise ValueError(f"cache must be the ULDCache of uld_cache(teacher, blocks, k), got {type(cache).__name__}")
    weight = check_number("weight", weight, low=0.0, hint="the weight of ULD beside the cross-entropy")
    if loss is not None and not callable(loss):
        raise ValueError(f"loss must be a function loss(student_buckets, teacher_buckets, mask), got {loss!r:.60}")
    fn, k, on_device = loss or uld_topk, cache.log_probs.shape[-1] - 1, {}

    def step(model, input_ids, idx):
        if idx.device not in on_device:
            on_device[idx.device] = cache.to(idx.device)
        c = on_device[idx.device]
        if values_checked() and not torch.equal(c.student_ids[idx], input_ids):
            raise ValueError("the rows this step trains on are not the rows the ULD cache was built for; train on "
                             "blocks.student_ids of the AlignedBlocks given to uld_cache")
        logits = model(input_ids=input_ids).logits[:, :-1]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), input_ids[:, 1:].reshape(-1))
        distance = fn(rank_buckets(logits, k), c.log_probs[idx], c.mask[idx])
        return ce + weight * distance, {"ce": ce, "uld": distance}
    return step


def retokenize(tokenizer, prompts: list[str], completions: list[str], length: int,
               true_rows: torch.Tensor | None = None) -> Samples:
    """``prompt + completion`` (the teacher's text) as the student's tokens, cut at ``length`` and right-padded,
    packed for ``kdlib.lm.steps.sequence_kd_step``: ``completion_mask`` 1 on the tokens that end inside the
    completion (a token straddling the boundary counts as completion), 0 on the prompt and padding. With
    ``true_rows`` ((m, length) token ids), those rows come first with every token counted, so one ``fit`` mixes
    true text and teacher text. Notebook 05b."""
    length = inputs.whole("length", length, 2)
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(f"give one completion per prompt: {len(prompts)} prompts, {len(completions)} completions")
    pad = _pad_id(tokenizer)
    n_true = 0 if true_rows is None else len(true_rows)
    n = n_true + len(prompts)
    ids = torch.full((n, length), pad, dtype=torch.long)
    attn, comp = torch.zeros(n, length, dtype=torch.long), torch.zeros(n, length, dtype=torch.long)
    if true_rows is not None:
        if true_rows.dim() != 2 or true_rows.shape[1] != length:
            raise ValueError(f"true_rows must have shape (m, {length}), got {tuple(true_rows.shape)}")
        ids[:n_true], attn[:n_true], comp[:n_true] = true_rows, 1, 1
    for r, (p, c) in enumerate(zip(prompts, completions), n_true):
        enc = tokenizer(p + c, add_special_tokens=False, return_offsets_mapping=True)
        got = enc["input_ids"][:length]
        ids[r, :len(got)] = torch.tensor(got)
        attn[r, :len(got)] = 1
        comp[r, :len(got)] = torch.tensor([int(e > len(p)) for _, e in enc["offset_mapping"][:length]])
    return Samples(ids, attn, comp, [-1] * n_true + list(range(len(prompts))),
                   [""] * n_true + list(completions))


@torch.no_grad()
def perplexity(model, blocks: torch.Tensor, batch_size: int = 8) -> float:
    """``exp`` of the mean next-token cross-entropy over every position of ``blocks`` (token ids in the model's
    own tokenizer): comparable between models that share a tokenizer only. Notebook 05b."""
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(blocks), batch_size):
            x = blocks[i:i + batch_size].to(device)
            logits = model(input_ids=x).logits[:, :-1].float()
            nll += summed_nll(logits, x)
            count += x[:, 1:].numel()
    return math.exp(nll / count)


def text_agreement(reference: list[str], texts: list[str], words: int = 16) -> float:
    """Mean over pairs of the share of the reference's first ``words`` words (whitespace-split) that ``texts``
    repeats at the same word position: 1 for identical continuations, 0 when no word lines up. Compares text,
    so it works across tokenizers (notebook 05b: students against the teacher's greedy continuations)."""
    words = inputs.whole("words", words, 1)
    if len(reference) != len(texts) or not reference:
        raise ValueError(f"give one text per reference: {len(reference)} references, {len(texts)} texts")
    scores = []
    for ref, text in zip(reference, texts):
        r, t = ref.split()[:words], text.split()[:words]
        scores.append(sum(a == b for a, b in zip(r, t)) / len(r) if r else float(not t))
    return sum(scores) / len(scores)


def align_exercise(text: str, teacher_offsets, student_offsets) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference of notebook 05b's alignment exercise: ``align_tokens``' ``(teacher_index, exact)``."""
    a = align_tokens(text, teacher_offsets, student_offsets)
    return a.teacher_index, a.exact


def align_exercise_cases() -> list[tuple]:
    """Fixed ``(text, teacher_offsets, student_offsets)`` cases: words against characters, byte-level spans that
    include the leading space, a student token ending before the teacher's first (index -1), identical
    tokenisations, a coarser student, and multi-space text."""
    return [("the cat sat", [(0, 3), (3, 7), (7, 11)], [(0, 1), (1, 2), (2, 3), (3, 4), (4, 7), (7, 9), (9, 11)]),
            ("Ad sales boost", [(0, 2), (2, 8), (8, 14)], [(0, 1), (1, 2), (2, 5), (5, 8), (8, 14)]),
            ("unbelievable news", [(0, 6), (6, 12), (12, 17)], [(0, 2), (2, 12), (12, 14), (14, 17)]),
            ("a b c", [(0, 1), (1, 3), (3, 5)], [(0, 1), (1, 3), (3, 5)]),
            ("time warner profit", [(0, 2), (2, 4), (4, 11), (11, 18)], [(0, 11), (11, 18)]),
            ("x  y\n\nz", [(0, 1), (1, 4), (4, 6), (6, 7)], [(0, 1), (1, 2), (2, 4), (4, 5), (5, 7)])]
