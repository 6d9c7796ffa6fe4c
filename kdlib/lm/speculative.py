"""Speculative decoding with a distilled draft model: the expected speed-up, and a greedy draft-and-verify loop
that counts what the draft got accepted (notebook 11; Leviathan et al. 2023, Chen et al. 2023; DistillSpec, Zhou
et al. 2024, distils the draft from the target to raise its acceptance rate).

A draft proposes ``gamma`` tokens; the target scores them all in one forward pass and keeps the longest prefix it
agrees with, plus one token of its own. With acceptance rate ``alpha`` (the chance that a draft token is kept,
taken as independent per token) and a draft forward costing ``c`` target forwards:

* tokens per target forward: ``E = (1 - alpha ** (gamma + 1)) / (1 - alpha)`` (``gamma + 1`` when ``alpha = 1``);
* speed-up over the target alone: ``S = E / (gamma * c + 1)``;
* the draft pays (``S > 1``) only above a break-even ``alpha`` that grows with ``c`` (``break_even_acceptance``).

``speculative_greedy`` runs the loop at batch 1 with greedy decoding on both sides, so its output is the target's
own greedy output token for token (up to the numerics of scoring several positions at once), and it reports the
measured acceptance rate and tokens per target forward. ``transformers``' ``generate(assistant_model=...)`` does
the same with key-value caches and is what to time (``assisted_generate``). ``expected_acceptance`` reads, from
one forward pass of both models over text, the acceptance a draft would get: greedy, the chance that both pick
the same token; speculative sampling at T = 1, ``sum_x min(p_x, q_x)`` per position (Leviathan et al. 2023).
"""
from __future__ import annotations

import time

import torch

from kdlib.core.inference import eval_mode
from kdlib.core.profiles import seeded
from kdlib.core.validate import check_number, whole

__all__ = ["tokens_per_target_forward", "speedup", "break_even_acceptance", "speculative_greedy",
           "expected_acceptance", "assisted_generate"]


def tokens_per_target_forward(alpha: float, gamma: int) -> float:
    """``E = (1 - alpha^(gamma+1)) / (1 - alpha)``: expected tokens written per target forward pass."""
    alpha = check_number("alpha", alpha, low=0, high=1, hint="the draft's acceptance rate, a probability")
    gamma = whole("gamma", gamma, 1)
    return float(gamma + 1) if alpha == 1 else (1 - alpha ** (gamma + 1)) / (1 - alpha)


def speedup(alpha: float, gamma: int, c: float) -> float:
    """``S = E / (gamma * c + 1)``: wall-clock speed-up of speculative decoding over the target alone, with ``c`` the
    cost of one draft forward in target forwards (measured: draft ms per token / target ms per token)."""
    c = check_number("c", c, low=0, hint="the draft's cost per forward pass as a fraction of the target's, e.g. 0.1")
    return tokens_per_target_forward(alpha, gamma) / (gamma * c + 1)


def break_even_acceptance(gamma: int, c: float, tol: float = 1e-6) -> float:
    """The acceptance rate above which ``speedup(alpha, gamma, c) > 1`` (``S`` grows with ``alpha``); 1.0 when
    even a perfect draft would not pay (``gamma * c >= gamma``, i.e. ``c >= 1``)."""
    if speedup(1.0, gamma, c) <= 1:
        return 1.0
    low, high = 0.0, 1.0
    while high - low > tol:
        mid = (low + high) / 2
        low, high = (mid, high) if speedup(mid, gamma, c) <= 1 else (low, mid)
    return high


def _check_pair(target, draft, tokenizer=None, draft_tokenizer=None) -> None:
    """ValueError unless draft and target share the vocabulary (and the tokenizer, when both are given)."""
    sizes = {name: m.get_output_embeddings().weight.shape[0] for name, m in (("target", target), ("draft", draft))}
    if sizes["target"] != sizes["draft"]:
        raise ValueError(f"the draft's vocabulary ({sizes['draft']}) differs from the target's ({sizes['target']}): "
                         "speculative decoding needs the same tokenizer (notebook 05b covers other cases)")
    if draft_tokenizer is not None and (tokenizer is None or draft_tokenizer.get_vocab() != tokenizer.get_vocab()):
        raise ValueError("the draft's tokenizer maps tokens to other ids than the target's (or the target's tokenizer "
                         "is missing): the target would verify tokens the draft did not mean; use the target's "
                         "tokenizer for both")


def _argmax_next(model, ids: torch.Tensor, keep: int) -> torch.Tensor:
    """The model's top token after each of the last ``keep`` positions (only those logits are computed)."""
    return model(input_ids=ids, logits_to_keep=keep).logits[0].argmax(-1)


@torch.no_grad()
def speculative_greedy(target, draft, input_ids: torch.Tensor, gamma: int = 4, max_new_tokens: int = 32,
                       eos_token_id: int | None = None) -> dict:
    """Greedy speculative decoding of one prompt (``input_ids`` of shape ``(1, n)``): returns ``tokens`` (the new
    ids, a list), ``proposed`` and ``accepted`` draft tokens, ``tested`` (the draft tokens the target judged: each
    round, those up to and including the first rejection; the rest of the round is discarded unjudged),
    ``acceptance_rate`` = accepted / tested (the per-token ``alpha`` of the module's formulas; accepted / proposed
    would count discarded tokens as rejected), ``target_forwards`` and ``tokens_per_target_forward``. Both models must share the vocabulary (a ValueError says so otherwise)."""
    gamma, max_new_tokens = whole("gamma", gamma, 1), whole("max_new_tokens", max_new_tokens, 1)
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must have shape (1, n): one prompt, got {tuple(input_ids.shape)}")
    _check_pair(target, draft)
    ids = input_ids.to(next(target.parameters()).device)
    start, proposed, accepted, tested, forwards = ids.shape[1], 0, 0, 0, 0
    while ids.shape[1] - start < max_new_tokens:
        guess = ids
        for _ in range(min(gamma, max_new_tokens - (ids.shape[1] - start))):
            guess = torch.cat([guess, _argmax_next(draft, guess, 1).view(1, 1)], 1)
        drafted = guess[0, ids.shape[1]:]
        verdict = _argmax_next(target, guess, len(drafted) + 1)  # the target's choice at each drafted position
        forwards += 1
        agree = int((verdict[:len(drafted)] == drafted).long().cumprod(0).sum())
        proposed, accepted = proposed + len(drafted), accepted + agree
        tested += agree + (agree < len(drafted))
        new = torch.cat([drafted[:agree], verdict[agree:agree + 1]])
        ids = torch.cat([ids, new.view(1, -1)], 1)
        if eos_token_id is not None and (new == eos_token_id).any():
            cut = start + int((ids[0, start:] == eos_token_id).nonzero()[0]) + 1
            ids = ids[:, :cut]
            break
    tokens = ids[0, start:start + max_new_tokens].tolist()
    return {"tokens": tokens, "proposed": proposed, "accepted": accepted, "tested": tested,
            "acceptance_rate": accepted / tested if tested else float("nan"), "target_forwards": forwards,
            "tokens_per_target_forward": len(tokens) / forwards if forwards else float("nan")}


@torch.no_grad()
def expected_acceptance(target, draft, blocks: torch.Tensor, batch_size: int = 8) -> dict:
    """Over every next-token position of ``blocks`` (token ids ``(n, L)``): ``greedy``, the share of positions
    where draft and target pick the same top token, and ``sampling``, the mean of ``sum_x min(p_x, q_x)`` (``p``
    the target's, ``q`` the draft's distribution at T = 1): the chance that speculative sampling keeps a token
    the draft drew."""
    _check_pair(target, draft)
    device = next(target.parameters()).device
    same, overlap, count = 0.0, 0.0, 0
    with eval_mode(target, draft):
        for i in range(0, len(blocks), whole("batch_size", batch_size, 1)):
            x = blocks[i:i + batch_size].to(device)
            p = torch.softmax(target(input_ids=x).logits[:, :-1].float(), -1)
            q = torch.softmax(draft(input_ids=x).logits[:, :-1].float(), -1)
            same += float((p.argmax(-1) == q.argmax(-1)).sum())
            overlap += float(torch.minimum(p, q).sum())
            count += p.shape[0] * p.shape[1]
    return {"greedy": same / count, "sampling": overlap / count}


@torch.no_grad()
def assisted_generate(target, tokenizer, prompts: list[str], max_new_tokens: int = 32, draft=None,
                      gamma: int = 4, do_sample: bool = False, seed: int = 0, draft_tokenizer=None) -> dict:
    """``transformers``' ``generate`` one prompt at a time (batch 1, key-value caches), assisted by ``draft`` when
    given: ``gamma`` draft tokens per round, a constant schedule and no confidence cut-off, so the rounds are the
    module docstring's. Sampling (``do_sample``, T = 1) runs under ``seeded(seed)``. Returns ``tokens`` (the new
    ids of each prompt), ``seconds`` (all generation calls) and ``tokens_per_s``."""
    gamma, max_new_tokens = whole("gamma", gamma, 1), whole("max_new_tokens", max_new_tokens, 1)
    extra = {}
    if draft is not None:
        _check_pair(target, draft, tokenizer, draft_tokenizer)
        config = draft.generation_config
        saved = (config.num_assistant_tokens, config.num_assistant_tokens_schedule,
                 config.assistant_confidence_threshold)
        config.num_assistant_tokens, config.num_assistant_tokens_schedule = gamma, "constant"
        config.assistant_confidence_threshold = 0.0
        extra["assistant_model"] = draft
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(target.parameters()).device
    tokens, seconds = [], 0.0
    try:
        with seeded(seed), eval_mode(target, *([draft] if draft is not None else [])):
            for prompt in prompts:
                ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=device)
                start = time.perf_counter()
                out = target.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=do_sample,
                                      max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                                      temperature=1.0 if do_sample else None, top_p=None, top_k=None,
                                      pad_token_id=pad, **extra)
                seconds += time.perf_counter() - start
                tokens.append(out[0, ids.shape[1]:].tolist())
    finally:
        if draft is not None:
            (config.num_assistant_tokens, config.num_assistant_tokens_schedule,
             config.assistant_confidence_threshold) = saved
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": sum(map(len, tokens)) / seconds}
