"""Teacher outputs computed once and looked up by sample index; trained teachers cached by recipe.

Notebook 02 (and every later notebook that distils from a fixed teacher); notebook 03 also caches the
teacher's *features* (``TeacherCache.build(teacher, x, outputs="features")`` calls ``teacher.features``).

* ``TeacherCache``: the teacher's logits for every sample of a data set, stamped with a fingerprint of
  the teacher's weights and of the inputs. The training loop shuffles and augments *indices*, and looks
  the logits up by index, so sample i always meets its own teacher output. Using the cache with another
  teacher or other inputs raises instead of silently misaligning.
* ``prepare_teacher``: train a teacher once and keep its weights under ``datasets/cache/teachers``,
  keyed by a hash of its recipe (architecture, data, profile sizes); a cache whose key or checksum does
  not match, or that is corrupt, is rebuilt (with a log line saying why), never trusted. The folder is
  checked writable before training, and the files are written atomically.
* ``row_checksums``: one number per row of token ids, so that caches of per-row teacher outputs
  (``kdlib.lm.blocks.cache_topk``, ``kdlib.encoders.cache``) can check the rows a step trains on.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

import torch
from torch import nn

from kdlib.core.files import atomic_write, check_cache_name, check_writable, sha256sum
from kdlib.core.inference import predict
from kdlib.core.paths import data_dir
from kdlib.core.validate import values_checked


def fingerprint(obj: nn.Module | torch.Tensor) -> str:
    """A short sha256 of a model's class and weights, or of a tensor's shape and values."""
    digest = hashlib.sha256()
    tensors = obj.state_dict().items() if isinstance(obj, nn.Module) else [("tensor", obj)]
    digest.update(type(obj).__name__.encode())
    for name, tensor in tensors:
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        # the raw bytes (as numpy's tobytes gives them), for every dtype, bfloat16 included
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class TeacherCache:
    """Teacher logits by sample index: ``cache[idx]`` is the teacher's output for samples ``idx``."""

    def __init__(self, logits: torch.Tensor, teacher_id: str, inputs_id: str):
        self.logits, self.teacher_id, self.inputs_id = logits, teacher_id, inputs_id

    @classmethod
    def build(cls, teacher: nn.Module, x: torch.Tensor, batch_size: int = 2048, outputs: str = "logits"
              ) -> "TeacherCache":
        """Run the teacher once over the (un-augmented) inputs ``x``; ``outputs="features"`` caches
        ``teacher.features(x)`` (notebook 03) instead of the logits. The values live in ``.logits``."""
        if outputs not in ("logits", "features"):
            raise ValueError(f"outputs must be 'logits' or 'features', got {outputs!r}")
        fn = teacher.features if outputs == "features" else None
        return cls(predict(teacher, x, batch_size, fn=fn), fingerprint(teacher), fingerprint(x))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "TeacherCache":
        """A cache of ``fn(values)`` for the same teacher and inputs (e.g. pooled features)."""
        return TeacherCache(fn(self.logits), self.teacher_id, self.inputs_id)

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        """The outputs for samples ``index``, on ``index``'s device: the cache moves there on first use (once),
        so a training step on a GPU copies nothing and waits for nothing. The range check reads the index on
        the host, so it runs only while value checks are on (``kdlib.core.validate``)."""
        index = torch.as_tensor(index)
        if values_checked() and index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise IndexError(f"sample index out of range for a teacher cache of {len(self)} samples "
                             f"(got {int(index.min())}..{int(index.max())}); was it built for another data set?")
        if self.logits.device != index.device:
            self.logits = self.logits.to(index.device)
        return self.logits[index]

    def check(self, teacher: nn.Module | None = None, x: torch.Tensor | None = None) -> "TeacherCache":
        """Raise ValueError if this cache was built from another teacher or other inputs."""
        if teacher is not None and fingerprint(teacher) != self.teacher_id:
            raise ValueError(f"teacher cache was built from teacher {self.teacher_id}, not from this teacher "
                             f"({fingerprint(teacher)}); rebuild it with TeacherCache.build")
        if x is not None and (len(x) != len(self) or fingerprint(x) != self.inputs_id):
            raise ValueError(f"teacher cache holds {len(self)} samples of inputs {self.inputs_id}, but these "
                             f"inputs are {len(x)} samples ({fingerprint(x)}); rebuild it for these inputs")
        return self


def by_index(outputs) -> Callable[[torch.Tensor], torch.Tensor]:
    """A lookup ``idx -> outputs[idx]`` for a ``TeacherCache`` or a plain tensor of teacher outputs (which is
    wrapped in an unstamped cache), so that both move to the training device once."""
    cache = outputs if isinstance(outputs, TeacherCache) else TeacherCache(torch.as_tensor(outputs), "", "")
    return cache.__getitem__


def recipe_key(recipe: dict) -> str:
    """A stable short hash of a JSON-serialisable recipe."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]


def row_checksums(ids: torch.Tensor, pad_id: int | None = None) -> torch.Tensor:
    """One int64 per row of token ids ``(n, L)``: ``sum_t (ids[t] + 1) * w_t`` with fixed position weights
    ``w_t`` (``pad_id`` positions count 0, so a batch cut to its longest row sums as the full row did). A cache
    of per-row teacher outputs stores them so that a training step can check, on its first call, that the
    rows it is given are the rows the cache was built from. Tensor ops on ``ids``' device."""
    ids = ids.long()
    t = torch.arange(ids.shape[-1], device=ids.device)
    weights = (t * 40503 + 1) % 65521 + 1  # < 2^16: ids < 2^24 and L < 2^20 cannot overflow
    terms = (ids + 1) * weights
    if pad_id is not None:
        terms = terms.masked_fill(ids == pad_id, 0)
    return terms.sum(-1)


def describe(err: BaseException) -> str:
    """``"Type: message"`` on one line (at most 200 characters of the message), for one-line log messages."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def _cached_state(model: nn.Module, weights, meta, key: str) -> str | None:
    """Load the cached weights into ``model``; None on success, else why the cache cannot be used ("" when
    there is none). Corrupt files are reported, never raised: the cache is rebuilt, never trusted."""
    if not (weights.is_file() and meta.is_file()):
        return ""
    try:
        stored = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"is corrupt (metadata {meta.name} is not readable JSON: {describe(err)})"
    if not isinstance(stored, dict) or stored.get("recipe_key") != key or stored.get("sha256") != sha256sum(weights):
        return "does not match its checksum or recipe"
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file (pickle, zip, EOF) is rebuilt, never raised
        return f"is corrupt (torch.load cannot read it: {describe(err)})"
    try:
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - a state dict of other keys or shapes: the model changed
        return f"is corrupt (its weights do not fit the model: {describe(err)})"
    return None


def prepare_teacher(name: str, recipe: dict, build: Callable[[], nn.Module],
                    train: Callable[[nn.Module], object], log=print) -> nn.Module:
    """Return a trained teacher: loaded from ``datasets/cache/teachers/<name>-<recipe key>.pt`` when its recipe
    key and checksum match and the weights load into ``build()``, else built, trained by ``train(model)``
    (which shows its own progress bar) and saved. Notebook 02 onwards.

    ``name`` is one plain file name (``check_cache_name``). Before training, the cache folder is created and a
    probe file written (``check_writable``), so an unwritable folder fails at once, not after training. A cache
    that is corrupt (metadata not JSON, weights ``torch.load`` cannot read, weights of other shapes) or stale is
    rebuilt with one log line saying why, never raised. Weights and then metadata are written atomically
    (``atomic_write``; the old metadata is removed first), so an interrupted write leaves no pair that loads; a
    save that fails with an OSError is logged and the trained teacher is still returned.
    """
    check_cache_name(name)
    folder = data_dir() / "teachers"
    key = recipe_key(recipe)
    weights, meta = folder / f"{name}-{key}.pt", folder / f"{name}-{key}.json"
    model = build()
    why = _cached_state(model, weights, meta, key)
    if why is None:
        log(f"teacher {name}: loaded from cache {weights.name} (recipe {key})")
        return model
    check_writable(folder, "teacher cache")  # before the training that would be lost
    if why:
        log(f"teacher {name}: cache {weights.name} {why}; retraining")
        model = build()  # a failed load_state_dict may have copied some tensors: start from a fresh build
    else:
        log(f"teacher {name}: no cached weights for recipe {key}; training it once (cached afterwards)")
    train(model)
    try:
        meta.unlink(missing_ok=True)
        with atomic_write(weights) as handle:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, handle)
        with atomic_write(meta, "w") as handle:
            handle.write(json.dumps({"recipe_key": key, "recipe": recipe, "sha256": sha256sum(weights)},
                                    indent=1, default=str))
    except OSError as err:
        log(f"teacher {name}: trained, but could not be cached in {folder} ({describe(err)}); it is returned "
            "uncached and will be trained again next time")
    return model
