"""Planted faults in the caches (issue 19): names that leave the cache folder and unwritable folders are refused
before any training; an interrupted write leaves no pair that loads; corrupt metadata, unreadable or malicious
weights, weights of other shapes and corrupt teacher samples are rebuilt with a log line saying why, never raised;
a stale top-k or encoder cache (other teacher, other tokens) is refused by the step that is given it."""
import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

import kdlib.core.files as files
from kdlib.core.files import atomic_folder, check_cache_name, check_writable
from kdlib.core.teacher_cache import prepare_teacher
from kdlib.core.validate import value_checks
from kdlib.vision.mlp import mlp


@pytest.fixture
def data(tmp_path, monkeypatch):
    """An empty data folder in place of datasets/cache."""
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


class Recorder:
    """``train`` for prepare_teacher that counts its calls, and ``log`` that keeps the lines."""

    def __init__(self):
        self.calls, self.lines = 0, []

    def train(self, model):
        self.calls += 1
        with torch.no_grad():
            model[0].weight.fill_(0.5)

    def log(self, line):
        self.lines.append(line)


RECIPE = {"arch": [4, 3], "epochs": 1}


def teacher(rec, build=lambda: mlp([4, 3]), name="toy"):
    return prepare_teacher(name, RECIPE, build, rec.train, log=rec.log)


def cached(data):
    weights = next((data / "teachers").glob("toy-*.pt"))
    return weights, weights.with_suffix(".json")


def restamp(weights, meta):
    """Make the metadata's checksum match whatever the weights file now holds (a fault past the checksum)."""
    stored = json.loads(meta.read_text())
    meta.write_text(json.dumps({**stored, "sha256": files.sha256sum(weights)}))


# ---------------------------------------------------------------- before training: the name and the folder
@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "a..b", "", "x y", "/abs", "c:\\x", None, 3])
def test_a_name_that_is_not_one_plain_file_name_is_refused_before_training(data, name):
    rec = Recorder()
    with pytest.raises(ValueError, match=r"name must be a non-empty plain file name.*got name="):
        teacher(rec, name=name)
    assert rec.calls == 0 and not data.exists()


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=12))
def test_an_accepted_name_stays_inside_the_cache_folder(name):
    try:
        check_cache_name(name)
    except ValueError as err:
        assert "got name=" in str(err)
        return
    folder = Path("/cache/teachers")
    assert (folder / f"{name}-0123.pt").parent == folder and ".." not in name and "/" not in name


def test_an_unwritable_cache_folder_fails_before_training_and_says_how_to_fix_it(data, monkeypatch):
    rec = Recorder()
    data.mkdir()
    os.chmod(data, 0o500)
    try:
        if os.access(data, os.W_OK):  # root: chmod has no effect, so plant the failure in the probe
            def refuse(folder):
                raise PermissionError(13, "Permission denied", str(folder))
            monkeypatch.setattr(files, "_probe", refuse)
        with pytest.raises(PermissionError, match=r"teacher cache folder .*data.* cannot be created or written"
                                                  r".*KDLIB_DATA_DIR.*permissions"):
            teacher(rec)
    finally:
        os.chmod(data, 0o700)
    assert rec.calls == 0 and rec.lines == []  # nothing was trained, so nothing was lost


def test_a_data_folder_that_is_a_file_fails_before_training(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path / "file"))
    rec = Recorder()
    with pytest.raises(OSError, match=r"folder .*file.teachers cannot be created or written.*KDLIB_DATA_DIR"):
        teacher(rec)
    assert rec.calls == 0


def test_check_writable_leaves_no_probe_behind(tmp_path):
    folder = check_writable(tmp_path / "a" / "b")
    assert folder.is_dir() and list(folder.iterdir()) == []


# ---------------------------------------------------------------- interrupted writes
def partial_save(exc):
    def save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip")
        raise exc
    return save


def loadable_pairs(data):
    return [p for p in (data / "teachers").glob("*.pt") if p.with_suffix(".json").is_file()]


def test_an_interrupted_write_leaves_no_pair_and_the_next_call_retrains(data, monkeypatch):
    rec = Recorder()
    with monkeypatch.context() as m:
        m.setattr(torch, "save", partial_save(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            teacher(rec)
    assert rec.calls == 1 and list((data / "teachers").iterdir()) == []  # no weights, no temporary file
    teacher(rec)
    assert rec.calls == 2 and "training it once" in rec.lines[-1]
    teacher(rec)
    assert rec.calls == 2 and "loaded from cache" in rec.lines[-1]


def test_an_interrupted_rewrite_of_a_corrupt_pair_leaves_no_pair_that_loads(data, monkeypatch):
    rec = Recorder()
    teacher(rec)
    weights, meta = cached(data)
    meta.write_text(meta.read_text()[:20])
    with monkeypatch.context() as m:
        m.setattr(torch, "save", partial_save(RuntimeError("power cut")))
        with pytest.raises(RuntimeError, match="power cut"):
            teacher(rec)
    assert loadable_pairs(data) == [] and not meta.exists()
    assert [p.name for p in (data / "teachers").iterdir()] == [weights.name]  # the old weights, no metadata
    teacher(rec)
    assert rec.calls == 3 and "training it once" in rec.lines[-1]


def test_a_failed_save_returns_the_trained_teacher_and_says_it_is_not_cached(data, monkeypatch):
    rec = Recorder()
    with monkeypatch.context() as m:
        m.setattr(torch, "save", partial_save(OSError(28, "No space left on device")))
        model = teacher(rec)
    assert torch.all(model[0].weight == 0.5)  # the training is not lost
    assert "trained, but could not be cached" in rec.lines[-1] and "No space left" in rec.lines[-1]
    assert loadable_pairs(data) == []
    teacher(rec)
    assert rec.calls == 2


# ---------------------------------------------------------------- corrupt caches: rebuilt, never trusted
def test_truncated_metadata_is_rebuilt_with_a_log_line(data):
    rec = Recorder()
    teacher(rec)
    weights, meta = cached(data)
    meta.write_text(meta.read_text()[:25])
    model = teacher(rec)
    assert rec.calls == 2 and torch.all(model[0].weight == 0.5)
    assert rec.lines[-1].startswith(f"teacher toy: cache {weights.name} is corrupt (metadata {meta.name} is not "
                                    "readable JSON: JSONDecodeError") and rec.lines[-1].endswith("; retraining")
    teacher(rec)
    assert rec.calls == 2 and "loaded from cache" in rec.lines[-1]


@pytest.mark.parametrize("content", ["[1, 2]", "null", '"text"', "\udcff"])
def test_metadata_of_the_wrong_kind_is_rebuilt(data, content):
    rec = Recorder()
    teacher(rec)
    _, meta = cached(data)
    meta.write_bytes(content.encode("utf-8", "surrogateescape"))
    teacher(rec)
    assert rec.calls == 2 and ("is corrupt" in rec.lines[-1] or "does not match" in rec.lines[-1])


def test_garbage_weights_are_rebuilt_with_a_log_line(data):
    rec = Recorder()
    teacher(rec)
    weights, meta = cached(data)
    weights.write_bytes(b"\x00garbage" * 100)
    restamp(weights, meta)
    teacher(rec)
    assert rec.calls == 2
    assert "is corrupt (torch.load cannot read it:" in rec.lines[-1] and rec.lines[-1].endswith("; retraining")


def test_weights_that_would_run_code_are_never_unpickled(data, tmp_path):
    rec = Recorder()
    teacher(rec)
    weights, meta = cached(data)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    with open(weights, "wb") as handle:
        pickle.dump({"0.weight": Evil()}, handle, protocol=2)
    restamp(weights, meta)
    teacher(rec)
    assert not marker.exists() and rec.calls == 2 and "is corrupt (torch.load cannot read it" in rec.lines[-1]


def test_weights_of_other_shapes_are_rebuilt_from_a_fresh_model(data):
    rec = Recorder()

    def marked():
        model = mlp([4, 8, 3])
        with torch.no_grad():
            model[0].bias.fill_(7.0)
        return model
    teacher(rec, build=marked)

    def build():  # the output layer changed without the recipe saying so; the first layer still fits
        return mlp([4, 8, 5])
    model = teacher(rec, build=build)
    assert rec.calls == 2 and model[2].weight.shape == (5, 8)
    assert not torch.any(model[0].bias == 7.0)  # trained from a fresh build, not from a half-loaded one
    assert "is corrupt (its weights do not fit the model: RuntimeError: Error(s) in loading state_dict" in \
        rec.lines[-1] and "size mismatch" in rec.lines[-1] and rec.lines[-1].endswith("; retraining")
    assert "\n" not in rec.lines[-1]
    teacher(rec, build=build)
    assert rec.calls == 2 and "loaded from cache" in rec.lines[-1]


def test_the_metadata_format_is_unchanged(data):
    rec = Recorder()
    teacher(rec)
    weights, meta = cached(data)
    stored = json.loads(meta.read_text())
    assert set(stored) == {"recipe_key", "recipe", "sha256"} and stored["recipe"] == RECIPE
    assert stored["sha256"] == files.sha256sum(weights) and weights.stem.endswith(stored["recipe_key"])
    state = torch.load(weights, weights_only=True)
    assert set(state) == {"0.weight", "0.bias"}


def test_atomic_folder_replaces_a_folder_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (target / "config.json").is_file()
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "config.json").write_text('{"new": 1}')
        raise RuntimeError("interrupted")
    assert (target / "config.json").read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["model"]
    with atomic_folder(target) as tmp:
        (tmp / "weights").write_text("w")
    assert sorted(p.name for p in target.iterdir()) == ["weights"]


# ---------------------------------------------------------------- the top-k cache and the encoder cache
TEXTS = ["the cat sat on the mat and the dog sat on the log",
         "a bird flew over the house and the cat saw the bird",
         "the dog and the cat ran to the house on the hill"]


@pytest.fixture(scope="module")
def lm():
    pytest.importorskip("transformers")
    from kdlib.lm.small import build_tokenizer, small_llama
    tok = build_tokenizer(TEXTS)
    ids = [i for t in TEXTS for i in tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    n = len(ids) // 8
    blocks = torch.tensor(ids[:n * 8]).view(n, 8)
    return tok, blocks, lambda seed: small_llama(tok, layers=1, hidden=32, heads=2, seed=seed).eval()


def test_a_stale_topk_cache_is_refused_by_the_step(lm):
    from kdlib.core.fit import fit
    from kdlib.lm.blocks import cache_topk
    from kdlib.lm.steps import topk_kd_step
    tok, blocks, model = lm
    cache, _ = cache_topk(model(1), blocks, k=4, progress=False)
    topk_kd_step(cache, teacher=model(1), blocks=blocks)  # the right teacher and blocks pass
    with pytest.raises(ValueError, match=r"stale top-k cache: it was built from teacher \w+, not from this "
                                         r"teacher .*rebuild it with cache_topk"):
        topk_kd_step(cache, teacher=model(2))
    other = blocks.roll(1, dims=1)
    with pytest.raises(ValueError, match=r"stale top-k cache: it holds \d+ blocks of tokens \w+, but these "
                                         r"blocks are .*rebuild it"):
        topk_kd_step(cache, blocks=other)
    step, idx = topk_kd_step(cache), torch.tensor([1, 0])
    step(model(3), blocks[idx], idx)
    with pytest.raises(ValueError, match="stale top-k cache: the blocks this step trains on are not the blocks"):
        step(model(3), other[idx], idx)
    with pytest.raises(ValueError, match="stale top-k cache"):  # inside fit: on the first step
        fit(model(3), other, topk_kd_step(cache), steps=2, batch_size=2, progress=False)
    with pytest.raises(IndexError, match="block index out of range for a top-k cache"):
        step(model(3), blocks[:2], torch.tensor([0, len(blocks)]))
    with value_checks(False):  # later steps of fit read nothing on the host: no check there
        assert torch.isfinite(step(model(3), other[idx], idx))


def test_the_topk_step_and_cache_refuse_bad_arguments_when_built(lm):
    from kdlib.lm.blocks import cache_topk
    from kdlib.lm.steps import on_policy_kd_step, sequence_kd_step, topk_kd_step
    from kdlib.losses.tokens import topk_from_logits
    tok, blocks, model = lm
    for kw, match in ((dict(k=0), "k must be a whole number"), (dict(k=2.5), "k must be"),
                      (dict(k=10 ** 6), "k must be smaller than the teacher's vocabulary"),
                      (dict(k=4, batch_size=0), "batch_size"), (dict(k=4, T=0.0), "T must be"),
                      (dict(k=4, blocks=blocks[:, :1]), "blocks must be token ids"),
                      (dict(k=4, blocks=blocks.float()), "blocks must be token ids")):
        with pytest.raises(ValueError, match=match):
            cache_topk(model(1), **{"blocks": blocks, **kw, "progress": False})
    plain = topk_from_logits(torch.randn(2, 7, len(tok)), k=4)
    for kw, match in ((dict(cache=plain.log_probs), "cache must be the top-k cache"),
                      (dict(cache=plain, alpha=True), "alpha"), (dict(cache=plain, alpha=float("nan")), "alpha"),
                      (dict(cache=plain, kind="kl"), "kind"),
                      (dict(cache=plain[0]), "cache must hold \\(n_blocks"),
                      (dict(cache=plain, blocks=blocks), "carries no teacher or blocks fingerprint")):
        with pytest.raises(ValueError, match=match):
            topk_kd_step(**kw)
    with pytest.raises(ValueError, match="samples must be the Samples"):
        sequence_kd_step(blocks)
    with pytest.raises(ValueError, match="teacher must be a causal LM"):
        on_policy_kd_step("teacher", tok, 3, 3)
    with pytest.raises(ValueError, match="tokenizer must be"):
        on_policy_kd_step(model(1), None, 3, 3)


def test_a_stale_encoder_cache_is_refused_on_a_checked_batch():
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification
    from kdlib.encoders.cache import EncoderTeacherCache
    from kdlib.encoders.models import EncoderClassifier

    def ids(n=10, length=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(1, 40, (n, length), generator=g)
        x[torch.arange(length)[None, :] >= torch.randint(3, length + 1, (n,), generator=g)[:, None]] = 0
        return x
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=3, max_position_embeddings=32)
    teacher = EncoderClassifier(BertForSequenceClassification(config).eval(), pad_id=0)
    x = ids()
    cache = EncoderTeacherCache.build(teacher, x, progress=False)
    idx = torch.tensor([3, 1, 4])
    batch = x[idx]
    cache.check_batch(idx, batch)
    cache.check_batch(idx, batch[:, :int((batch != 0).sum(1).max())])  # a batch cut to its longest row
    with pytest.raises(ValueError, match="stale encoder teacher cache: the ids this step trains on"):
        cache.check_batch(idx, ids(seed=1)[idx])
    with pytest.raises(IndexError, match="out of range"):
        cache.check_batch(torch.tensor([10]), x[:1])
    with value_checks(False):
        cache.check_batch(idx, ids(seed=1)[idx])


# ---------------------------------------------------------------- teacher samples
@pytest.fixture(scope="module")
def sampler(lm):
    from kdlib.reasoning.teacher import teacher_samples
    tok, _, model = lm
    teacher = model(1)

    def sample(log):
        return teacher_samples(teacher, tok, ["the cat", "a bird"], k=2, max_new_tokens=3, log=log)
    return sample


@pytest.mark.parametrize("fault, why", [
    (lambda text: text[:len(text) // 2], r"is corrupt \(not readable JSON: JSONDecodeError"),
    (lambda text: json.dumps({**json.loads(text), "samples": [["a", "b"]]}), r"is corrupt \(its samples are not "
                                                                               r"2 lists of 2 strings\)"),
    (lambda text: json.dumps({**json.loads(text), "samples": [["a", 1], ["b", "c"]]}), "is corrupt"),
    (lambda text: "[]", "holds other settings")])
def test_a_corrupt_teacher_samples_cache_is_resampled_with_a_log_line(data, sampler, fault, why):
    lines = []
    first = sampler(lines.append)
    path = next((data / "teacher_samples").glob("*.json"))
    path.write_text(fault(path.read_text()))
    again = sampler(lines.append)
    assert again == first  # seeded sampling: the same samples, rebuilt
    assert lines[-1].startswith(f"teacher samples: cache {path.name} ") and lines[-1].endswith("; resampling")
    assert re.search(why, lines[-1])
    sampler(lines.append)
    assert "loaded" in lines[-1]


def test_teacher_samples_check_the_folder_before_sampling(data, sampler, monkeypatch):
    def refuse(folder):
        raise PermissionError(13, "Permission denied", str(folder))
    monkeypatch.setattr(files, "_probe", refuse)
    with pytest.raises(PermissionError, match="teacher samples cache folder .* cannot be created or written"):
        sampler(lambda *_: None)


def test_fingerprints_read_every_dtype_so_a_bfloat16_teacher_can_be_stamped():
    from kdlib.core.teacher_cache import fingerprint
    model, same = mlp([4, 3]).bfloat16(), mlp([4, 3]).bfloat16()
    same.load_state_dict(model.state_dict())
    assert fingerprint(model) == fingerprint(same)
    with torch.no_grad():
        same[0].bias.add_(1.0)
    assert fingerprint(model) != fingerprint(same)


def test_atomic_writes_keep_the_permissions_of_an_ordinary_file(tmp_path):
    import os
    from kdlib.core.files import atomic_folder, atomic_write
    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.bin") as handle:
            handle.write(b"x")
        with atomic_folder(tmp_path / "folder") as folder:
            (folder / "f").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
