"""The DPO loss (Rafailov et al. 2023) from its formula. Notebook 07; pairs, reference log-probs and the DPO
step live in ``kdlib.lm.dpo``.

``L = -mean over pairs of log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))`` with ``pi`` and ``ref`` the
**summed** completion log-probabilities under the policy and the frozen reference. Zero margin gives log 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlib.core.validate import check_number
from kdlib.losses import inputs
from kdlib.losses.registry import register


@register("dpo")
def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO: ``L = -mean_pairs log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))``.

    Each argument has shape (n_pairs,): summed completion log-probabilities of the chosen (``_c``) and
    rejected (``_r``) completions under the policy being trained and under the frozen reference (treated as
    constants). Returns ``(loss, chosen_rewards, rejected_rewards)`` with the implicit rewards
    ``beta * (pi - ref)`` per pair (detached, for logging: their difference is the reward margin, and the
    preference accuracy is the fraction of pairs with a positive margin). Floating-point tensors with at least
    one pair (an empty batch raises); NaN or inf raise while value checks are on, and give a NaN loss without
    them. Notebook 07.
    """
    beta = check_number("beta", beta, low=0, low_open=True,
                        hint="it scales the implicit reward beta * (log pi - log pi_ref): typical values 0.01 to 1")
    args = {"policy_chosen_logps": policy_chosen_logps, "policy_rejected_logps": policy_rejected_logps,
            "ref_chosen_logps": ref_chosen_logps, "ref_rejected_logps": ref_rejected_logps}
    for name, t in args.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            inputs.tensor(name, t)  # raises, naming the argument and what it got
    shapes = {name: tuple(t.shape) for name, t in args.items()}
    if len(set(shapes.values())) != 1 or policy_chosen_logps.dim() != 1:
        raise ValueError(f"the four log-prob tensors must share one shape (n_pairs,) with n_pairs >= 1, got "
                         f"{shapes}; pass one summed log-probability per pair (see completion_logprobs)")
    for name, t in args.items():
        inputs.tensor(name, t, dims=1, layout="(n_pairs,)")  # an empty batch (no pair) raises here
        inputs.same_device(name, t, policy_chosen_logps.device)
    for name, t in args.items():
        inputs.finite(name, t)
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
    return loss, beta * chosen.detach(), beta * rejected.detach()
