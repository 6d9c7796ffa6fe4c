"""What a student buys at serving time: latency percentiles, throughput, parameters, size.

Notebook 02 ends with teacher vs student; notebook 09 builds cascades on it.

Latency is measured per call after ``warmup`` calls (which pay for lazy initialisation and caches), with
``torch.cuda.synchronize()`` around each call on a GPU so that the clock sees the kernels finish.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from kdlib.core.inference import eval_mode, model_device
from kdlib.core.validate import whole


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA kernels (no-op on the CPU), so that a clock sees the work finish."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def param_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, ``sum of p.numel()`` over ``model.parameters()`` (a tensor shared by two modules,
    such as tied input and output embeddings, is counted once); ``trainable_only=True`` counts only those with
    ``requires_grad`` (frozen ones left out). The one parameter count of the kit: notebooks 02-07 (notebook 03
    counted with ``kdlib.vision.cnn.n_params`` before, the same number for a freshly built net)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_size_mb(model: nn.Module) -> float:
    """Bytes of parameters and buffers, in MB (10^6 bytes)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


@torch.no_grad()
def latency(model: nn.Module, x: torch.Tensor, warmup: int = 10, repeats: int = 100) -> dict[str, float]:
    """Per-call latency of ``model(x)`` in milliseconds: ``p50``, ``p95``, ``p99``, ``mean``; measured in eval mode
    (``kdlib.core.inference.eval_mode``: the model's mode is restored afterwards)."""
    device = model_device(model)
    x = x.to(device)
    with eval_mode(model):
        return call_latency(lambda i: model(x), device, warmup=warmup, repeats=repeats)


def call_latency(fn, device: torch.device | str = "cpu", warmup: int = 10, repeats: int = 100) -> dict[str, float]:
    """Per-call latency of ``fn(i)`` (i = 0, 1, ... over the timed calls, e.g. one question each; warm-up
    calls get i = 0) in milliseconds: ``p50``, ``p95``, ``p99``, ``mean``. Notebook 06 times whole answers
    (a generation loop) with it."""
    whole = [isinstance(v, int) and not isinstance(v, bool) for v in (repeats, warmup)]
    if not all(whole) or repeats < 1 or warmup < 0:
        raise ValueError(f"need whole numbers repeats >= 1 and warmup >= 0, got repeats={repeats!r}, warmup={warmup!r}")
    device = torch.device(device)
    for _ in range(warmup):
        fn(0)
    synchronize(device)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    t = torch.tensor(times)
    q = torch.quantile(t, torch.tensor([0.5, 0.95, 0.99]))
    return {"p50_ms": float(q[0]), "p95_ms": float(q[1]), "p99_ms": float(q[2]), "mean_ms": float(t.mean())}


@torch.no_grad()
def serve_stream(model: nn.Module, requests: torch.Tensor, batch: int = 1, warmup: int = 2) -> dict:
    """Serve ``requests`` (N, ...) in arrival order, ``batch`` at a time (a server that groups consecutive
    requests; the last ``N % batch`` are left out so every call is full), and time each call (notebook 09).

    Unlike ``latency``, which repeats one input, every call gets other requests, so a model whose work depends
    on the input (a ``kdlib.core.cascade.Cascade`` that calls its teacher for some rows only) is measured as it
    serves. Returns per-call ``p50_ms``, ``p95_ms``, ``p99_ms``, ``mean_ms`` (at batch 1 a call is one request),
    ``batch``, ``requests`` served, ``requests_per_s`` (requests / summed call time) and ``logits`` in request
    order. ``warmup`` calls on the first requests come first and are not timed."""
    batch, warmup = whole("batch", batch, 1), whole("warmup", warmup, 0)
    if not isinstance(requests, torch.Tensor) or requests.dim() == 0 or len(requests) < batch:
        raise ValueError(f"requests must be a tensor of at least batch={batch} rows, got "
                         f"{tuple(requests.shape) if isinstance(requests, torch.Tensor) else type(requests).__name__}")
    device = model_device(model)
    calls = [requests[i:i + batch] for i in range(0, len(requests) - batch + 1, batch)]
    outputs = []
    with eval_mode(model):
        for i in range(warmup):
            model(calls[i % len(calls)].to(device))
        if hasattr(model, "reset"):
            model.reset()  # counts of a Cascade: the timed calls only

        def serve(i):
            outputs.append(model(calls[i].to(device)).float().cpu())

        timed = call_latency(serve, device, warmup=0, repeats=len(calls))  # len(requests) >= batch: one call or more
    n = len(calls) * batch
    return {**timed, "batch": batch, "requests": n, "requests_per_s": n / (timed["mean_ms"] * len(calls) / 1e3),
            "logits": torch.cat(outputs)}


def serving_report(models: dict[str, nn.Module], example: torch.Tensor, batch_sizes=(1, 256),
                   warmup: int = 10, repeats: int = 100) -> list[dict]:
    """One row per model and batch size: parameters, size in MB, latency percentiles, throughput (samples/s)."""
    if not isinstance(example, torch.Tensor) or example.dim() == 0 or len(example) == 0:
        raise ValueError("example must be a non-empty tensor whose first row is the input to time, got "
                         f"{tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__}")
    bad = [b for b in batch_sizes if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:
        raise ValueError(f"batch_sizes must be whole numbers >= 1, got {list(batch_sizes)}")
    rows = []
    for name, model in models.items():
        for batch in batch_sizes:
            x = example[:1].expand(batch, *example.shape[1:]).contiguous()
            lat = latency(model, x, warmup=warmup, repeats=repeats)
            rows.append({"model": name, "batch": batch, "params": param_count(model),
                         "size_mb": model_size_mb(model), **lat,
                         "throughput_per_s": batch / (lat["p50_ms"] / 1e3)})
    return rows
