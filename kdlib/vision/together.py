"""Several students of one shape trained at once as one batched model (``kdlib.core.ensemble``): notebook 02's seeds
and temperature and alpha sweeps on the gpu profile, where a step of one small MLP is bound by kernel launches, not
by arithmetic, so K of them cost little more than one (``benchmarks/gpu_budget.py``).

``train_together(jobs, device)``: each job is a dict with ``data`` (a ``Split``), ``seed`` (the initial weights, as
``kdlib.core.profiles.seeded`` gives them, and the batch order, as ``fit``'s), ``sizes`` (``mlp``'s), ``teacher_outputs``
(logits by sample index: a ``TeacherCache`` or a tensor; None for hard labels), ``T``, ``alpha``, ``epochs``, ``lr``,
``batch_size`` and optionally ``val``. Jobs that share data, sizes, epochs, lr and batch size train as one ensemble
in which member k minimises notebook 01's loss with its own T and alpha::

    L_k = alpha_k * CE(y, z_k) + (1 - alpha_k) * T_k^2 * KL(softmax(z_teacher / T_k) || softmax(z_k / T_k))

with alpha_k = 1 (the cross-entropy alone) for a hard-label job; Adam is elementwise, so this is the same as
training each job alone with ``fit`` and ``kd_step`` or ``cross_entropy_step`` (``tests/test_together.py``).
"""
from __future__ import annotations

import torch

from kdlib.core.ensemble import fit_ensemble
from kdlib.core.fit import History
from kdlib.core.inference import predict
from kdlib.core.metrics import accuracy
from kdlib.core.profiles import seeded
from kdlib.losses.logits import member_distillation_losses
from kdlib.vision.mlp import mlp

__all__ = ["train_together"]
SHARED = ("sizes", "epochs", "lr", "batch_size")


def _group_key(job: dict) -> tuple:
    return (id(job["data"]), *(tuple(job[k]) if isinstance(job[k], list) else job[k] for k in SHARED))


def _history(losses: torch.Tensor, epochs: int, seconds: float, val_accuracy: float | None) -> History:
    history = History(loss=losses.tolist(), epoch=[epochs], seconds=seconds, epoch_seconds=[seconds])
    history.train_loss = [float(losses[-max(1, len(losses) // epochs):].mean())]
    history.val = [] if val_accuracy is None else [{"accuracy": val_accuracy}]
    return history


def train_together(jobs: list[dict], device: torch.device | str = "cpu") -> list[tuple[torch.nn.Module, History]]:
    """``(student, History)`` for each job, in the jobs' order (module docstring). A history holds every step's
    loss and, for a job with ``val``, the validation accuracy after the last epoch (no per-epoch curve)."""
    missing = [k for k in ("data", "seed", "teacher_outputs", "T", "alpha", *SHARED) if any(k not in j for j in jobs)]
    if missing:
        raise ValueError(f"every job needs {', '.join(missing)} (and data, seed, teacher_outputs, T, alpha)")
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(_group_key(job), []).append(i)
    out: list = [None] * len(jobs)
    for members in groups.values():
        first = jobs[members[0]]
        models = []
        for i in members:
            with seeded(jobs[i]["seed"]):
                models.append(mlp(first["sizes"]))
        n, classes = len(first["data"].y), first["sizes"][-1]
        teachers = torch.stack([torch.zeros(n, classes) if jobs[i]["teacher_outputs"] is None else
                                getattr(jobs[i]["teacher_outputs"], "logits", jobs[i]["teacher_outputs"]).float().cpu()
                                for i in members]).to(device)
        T = [float(jobs[i]["T"]) for i in members]
        alpha = [1.0 if jobs[i]["teacher_outputs"] is None else float(jobs[i]["alpha"]) for i in members]
        rows = torch.arange(len(members), device=device)[:, None]

        def loss(logits, y, idx):
            return member_distillation_losses(logits, teachers[rows, idx], y, T, alpha)

        result = fit_ensemble(models, first["data"], loss, seeds=[jobs[i]["seed"] for i in members],
                              epochs=first["epochs"], batch_size=first["batch_size"], lr=first["lr"], device=device)
        for k, (i, model) in enumerate(zip(members, models)):
            val = jobs[i].get("val")
            score = None if val is None else accuracy(predict(model, val.x, device=device), val.y)
            out[i] = (model, _history(result["loss"][:, k], first["epochs"], result["seconds"], score))
    return out
