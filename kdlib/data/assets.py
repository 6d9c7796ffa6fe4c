"""Offline assets: checksums, and errors that say how to fetch what is missing.

Every file a loader reads is verified by sha256 before it is opened (a pickle is never unpickled
unverified). Used by ``kdlib.data.mnist`` and the ``datasets/fetch.py`` entry point.
"""
from __future__ import annotations

from pathlib import Path

from kdlib.core.files import sha256sum

FETCH_COMMAND = "make data   (or: .venv/bin/python datasets/fetch.py)"


class DataFileError(FileNotFoundError):
    """A data file is missing or corrupt; the message names the file and the command that fetches it."""


def verify(path: Path, sha256: str, what: str, fetch: str = FETCH_COMMAND) -> Path:
    """Return ``path`` if it exists and its sha256 matches, else raise DataFileError naming the file and
    ``fetch``, the command that fetches it."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{what}: {path} is missing. Fetch it with: {fetch}")
    actual = sha256sum(path)
    if actual != sha256:
        raise DataFileError(f"{what}: {path} is corrupt (sha256 {actual}, expected {sha256}). "
                            f"Delete it and fetch again with: {fetch}")
    return path
