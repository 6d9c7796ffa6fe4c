"""Results files: each notebook writes ``results/<notebook>.json`` with what it measured.

Schema: ``{"notebook", "profile", "device", "seconds", "metrics"}``; the README's results table is made
from committed reference runs by ``python -m kdlib.teaching.report``. Paths inside the repository are written
relative to it (``datasets/cache/minilm``), so a committed results file names no folder of the machine that made it.
"""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import torch

from kdlib.core.paths import REPO_ROOT, results_dir
from kdlib.core.profiles import Profile


def device_name(device: torch.device) -> str:
    """A readable device description: the GPU's name, or the CPU's architecture and core count."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    import os
    return f"cpu: {platform.machine()} x {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _plain(value):
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, Path)):
        return str(value).replace(f"{REPO_ROOT}/", "").replace(str(REPO_ROOT), ".")
    if hasattr(value, "item"):
        return value.item()
    return value


class Run:
    """Started at the top of a notebook; ``run.write(metrics)`` at the end writes the results file."""

    def __init__(self, notebook: str, profile: Profile):
        self.notebook, self.profile, self.start = notebook, profile, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def write(self, metrics: dict) -> Path:
        record = {"notebook": self.notebook, "profile": self.profile.name,
                  "device": device_name(self.profile.device), "seconds": round(self.elapsed(), 1),
                  "overrides": list(self.profile.overridden), "metrics": _plain(metrics)}
        folder = results_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.notebook}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {path} ({record['seconds']} s, profile {self.profile.name})")
        return path
