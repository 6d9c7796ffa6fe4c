"""K copies of one architecture trained as one batched model: seeds and temperature sweeps at the cost of one run
where per-step launches, not FLOPs, bound the time (notebook 02's MLPs on a GPU; ``benchmarks/gpu_budget.py``).

The members' weights are stacked (``torch.func.stack_module_state``: each parameter gains a leading axis of size
K) and one forward runs all of them (``torch.func.vmap`` over ``torch.func.functional_call``). Member k draws its
own batch order from ``seeds[k]`` exactly as ``kdlib.core.fit`` does (``index_batches``), so at step i member k
sees the samples that ``fit(models[k], ..., seed=seeds[k])`` would. The loss is the sum of the members' losses::

    L = sum_k L_k(theta_k)   =>   dL/dtheta_k = dL_k/dtheta_k

so every member gets its own gradient, and Adam (elementwise) on the stacked tensors is K independent Adams: the
ensemble reproduces K separate ``fit`` runs up to floating-point summation order (``tests/test_ensemble.py``).
Gradient clipping by the global norm would couple the members, so it is not offered.
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from kdlib.core.schedule import index_batches, make_optimizer, warmup_cosine
from kdlib.core.validate import check_number

__all__ = ["fit_ensemble"]

# loss(logits (K, B, ...), y (K, B, ...), idx (K, B)) -> per-member losses (K,)
EnsembleLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def fit_ensemble(models: list[nn.Module], data, loss: EnsembleLoss, *, seeds: list[int], epochs: int,
                 batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), warmup: int = 0,
                 device: torch.device | str = "cpu") -> dict:
    """Train ``models`` (same architecture, no dropout or batch-norm state that differs per call) in place on the
    ``Split``-like ``data`` (``x``, ``y``) for ``epochs`` passes, member k in the batch order of ``seeds[k]``,
    with ``loss`` giving each member's loss; returns ``{"loss": (steps, K) per-step losses, "seconds": s}``.
    Optimiser and schedule as ``fit``'s (``adam`` or ``adamw``, warm-up then cosine decay to zero)."""
    if not models or len(models) != len(seeds):
        raise ValueError(f"need one seed per model, got {len(models)} models and {len(seeds)} seeds")
    if optimizer not in ("adam", "adamw"):
        raise ValueError("optimizer must be adam or adamw (elementwise, so members stay independent), "
                         f"got {optimizer!r}")
    if not isinstance(epochs, int) or epochs < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be whole numbers >= 1, got {epochs!r} and {batch_size!r}")
    lr = check_number("lr", lr, low=0, low_open=True)
    device = torch.device(device)
    for m in models:
        m.to(device).train()
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))
    forward = vmap(one)
    x_all, y_all = data.x.to(device), data.y.to(device)
    n = len(y_all)
    opt = make_optimizer(list(params.values()), optimizer, lr, weight_decay, betas, 0.0, fused=device.type == "cuda")
    total = epochs * -(-n // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, warmup))
    orders = [index_batches(n, batch_size, torch.Generator().manual_seed(s), epochs) for s in seeds]
    losses, start = [], time.perf_counter()
    for parts in zip(*orders):
        idx = torch.stack([part[2] for part in parts]).to(device)
        per_member = loss(forward(params, buffers, x_all[idx]), y_all[idx], idx)
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        opt.step()
        sched.step()
        losses.append(per_member.detach())
    with torch.no_grad():
        for k, m in enumerate(models):
            for name, p in m.named_parameters():
                p.copy_(params[name][k])
            for name, b in m.named_buffers():
                b.copy_(buffers[name][k])
    for m in models:
        m.eval()
    history = torch.stack(losses).float().cpu()
    if not torch.isfinite(history).all():
        step, member = (~torch.isfinite(history)).nonzero()[0].tolist()
        raise ValueError(f"member {member} (seed {seeds[member]}): the training loss became "
                         f"{float(history[step, member])} at step {step}; try a smaller lr")
    return {"loss": history, "seconds": time.perf_counter() - start}
