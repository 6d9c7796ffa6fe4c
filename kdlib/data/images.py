"""Image data sets for notebook 03 as in-memory tensors (N, C, H, W) float32: CIFAR-10 or Fashion-MNIST.

* CIFAR-10: ``kdlib.data.cifar`` (python-pickle batches, md5-verified, restricted unpickler); its names are
  re-exported here. 50k train (last 5k kept as validation) / 10k test, 3x32x32.
* Fashion-MNIST: the IDX ``.gz`` files of Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``)
  or of the zalando mirror torchvision uses, each verified by sha256 before it is read. 60k train (last 5k
  kept as validation) / 10k test, 1x28x28.

``normalize`` standardises each channel with the *training split's* mean and std:
``x' = (x - mean_c) / std_c``. ``load_images`` picks the data set and says why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdlib.core.paths import data_dir
from kdlib.data.assets import DataFileError, verify
from kdlib.data.cifar import (CIFAR_CLASSES, CIFAR_FILES, CIFAR_MD5, cifar_dirs, fetch_cifar10,  # noqa: F401
                              find_cifar, load_cifar10)
from kdlib.data.idx import download_idx, read_idx
from kdlib.data.types import Split

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
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
FASHION_MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
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
    log("Fashion-MNIST: apt is not usable here; downloading the IDX files from the mirror torchvision uses")
    raw = data_dir() / "torchvision" / "FashionMNIST" / "raw"
    try:
        return download_idx(FASHION_MIRRORS, FASHION_SHA256, raw, "Fashion-MNIST", log=log)
    except DataFileError as err:  # offline, the mirror is down, or a file does not match its checksum
        raise DataFileError(f"Fashion-MNIST: neither apt (as root) nor the download worked ({err}). "
                            f"Install Debian's dataset-fashion-mnist or copy the four IDX files into {raw}") from err


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
        arrays[name.split("-idx")[0]] = read_idx(path, FASHION_FETCH)
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # noqa: E731
    x, y = to_x(arrays["train-images"]), torch.from_numpy(arrays["train-labels"].astype(np.int64))
    cut = len(x) - VAL_SIZE
    return {"train": Split(x[:cut], y[:cut]), "val": Split(x[cut:], y[cut:]),
            "test": Split(to_x(arrays["t10k-images"]), torch.from_numpy(arrays["t10k-labels"].astype(np.int64)))}


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
