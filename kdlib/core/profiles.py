"""Run profiles: every size a notebook uses comes from here, so no notebook branches on the hardware.

Used by every notebook (01, 02, ...). ``KDLIB_PROFILE`` picks one of

* ``ci``: proves every cell runs in well under a minute; its numbers mean nothing;
* ``laptop``: the default on a CPU, reproduces the qualitative result with real data in minutes;
* ``gpu``: the default when CUDA is available, the full-size experiment.

A notebook states its sizes for all three profiles in one visible cell::

    profile = get_profile(ci=dict(epochs=1), laptop=dict(epochs=8), gpu=dict(epochs=60))
    profile.epochs

``KDLIB_OVERRIDES="epochs=2,subset=5000"`` changes sizes without editing the notebook; a notebook's
headline claims are then reported but not asserted (``profile.assert_claims`` is False).
"""
from __future__ import annotations

import ast
import os
import random
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

PROFILES = ("ci", "laptop", "gpu")

__all__ = ["Profile", "get_profile", "default_profile_name", "seed_everything", "seeded", "PROFILES"]


def default_profile_name() -> str:
    """``KDLIB_PROFILE`` if set, else ``gpu`` when CUDA is available, else ``laptop``."""
    name = os.environ.get("KDLIB_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "laptop"
    if name not in PROFILES:
        raise ValueError(f"KDLIB_PROFILE={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def seeded(seed: int):
    """Run the block with PyTorch's global RNG (CPU and CUDA) seeded by ``seed``, and restore the caller's RNG
    state afterwards, so that a library call that initialises a model does not reseed the notebook's RNG."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _parse_overrides(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # split on the commas that start a new "name=" so that lists like seeds=[0,1] stay whole
    for item in filter(None, (part.strip() for part in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", text))):
        if "=" not in item:
            raise ValueError(f"KDLIB_OVERRIDES item {item!r} is not of the form name=value")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


@dataclass
class Profile:
    """The chosen profile: its name, device, seed, and the notebook's sizes as attributes."""

    name: str
    device: torch.device
    seed: int = 0
    sizes: dict[str, Any] = field(default_factory=dict)
    overridden: tuple[str, ...] = ()

    def __getattr__(self, key: str) -> Any:
        sizes = self.__dict__.get("sizes", {})
        if key in sizes:
            return sizes[key]
        raise AttributeError(f"profile {self.__dict__.get('name')!r} has no size {key!r}; "
                             f"known sizes: {', '.join(sorted(sizes)) or 'none'}")

    @property
    def assert_claims(self) -> bool:
        """Headline claims are asserted in ``laptop`` and ``gpu`` at their own sizes only."""
        return self.name in ("laptop", "gpu") and not self.overridden

    def describe(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        extra = f" (overridden: {', '.join(self.overridden)})" if self.overridden else ""
        return f"profile={self.name} device={self.device} seed={self.seed} | {sizes}{extra}"


def get_profile(ci: dict | None = None, laptop: dict | None = None, gpu: dict | None = None,
                seed: int = 0, name: str | None = None) -> Profile:
    """Pick the profile (``name`` or ``KDLIB_PROFILE``), seed everything and return its sizes.

    The ``gpu`` profile runs on CUDA when present; asked for on a machine without CUDA it warns and runs
    the same code on the CPU (slowly, at full size, unless ``KDLIB_OVERRIDES`` shrinks it).
    """
    name = (name or default_profile_name()).lower()
    if name not in PROFILES:
        raise ValueError(f"profile {name!r} is not one of {', '.join(PROFILES)}")
    sizes = dict({"ci": ci, "laptop": laptop, "gpu": gpu}[name] or {})
    overrides = _parse_overrides(os.environ.get("KDLIB_OVERRIDES", ""))
    unknown = sorted(set(overrides) - set(sizes))
    if unknown:
        raise ValueError(f"KDLIB_OVERRIDES names {', '.join(unknown)}, which this notebook's profile does "
                         f"not have; it has {', '.join(sorted(sizes))}")
    sizes.update(overrides)
    if name == "gpu" and not torch.cuda.is_available():
        warnings.warn("KDLIB_PROFILE=gpu but CUDA is not available: running the gpu profile on the CPU",
                      stacklevel=2)
    device = torch.device("cuda" if name == "gpu" and torch.cuda.is_available() else "cpu")
    seed_everything(seed)
    return Profile(name=name, device=device, seed=seed, sizes=sizes, overridden=tuple(sorted(overrides)))
