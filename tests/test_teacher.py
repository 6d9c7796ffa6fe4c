"""The teacher cache: cached == online, aligned under shuffling and augmentation, refused when stale."""
import json

import pytest
import torch

from kdlib.data.types import Split
from kdlib.data.transforms import jitter
from kdlib.vision.mlp import mlp
from kdlib.core.teacher_cache import TeacherCache, by_index, fingerprint, prepare_teacher
from kdlib.core.validate import value_checks
from kdlib.core.inference import predict
from kdlib.vision.steps import kd_step
from kdlib.core.fit import fit


def toy(n=300, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 784, generator=gen)
    return Split(x, torch.randint(0, 10, (n,), generator=gen))


def test_cached_equals_online_for_shuffled_indices():
    torch.manual_seed(0)
    teacher = mlp([784, 32, 10], dropout=0.5)
    data = toy()
    cache = TeacherCache.build(teacher, data.x, batch_size=64)
    idx = torch.randperm(len(data.x))[:50]
    teacher.eval()
    with torch.no_grad():
        online = teacher(data.x[idx])
    assert torch.allclose(cache[idx], online, atol=1e-6)
    teacher.train()
    TeacherCache.build(teacher, data.x)
    assert teacher.training


def test_training_loop_hands_each_sample_its_own_teacher_logits():
    """Record what the step sees: under shuffling and jitter, cache[idx] is the teacher's output for x[idx]."""
    torch.manual_seed(0)
    teacher, data = mlp([784, 16, 10]), toy(n=200)
    cache = TeacherCache.build(teacher, data.x)
    inner, seen = kd_step(cache, T=2.0, alpha=0.5), []

    def spy(model, batch, idx):
        seen.append((idx.clone(), cache[idx], batch.y.clone()))
        return inner(model, batch, idx)

    fit(mlp([784, 8, 10]), data, spy, epochs=2, batch_size=32, optimizer="adam", lr=1e-3,
        augment=lambda x, g: jitter(x, 2, g), progress=False)
    assert sum(len(i) for i, _, _ in seen) == 400
    for idx, looked_up, labels in seen:
        assert torch.allclose(looked_up, predict(teacher, data.x[idx]), atol=1e-6)
        assert torch.equal(labels, data.y[idx])
    assert not torch.equal(seen[0][0], torch.arange(32))  # it really shuffled


def test_cache_refuses_another_teacher_or_other_inputs():
    teacher, data = mlp([784, 16, 10]), toy()
    cache = TeacherCache.build(teacher, data.x)
    cache.check(teacher, data.x)
    with pytest.raises(ValueError, match="not from this teacher"):
        cache.check(mlp([784, 16, 10]))
    with pytest.raises(ValueError, match="rebuild it for these inputs"):
        cache.check(x=toy(seed=1).x)
    with pytest.raises(IndexError, match="out of range"):
        cache[torch.tensor([300])]


def test_lookup_by_index_for_a_cache_or_a_tensor_and_the_range_check_only_with_value_checks_on():
    teacher, data = mlp([784, 16, 10]), toy(n=40)
    cache = TeacherCache.build(teacher, data.x)
    idx = torch.tensor([39, 0, 7, 7])
    plain = by_index(cache.logits.clone())
    assert torch.equal(by_index(cache)(idx), cache.logits[idx]) and torch.equal(plain(idx), cache.logits[idx])
    stored = cache.logits
    cache[idx]
    assert cache.logits is stored  # already on the index's device: nothing moved, nothing copied
    with pytest.raises(IndexError, match="teacher cache of 40 samples .*got 0..40"):
        plain(torch.tensor([0, 40]))
    with value_checks(False), pytest.raises(IndexError) as err:  # the check reads the index on the host: skipped
        cache[torch.tensor([0, 40])]
    assert "teacher cache" not in str(err.value)


def test_fingerprint_changes_with_weights():
    model = mlp([4, 3])
    before = fingerprint(model)
    with torch.no_grad():
        model[0].weight.add_(1e-3)
    assert fingerprint(model) != before


def test_prepare_teacher_trains_once_then_loads_and_rebuilds_on_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model[0].weight.fill_(0.5)

    recipe = {"arch": [4, 3], "epochs": 1}
    first = prepare_teacher("toy", recipe, lambda: mlp([4, 3]), train, log=lambda *_: None)
    second = prepare_teacher("toy", recipe, lambda: mlp([4, 3]), train, log=lambda *_: None)
    assert len(calls) == 1 and torch.equal(first[0].weight, second[0].weight)
    prepare_teacher("toy", {**recipe, "epochs": 2}, lambda: mlp([4, 3]), train, log=lambda *_: None)
    assert len(calls) == 2  # another recipe: another key
    weights = next(tmp_path.glob("teachers/toy-*.pt"))
    meta = weights.with_suffix(".json")
    stored = json.loads(meta.read_text())
    meta.write_text(json.dumps({**stored, "sha256": "0" * 64}))
    prepare_teacher("toy", json.loads(meta.read_text())["recipe"], lambda: mlp([4, 3]), train, log=lambda *_: None)
    assert len(calls) == 3  # checksum mismatch: rebuilt, not trusted
