"""Files the kit writes and reads back: checksums, cache names, writable folders and atomic writes. Every notebook
(through the caches).

* ``sha256sum``: the hex sha256 of a file, read in chunks; every file a loader or cache reads is verified with it.
* ``check_cache_name``: a cache entry's name confined to one plain file name (``[A-Za-z0-9_.-]``, no ``..``), so
  that no name writes outside its cache folder.
* ``check_writable``: create a cache folder and write a probe file in it *before* spending time on what will be
  cached there (training a teacher, sampling), with an error that says how to fix it.
* ``atomic_write`` / ``atomic_folder``: write to a temporary file (folder) beside the target, then rename, so
  that an interrupted write never leaves a file (folder) that a later run would load.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_created(tmp: str, folder: bool = False) -> None:
    """Give a temporary file (folder) the permissions ``open`` (``mkdir``) would have given it, 0o666 (0o777)
    less the umask: mkstemp and mkdtemp make them private (0o600 / 0o700), which a shared cache must not be."""
    os.chmod(tmp, (0o777 if folder else 0o666) & ~_umask())


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_cache_name(name, what: str = "name") -> str:
    """``name`` unchanged, or ValueError unless it is a non-empty string of letters, digits, ``_``, ``.`` and
    ``-`` without ``..`` (one plain file name: no path separators, nothing that leaves the cache folder)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{what} must be a non-empty plain file name of letters, digits, '_', '.' and '-' "
                         f"(no path separators, no '..'), got {what}={name!r}; it names a file inside the cache "
                         "folder, so pick a simple name such as 'mnist_teacher'")
    return name


def _probe(folder: Path) -> None:
    """Write and delete a small file in ``folder`` (raises OSError when that is not possible)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-probe-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"kdlib")
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_writable(folder: Path, what: str = "cache") -> Path:
    """Create ``folder`` (and its parents) and check that a file can be written in it; an OSError of the same
    kind, naming the folder and how to fix it, otherwise. Call it before work whose result goes there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe(folder)
    except OSError as err:
        raise type(err)(f"the {what} folder {folder} cannot be created or written ({type(err).__name__}: {err}); "
                        "nothing was computed yet. Set KDLIB_DATA_DIR to a writable folder (it moves "
                        "datasets/cache) or fix the folder's permissions, then run again") from err
    return folder


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
        _as_created(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: Path):
    """Yield a temporary folder beside ``path`` to fill; when the block ends without an error it replaces
    ``path`` (an old folder there is removed first), else it is deleted. A later run sees no folder or a complete
    one, never a half-written one (for caches written by ``save_pretrained``, e.g. ``kdlib.lm.load``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        _as_created(str(tmp), folder=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
