"""Data parallelism for ``kdlib.core.fit``: the same ``fit`` call trains in a notebook (one process) and under
``torchrun`` or ``accelerate launch`` (several processes on GPUs or nodes, or CPU processes with gloo), unchanged.

Under several processes every rank draws the same permutation (``fit`` seeds it), keeps its own slice of every
global batch (``shard``: ``idx[rank::world]``, so the shards are disjoint and together the whole batch), computes
its loss on that slice, and before the optimiser step the gradients are combined so that every rank applies the
gradient of the whole batch (``average_gradients``)::

    g = sum_r n_r * g_r / sum_r n_r        (g_r: rank r's mean gradient over its n_r samples)

Ranks start from rank 0's weights (``broadcast_parameters``), so they stay identical. ``world()`` joins the process
group the launcher describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``), with NCCL on GPUs and gloo on CPUs.
``gather_rows`` reassembles row-sharded results in order (the teacher's top-k cache computed a shard per rank).
Notebooks 05-08's LM pipelines run this way as scripts: ``kdlib.lm.distributed``.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["world", "shard", "average_gradients", "broadcast_parameters", "gather_rows"]


def world() -> tuple[int, int]:
    """``(rank, world size)``: ``(0, 1)`` in one process; joins the launcher's process group on first use."""
    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "MASTER_ADDR" not in os.environ:
            return 0, 1
        cuda = torch.cuda.is_available() and os.environ.get("KDLIB_DEVICE", "") != "cpu"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def shard(idx: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """This rank's slice of a global batch: ``idx[rank::size]``; the whole batch when it has fewer samples than
    ranks (every rank then computes the same gradient)."""
    return idx if size == 1 or len(idx) < size else idx[rank::size]


def average_gradients(params, n_local: int, n_total: int) -> None:
    """Replace each parameter's gradient by the sample-weighted mean over the ranks (module docstring), in one
    all-reduce of a flat buffer; a parameter without a gradient on some rank counts as zero there."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads]) * n_local
    dist.all_reduce(flat)
    flat /= n_total
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
        offset += g.numel()


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Every rank takes rank 0's parameters and buffers."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def gather_rows(local: torch.Tensor, n: int, rank: int, size: int) -> torch.Tensor:
    """The inverse of computing rows ``rank::size`` of an ``n``-row result on each rank: all rows, in order, on
    every rank."""
    if size == 1:
        return local
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")  # NCCL gathers on GPUs
    padded = torch.zeros((-(-n // size), *local.shape[1:]), dtype=local.dtype, device=device)
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    out = torch.empty((n, *local.shape[1:]), dtype=local.dtype, device=device)
    for r, part in enumerate(parts):
        rows = list(range(r, n, size))
        out[rows] = part[:len(rows)]
    return out.to(local.device)
