"""Where a pretrained model comes from: a local folder, a hub id (only when the network is allowed), or the
offline copy that ``make data`` provides. One decision for every loader: notebook 04's MiniLM teacher
(``kdlib.encoders.models.load_encoder_teacher``) and notebook 05's SmolLM2 teacher (``kdlib.lm.load.load_teacher``).

``choose_source(source, allow_network)`` decides, in this order:

1. ``source`` is None: the offline copy ("no source given");
2. ``source`` is an existing folder: that folder, as it is (never the network);
3. ``source`` *looks like a path* but is no folder: ``FileNotFoundError`` naming it, so that a typo such as
   ``"./typo_dir"`` never silently loads the offline model. A source looks like a path when it is a
   ``pathlib.Path`` (any ``os.PathLike``), or a string that starts with ``"."``, ``"/"`` or ``"~"`` or contains
   the path separator, and is not a hub id ``"org/name"`` (``"name"`` or ``"org/name"``, letters, digits,
   ``"."``, ``"_"`` and ``"-"``, starting with a letter or digit);
4. otherwise a hub id: loaded from the hub only with ``allow_network=True``; when the network is not allowed,
   or the hub load fails (no network, no such repository, ...), the offline copy.

``load_from_source`` carries the decision out with the caller's two loaders and returns the value, where it came
from and a one-line ``reason`` that says what was loaded and why (also passed to ``log``). A local folder
whose weights exist only in a pickle-based format (``pytorch_model.bin``, ``*.pt``, ...: loading one can run
code) is refused with DataFileError before the loader sees it (``check_weights_format``); safetensors, JSON
and tokenizer files cannot run code, and the offline copies are verified by their own checksums. This module
is the data layer: it knows nothing about encoders or language models.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdlib.data.assets import DataFileError

__all__ = ["HUB_ID", "is_hub_id", "looks_like_path", "SourceChoice", "choose_source", "Sourced", "load_from_source",
           "check_weights_format"]

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


def is_hub_id(source: str) -> bool:
    """True for ``"name"`` or ``"org/name"`` (letters, digits, ``.``, ``_``, ``-``; no ``..``)."""
    return isinstance(source, str) and HUB_ID.fullmatch(source) is not None and ".." not in source


def looks_like_path(source: str | os.PathLike) -> bool:
    """True for a ``Path`` (any ``os.PathLike``) and for a string that starts with ``.``, ``/`` or ``~`` or
    contains the path separator, unless it is a hub id ``"org/name"``."""
    if not isinstance(source, str):
        return isinstance(source, os.PathLike)
    if is_hub_id(source):
        return False
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    return source.startswith((".", "/", "~")) or any(sep in source for sep in seps)


@dataclass
class SourceChoice:
    """What ``choose_source`` decided: ``kind`` ("local", "hub" or "offline"), the ``location`` to load
    (a folder, a hub id, or None for the offline copy) and ``why`` (a phrase for the reason)."""

    kind: str
    location: str | None
    why: str


def choose_source(source: str | os.PathLike | None, allow_network: bool = False, what: str = "model"
                  ) -> SourceChoice:
    """Decide where to load ``what`` from (the rules are in the module docstring); raises FileNotFoundError
    for a source that looks like a path but is no folder."""
    if source is None:
        return SourceChoice("offline", None, "no source given")
    folder = Path(source).expanduser()
    if folder.is_dir():
        return SourceChoice("local", os.path.expanduser(source), f"local folder {source}")
    if looks_like_path(source):
        state = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(
            f"{what} source {str(source)!r} looks like a folder path, but the folder {folder.resolve()} {state}. "
            f"Check the path; a hub id has the form 'org/name' (e.g. 'HuggingFaceTB/SmolLM2-135M-Instruct'), and "
            f"source=None loads the offline {what}.")
    if allow_network:
        return SourceChoice("hub", str(source), f"hub id {source}")
    return SourceChoice("offline", None, f"hub id {source} not loaded: the network is not allowed "
                                          f"(allow_network=False)")


def check_weights_format(folder: str | os.PathLike, what: str = "model") -> Path:
    """``folder``, or DataFileError when it holds weights in a pickle-based format (``PICKLED_WEIGHTS``) and no
    ``*.safetensors``: loading such a file can run code, so kdlib loads safetensors only."""
    folder = Path(folder)
    pickled = sorted({p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern)})
    if pickled and not any(folder.glob("*.safetensors")):
        raise DataFileError(
            f"{what} folder {folder} holds weights only in a pickle-based format ({', '.join(pickled)}), which can "
            f"run code when loaded; kdlib loads safetensors only. If you trust the folder, convert it once: "
            f"AutoModel.from_pretrained(folder).save_pretrained(folder) writes model.safetensors")
    return folder


@dataclass
class Sourced:
    """``value`` as the caller's loader returned it, the ``source`` it came from (folder or hub id), the
    ``kind`` ("local", "hub" or "offline") and the ``reason`` (what was loaded and why)."""

    value: Any
    source: str
    kind: str
    reason: str


def load_from_source(source: str | os.PathLike | None, load: Callable[[str], Any],
                     offline: Callable[[], tuple[Any, str | Path, str]], allow_network: bool = False,
                     what: str = "model", log=print) -> Sourced:
    """Load ``what`` as ``choose_source`` decides: ``load(location)`` for a local folder or a hub id, and
    ``offline()``, which returns ``(value, folder, description)``, for the offline copy. A hub load that
    raises falls back to the offline copy and the reason names the error; a local folder that fails to load
    raises DataFileError naming it and the loader's error (a broken folder is not replaced behind the caller's
    back; one with pickled weights only is refused before loading, ``check_weights_format``). The reason is
    passed to ``log``."""
    choice = choose_source(source, allow_network, what)
    if choice.kind == "local":
        check_weights_format(choice.location, what)
        try:
            value = load(choice.location)
        except DataFileError:
            raise
        except Exception as err:  # noqa: BLE001 - truncated weights, bad config, ...: a file problem, said so
            raise DataFileError(f"{what} folder {choice.location} does not load ({type(err).__name__}: "
                                f"{str(err)[:300]}). Check that it holds a complete model (config.json, "
                                f"*.safetensors, tokenizer files), or pass source=None for the offline {what} "
                                f"(fetched by make data)") from err
        sourced = Sourced(value, str(choice.location), "local", choice.why)
        log(sourced.reason)
        return sourced
    why = choice.why
    if choice.kind == "hub":
        try:
            sourced = Sourced(load(choice.location), str(choice.location), "hub",
                              f"{choice.why}, downloaded (allow_network=True)")
            log(sourced.reason)
            return sourced
        except Exception as err:  # noqa: BLE001 - no network, no such repository, ...: the offline copy
            why = f"hub id {source} could not be loaded ({type(err).__name__}: {str(err)[:160]})"
    value, folder, description = offline()
    sourced = Sourced(value, str(folder), "offline", f"{why}; {description}")
    log(sourced.reason)
    return sourced
