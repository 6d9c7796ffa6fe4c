"""Where the kit keeps its files: the data cache, results, builds. Used by every notebook.

Defaults are folders of the repository (``datasets/cache``, ``results``); ``KDLIB_DATA_DIR`` and
``KDLIB_RESULTS_DIR`` move them (for example to a shared cache on a lab machine).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The asset cache: ``$KDLIB_DATA_DIR`` or ``<repo>/datasets/cache``."""
    return Path(os.environ.get("KDLIB_DATA_DIR") or REPO_ROOT / "datasets" / "cache")


def results_dir() -> Path:
    """Where notebooks write their JSON results: ``$KDLIB_RESULTS_DIR`` or ``<repo>/results``."""
    return Path(os.environ.get("KDLIB_RESULTS_DIR") or REPO_ROOT / "results")
