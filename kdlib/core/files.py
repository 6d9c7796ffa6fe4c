"""Files the kit writes and reads back: checksums and atomic writes. Every notebook (through the caches).

* ``sha256sum``: the hex sha256 of a file, read in chunks; every file a loader or cache reads is verified with it.
* ``atomic_write``: write to a temporary file in the same folder, then rename, so that an interrupted write
  never leaves a file that a later run would load.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_write(path: Path, mode: str = "wb"):
    """Open a temporary file beside ``path`` for writing and rename it to ``path`` when the block ends without
    an error (else delete it): readers see the old file or the complete new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
