"""Preference distillation: preference pairs, reference log-probs and the DPO step for ``kdlib.core.fit``.
Notebook 07 (the loss itself is ``kdlib.losses.preference.dpo_loss``).

Direct Preference Optimization (Rafailov et al. 2023) trains a policy ``pi`` from pairs ``(x, y+, y-)``
(``y+`` chosen, ``y-`` rejected; here the teacher judged them) against a frozen reference ``pi_ref`` (the SFT
student the policy starts from), with no reward model and no sampling during training::

    r(x, y) = beta * (log pi(y | x) - log pi_ref(y | x))                  (the implicit reward)
    L       = -mean over pairs of log sigmoid(r(x, y+) - r(x, y-))
            = -mean log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))

``log pi(y | x)`` is the **sum** of the completion tokens' log-probabilities with the prompt and padding
masked (``kdlib.lm.generate.completion_logprobs``): the probability of the whole sequence. A mean per token
is a different objective that ignores length (``tests/test_preference.py`` pins the difference).

``beta`` is the strength of the implicit KL leash to the reference: small beta lets the policy move far from
it; the loss is ``log 2`` when policy and reference agree (zero margin). The reference log-probabilities are
computed once before training (``reference_logprobs``), so no reference model is held during training.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlib.core.inference import eval_mode
from kdlib.core.teacher_cache import by_index
from kdlib.core.validate import check_number
from kdlib.lm.generate import completion_logprobs
from kdlib.losses.preference import dpo_loss

__all__ = ["PreferencePairs", "pair_logprobs", "rows_logprobs", "reference_logprobs", "dpo_step", "item_wins",
           "win_rate", "win_rate_parts", "best_on_grid", "extend_grid"]


@dataclass
class PreferencePairs:
    """``n`` pairs, each a chosen and a rejected completion of the same prompt, as tensors of shape (n, 2, L):
    index 0 along the second axis is the chosen completion, 1 the rejected one; every row is its prompt's
    tokens followed by the completion's, right-padded. ``completion_mask`` is 1 on completion tokens only."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor

    def __post_init__(self):
        if self.input_ids.dim() != 3 or self.input_ids.shape[1] != 2:
            raise ValueError(f"input_ids must have shape (n_pairs, 2, length), got {tuple(self.input_ids.shape)}")
        if self.attention_mask.shape != self.input_ids.shape or self.completion_mask.shape != self.input_ids.shape:
            raise ValueError("attention_mask and completion_mask must have input_ids' shape "
                             f"{tuple(self.input_ids.shape)}")

    def __len__(self) -> int:
        return len(self.input_ids)

    @classmethod
    def from_tokens(cls, prompts: list[list[int]], chosen: list[list[int]], rejected: list[list[int]],
                    pad_id: int) -> "PreferencePairs":
        """Pairs from token-id lists: ``prompts[i] + chosen[i]`` and ``prompts[i] + rejected[i]``."""
        if not (len(prompts) == len(chosen) == len(rejected)) or not prompts:
            raise ValueError(f"need as many prompts as chosen and rejected completions, at least one; got "
                             f"{len(prompts)}, {len(chosen)}, {len(rejected)}")
        rows = [(p, c) for p, pair in zip(prompts, zip(chosen, rejected)) for c in pair]
        if any(not p or not c for p, c in rows):
            raise ValueError("every prompt and completion needs at least one token")
        width = max(len(p) + len(c) for p, c in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        comp = torch.zeros_like(ids)
        for r, (p, c) in enumerate(rows):
            ids[r, :len(p) + len(c)] = torch.tensor(list(p) + list(c))
            attn[r, :len(p) + len(c)] = 1
            comp[r, len(p):len(p) + len(c)] = 1
        shape = (len(prompts), 2, width)
        return cls(ids.view(shape), attn.view(shape), comp.view(shape))

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pairs ``idx`` (a CPU index) as 2 * len(idx) rows (all chosen, then all rejected), trimmed of common
        padding, on the CPU (where ``kdlib.core.fit`` cuts batches)."""
        idx = torch.as_tensor(idx).cpu()
        parts = [t[idx].transpose(0, 1).reshape(-1, t.shape[-1]) for t in
                 (self.input_ids, self.attention_mask, self.completion_mask)]
        width = int(parts[1].sum(0).nonzero().max()) + 1
        return tuple(p[:, :width] for p in parts)


def pair_logprobs(model, pairs: PreferencePairs, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs ``(chosen, rejected)``, each (len(idx),), from one forward pass of ``model``
    over both completions of each pair. Gradients flow unless called under ``torch.no_grad``."""
    return rows_logprobs(model, pairs.batch(idx))


def rows_logprobs(model, rows) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chosen, rejected)`` summed completion log-probs of a batch from ``PreferencePairs.batch``.

    Rows are right-padded, so the causal mask alone keeps every real token from seeing padding (as in
    ``kdlib.lm.sft.sft_step``): no attention mask is passed, which also spares transformers a host read of the
    mask in every training step. Padding positions are excluded by the completion mask."""
    device = next(model.parameters()).device
    ids, _, comp = (t.to(device, non_blocking=True) for t in rows)
    logps = completion_logprobs(model(input_ids=ids).logits, ids, comp)
    return logps[:len(logps) // 2], logps[len(logps) // 2:]


@torch.no_grad()
def reference_logprobs(model, pairs: PreferencePairs, batch_size: int = 32) -> torch.Tensor:
    """The frozen reference's summed log-probs, shape (n, 2) (chosen, rejected), computed once in eval mode
    and kept on the CPU, so the reference model can be dropped before training."""
    out = []
    with eval_mode(model):
        for start in range(0, len(pairs), batch_size):
            chosen, rejected = pair_logprobs(model, pairs, torch.arange(start, min(start + batch_size, len(pairs))))
            out.append(torch.stack([chosen, rejected], 1).cpu())
    return torch.cat(out)


def dpo_step(ref_logps: torch.Tensor, beta: float):
    """A ``kdlib.core.fit`` step on ``PreferencePairs``: the DPO loss of the pairs ``idx`` against the
    precomputed reference log-probs ``ref_logps`` (n, 2), looked up by index. Records the batch's
    ``reward_margin`` (mean of r+ - r-), ``preference_accuracy`` (fraction with r+ > r-), ``chosen_reward`` and
    ``rejected_reward`` as named terms of the history. beta is checked here, once.

    The step reads nothing on the host: the rows are right-padded and ``rows_logprobs`` passes no attention
    mask, and ``ref_logps`` moves to the training device once (a stale or short ``ref_logps`` is caught by the
    index check of the first step, which runs with value checks on)."""
    beta = check_number("beta", beta, low=0, low_open=True, hint="typical DPO values are 0.01 to 1")
    if ref_logps.dim() != 2 or ref_logps.shape[1] != 2:
        raise ValueError(f"ref_logps must have shape (n_pairs, 2) (chosen, rejected per pair), got "
                         f"{tuple(ref_logps.shape)}; compute it with reference_logprobs(reference, pairs)")
    reference = by_index(ref_logps)

    def step(model, rows, idx):
        chosen, rejected = rows_logprobs(model, rows)
        ref = reference(idx)
        loss, r_chosen, r_rejected = dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], beta)
        margin = r_chosen - r_rejected
        return loss, {"reward_margin": margin.mean(), "preference_accuracy": (margin > 0).float().mean(),
                      "chosen_reward": r_chosen.mean(), "rejected_reward": r_rejected.mean()}
    return step


def _judged(score_a, score_b) -> tuple[torch.Tensor, torch.Tensor]:
    """Both judges' scores as float64 (n, m) keys, or ValueError naming the arguments."""
    a, b = torch.as_tensor(score_a, dtype=torch.float64), torch.as_tensor(score_b, dtype=torch.float64)
    if a.shape != b.shape or a.numel() == 0 or a.dim() not in (1, 2):
        raise ValueError(f"score_a and score_b must have the same non-empty shape (n,) or (n, m), got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return (a[:, None], b[:, None]) if a.dim() == 1 else (a, b)


def item_wins(score_a, score_b) -> torch.Tensor:
    """Per item, 1.0 when a judge prefers A's answer, 0.0 when it prefers B's, 0.5 on a tie (float64, shape (n,)).
    ``score_a[i]`` and ``score_b[i]`` are the judge's scores of A's and B's answers to item i: shape (n,), or
    (n, m) lexicographic keys (column 0 decides, later columns break its ties; ``kdlib.reasoning.judge.judge_keys``).
    Per-item scores let two judges' win rates be compared on the same items (``kdlib.core.stats.paired_bootstrap_se``)."""
    a, b = _judged(score_a, score_b)
    result = torch.full((len(a),), 0.5, dtype=torch.float64)
    undecided = torch.ones(len(a), dtype=torch.bool)
    for col in range(a.shape[1]):
        result[undecided & (a[:, col] > b[:, col])] = 1.0
        result[undecided & (a[:, col] < b[:, col])] = 0.0
        undecided &= a[:, col] == b[:, col]
    return result


def win_rate(score_a, score_b) -> float:
    """How often a judge prefers A over B: ``mean(1[a > b] + 0.5 * 1[a == b])`` over paired items (ties count
    half), the mean of ``item_wins``. ``score_a[i]`` and ``score_b[i]`` are the judge's scores of A's and B's
    answers to item i: shape (n,), or (n, m) lexicographic keys (column 0 decides, later columns break its ties;
    ``kdlib.reasoning.judge.judge_keys``)."""
    return float(item_wins(score_a, score_b).mean())


def win_rate_parts(score_a, score_b) -> list[dict]:
    """Where a lexicographic judge's win rate comes from: one entry per key column ``c`` with the number of items
    that column decides (``decided``: all earlier columns equal, this one not), A's ``wins`` and ``losses`` among
    them, and their ``share`` of the win rate, ``(wins - losses) / (2 n)``; a last entry ``"tie"`` counts the items
    no column decides. ``win_rate = 0.5 + sum of the shares``. Notebook 07: how much of the teacher's verdict, then
    likelihood, win rate its verdicts decide and how much its likelihood tie-break does."""
    a, b = _judged(score_a, score_b)
    n, undecided, parts = len(a), torch.ones(len(a), dtype=torch.bool), []
    for col in range(a.shape[1]):
        wins, losses = int((undecided & (a[:, col] > b[:, col])).sum()), int((undecided & (a[:, col] < b[:, col])).sum())
        parts.append({"column": col, "decided": wins + losses, "wins": wins, "losses": losses,
                      "share": (wins - losses) / (2 * n)})
        undecided &= a[:, col] == b[:, col]
    parts.append({"column": "tie", "decided": int(undecided.sum()), "wins": 0, "losses": 0, "share": 0.0})
    return parts


def _scores(scores: dict) -> dict[float, float]:
    if not isinstance(scores, dict) or not scores:
        raise ValueError(f"scores must be a non-empty dict {{beta: score}}, got {scores!r:.80}")
    out = {float(b): float(v) for b, v in scores.items()}
    if any(b <= 0 for b in out) or not all(v == v for v in out.values()):
        raise ValueError(f"scores must map positive betas to finite scores, got {out}")
    return out


def best_on_grid(scores: dict) -> float:
    """The grid point with the largest validation score; among equal scores, the largest beta (the strongest
    leash to the reference: the more conservative model). Notebook 07 chooses beta with it on dev problems."""
    scores = _scores(scores)
    return max(scores, key=lambda b: (scores[b], b))


def extend_grid(scores: dict, factor: float = 3.0) -> float | None:
    """The beta to add so that the grid brackets its best point: ``min / factor`` when ``best_on_grid`` is the
    smallest beta, ``max * factor`` when it is the largest, None when a smaller and a larger beta surround it
    (the optimum is bracketed); the new beta has 3 significant digits. A best point at the edge of a grid says only that the optimum may lie beyond
    it; notebook 07 extends its beta grid until this returns None."""
    scores = _scores(scores)
    factor = check_number("factor", factor, low=1, low_open=True, hint="a grid step such as 3 (0.1, 0.3, 1, ...)")
    best = best_on_grid(scores)
    if best == min(scores):
        return float(f"{best / factor:.3g}")  # 0.1 * 3 is 0.30000000000000004: keep 3 significant digits
    if best == max(scores):
        return float(f"{best * factor:.3g}")
    return None
