"""Image data sets for notebook 03 as in-memory tensors (N, C, H, W) float32: CIFAR-10 or Fashion-MNIST.

* CIFAR-10: torchvision's python-pickle batches (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``,
  ``batches.meta``) under ``datasets/cache/`` (or ``datasets/cache/torchvision/``), or torchvision's
  download when the network allows it. 50k train (last 5k kept as validation) / 10k test, 3x32x32.
* Fashion-MNIST: the IDX ``.gz`` files of Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``)
  or of torchvision's download, each verified by sha256 before it is read. 60k train (last 5k kept as
  validation) / 10k test, 1x28x28.

``normalize`` standardises each channel with the *training split's* mean and std:
``x' = (x - mean_c) / std_c``. ``load_images`` picks the data set and says why.
"""
from __future__ import annotations

import gzip
import os
import pickle
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, DataFileError, verify
from kdlib.data.types import Split

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# sha256 of Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 files (= zalandoresearch's originals)
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_FETCH = "make data   (or: .venv/bin/python datasets/fetch.py fashion_mnist; as root it runs " \
                "apt-get install -y dataset-fashion-mnist)"
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
VAL_SIZE = 5000


@dataclass
class ImageData:
    """A loaded data set: its name, why it was chosen, splits (normalised), class names and channel stats."""

    name: str
    reason: str
    splits: dict[str, Split]
    classes: tuple[str, ...]
    mean: torch.Tensor = field(default_factory=lambda: torch.zeros(1))
    std: torch.Tensor = field(default_factory=lambda: torch.ones(1))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.splits["train"].x.shape[1:])


# ---------------------------------------------------------------- Fashion-MNIST (IDX)
def fashion_dirs() -> list[Path]:
    """Where Fashion-MNIST's IDX files are looked for, in order."""
    env = os.environ.get("KDLIB_FASHION_DIR")
    dirs = [Path(env)] if env else []
    return dirs + [FASHION_SYSTEM_DIR, data_dir() / "torchvision" / "FashionMNIST" / "raw"]


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (magic: 0, 0, dtype 0x08 = uint8, ndim; then big-endian int32 dims)."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataFileError(f"{path} is not an unsigned-byte IDX file. Fetch it again with: {FASHION_FETCH}")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataFileError(f"{path}: IDX header says {tuple(dims)} but holds {body.size} bytes. "
                            f"Fetch it again with: {FASHION_FETCH}")
    return body.reshape(tuple(int(d) for d in dims))


def _apt_install_fashion(log=print) -> bool:
    if shutil.which("apt-get") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    cmd = ["apt-get", "install", "-y", "dataset-fashion-mnist"]
    log("Fashion-MNIST: " + " ".join(cmd))
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        log("Fashion-MNIST: install failed; running apt-get update first")
        subprocess.run(["apt-get", "update"], capture_output=True)
        subprocess.run(cmd, capture_output=True)
    return all((FASHION_SYSTEM_DIR / f).is_file() for f in FASHION_SHA256)


def fetch_fashion_mnist(log=print) -> Path:
    """Make Fashion-MNIST's four IDX files available and verified; return their folder.

    Uses Debian's ``dataset-fashion-mnist`` (installed with apt-get when missing and running as root),
    otherwise torchvision's download into ``datasets/cache/torchvision``.
    """
    for folder in fashion_dirs():
        if all((folder / f).is_file() for f in FASHION_SHA256):
            for name, digest in FASHION_SHA256.items():
                verify(folder / name, digest, f"Fashion-MNIST {name}")
            log(f"Fashion-MNIST: {folder} present, sha256 verified")
            return folder
    if _apt_install_fashion(log):
        return fetch_fashion_mnist(log)
    log("Fashion-MNIST: apt is not usable here; trying torchvision's download")
    from torchvision.datasets import FashionMNIST
    try:
        for train in (True, False):
            FashionMNIST(data_dir() / "torchvision", train=train, download=True)
    except Exception as err:  # offline, or the mirror is down
        raise DataFileError(f"Fashion-MNIST: neither apt (as root) nor torchvision's download worked ({err}). "
                            f"Install Debian's dataset-fashion-mnist or copy the four IDX files into "
                            f"{data_dir() / 'torchvision' / 'FashionMNIST' / 'raw'}") from err
    return fetch_fashion_mnist(log)


def load_fashion_mnist(folder: Path | None = None) -> dict[str, Split]:
    """Fashion-MNIST as ``{"train", "val", "test"}`` splits of x (N, 1, 28, 28) in [0, 1] and y (N,) int64.

    Every file is verified by sha256 first; a missing or corrupt file raises DataFileError naming it.
    """
    if folder is None:
        found = [d for d in fashion_dirs() if all((d / f).is_file() for f in FASHION_SHA256)]
        if not found:
            raise DataFileError(f"Fashion-MNIST: {', '.join(FASHION_SHA256)} not found in "
                                f"{' or '.join(map(str, fashion_dirs()))}. Fetch them with: {FASHION_FETCH}")
        folder = found[0]
    arrays = {}
    for name, digest in FASHION_SHA256.items():
        path = verify(Path(folder) / name, digest, "Fashion-MNIST", fetch=FASHION_FETCH)
        arrays[name.split("-idx")[0]] = read_idx(path)
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # noqa: E731
    x, y = to_x(arrays["train-images"]), torch.from_numpy(arrays["train-labels"].astype(np.int64))
    cut = len(x) - VAL_SIZE
    return {"train": Split(x[:cut], y[:cut]), "val": Split(x[cut:], y[cut:]),
            "test": Split(to_x(arrays["t10k-images"]), torch.from_numpy(arrays["t10k-labels"].astype(np.int64)))}


# ---------------------------------------------------------------- CIFAR-10 (python pickles)
def cifar_dirs() -> list[Path]:
    return [data_dir() / "cifar-10-batches-py", data_dir() / "torchvision" / "cifar-10-batches-py"]


def find_cifar() -> Path | None:
    """The first folder holding all of CIFAR-10's python batches, or None."""
    return next((d for d in cifar_dirs() if all((d / f).is_file() for f in CIFAR_FILES)), None)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except Exception as err:  # truncated or not a pickle
        raise DataFileError(f"CIFAR-10: {path} cannot be read ({type(err).__name__}: {err}). Delete it and fetch "
                            f"again with: {FETCH_COMMAND} (torchvision's CIFAR10(download=True))") from err


def load_cifar10(folder: Path | None = None) -> dict[str, Split]:
    """CIFAR-10 from its python batches as ``{"train", "val", "test"}``: x (N, 3, 32, 32) in [0, 1], y (N,).

    The files are the ones torchvision downloads and checks by md5 (``CIFAR10(root, download=True)``);
    the last 5000 training images (or a tenth of a smaller set) form the validation split.
    """
    folder = Path(folder) if folder is not None else find_cifar()
    if folder is None:
        raise DataFileError(f"CIFAR-10: no cifar-10-batches-py folder with {', '.join(CIFAR_FILES)} in "
                            f"{' or '.join(map(str, cifar_dirs()))}. Fetch it (online) with: {FETCH_COMMAND}")
    for name in CIFAR_FILES:
        if not (folder / name).is_file():
            raise DataFileError(f"CIFAR-10: {folder / name} is missing. Fetch it (online) with: {FETCH_COMMAND}")

    def part(names):
        batches = [_unpickle(folder / n) for n in names]
        data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise DataFileError(f"CIFAR-10: batches {names} in {folder} have data {data.shape} and "
                                f"{len(labels)} labels; expected (N, 3072) and N. Fetch again with: {FETCH_COMMAND}")
        return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0), torch.from_numpy(labels)

    x, y = part(CIFAR_FILES[:5])
    xt, yt = part(["test_batch"])
    _unpickle(folder / "batches.meta")
    n_val = VAL_SIZE if len(x) > 2 * VAL_SIZE else max(1, len(x) // 10)
    return {"train": Split(x[:-n_val], y[:-n_val]), "val": Split(x[-n_val:], y[-n_val:]), "test": Split(xt, yt)}


def fetch_cifar10(log=print) -> Path | None:
    """Download CIFAR-10 with torchvision when the network allows it; return its folder or None."""
    if find_cifar() is not None:
        return find_cifar()
    if not _online("www.cs.toronto.edu"):
        log("CIFAR-10: not present and www.cs.toronto.edu is unreachable; notebook 03 will use Fashion-MNIST")
        return None
    from torchvision.datasets import CIFAR10
    for train in (True, False):
        CIFAR10(data_dir() / "torchvision", train=train, download=True)
    return find_cifar()


def _online(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- choosing and normalising
def normalize(splits: dict[str, Split]) -> tuple[dict[str, Split], torch.Tensor, torch.Tensor]:
    """Standardise every split per channel with the training split's mean and std."""
    x = splits["train"].x
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    view = (1, -1, 1, 1)
    out = {k: Split((s.x - mean.view(view)) / std.view(view), s.y) for k, s in splits.items()}
    return out, mean, std


def load_images(dataset: str = "auto", download: bool = True, log=print) -> ImageData:
    """Load ``"cifar10"``, ``"fashion_mnist"`` or ``"auto"`` (CIFAR-10 when present or downloadable, else
    Fashion-MNIST), normalised per channel; ``reason`` says why this data set was used."""
    if dataset not in ("auto", "cifar10", "fashion_mnist"):
        raise ValueError(f"dataset must be 'auto', 'cifar10' or 'fashion_mnist', got {dataset!r}")
    if dataset in ("auto", "cifar10"):
        folder = find_cifar()
        reason = f"CIFAR-10 files found in {folder}" if folder else None
        if folder is None and download:
            folder = fetch_cifar10(log)
            reason = "CIFAR-10 downloaded with torchvision" if folder else None
        if folder is not None:
            splits, mean, std = normalize(load_cifar10(folder))
            return ImageData("cifar10", reason, splits, CIFAR_CLASSES, mean, std)
        if dataset == "cifar10":
            raise DataFileError(f"CIFAR-10 asked for but not found in {' or '.join(map(str, cifar_dirs()))} "
                                f"and {'not downloadable' if download else 'download disabled'}")
        why = "CIFAR-10 is not in datasets/cache and " + ("the network does not allow its download" if download
                                                          else "this profile does not download it")
    else:
        why = "this profile asks for Fashion-MNIST (a CPU trains its conv teacher to >90% in minutes)"
    splits, mean, std = normalize(load_fashion_mnist())
    return ImageData("fashion_mnist", why, splits, FASHION_CLASSES, mean, std)
