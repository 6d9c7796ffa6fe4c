"""One small training loop with a progress bar and a history to plot. Notebooks 02 onwards.

A *step* function turns a batch into a loss, so the same loop trains with hard labels, with cached
teacher logits, or with anything a later notebook adds::

    train(student, data, step=cross_entropy_step, ...)                       # hard labels
    train(student, data, step=kd_step(cache, T=20, alpha=0.1), ...)          # distillation

The loop shuffles sample *indices*; a step receives ``(model, x, y, idx)`` and looks teacher outputs up
by ``idx``, so augmentation and shuffling never misalign teacher and student (see ``kdlib.teacher``).
Optimiser: Adam (or SGD with momentum) with a cosine learning-rate decay to zero over all steps.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data.mnist import Split
from .data.transforms import batches
from .evaluate import accuracy, predict
from .losses import distillation_loss

Step = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class History:
    """Per-epoch record of a run: mean training loss, validation accuracy, cumulative seconds."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def cross_entropy_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Hard-label training: ``CE(y, model(x))``."""
    return F.cross_entropy(model(x), y)


def kd_step(teacher_outputs, T: float, alpha: float) -> Step:
    """Distillation from teacher logits looked up by sample index (a ``TeacherCache`` or a tensor):
    ``alpha * CE + (1 - alpha) * T^2 * KL(p_T || p_S)`` (``kdlib.losses.distillation_loss``)."""
    def step(model, x, y, idx):
        return distillation_loss(model(x), teacher_outputs[idx], y, T=T, alpha=alpha)
    return step


def train(model: nn.Module, data: Split, *, epochs: int, step: Step = cross_entropy_step, batch_size: int = 128,
          lr: float = 1e-3, weight_decay: float = 0.0, optimizer: str = "adam",
          augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
          val: Split | None = None, device: torch.device | str = "cpu", seed: int = 0,
          desc: str = "train", progress: bool = True, step_bar: bool = False) -> History:
    """Train ``model`` in place on ``data`` for ``epochs`` and return its ``History``.

    ``augment(x_batch, generator)`` transforms inputs only (indices, labels and teacher lookups are
    untouched). ``val`` is evaluated after every epoch. ``step_bar=True`` adds a bar over the batches
    of each epoch (for runs of one or two long epochs, such as fine-tuning a transformer teacher).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if len(data.x) != len(data.y):
        raise ValueError(f"data has {len(data.x)} inputs but {len(data.y)} labels")
    device = torch.device(device)
    model.to(device)
    x, y = data.x.to(device), data.y.to(device)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    total = epochs * -(-len(x) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    history, start = History(), time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        losses = []
        steps = batches(len(x), batch_size, shuffle=True, generator=gen)
        if step_bar and progress:
            steps = tqdm(steps, total=-(-len(x) // batch_size), desc=f"{desc} epoch {epoch}", leave=False)
        for idx in steps:
            idx = idx.to(device)
            xb = x[idx] if augment is None else augment(x[idx], aug_gen)
            loss = step(model, xb, y[idx], idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
        history.epoch.append(epoch)
        history.train_loss.append(float(torch.stack(losses).mean()))
        if val is not None:
            history.val_accuracy.append(accuracy(predict(model, val.x, device=device), val.y))
        history.seconds.append(time.perf_counter() - start)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}",
                        **({"val_acc": f"{history.val_accuracy[-1]:.4f}"} if val is not None else {}))
    model.eval()
    return history
