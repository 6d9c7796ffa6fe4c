"""The one training loop, ``fit()``, for every model in the kit. Notebooks 02-07 (and later ones).

A *step* function turns a batch into a loss, so the same loop trains an MLP with hard labels, a conv net
with cached teacher logits, an encoder with hidden-state losses, an LM on top-k teacher logits, SFT and DPO::

    fit(student, train, cross_entropy_step, epochs=8, lr=1e-3)                         # hard labels (any classifier)
    fit(student, train, kd_step(cache, T=20, alpha=0.1), epochs=8, lr=1e-3)            # distillation
    fit(student, blocks, lm_step, steps=300, optimizer="adamw", betas=(0.9, 0.95), clip=1.0, warmup=10)

``step(model, batch, idx)`` returns the loss, or ``(loss, {"name": term, ...})`` whose named terms the history
records beside it (as mdistiller's distillers return ``loss_ce`` and ``loss_kd``). ``batch`` is ``data`` at
the sample indices ``idx``: a ``Split`` (inputs augmented by ``augment``), rows of a tensor, or
``data.batch(idx)`` for objects that cut their own batches (``SFTData``, ``PreferencePairs``). ``idx`` is on
the model's device, so a step looks teacher outputs up by sample index and shuffling or augmentation never
misaligns teacher and student (``kdlib.core.teacher_cache``).

The loop owns shuffling (one permutation per pass over the data, from a local generator seeded by ``seed``),
the optimiser (``adam``, ``adamw``, ``sgd`` with Nesterov momentum 0.9), gradient clipping, a linear warm-up
and cosine decay of the learning rate to zero, progress bars and the history. Every numeric choice is an
argument, so each notebook states its own at the call site. On CUDA, Adam and AdamW use the fused kernel
(``fused=True``: one launch per step instead of several per parameter); ``precision="bf16"`` runs the step's
forward and loss under ``torch.autocast(device_type, dtype=torch.bfloat16)`` (on a CPU too), the backward and the
optimiser in float32; the kit's losses take their log-softmaxes in float32 (``kdlib.losses.inputs.up``, and
autocast keeps softmax, log-softmax and cross-entropy in float32). The gpu profiles of 04-08, 10 and 11 use it.

The hot path reads no tensor value on the host (on a GPU each read waits for every queued kernel). The first
step runs with value checks on (NaN logits, labels out of range, a stale teacher cache: clear errors at once);
later steps run with them off (``kdlib.core.validate.value_checks``), and the loop reads the losses every
``log_every`` steps and at the end of each pass, where it raises a ValueError naming the first step whose loss
was NaN or infinite and its likely causes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from kdlib.core.inference import predict
from kdlib.core.metrics import accuracy
from kdlib.core.parallel import average_gradients, broadcast_parameters, shard, world
from kdlib.core.schedule import OPTIMIZERS, index_batches, make_optimizer, warmup_cosine
from kdlib.core.validate import check_number, value_checks

Step = Callable[[nn.Module, Any, torch.Tensor], "torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]"]
PRECISIONS = ("fp32", "bf16")


@dataclass
class History:
    """What ``fit`` recorded: per step the ``loss`` and named ``terms``; per pass over the data (epoch) its
    mean loss (``train_loss``), validation metrics (``val``) and cumulative seconds (``epoch_seconds``); in all,
    ``seconds``, ``samples`` and ``tokens`` (elements of tensor batches, e.g. tokens of LM blocks).
    ``history["name"]`` is the per-step list of ``loss`` or of a term."""

    loss: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    tokens: int = 0

    def __getitem__(self, key: str):
        if key == "loss":
            return self.loss
        if key in self.terms:
            return self.terms[key]
        if key in ("seconds", "samples", "tokens"):
            return getattr(self, key)
        raise KeyError(f"history has no {key!r}; it has loss, seconds, samples, tokens"
                       + "".join(f", {name}" for name in self.terms))

    @property
    def val_accuracy(self) -> list[float]:
        """Validation accuracy per epoch (when ``val`` was a ``Split``)."""
        return [v["accuracy"] for v in self.val]


def cross_entropy_step(model: nn.Module, batch, idx: torch.Tensor) -> torch.Tensor:
    """Hard-label training of any classifier on a ``Split`` batch: ``CE(y, model(x))``, mean over the batch."""
    return F.cross_entropy(model(batch.x), batch.y)


def select(data, idx: torch.Tensor, augment=None, generator: torch.Generator | None = None):
    """``data`` at the sample indices ``idx``: a ``Split``-like ``(x, y)`` (``x`` through ``augment``), rows of
    a tensor, or ``data.batch(idx)``."""
    if hasattr(data, "batch"):
        return data.batch(idx)
    if isinstance(data, torch.Tensor):
        return data[idx]
    x = data.x[idx]
    return type(data)(x if augment is None else augment(x, generator), data.y[idx])


def _tokens(batch) -> int:
    """Elements of a tensor batch, or of the first tensor of a tuple batch (the input ids of SFT and DPO rows)."""
    while isinstance(batch, (tuple, list)) and batch and not hasattr(batch, "_fields"):
        batch = batch[0]
    return batch.numel() if isinstance(batch, torch.Tensor) else 0


def to_device(data, device: torch.device):
    """``data`` with its tensors on ``device`` (a tensor, a ``Split``-like tuple, or anything with ``.to``)."""
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(t.to(device) for t in data))
    return data.to(device) if hasattr(data, "to") else data


def train_step(model: nn.Module, step: Step, batch, idx: torch.Tensor, opt: torch.optim.Optimizer, sched,
               clip: float | None, bf16_on: str | None = None, sync: tuple[int, int] | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimiser step: ``step`` (under bf16 autocast on device type ``bf16_on``, when given) -> backward ->
    (with ``sync = (local samples, samples over all ranks)``, the gradients averaged over the ranks) -> optional
    gradient clipping -> optimiser and schedule. Returns the detached loss and terms; reads nothing on the host."""
    with torch.autocast(bf16_on or "cpu", dtype=torch.bfloat16, enabled=bf16_on is not None):
        out = step(model, batch, idx)
    loss, terms = out if isinstance(out, tuple) else (out, {})
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if sync is not None:
        average_gradients(model.parameters(), *sync)
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    return loss.detach(), {k: v.detach() for k, v in terms.items()}


class _Log:
    """Losses of the steps since the last logging point, read on the host in one go."""

    def __init__(self, history: History):
        self.history, self.losses, self.terms, self.first = history, [], {}, 0

    def add(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.losses.append(loss)
        for k, v in terms.items():
            self.terms.setdefault(k, []).append(v)

    def flush(self, desc: str) -> None:
        if not self.losses:
            return
        values = torch.stack(self.losses).float().cpu()
        bad = (~torch.isfinite(values)).nonzero()
        if len(bad):
            at = self.first + int(bad[0])
            raise ValueError(f"{desc}: the training loss became {float(values[int(bad[0])])} at step {at} (checked at "
                             f"steps {self.first}-{self.first + len(values) - 1}). Likely causes: NaN or infinite "
                             "inputs or teacher outputs, labels outside the model's classes, an empty mask, or a "
                             "learning rate that is too high (try a smaller lr, clip=1.0 or warm-up)")
        self.history.loss += values.tolist()
        for k, vs in self.terms.items():
            self.history.terms.setdefault(k, []).extend(torch.stack(vs).float().cpu().tolist())
        self.first += len(values)
        self.losses, self.terms = [], {}


def fit(model: nn.Module, data, step: Step, *, epochs: int | None = None, steps: int | None = None,
        batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999), momentum: float = 0.9, warmup: int = 0,
        clip: float | None = None, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        val=None, log_every: int = 100, device: torch.device | str = "cpu", seed: int = 0, desc: str = "train",
        progress: bool = True, step_bar: bool | None = None, precision: str = "fp32") -> History:
    """Train ``model`` in place on ``data`` with ``step`` and return its ``History``; the model ends in eval mode.

    Give ``epochs`` (passes over the data, last batch possibly smaller) or ``steps`` (optimiser steps of full
    batches). ``val``: a ``Split`` (validation accuracy after every epoch) or ``val(model) -> dict``.
    ``augment(x_batch, generator)`` changes inputs only. ``step_bar`` (default: when training by ``steps`` or
    one epoch) shows a bar over steps instead of epochs. ``precision``: ``"fp32"`` or ``"bf16"`` (autocast of
    forward and loss; weights, gradients and optimiser state stay float32). Launched as several processes
    (``torchrun``, ``accelerate launch``), each trains on its shard of every batch and the gradients are averaged
    (``kdlib.core.parallel``); ``history`` then counts this process's samples and losses.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs (passes over the data) or steps (optimiser steps)")
    for name, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    lr = check_number("lr", lr, low=0, low_open=True)
    if clip is not None:
        clip = check_number("clip", clip, low=0, low_open=True, hint="the largest gradient norm, e.g. 1.0")
    n = len(data) if hasattr(data, "__len__") and not hasattr(data, "_fields") else len(data.y)
    if hasattr(data, "_fields") and len(data.x) != len(data.y):
        raise ValueError(f"data has {len(data.x)} inputs but {len(data.y)} labels")
    if steps is not None and batch_size > n:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} samples; use batch_size <= {n}")
    if augment is not None and not hasattr(data, "_fields"):
        raise ValueError("augment changes the inputs of a Split (x, y); this data is a "
                         f"{type(data).__name__}: augment inside the step instead")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    model.to(device)
    rank, size = world()  # several processes under torchrun / accelerate launch: kdlib.core.parallel
    if size > 1:
        broadcast_parameters(model)
    data = to_device(data, device)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 1) if augment is not None else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, optimizer, lr, weight_decay, betas, momentum,
                         fused=bool(params) and all(p.is_cuda for p in params))
    bf16_on = device.type if precision == "bf16" else None
    total = steps if steps is not None else epochs * -(-n // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, warmup))
    history, start = History(), time.perf_counter()
    log = _Log(history)
    by_step = step_bar if step_bar is not None else (steps is not None or epochs == 1)
    bar = tqdm(total=total if by_step else epochs, desc=desc, disable=not progress, leave=False)
    model.train()
    epoch_start = 0
    try:
        for i, (epoch, last, batch_idx) in enumerate(index_batches(n, batch_size, gen, epochs, steps)):
            idx = shard(batch_idx, rank, size)
            sync = None if size == 1 else (len(idx), len(batch_idx) * (size if len(idx) == len(batch_idx) else 1))
            batch = select(data, idx, augment, aug_gen)
            history.samples += len(idx)
            history.tokens += _tokens(batch)
            with value_checks(i == 0):
                loss, terms = train_step(model, step, batch, idx.to(device, non_blocking=True), opt, sched, clip,
                                         bf16_on, sync)
            log.add(loss, terms)
            if by_step:
                bar.update(1)
            if last or (i + 1) % log_every == 0:
                log.flush(desc)
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
            if last:
                _end_epoch(model, history, epoch, epoch_start, val, device, start)
                epoch_start = len(history.loss)
                if not by_step:
                    bar.update(1)
                    if history.val:
                        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}",
                                        **{k: f"{v:.4f}" for k, v in history.val[-1].items()})
    finally:
        bar.close()
        model.eval()
    history.seconds = time.perf_counter() - start
    return history


def _end_epoch(model, history: History, epoch: int, epoch_start: int, val, device, start: float) -> None:
    history.epoch.append(epoch)
    losses = history.loss[epoch_start:]
    history.train_loss.append(sum(losses) / len(losses))
    if val is not None:
        if callable(val):
            history.val.append(dict(val(model)))
        else:
            history.val.append({"accuracy": accuracy(predict(model, val.x, device=device), val.y)})
        model.train()
    history.epoch_seconds.append(time.perf_counter() - start)
