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
the same with key-value caches and is what to time.
"""
from __future__ import annotations

import torch

from kdlib.core.validate import check_number, whole

__all__ = ["tokens_per_target_forward", "speedup", "break_even_acceptance", "speculative_greedy"]


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


def _argmax_next(model, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits[0].argmax(-1)


@torch.no_grad()
def speculative_greedy(target, draft, input_ids: torch.Tensor, gamma: int = 4, max_new_tokens: int = 32,
                       eos_token_id: int | None = None) -> dict:
    """Greedy speculative decoding of one prompt (``input_ids`` of shape ``(1, n)``): returns ``tokens`` (the new
    ids, a list), ``proposed`` and ``accepted`` draft tokens, ``acceptance_rate`` and ``target_forwards`` and
    ``tokens_per_target_forward``. Both models must share the vocabulary (a ValueError says so otherwise)."""
    gamma, max_new_tokens = whole("gamma", gamma, 1), whole("max_new_tokens", max_new_tokens, 1)
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must have shape (1, n): one prompt, got {tuple(input_ids.shape)}")
    sizes = {name: m.get_output_embeddings().weight.shape[0] for name, m in (("target", target), ("draft", draft))}
    if sizes["target"] != sizes["draft"]:
        raise ValueError(f"the draft's vocabulary ({sizes['draft']}) differs from the target's ({sizes['target']}): "
                         "speculative decoding needs the same tokenizer (notebook 05b covers other cases)")
    ids = input_ids.to(next(target.parameters()).device)
    start, proposed, accepted, forwards = ids.shape[1], 0, 0, 0
    while ids.shape[1] - start < max_new_tokens:
        guess = ids
        for _ in range(min(gamma, max_new_tokens - (ids.shape[1] - start))):
            guess = torch.cat([guess, _argmax_next(draft, guess)[-1:].view(1, 1)], 1)
        drafted = guess[0, ids.shape[1]:]
        verdict = _argmax_next(target, guess)[ids.shape[1] - 1:]  # the target's choice at each drafted position
        forwards += 1
        agree = int((verdict[:len(drafted)] == drafted).long().cumprod(0).sum())
        proposed, accepted = proposed + len(drafted), accepted + agree
        new = torch.cat([drafted[:agree], verdict[agree:agree + 1]])
        ids = torch.cat([ids, new.view(1, -1)], 1)
        if eos_token_id is not None and (new == eos_token_id).any():
            cut = start + int((ids[0, start:] == eos_token_id).nonzero()[0]) + 1
            ids = ids[:, :cut]
            break
    tokens = ids[0, start:start + max_new_tokens].tolist()
    return {"tokens": tokens, "proposed": proposed, "accepted": accepted,
            "acceptance_rate": accepted / proposed if proposed else float("nan"), "target_forwards": forwards,
            "tokens_per_target_forward": len(tokens) / forwards if forwards else float("nan")}
