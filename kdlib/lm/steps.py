"""Training steps for causal LMs on token blocks: plain LM, token-level KD on cached top-k teacher logits,
sequence-level KD on teacher-written text, and on-policy KD (GKD) on the student's own samples.
Notebook 05 (and the own-teacher fallback of ``kdlib.lm.load``).

A step is ``step(model, input_ids, idx) -> loss`` for ``kdlib.core.fit``: ``input_ids`` are the rows ``idx``
of the training tensor, already on the model's device. Hyperparameters are checked when a step is built;
teacher outputs move to the training device once, on the first step.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from kdlib.core.serving import synchronize
from kdlib.core.validate import check_number, check_temperature
from kdlib.core.teacher_cache import by_index
from kdlib.lm.blocks import TopKCache
from kdlib.lm.generate import Samples, generate
from kdlib.losses.tokens import TopK, bucket_log_probs, completion_loss, generalized_jsd, topk_loss

__all__ = ["lm_step", "topk_kd_step", "sequence_kd_step", "on_policy_kd_step"]


def _whole(name: str, value, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {name}={value!r}")
    return value


def lm_step(model, input_ids: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Plain language modelling: cross-entropy of each next token, mean over tokens."""
    logits = model(input_ids=input_ids).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), input_ids[:, 1:].reshape(-1))


def topk_kd_step(cache: TopK, kind: str = "forward", alpha: float = 0.0, teacher=None,
                 blocks: torch.Tensor | None = None, loss=None):
    """Token-level KD on cached top-k teacher log-probs (``kdlib.losses.tokens.topk_loss``), plus ``alpha`` times
    the plain LM loss on the true next tokens::

        L = alpha * CE(x_{t+1}, q_t) + (1 - alpha) * D(p_topk_t || q_t)   (mean over next-token positions t)

    ``D`` is the forward KL, reverse KL or scaled JSD (``kind``) over the teacher's k + 1 buckets (top k and
    tail); ``cache[idx]`` holds the teacher for the blocks ``idx``. ``alpha = 0`` (the default) is pure KD: the
    true next token never enters the loss (notebook 05's student (b)). The cache moves to the training device
    on the first step.

    A stale cache raises ValueError: with ``teacher`` and/or ``blocks`` given, the cache of ``cache_topk`` (a
    ``kdlib.lm.blocks.TopKCache``) is checked against their fingerprints when the step is built; and while value
    checks are on (the first step of ``fit``, or a call by hand) every call checks that the blocks it trains on
    are the cache's rows ``idx`` (one checksum per block). Later steps read nothing on the host.

    ``loss``, when given, replaces ``D``: a function ``loss(student_logits, teacher_logits, mask)`` over the last
    dimension, such as notebook 05's learner-written ``forward_kl``. It receives the k + 1 bucket log-probs of
    student and teacher (``kdlib.losses.tokens.bucket_log_probs``; log-probs are valid logits) and an all-ones
    mask, so a learner's function trains the student and a wrong one shows in the results."""
    if not isinstance(cache, TopK):
        raise ValueError(f"cache must be the top-k cache of cache_topk(teacher, blocks, k) (a TopK), got "
                         f"{type(cache).__name__}")
    alpha = check_number("alpha", alpha, 0.0, 1.0, hint="alpha is the weight of the plain LM loss")
    if loss is not None and not callable(loss):
        raise ValueError(f"loss must be a function loss(student_logits, teacher_logits, mask), got {loss!r:.60}")
    if kind not in ("forward", "reverse", "jsd"):
        raise ValueError(f"kind must be 'forward', 'reverse' or 'jsd', got {kind!r}")
    if cache.indices.dim() != 3:
        raise ValueError(f"cache must hold (n_blocks, block_size - 1, k) entries, got indices of shape "
                         f"{tuple(cache.indices.shape)}; build it with cache_topk(teacher, blocks, k)")
    if isinstance(cache, TopKCache):
        cache.check(teacher, blocks)
    elif teacher is not None or blocks is not None:
        raise ValueError("this TopK carries no teacher or blocks fingerprint to check; build it with "
                         "cache_topk(teacher, blocks, k), or leave teacher and blocks out")
    on_device = {}

    def step(model, input_ids, idx):
        logits = model(input_ids=input_ids).logits[:, :-1]
        if idx.device not in on_device:
            on_device[idx.device] = cache.to(idx.device)
        teacher_topk = on_device[idx.device]
        if isinstance(teacher_topk, TopKCache):
            teacher_topk.check_batch(input_ids, idx)  # a no-op while value checks are off
        if loss is None:
            kd = topk_loss(logits, teacher_topk[idx], kind=kind)
        else:
            teacher_buckets, student_buckets = bucket_log_probs(logits, teacher_topk[idx])
            kd = loss(student_buckets, teacher_buckets, torch.ones(logits.shape[:-1], device=logits.device))
        if alpha:
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), input_ids[:, 1:].reshape(-1))
            kd = alpha * ce + (1 - alpha) * kd
        return kd
    return step


def sequence_kd_step(samples: Samples):
    """Sequence-level KD (Kim and Rush 2016): next-token cross-entropy on the teacher's generated completions,
    prompt and padding masked; the student imitates what the teacher *says*. Notebook 05, student (c).

    ``samples`` are the teacher's ``kdlib.lm.generate.generate`` output packed to the left with
    ``kdlib.lm.generate.pack_right`` (prompt, completion, then padding); train with
    ``fit(student, samples.input_ids, sequence_kd_step(samples), ...)``: the step receives the rows ``idx`` and
    looks their completion mask up by ``idx``::

        L = - sum_{i, t} c_{i, t+1} log q(x_{i, t+1} | x_{i, <=t}) / sum_{i, t} c_{i, t+1}

    with ``c`` the completion mask: the mean over the batch's completion tokens (the teacher's end-of-sequence
    token included), not over sequences (``kdlib.losses.tokens.completion_loss``). Rows are right-padded, so
    the causal mask alone keeps every real token from seeing padding and no attention mask is passed: the
    model's forward reads nothing on the host. The completion mask moves to the training device once."""
    if not isinstance(samples, Samples):
        raise ValueError(f"samples must be the Samples of kdlib.lm.generate.generate packed with pack_right, got "
                         f"{type(samples).__name__}")
    ids, attn, comp = samples.input_ids, samples.attention_mask, samples.completion_mask
    if ids.dim() != 2 or attn.shape != ids.shape or comp.shape != ids.shape:
        raise ValueError(f"samples need input_ids, attention_mask and completion_mask of one shape (n, L); got "
                         f"{tuple(ids.shape)}, {tuple(attn.shape)}, {tuple(comp.shape)}")
    if bool((attn[:, 1:] > attn[:, :-1]).any()):
        raise ValueError("the samples are left-padded (generate's output); pack them first: "
                         "sequence_kd_step(pack_right(samples)) and fit(student, packed.input_ids, ...)")
    if not bool(comp[:, 1:].any()):
        raise ValueError("the samples have no completion tokens: the teacher generated nothing to learn from")
    completion = by_index(comp)

    def step(model, input_ids, idx):
        return completion_loss(model(input_ids=input_ids).logits, input_ids, completion(idx))
    return step


def on_policy_kd_step(teacher, tokenizer, prompt_len: int, max_new_tokens: int, beta: float = 0.5,
                      temperature: float = 1.0, loss=None, timings: dict | None = None):
    """On-policy KD (GKD, Agarwal et al. 2024): the student samples its own continuations of each block's first
    ``prompt_len`` tokens, the teacher scores every token of them, and the student minimises the generalized
    JSD on the generated tokens. Notebook 05, student (d). With ``m = beta p + (1 - beta) q`` (``p`` the
    teacher, ``q`` the student, at each generated position)::

        L = mean over generated tokens of (beta KL(p || m) + (1 - beta) KL(q || m)) / (beta (1 - beta))

    (``kdlib.losses.tokens.generalized_jsd``: beta = 0 is forward KL, beta = 1 reverse KL). Gradients flow
    through the student's scoring pass only; sampling and the teacher are constants. Use with
    ``fit(student, blocks, on_policy_kd_step(teacher, tokenizer, ...), ...)``; the teacher must be on the
    training device. Each step samples ``max_new_tokens`` tokens at ``temperature`` with seed ``idx[0]`` (the
    first block of the batch), so a run is reproducible.

    **Host syncs, unavoidable here**: the prompts are decoded to text from the batch (``input_ids`` read on
    the host), the sampling seed is read from ``idx``, and autoregressive generation reads every sampled
    token to stop at end-of-sequence and decode the completions. Each step therefore waits for the device;
    this is the price of on-policy data (a student generation and a teacher forward per step).

    ``loss``, when given, replaces the JSD: ``loss(student_logits, teacher_logits, mask)`` over the vocabulary,
    such as notebook 05's learner-written ``reverse_kl`` (on-policy reverse KL, as in MiniLLM). ``timings``, when
    given, a dict, accumulates the seconds of each phase under "student generation", "teacher scoring" and
    "student update" (forward and loss; the backward pass belongs to ``fit``), so a notebook can say where the
    time went."""
    if not isinstance(teacher, torch.nn.Module):
        raise ValueError(f"teacher must be a causal LM (a torch.nn.Module), got {type(teacher).__name__}")
    if not callable(getattr(tokenizer, "decode", None)):
        raise ValueError(f"tokenizer must be the teacher's and student's tokenizer (with .decode), got "
                         f"{type(tokenizer).__name__}")
    prompt_len = _whole("prompt_len", prompt_len)
    max_new_tokens = _whole("max_new_tokens", max_new_tokens)
    beta = check_number("beta", beta, 0.0, 1.0, hint="GKD's JSD weight: 0 is forward KL, 1 reverse KL")
    temperature = check_temperature(temperature)
    if loss is not None and not callable(loss):
        raise ValueError(f"loss must be a function loss(student_logits, teacher_logits, mask), got {loss!r:.60}")
    if timings is not None and not isinstance(timings, dict):
        raise ValueError(f"timings must be a dict to accumulate seconds in, got {type(timings).__name__}")
    clock = _Clock(timings)

    def step(model, input_ids, idx):
        device = input_ids.device
        with clock("student generation", device):
            prompts = [tokenizer.decode(b[:prompt_len]) for b in input_ids.cpu()]
            own = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                           batch_size=len(prompts), seed=int(idx[0]))
            ids, attn, comp = own.input_ids.to(device), own.attention_mask.to(device), own.completion_mask.to(device)
        with clock("teacher scoring", device), torch.no_grad():
            t_logits = teacher(input_ids=ids, attention_mask=attn).logits[:, :-1]
        with clock("student update", device):
            s_logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
            if loss is None:
                return generalized_jsd(s_logits, t_logits, comp[:, 1:], beta=beta)
            return loss(s_logits, t_logits, comp[:, 1:])
    return step


class _Clock:
    """``with clock(phase, device):`` adds the phase's wall-clock seconds to ``timings[phase]`` (nothing when
    ``timings`` is None); on a GPU it synchronises first, so the seconds are the phase's, not its launch's."""

    def __init__(self, timings: dict | None):
        self.timings = timings

    @contextmanager
    def __call__(self, phase: str, device: torch.device):
        if self.timings is None:
            yield
            return
        synchronize(device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(device)
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - start
