"""CIFAR-10 for notebook 03 as in-memory tensors (N, 3, 32, 32) float32 in [0, 1], from torchvision's python
batches (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``) under ``datasets/cache/``
(or ``datasets/cache/torchvision/``). 50k train (last 5k kept as validation) / 10k test.

The batches are pickles, and a pickle can run code: each file is verified against the md5 pinned below
(torchvision's, from ``torchvision/datasets/cifar.py``: ``train_list``, ``test_list``, ``meta``; the only
checksums the source publishes) *before* it is opened, and then read with ``kdlib.data.pickles``'
restricted unpickler, which resolves numpy's array globals and nothing else. ``fetch_cifar10`` downloads the
archive (md5-checked) and extracts it; torchvision's ``CIFAR10`` class is never used to read the files.
"""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch

from kdlib.core.paths import data_dir
from kdlib.data.assets import DataFileError, verify
from kdlib.data.pickles import restricted_unpickle
from kdlib.data.types import Split

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
# md5 of each file of cifar-10-batches-py, as torchvision 0.29.1 pins them (train_list, test_list, meta)
CIFAR_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR_FILES = list(CIFAR_MD5)
CIFAR_FETCH = ".venv/bin/python datasets/fetch.py cifar10   (online: it downloads from www.cs.toronto.edu)"
VAL_SIZE = 5000


def cifar_dirs() -> list[Path]:
    return [data_dir() / "cifar-10-batches-py", data_dir() / "torchvision" / "cifar-10-batches-py"]


def find_cifar() -> Path | None:
    """The first folder holding all of CIFAR-10's python batches (present, not yet verified), or None."""
    return next((d for d in cifar_dirs() if all((d / f).is_file() for f in CIFAR_FILES)), None)


def _read_batch(path: Path) -> dict:
    """One verified batch file: md5 first, then the restricted unpickler (never ``pickle.load``)."""
    verify(path, CIFAR_MD5[path.name], "CIFAR-10", fetch=CIFAR_FETCH, algorithm="md5")
    with open(path, "rb") as handle:
        batch = restricted_unpickle(handle, f"CIFAR-10: {path}", CIFAR_FETCH)
    if not isinstance(batch, dict):
        raise DataFileError(f"CIFAR-10: {path} holds a {type(batch).__name__}, not a batch dict. Delete it and "
                            f"fetch again with: {CIFAR_FETCH}")
    return batch


def load_cifar10(folder: Path | None = None) -> dict[str, Split]:
    """CIFAR-10 from its python batches as ``{"train", "val", "test"}``: x (N, 3, 32, 32) in [0, 1], y (N,).

    Each file is verified against its pinned md5 before it is opened and read with a restricted unpickler; a
    missing, corrupt or planted file raises DataFileError naming it, both checksums and the fetch command.
    The last 5000 training images (or a tenth of a smaller set) form the validation split.
    """
    folder = Path(folder) if folder is not None else find_cifar()
    if folder is None:
        raise DataFileError(f"CIFAR-10: no cifar-10-batches-py folder with {', '.join(CIFAR_FILES)} in "
                            f"{' or '.join(map(str, cifar_dirs()))}. Fetch it (online) with: {CIFAR_FETCH}")
    for name in CIFAR_FILES:
        if not (folder / name).is_file():
            raise DataFileError(f"CIFAR-10: {folder / name} is missing. Fetch it (online) with: {CIFAR_FETCH}")

    def part(names):
        batches = [_read_batch(folder / n) for n in names]
        try:
            data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
            labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
        except (KeyError, TypeError, ValueError) as err:
            raise DataFileError(f"CIFAR-10: batches {names} in {folder} lack 'data' or 'labels' ({err}). "
                                f"Fetch again with: {CIFAR_FETCH}") from err
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise DataFileError(f"CIFAR-10: batches {names} in {folder} have data {data.shape} and "
                                f"{len(labels)} labels; expected (N, 3072) and N. Fetch again with: {CIFAR_FETCH}")
        return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0), torch.from_numpy(labels)

    x, y = part(CIFAR_FILES[:5])
    xt, yt = part(["test_batch"])
    _read_batch(folder / "batches.meta")
    n_val = VAL_SIZE if len(x) > 2 * VAL_SIZE else max(1, len(x) // 10)
    return {"train": Split(x[:-n_val], y[:-n_val]), "val": Split(x[-n_val:], y[-n_val:]), "test": Split(xt, yt)}


def fetch_cifar10(log=print) -> Path | None:
    """Download CIFAR-10's archive (md5-checked) and extract it when the network allows it; return its
    folder, or None when offline. The extracted files are verified by ``load_cifar10``."""
    if find_cifar() is not None:
        return find_cifar()
    if not _online("www.cs.toronto.edu"):
        log("CIFAR-10: not present and www.cs.toronto.edu is unreachable; notebook 03 will use Fashion-MNIST")
        return None
    from torchvision.datasets.utils import download_and_extract_archive

    root = data_dir() / "torchvision"
    download_and_extract_archive(CIFAR_URL, str(root), filename="cifar-10-python.tar.gz", md5=CIFAR_ARCHIVE_MD5)
    folder = find_cifar()
    if folder is not None:
        log(f"CIFAR-10: extracted to {folder}")
    return folder


def _online(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
