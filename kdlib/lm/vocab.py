"""Teacher and student with different vocabularies: which case applies, and the tools each case needs. Notebook
05b. ``kdlib.lm.students.check_vocab`` refuses a mismatch; this module says what to do next.

The decision tree (``vocab_case``, drawn by ``describe_case``): same token-to-id table and the same number of
embedding rows: **identical** (KD on the full logits). Same table, different rows (an embedding matrix padded to a
multiple of 64): **padding_only** (``truncate_padded``, refused unless ``padding_mass`` is negligible). Else, when
at least ``min_share`` of the smaller vocabulary's strings are shared: **shared_subset** (``shared_vocab``, then KD
over the shared tokens plus one tail bucket, ``bucket_logprobs`` / ``shared_topk``). Else: **different** (ULD,
``kdlib.losses.uld.uld_loss``, at positions aligned by ``align_tokens``, or sequence-level KD on re-tokenised
teacher text). ``check_vocab_map`` checks an explicit student-to-teacher id map (in range, injective).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_number, check_temperature
from kdlib.losses import TopK, inputs

__all__ = ["padding_mass", "truncate_padded", "shared_vocab", "bucket_logprobs", "shared_vocab_mass", "shared_topk",
           "check_vocab_map", "Alignment", "align_tokens", "align_tokenizers", "VocabCase", "vocab_case",
           "describe_case", "CASES"]

CASES = {"identical": "kd on full logits", "padding_only": "truncate padded rows then kd",
         "shared_subset": "kd over shared tokens + one tail bucket",
         "different": "ULD or sequence-level KD on re-tokenised teacher text"}
FLOATISH = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool)


def _log_probs(teacher_logits, T: float) -> torch.Tensor:
    inputs.tensor("teacher_logits", teacher_logits, layout="(..., vocab)")
    inputs.finite("teacher_logits", teacher_logits)
    return F.log_softmax(inputs.up(teacher_logits.detach()) / check_temperature(T), dim=-1)


def _mean(per_position: torch.Tensor, mask) -> float:
    m = inputs.mask("mask", mask, per_position.shape, per_position.device)
    inputs.some("mask", m)
    return float(inputs.masked_mean(per_position, m))


def _padded(teacher_logits, n_shared, T) -> torch.Tensor:
    log_p = _log_probs(teacher_logits, T)
    n = inputs.whole("n_shared", n_shared, 1, log_p.shape[-1], hint="the number of real tokens (the tokenizer's "
                     "size), at most the logits' last axis")
    return torch.logsumexp(log_p[..., n:], -1).exp() if n < log_p.shape[-1] else log_p.new_zeros(log_p.shape[:-1])


def padding_mass(teacher_logits: torch.Tensor, n_shared: int, mask: torch.Tensor | None = None,
                 T: float = 1.0) -> float:
    """Mean over (unmasked) positions of ``sum_{v >= n_shared} softmax(teacher / T)_v``: the probability the
    teacher puts on the padded rows of its embedding matrix (ids no tokenizer produces; ~0 for a trained model).
    Notebook 05b measures it for the padded SmolLM2 teacher."""
    return _mean(_padded(teacher_logits, n_shared, T), mask)


def truncate_padded(teacher_logits: torch.Tensor, n_shared: int, tol: float = 1e-4, T: float = 1.0) -> torch.Tensor:
    """``teacher_logits[..., :n_shared]``: the logits of the real tokens, renormalised by the next softmax (a KD
    loss changes by about the padded mass). Refused (ValueError naming the mass and ``tol``) when at some position
    the padded mass ``sum_{v >= n_shared} p_v`` exceeds ``tol``: those rows are not padding, and dropping them
    would change the teacher. Notebook 05b."""
    tol = check_number("tol", tol, 0.0, 1.0, hint="the largest padded probability mass that may be dropped")
    per_position = _padded(teacher_logits, n_shared, T)
    worst = float(per_position.max())
    if worst > tol:
        raise ValueError(f"the teacher puts probability {worst:.3g} (mean {float(per_position.mean()):.3g}) on ids "
                         f">= {n_shared}, more than tol={tol:g}: those rows are not unused padding, and truncating "
                         "them would change the teacher's distribution. Check n_shared (the tokenizer's size) and "
                         "that the logits come from this teacher, or distil over shared tokens with a tail bucket")
    return teacher_logits[..., :n_shared]


def _vocab(name: str, tokenizer) -> dict:
    vocab = tokenizer if isinstance(tokenizer, dict) else getattr(tokenizer, "get_vocab", lambda: None)()
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{name} must be a tokenizer with get_vocab() (or a non-empty dict token -> id), got "
                         f"{type(tokenizer).__name__}")
    return vocab


def shared_vocab(teacher_tokenizer, student_tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The token strings both vocabularies hold (``get_vocab()`` keys compared verbatim, so byte-level BPE's
    ``"Ġthe"`` and SentencePiece's ``"▁the"`` differ) as two aligned LongTensors ``(teacher_ids, student_ids)``,
    in the teacher's id order: ``teacher_ids[i]`` and ``student_ids[i]`` are one string. ValueError when no token
    is shared. Notebook 05b."""
    tv, sv = _vocab("teacher_tokenizer", teacher_tokenizer), _vocab("student_tokenizer", student_tokenizer)
    shared = sorted(tv.keys() & sv.keys(), key=tv.__getitem__)
    if not shared:
        raise ValueError(f"the tokenizers share no token: the teacher's {len(tv)} tokens (e.g. {sorted(tv)[:3]}) "
                         f"and the student's {len(sv)} (e.g. {sorted(sv)[:3]}) have no string in common, so no logit "
                         "can be matched; use ULD (kdlib.losses.uld_loss) or sequence-level KD on re-tokenised text")
    return torch.tensor([tv[t] for t in shared]), torch.tensor([sv[t] for t in shared])


def _ids(name: str, ids, n: int, what: str = "the teacher's vocabulary") -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or not ids.numel() or ids.dtype in FLOATISH:
        raise ValueError(f"{name} must be a non-empty 1-D integer tensor of token ids (from shared_vocab), got "
                         f"{ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__} of shape "
                         f"{tuple(getattr(ids, 'shape', ()))}")
    bad = ((ids < 0) | (ids >= n)).nonzero().flatten()[:5]
    if len(bad):
        raise ValueError(f"{name} must lie in [0, {n}) ({what}), got {ids[bad].tolist()} at "
                         f"entries {bad.tolist()}")
    if len(ids.unique()) != len(ids):
        raise ValueError(f"{name} repeats ids: a token counted twice would count its mass twice; pass unique ids")
    return ids.long()


def bucket_logprobs(teacher_logits: torch.Tensor, teacher_ids: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Teacher log-probabilities over ``n + 1`` buckets, ``(..., n + 1)``: ``log p_v`` for the n shared ids
    ``teacher_ids`` (in their order), then ``log sum_{v not shared} p_v`` ("everything else", clamped at the
    float32 ``log(tiny)`` when no mass is left), ``p = softmax(teacher / T)``. The exponentials sum to 1: the
    top-k cache's tail bucket on a shared vocabulary. Notebook 05b."""
    log_p = _log_probs(teacher_logits, T)
    ids = _ids("teacher_ids", teacher_ids, log_p.shape[-1]).to(log_p.device)
    tail = torch.logsumexp(log_p.index_fill(-1, ids, float("-inf")), -1, keepdim=True)
    return torch.cat([log_p[..., ids], tail.clamp_min(math.log(torch.finfo(torch.float32).tiny))], -1)


def shared_vocab_mass(teacher_logits: torch.Tensor, teacher_ids: torch.Tensor, mask: torch.Tensor | None = None,
                      T: float = 1.0) -> float:
    """Mean over (unmasked) positions of ``sum_{v in teacher_ids} softmax(teacher / T)_v``: the share of the
    teacher's probability a shared-vocabulary loss can match token by token (1 minus the tail bucket). Notebook 05b."""
    log_p = _log_probs(teacher_logits, T)
    ids = _ids("teacher_ids", teacher_ids, log_p.shape[-1]).to(log_p.device)
    return _mean(torch.logsumexp(log_p[..., ids], -1).exp(), mask)


def shared_topk(teacher_logits: torch.Tensor, teacher_ids: torch.Tensor, student_ids: torch.Tensor, n_student: int,
                T: float = 1.0) -> TopK:
    """``bucket_logprobs`` packed as a ``TopK`` cache whose indices are the *student's* ids of the shared tokens,
    so ``kdlib.losses.topk_loss(student_logits, cache)`` is ``T^2 * KL`` over the shared tokens plus one tail
    bucket (the student's tail: its mass outside the shared tokens). The student needs a token outside the
    shared set (``len(student_ids) < n_student``), else it has no tail to match. Notebook 05b."""
    buckets = bucket_logprobs(teacher_logits, teacher_ids, T)
    n_student = inputs.whole("n_student", n_student, 1)
    student_ids = _ids("student_ids", student_ids, n_student, "the student's vocabulary")
    if len(student_ids) != len(teacher_ids):
        raise ValueError(f"student_ids has {len(student_ids)} ids and teacher_ids {len(teacher_ids)}; pass the two "
                         "aligned tensors shared_vocab returns")
    if len(student_ids) >= n_student:
        raise ValueError(f"every one of the student's {n_student} tokens is shared, so the student has no tail "
                         "bucket to match the teacher's; gather teacher_logits[..., vocab_map] (teacher renormalised "
                         "over the shared tokens) and use kdlib.losses.forward_kl instead")
    idx = student_ids.to(torch.int32).to(buckets.device).expand(*buckets.shape[:-1], -1)
    return TopK(buckets[..., :-1], idx, buckets[..., -1], check_temperature(T))


def check_vocab_map(vocab_map: torch.Tensor, n_student: int, n_teacher: int) -> torch.Tensor:
    """``vocab_map`` (LongTensor ``(n_student,)``: for each student id, the teacher id of the same token, used as
    ``teacher_logits[..., vocab_map]``) unchanged, or ValueError naming the offending student ids: wrong shape or
    dtype, a teacher id outside ``[0, n_teacher)``, or two student ids on one teacher id (not injective: that
    token's mass would count twice). Notebook 05b."""
    if not isinstance(vocab_map, torch.Tensor) or vocab_map.dtype in FLOATISH:
        raise ValueError(f"vocab_map must be an integer torch.Tensor (torch.long), got "
                         f"{getattr(vocab_map, 'dtype', type(vocab_map).__name__)}")
    if tuple(vocab_map.shape) != (n_student,):
        raise ValueError(f"vocab_map must have shape ({n_student},), one teacher id per student token, got "
                         f"{tuple(vocab_map.shape)}")
    bad = ((vocab_map < 0) | (vocab_map >= n_teacher)).nonzero().flatten()
    if len(bad):
        raise ValueError(f"vocab_map points outside the teacher's vocabulary [0, {n_teacher}): student ids "
                         f"{bad[:5].tolist()} map to {vocab_map[bad[:5]].tolist()}" + (" ..." if len(bad) > 5 else ""))
    values, counts = vocab_map.unique(return_counts=True)
    if bool((counts > 1).any()):
        t = int(values[counts > 1][0])
        raise ValueError(f"vocab_map is not injective: student ids {(vocab_map == t).nonzero().flatten().tolist()} all "
                         f"map to teacher id {t} ({int((counts > 1).sum())} teacher id(s) hit twice or more); "
                         "map each student token to its own teacher token (build it with shared_vocab)")
    return vocab_map


@dataclass
class Alignment:
    """Per student token: ``teacher_index``, the last teacher token ending at or before it (-1: none), ``exact``
    (both end at the same character: they predict the same text), and the ids when built by ``align_tokenizers``."""
    teacher_index: torch.Tensor
    exact: torch.Tensor
    teacher_ids: torch.Tensor | None = None
    student_ids: torch.Tensor | None = None


def _spans(name: str, offsets, text: str) -> list[tuple[int, int]]:
    spans = [tuple(int(x) for x in o) for o in (offsets.tolist() if isinstance(offsets, torch.Tensor) else offsets)]
    if not spans or any(len(o) != 2 for o in spans):
        raise ValueError(f"{name} must be a non-empty list of (start, end) character spans, got {offsets!r:.80}")
    for i, (s, e) in enumerate(spans):
        if not 0 <= s <= e <= len(text):
            raise ValueError(f"{name}[{i}] = ({s}, {e}) lies outside the text of {len(text)} characters: the offsets "
                             "were computed for a different text")
        if i and e < spans[i - 1][1]:
            raise ValueError(f"{name}[{i}] ends at {e}, before token {i - 1} (at {spans[i - 1][1]}): spans must be in "
                             "text order; tokenise without special tokens (add_special_tokens=False)")
    return spans


def align_tokens(text: str, teacher_offsets, student_offsets) -> Alignment:
    """Align two tokenisations of ``text`` by character: for student token j ending at character ``e_j``,
    ``teacher_index[j] = max{i : end_i <= e_j}`` (-1 if none) and ``exact[j] = (end_i == e_j)``. At exact
    positions teacher and student have read the same text and predict the same continuation, which ULD compares:
    ``uld_loss(student_logits, teacher_logits[teacher_index.clamp_min(0)], mask=exact)``. Offsets are (start, end) pairs
    (``return_offsets_mapping=True``); tokenisations that cover different text (one ends past or before the
    other, beyond whitespace) raise. Notebook 05b has it written as an exercise."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty string, got {text!r:.80}")
    t_spans = _spans("teacher_offsets", teacher_offsets, text)
    s_spans = _spans("student_offsets", student_offsets, text)
    t_end, s_end = t_spans[-1][1], s_spans[-1][1]
    if text[min(t_end, s_end):max(t_end, s_end)].strip():
        raise ValueError(f"the tokenisations cover different text: the teacher's tokens end at character {t_end}, "
                         f"the student's at {s_end} ({text[min(t_end, s_end):max(t_end, s_end)]!r:.60} is read by "
                         "one only); tokenise the same string with both tokenizers")
    ends = [e for _, e in t_spans]
    index = [bisect.bisect_right(ends, e) - 1 for _, e in s_spans]
    exact = [i >= 0 and ends[i] == e for i, (_, e) in zip(index, s_spans)]
    return Alignment(torch.tensor(index), torch.tensor(exact))


def align_tokenizers(teacher_tokenizer, student_tokenizer, text: str, student_text: str | None = None) -> Alignment:
    """Tokenise ``text`` with both (fast) tokenizers, without special tokens, and ``align_tokens`` the results;
    the ids come back in the ``Alignment``. ``student_text``, when given, must equal ``text`` (a teacher generation
    re-tokenised for the student): a difference raises naming its first character. Notebook 05b."""
    if student_text is not None and student_text != text:
        i = next((k for k, (a, b) in enumerate(zip(text, student_text)) if a != b), min(len(text), len(student_text)))
        raise ValueError(f"the texts differ from character {i}: teacher {text[i:i + 20]!r}, student "
                         f"{student_text[i:i + 20]!r}; alignment needs one text read by both tokenizers")
    encoded = []
    for name, tok in (("teacher_tokenizer", teacher_tokenizer), ("student_tokenizer", student_tokenizer)):
        try:
            encoded.append(tok(text, add_special_tokens=False, return_offsets_mapping=True))
        except (NotImplementedError, TypeError) as err:
            raise ValueError(f"{name} cannot return character offsets ({err}); use a fast tokenizer") from err
    alignment = align_tokens(text, encoded[0]["offset_mapping"], encoded[1]["offset_mapping"])
    alignment.teacher_ids, alignment.student_ids = (torch.tensor(e["input_ids"]) for e in encoded)
    return alignment


@dataclass
class VocabCase:
    """``vocab_case``'s answer: ``case`` (a key of ``CASES``), the advised ``loss``, and the numbers behind it (table
    sizes, embedding rows, shared strings and their share of the smaller table and of the student's, ``min_share``)."""
    case: str
    loss: str
    teacher_tokens: int
    student_tokens: int
    teacher_rows: int
    student_rows: int
    shared: int
    share: float
    min_share: float
    student_share: float


def vocab_case(teacher_tokenizer, student_tokenizer, teacher_vocab_size: int | None = None,
               student_vocab_size: int | None = None, min_share: float = 0.5) -> VocabCase:
    """Which case of the module's decision tree applies: ``identical`` (same token -> id table, same rows),
    ``padding_only`` (same table, rows differ), ``shared_subset`` (tables differ but ``shared / min(|V_T|, |V_S|)
    >= min_share``), else ``different``. ``*_vocab_size``: the models' embedding rows
    (``kdlib.lm.students.model_vocab_size``), default the tokenizer's id count. Notebook 05b; ``describe_case``
    draws the tree."""
    min_share = check_number("min_share", min_share, 0.0, 1.0, low_open=True)
    tv, sv = _vocab("teacher_tokenizer", teacher_tokenizer), _vocab("student_tokenizer", student_tokenizer)
    rows = []
    for name, vocab, size in (("teacher", tv, teacher_vocab_size), ("student", sv, student_vocab_size)):
        ids = max(vocab.values()) + 1
        size = ids if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < ids:
            raise ValueError(f"{name}_vocab_size must be a whole number >= the {ids} ids its tokenizer produces (the "
                             f"model's embedding rows), got {size!r}")
        rows.append(size)
    shared = len(tv.keys() & sv.keys())
    share = shared / min(len(tv), len(sv))
    case = ("identical" if rows[0] == rows[1] else "padding_only") if tv == sv else (
        "shared_subset" if share >= min_share else "different")
    return VocabCase(case, CASES[case], len(tv), len(sv), rows[0], rows[1], shared, share, min_share, shared / len(sv))


def describe_case(case: VocabCase | None = None) -> str:
    """The decision tree as ASCII art; with ``case``, its numbers above and its leaf marked. Notebook 05 prints it."""
    share = f">= {case.min_share:.0%}" if case else ">= 50%"
    lines = ["Same token -> id table in both tokenizers?",
             "|-- yes: same number of embedding rows in both models?",
             "|   |-- yes ........ identical      -> " + CASES["identical"],
             "|   `-- no ......... padding_only   -> " + CASES["padding_only"],
             f"`-- no: are {share} of the smaller vocabulary's tokens shared?",
             "    |-- yes ........ shared_subset  -> " + CASES["shared_subset"],
             "    `-- no ......... different      -> " + CASES["different"]]
    if case is None:
        return "\n".join(lines)
    head = (f"teacher: {case.teacher_tokens} tokens, {case.teacher_rows} rows; student: {case.student_tokens} tokens, "
            f"{case.student_rows} rows; shared: {case.shared} ({case.share:.1%} of the smaller vocabulary)")
    return "\n".join([head] + [f"{line}  <== this pair" if f" {case.case} " in line else line for line in lines])
