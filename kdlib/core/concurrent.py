"""Train several small models at once on a CPU, one torch thread each (notebook 06).

A tiny model's training step is too small to keep two cores busy from one thread pool: notebook 06's student
takes about 88 ms a step on 2 torch threads and 104 ms on 1. Two students in two Python threads, one torch
thread each, take about 120 ms for a step of each, so about 1.5x the throughput on a 2-core laptop. PyTorch
releases the GIL inside its kernels, so the threads really run at once.

Each job must own its model, optimiser and random generators, as ``kdlib.core.fit`` does (its batch order comes
from its own seeded generator), and build its model inside ``kdlib.core.seeded``, which holds a lock while it
seeds the global RNG, so a job's result does not depend on which other job runs beside it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import torch
from tqdm.auto import tqdm

from kdlib.core.validate import whole


def concurrently(jobs: Sequence[Callable[[], Any]], device: torch.device | str = "cpu",
                 workers: int | None = None, desc: str | None = None) -> list[Any]:
    """Run the zero-argument callables ``jobs`` and return their results in order.

    On the CPU they run in ``workers`` threads (default: the number of torch threads, at most one per job), with
    torch set to one thread each and put back afterwards; on any other device, or with one worker, one after the
    other. ``desc``: a progress bar over finished jobs. The first exception a job raises is raised here, after
    the running jobs have finished."""
    jobs = list(jobs)
    if not all(callable(job) for job in jobs):
        raise ValueError("jobs must be functions of no arguments, e.g. [lambda: train(seed) for seed in seeds]")
    if workers is not None:
        workers = whole("workers", workers, 1)
    threads = torch.get_num_threads()
    workers = min(len(jobs), workers or threads)
    bar = tqdm(total=len(jobs), desc=desc, disable=desc is None, leave=False)
    try:
        if torch.device(device).type != "cpu" or workers <= 1:
            results = []
            for job in jobs:
                results.append(job())
                bar.update(1)
            return results
        torch.set_num_threads(1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(job) for job in jobs]
            for _ in as_completed(futures):
                bar.update(1)
            return [future.result() for future in futures]
    finally:
        torch.set_num_threads(threads)
        bar.close()
