"""Data loading: checksums before unpickling, clear errors, jitter and subsets."""
import gzip
import pickle

import pytest
import torch

from kdlib.data.assets import DataFileError
from kdlib.data.types import Split
from kdlib.data.transforms import jitter, subset
from kdlib.data.mnist import load_mnist
from kdlib.data.mnist import mnist_pickle_path


def test_missing_mnist_names_the_file_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataFileError, match=r"mnist\.pkl\.gz is missing.*make data"):
        load_mnist()


def test_corrupt_pickle_is_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    path = mnist_pickle_path()
    path.parent.mkdir(parents=True)

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled an unverified file')",))

    with gzip.open(path, "wb") as handle:
        pickle.dump(Boom(), handle)
    with pytest.raises(DataFileError, match="corrupt.*sha256"):
        load_mnist()


def test_real_mnist_when_fetched():
    path = mnist_pickle_path()
    if not path.exists():
        pytest.skip("MNIST not fetched (make data)")
    data = load_mnist()
    assert {k: tuple(v.x.shape) for k, v in data.items()} == {"train": (50000, 784), "val": (10000, 784),
                                                             "test": (10000, 784)}
    assert data["train"].x.dtype == torch.float32 and 0 <= data["test"].x.min() and data["test"].x.max() < 1
    assert data["test"].y.bincount().tolist()[3] == 1010  # the paper's 1010 test threes


def test_jitter_shifts_each_image_within_two_pixels():
    img = torch.zeros(28, 28)
    img[14, 14] = 1.0
    x = img.reshape(1, -1).repeat(500, 1)
    out = jitter(x, 2, torch.Generator().manual_seed(0)).reshape(500, 28, 28)
    rows, cols = (out == 1).nonzero()[:, 1], (out == 1).nonzero()[:, 2]
    assert len(rows) == 500 and rows.min() == 12 and rows.max() == 16 and cols.min() == 12 and cols.max() == 16


def test_subset_by_fraction_excluding_a_class_keeps_indices():
    split = Split(torch.arange(100).float().unsqueeze(1), torch.arange(100) % 10)
    part, index = subset(split, fraction=0.5, exclude_classes=(3,), seed=1)
    assert len(part.y) == 45 and (part.y != 3).all() and torch.equal(split.x[index], part.x)
    with pytest.raises(ValueError, match="fraction"):
        subset(split, fraction=0)


def _write_idx(path, array):
    import struct

    import numpy as np
    code = {1: 0x0801, 3: 0x0803}[array.ndim]
    path.write_bytes(struct.pack(">I", code) + struct.pack(f">{array.ndim}I", *array.shape)
                     + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def test_torchvision_layout_is_accepted_when_the_pickle_is_absent(tmp_path, monkeypatch):
    """The canonical IDX files (as torchvision downloads them) load with the same split and scaling."""
    import numpy as np
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    raw = tmp_path / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    data = load_mnist()
    assert tuple(data["train"].x.shape) == (12, 784) and tuple(data["test"].x.shape) == (5, 784)
    assert 0 <= float(data["train"].x.min()) and float(data["train"].x.max()) <= 1
    assert data["train"].y.dtype == torch.int64
