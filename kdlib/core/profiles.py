"""Run profiles: every size a notebook uses comes from here, so no notebook branches on the hardware.

Used by every notebook (01, 02, ...). ``KDLIB_PROFILE`` picks one of

* ``ci``: proves every cell runs in well under a minute; its numbers mean nothing;
* ``laptop``: the default on a CPU, reproduces the qualitative result with real data in minutes;
* ``gpu``: the default when CUDA is available, the full-size experiment.

A notebook states its sizes for all three profiles in one visible cell::

    profile = get_profile(ci=dict(epochs=1), laptop=dict(epochs=8), gpu=dict(epochs=60))
    profile.epochs

``KDLIB_OVERRIDES="epochs=2,subset=5000"`` changes sizes without editing the notebook; a notebook's
headline claims are then reported but not asserted (``profile.assert_claims`` is False). Each override must fit
the type of the size it replaces (as the notebook's profiles give it): ``epochs=two`` or ``epochs=2.5`` for an int
size is a ValueError, as is ``epochs=2,`` (a tuple); bools take ``true``/``false``, floats take ints, lists and
tuples take ``[0, 1]``, ``(8, 8)`` or ``8,8``, a None size takes anything. A size may not be named like a
``Profile`` attribute (``name``, ``device``, ``seed``, ``sizes``, ``overridden``, ...).
"""
from __future__ import annotations

import ast
import math
import os
import random
import re
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
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


_SEEDED = threading.RLock()


@contextmanager
def seeded(seed: int):
    """Run the block with PyTorch's global RNG (CPU and CUDA) seeded by ``seed``, and restore the caller's RNG
    state afterwards, so that a library call that initialises a model does not reseed the notebook's RNG. One
    thread at a time runs such a block (``kdlib.core.concurrent`` trains models in threads)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with _SEEDED, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _parse_overrides(text: str) -> dict[str, str]:
    """``KDLIB_OVERRIDES`` as {name: value text}; the values are typed by ``_typed`` against the sizes."""
    out: dict[str, str] = {}
    # split on the commas that start a new "name=" so that lists like seeds=[0,1] stay whole
    for item in filter(None, (part.strip() for part in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", text))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not key.isidentifier():
            raise ValueError(f"KDLIB_OVERRIDES item {item!r} is not of the form name=value; "
                             f"write e.g. KDLIB_OVERRIDES=\"epochs=2,subset=5000\"")
        if key in out:
            raise ValueError(f"KDLIB_OVERRIDES sets {key} twice ({key}={out[key]} and {key}={value}); keep one")
        out[key] = value
    return out


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _as(value: Any, like: Any) -> tuple[bool, Any]:
    """(True, ``value`` converted to the type of ``like``) when it fits that type, else (False, None): bools take
    bools, ints take ints (and whole floats such as 1e3), floats take ints and floats, lists and tuples take lists
    or tuples whose items fit the type of ``like``'s items, None takes anything."""
    if like is None:
        return True, value
    if isinstance(like, bool):
        return isinstance(value, bool), value
    if isinstance(value, bool):
        return False, None
    if isinstance(like, int):
        whole = isinstance(value, float) and value.is_integer()
        return isinstance(value, int) or whole, int(value) if isinstance(value, int) or whole else None
    if isinstance(like, float):
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        return ok, float(value) if ok else None
    if isinstance(like, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False, None
        items = [_as(v, like[0]) if like else (True, v) for v in value]
        return all(ok for ok, _ in items), type(like)(v for _, v in items)
    return isinstance(value, type(like)), value


def _typed(key: str, text: str, options: list[Any], profile: str) -> Any:
    """The override ``key=text`` parsed and checked against the types ``key`` has in the notebook's profiles
    (``options``: its value in the chosen profile first, then in the others)."""
    low = text.lower()
    if any(isinstance(o, bool) for o in options) and low in ("true", "false"):
        value = low == "true"
    else:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = text  # a bare word such as dataset=cifar10 is a string
    if low == "none" and any(o is None for o in options):
        return None
    typed = [o for o in options if o is not None]  # a size None in every profile takes anything
    for like in typed or [None]:
        if isinstance(like, str) and not isinstance(value, str):
            value = text  # a string size keeps the text as written (e.g. name=123)
        ok, converted = _as(value, like)
        if ok:
            return converted
    kinds = " or ".join(dict.fromkeys(_kind(o) + (" of " + _kind(o[0]) if isinstance(o, (list, tuple)) and o else "")
                                      for o in options))
    hint = f" (the trailing comma makes it a tuple: write {key}={text.rstrip(',').strip()})" \
        if text.rstrip().endswith(",") and not isinstance(options[0], (list, tuple)) else ""
    raise ValueError(f"KDLIB_OVERRIDES: {key}={text!r} does not fit the size it replaces: expected {kinds} ({key} "
                     f"is {options[0]!r} in the {profile} profile), got {value!r} (a {_kind(value)}){hint}; "
                     f"write e.g. {key}={(typed or options)[0]!r}")


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


_RESERVED = frozenset(dir(Profile)) | {f.name for f in fields(Profile)}


def _check_names(profile: str, table: dict | None) -> None:
    """ValueError unless ``table`` (a notebook's sizes for ``profile``) is a dict of attribute names that do not
    clash with a ``Profile`` attribute (``profile.seed`` must stay the seed, not a size called seed)."""
    if table is None:
        return
    if not isinstance(table, dict):
        raise ValueError(f"{profile} must be a dict of sizes such as dict(epochs=2), got {type(table).__name__}")
    bad = [k for k in table if not isinstance(k, str) or not k.isidentifier()]
    if bad:
        raise ValueError(f"{profile} sizes must be named like attributes (profile.epochs), got {bad}")
    clash = sorted(k for k in table if k in _RESERVED)
    if clash:
        raise ValueError(f"{profile} names the size(s) {', '.join(clash)}, which clash with the Profile attributes "
                         f"{', '.join(sorted(k for k in _RESERVED if not k.startswith('_')))}: "
                         f"profile.{clash[0]} would not be the size; rename the size")


def get_profile(ci: dict | None = None, laptop: dict | None = None, gpu: dict | None = None,
                seed: int = 0, name: str | None = None) -> Profile:
    """Pick the profile (``name`` or ``KDLIB_PROFILE``), seed everything and return its sizes.

    The ``gpu`` profile runs on CUDA when present; asked for on a machine without CUDA it warns and runs
    the same code on the CPU (slowly, at full size, unless ``KDLIB_OVERRIDES`` shrinks it).
    ``KDLIB_SIZES=ci`` takes another profile's sizes (here ci's) with this profile's device and code path, as a
    smoke test of the gpu profile (``kdlib.teaching.gpu_check``); claims are then reported, not asserted.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number, got seed={seed!r}")
    name = (name or default_profile_name()).lower()
    if name not in PROFILES:
        raise ValueError(f"profile {name!r} is not one of {', '.join(PROFILES)}")
    given = {"ci": ci, "laptop": laptop, "gpu": gpu}
    for profile, table in given.items():
        _check_names(profile, table)
    size_source = os.environ.get("KDLIB_SIZES", "").strip().lower() or name
    if size_source not in PROFILES:
        raise ValueError(f"KDLIB_SIZES={size_source!r} is not one of {', '.join(PROFILES)}; it names the profile whose "
                         "sizes to use (e.g. KDLIB_PROFILE=gpu KDLIB_SIZES=ci: the gpu code path at ci sizes)")
    sizes = dict(given[size_source] or {})
    overrides = _parse_overrides(os.environ.get("KDLIB_OVERRIDES", ""))
    unknown = sorted(set(overrides) - set(sizes))
    if unknown:
        clash = [k for k in unknown if k in _RESERVED]
        raise ValueError(f"KDLIB_OVERRIDES names {', '.join(unknown)}, which this notebook's profile does "
                         f"not have; it has {', '.join(sorted(sizes))}" +
                         (f" ({', '.join(clash)} is a profile attribute, not a size)" if clash else ""))
    others = [given[p] for p in PROFILES if p != name and given[p]]
    sizes.update({k: _typed(k, text, [sizes[k]] + [o[k] for o in others if k in o], name)
                  for k, text in overrides.items()})
    if name == "gpu" and not torch.cuda.is_available():
        warnings.warn("KDLIB_PROFILE=gpu but CUDA is not available: running the gpu profile on the CPU",
                      stacklevel=2)
    device = torch.device("cuda" if name == "gpu" and torch.cuda.is_available() else "cpu")
    seed_everything(seed)
    borrowed = (f"sizes of {size_source}",) if size_source != name else ()
    return Profile(name=name, device=device, seed=seed, sizes=sizes, overridden=borrowed + tuple(sorted(overrides)))
