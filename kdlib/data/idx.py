"""IDX files (MNIST, Fashion-MNIST: notebooks 02 and 03): reading them, and downloading them from a mirror.

IDX is plain bytes (a header, then the array), a format that cannot run code; a file that does not parse
raises DataFileError with the fetch command. Downloads (the fallbacks of ``make data`` where the network
allows them) fetch each ``.gz`` with ``torchvision.datasets.utils.download_url`` and check it against the
caller's pinned checksum; torchvision's dataset classes are never instantiated (they would read a
``processed/*.pt`` file they find, unverified).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from kdlib.data.assets import FETCH_COMMAND, DataFileError, verify


def read_idx(path: Path, fetch: str = FETCH_COMMAND) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzipped (``.gz``) or not: magic 0, 0, 0x08 (uint8), ndim; then ndim
    big-endian int32 dims; then the bytes. A file that is truncated or not IDX raises DataFileError."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"{path} cannot be read ({type(err).__name__}: {err}). Delete it and fetch again "
                            f"with: {fetch}") from err
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataFileError(f"{path} is not an unsigned-byte IDX file. Delete it and fetch again with: {fetch}")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataFileError(f"{path}: the IDX header is truncated. Delete it and fetch again with: {fetch}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataFileError(f"{path}: IDX header says {dims} but holds {body.size} bytes. Delete it and fetch "
                            f"again with: {fetch}")
    return body.reshape(dims)


def download_idx(mirrors: list[str], digests: dict[str, str], folder: Path, what: str,
                 algorithm: str = "sha256", log=print) -> Path:
    """Download each ``name`` of ``digests`` from the first mirror that serves it into ``folder`` and verify
    it against its pinned digest (DataFileError otherwise); files already there and verified are kept."""
    from torchvision.datasets.utils import download_url

    folder.mkdir(parents=True, exist_ok=True)
    for name, digest in digests.items():
        errors = []
        for mirror in mirrors:
            try:
                download_url(mirror + name, str(folder), name, md5=digest if algorithm == "md5" else None)
                break
            except Exception as err:  # noqa: BLE001 - offline, mirror down: try the next one
                errors.append(f"{mirror}: {type(err).__name__}: {err}")
        else:
            raise DataFileError(f"{what}: {name} could not be downloaded ({'; '.join(errors)})")
        verify(folder / name, digest, f"{what} {name}", algorithm=algorithm)
        log(f"{what}: {folder / name} downloaded, {algorithm} verified")
    return folder
