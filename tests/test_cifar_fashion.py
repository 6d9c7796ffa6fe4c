"""Notebook 03's loaders on tiny files written in each data set's own format (the real files are not fetched)."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from kdlib.data.assets import DataFileError, file_digest
from kdlib.data.images import load_cifar10, load_fashion_mnist, load_images
from kdlib.data import cifar, images
from kdlib.core.files import sha256sum


def write_cifar(folder, n_per_batch=4, n_test=3, monkeypatch=None):
    """CIFAR-10's python version: pickled dicts with 'data' (N, 3072) uint8 rows (R, G, B planes) and 'labels'.
    With ``monkeypatch``, the loader's pinned md5s are replaced by those of the files written here."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {"batch_label": name, "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": list(rng.integers(0, 10, n)), "filenames": [f"{name}_{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": list(images.CIFAR_CLASSES), "num_vis": 3072, "num_cases_per_batch": n_per_batch},
                    handle)
    if monkeypatch is not None:
        monkeypatch.setattr(cifar, "CIFAR_MD5", {n: file_digest(folder / n, "md5") for n in cifar.CIFAR_FILES})
    return folder


def test_cifar_loader_reads_python_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    folder = write_cifar(tmp_path / "cifar-10-batches-py", monkeypatch=monkeypatch)
    splits = load_cifar10()
    assert splits["train"].x.shape == (18, 3, 32, 32) and splits["val"].x.shape == (2, 3, 32, 32)
    assert splits["test"].x.shape == (3, 3, 32, 32) and splits["test"].y.dtype == torch.int64
    with open(folder / "data_batch_1", "rb") as handle:
        first = pickle.load(handle)
    # channel-major rows: the first 1024 bytes are the red plane of image 0
    assert torch.allclose(splits["train"].x[0, 0].flatten(), torch.tensor(first["data"][0, :1024] / 255.0).float())
    assert splits["train"].y[0] == first["labels"][0]
    data = load_images("auto", download=False)
    assert data.name == "cifar10" and "found" in data.reason and data.shape == (3, 32, 32)
    x = data.splits["train"].x
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)  # per-channel normalised
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)


def test_real_cifar_md5s_are_pinned_not_the_test_files():
    assert cifar.CIFAR_MD5["data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    assert len(cifar.CIFAR_MD5) == 7 and all(len(d) == 32 for d in cifar.CIFAR_MD5.values())


def test_cifar_missing_or_corrupt_names_file_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataFileError, match="cifar-10-batches-py.*fetch.py cifar10"):
        load_cifar10()
    folder = write_cifar(tmp_path / "cifar-10-batches-py", monkeypatch=monkeypatch)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataFileError, match="test_batch is corrupt.*md5.*expected.*fetch.py cifar10"):
        load_cifar10()
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataFileError, match="data_batch_3 is missing"):
        load_cifar10(folder)


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion"
    folder.mkdir()
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (5010, 28, 28)),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 5010),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (7, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 7)}
    for name, array in arrays.items():
        write_idx(folder / name, array)
    monkeypatch.setattr(images, "FASHION_SHA256", {n: sha256sum(folder / n) for n in arrays})
    monkeypatch.setenv("KDLIB_FASHION_DIR", str(folder))
    return folder, arrays


def test_fashion_idx_loader(tiny_fashion):
    folder, arrays = tiny_fashion
    splits = load_fashion_mnist()
    assert splits["train"].x.shape == (10, 1, 28, 28) and splits["val"].x.shape == (5000, 1, 28, 28)
    assert splits["test"].x.shape == (7, 1, 28, 28)
    assert torch.equal(splits["test"].y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"]).long())
    assert torch.allclose(splits["train"].x[3, 0], torch.tensor(arrays["train-images-idx3-ubyte.gz"][3] / 255.0).float())


def test_fashion_sha256_mismatch_is_a_data_file_error(tiny_fashion):
    folder, arrays = tiny_fashion
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", arrays["t10k-labels-idx1-ubyte.gz"][::-1].copy())
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt.*dataset-fashion-mnist"):
        load_fashion_mnist(folder)


def test_fashion_missing_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "fashion_dirs", lambda: [tmp_path])
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.gz.*fashion_mnist"):
        load_fashion_mnist()


def test_real_fashion_mnist_when_installed():
    if not all((images.FASHION_SYSTEM_DIR / f).is_file() for f in images.FASHION_SHA256):
        pytest.skip("dataset-fashion-mnist not installed (make data)")
    splits = load_fashion_mnist(images.FASHION_SYSTEM_DIR)
    assert {k: len(v.y) for k, v in splits.items()} == {"train": 55000, "val": 5000, "test": 10000}
    assert splits["test"].y.bincount().tolist() == [1000] * 10
