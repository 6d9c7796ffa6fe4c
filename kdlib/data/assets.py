"""Offline assets: checksums, and errors that say how to fetch what is missing.

Every file a loader reads is verified against a pinned checksum (sha256; md5 where only the source's md5 is
published, CIFAR-10 and torchvision's MNIST) before it is opened, so a pickle is never unpickled unverified;
``kdlib.data.pickles`` adds a restricted unpickler as a second line of defence. Used by every loader of
``kdlib.data`` and by the ``datasets/fetch.py`` entry point.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

FETCH_COMMAND = "make data   (or: .venv/bin/python datasets/fetch.py)"


class DataFileError(FileNotFoundError):
    """A data file is missing or corrupt; the message names the file and the command that fetches it."""


def file_digest(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest (``"sha256"`` or ``"md5"``) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, digest: str, what: str, fetch: str = FETCH_COMMAND, algorithm: str = "sha256") -> Path:
    """Return ``path`` if it is a file whose ``algorithm`` digest equals the pinned ``digest``, else raise
    DataFileError naming the file, the digest it has and the one expected, and ``fetch``, the command that
    fetches it again."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{what}: {path} is missing. Fetch it with: {fetch}")
    actual = file_digest(path, algorithm)
    if actual != digest:
        raise DataFileError(f"{what}: {path} is corrupt ({algorithm} {actual}, expected {digest}); it is not "
                            f"opened. Delete it and fetch again with: {fetch}")
    return path
