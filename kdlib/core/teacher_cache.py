"""Teacher outputs computed once and looked up by sample index; trained teachers cached by recipe.

Notebook 02 (and every later notebook that distils from a fixed teacher); notebook 03 also caches the
teacher's *features* (``TeacherCache.build(teacher, x, outputs="features")`` calls ``teacher.features``).

* ``TeacherCache``: the teacher's logits for every sample of a data set, stamped with a fingerprint of
  the teacher's weights and of the inputs. The training loop shuffles and augments *indices*, and looks
  the logits up by index, so sample i always meets its own teacher output. Using the cache with another
  teacher or other inputs raises instead of silently misaligning.
* ``prepare_teacher``: train a teacher once and keep its weights under ``datasets/cache/teachers``,
  keyed by a hash of its recipe (architecture, data, profile sizes); a cache whose key or checksum does
  not match is rebuilt, never trusted.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

import torch
from torch import nn

from kdlib.core.files import sha256sum
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
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
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


def prepare_teacher(name: str, recipe: dict, build: Callable[[], nn.Module],
                    train: Callable[[nn.Module], object], log=print) -> nn.Module:
    """Return a trained teacher: loaded from the cache when its recipe key and checksum match, else built,
    trained by ``train(model)`` (which shows its own progress bar) and saved.
    """
    folder = data_dir() / "teachers"
    key = recipe_key(recipe)
    weights, meta = folder / f"{name}-{key}.pt", folder / f"{name}-{key}.json"
    model = build()
    if weights.is_file() and meta.is_file():
        stored = json.loads(meta.read_text())
        if stored.get("sha256") == sha256sum(weights) and stored.get("recipe_key") == key:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            log(f"teacher {name}: loaded from cache {weights.name} (recipe {key})")
            return model
        log(f"teacher {name}: cache {weights.name} does not match its checksum or recipe; retraining")
    log(f"teacher {name}: no cached weights for recipe {key}; training it once (cached afterwards)")
    train(model)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, weights)
    meta.write_text(json.dumps({"recipe_key": key, "recipe": recipe, "sha256": sha256sum(weights)},
                               indent=1, default=str))
    return model

