"""Distilling across tokenizers (issue 20): the decision tree on hand-made tokenizers, padded rows, shared tokens with
a tail bucket, vocab maps, aligning two tokenisations by character, and the ULD loss. Notebook 05 (cross-tokenizer
section). Tiny in-memory tokenizers and random tensors only: no model is loaded."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from kdlib.core.validate import value_checks
from kdlib.lm import vocab as V
from kdlib.losses import kd_loss, topk_loss
from kdlib.losses.uld import sorted_probs, uld_exercise_cases, uld_loss

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "home"]


def word_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<unk>", *words])}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def char_tokenizer(chars="abcdefghijklmnopqrstuvwxyz "):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(["[UNK]", *chars])}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


@pytest.fixture(scope="module")
def toks():
    return {"word": word_tokenizer(WORDS), "word_same": word_tokenizer(WORDS),
            "word_part": word_tokenizer(WORDS[:8] + ["bird", "tree"]), "char": char_tokenizer()}


# ---------------------------------------------------------------- the decision tree
def test_each_case_of_the_decision_tree(toks):
    same = V.vocab_case(toks["word"], toks["word_same"])
    assert (same.case, same.loss) == ("identical", "kd on full logits")
    assert same.teacher_tokens == same.student_tokens == same.teacher_rows == 11 and same.share == 1.0

    padded = V.vocab_case(toks["word"], toks["word_same"], teacher_vocab_size=64)
    assert (padded.case, padded.loss) == ("padding_only", "truncate padded rows then kd")
    assert (padded.teacher_rows, padded.student_rows) == (64, 11)
    assert V.vocab_case(toks["word"], toks["word_same"], 16, 16).case == "identical"  # both padded alike

    part = V.vocab_case(toks["word"], toks["word_part"])
    assert (part.case, part.loss) == ("shared_subset", "kd over shared tokens + one tail bucket")
    assert part.shared == 9 and part.share == pytest.approx(9 / 11)  # <unk> and 8 words
    assert part.student_share == pytest.approx(9 / 11)
    assert V.vocab_case(toks["word"], toks["word_part"], min_share=0.9).case == "different"

    diff = V.vocab_case(toks["word"], toks["char"])
    assert (diff.case, diff.loss) == ("different", "ULD or sequence-level KD on re-tokenised teacher text")
    assert diff.shared == 1 and diff.share == pytest.approx(1 / 11)  # only "a"
    assert diff.student_share == pytest.approx(1 / 28)


def test_describe_case_marks_the_branch(toks):
    plain = V.describe_case()
    assert "<==" not in plain and all(name in plain for name in V.CASES)
    for t, s, size, name in [("word", "word_same", None, "identical"), ("word", "word_same", 64, "padding_only"),
                             ("word", "word_part", None, "shared_subset"), ("word", "char", None, "different")]:
        text = V.describe_case(V.vocab_case(toks[t], toks[s], teacher_vocab_size=size))
        marked = [line for line in text.splitlines() if "<==" in line]
        assert len(marked) == 1 and name in marked[0], text
        assert "shared:" in text.splitlines()[0]


def test_vocab_case_refuses_bad_sizes(toks):
    with pytest.raises(ValueError, match=r"teacher_vocab_size must be a whole number >= the 11 ids"):
        V.vocab_case(toks["word"], toks["word_same"], teacher_vocab_size=5)
    with pytest.raises(ValueError, match="min_share"):
        V.vocab_case(toks["word"], toks["word_same"], min_share=0)
    with pytest.raises(ValueError, match="get_vocab"):
        V.vocab_case(toks["word"], "not a tokenizer")


# ---------------------------------------------------------------- padded rows
def padded_logits(g, n_real=50, rows=64, pad=-40.0):
    x = torch.randn(3, 5, rows, generator=g) * 2
    x[..., n_real:] = pad
    return x


def test_truncating_negligible_padding_keeps_the_kd_loss():
    g = torch.Generator().manual_seed(0)
    teacher, student = padded_logits(g), padded_logits(g)
    assert V.padding_mass(teacher, 50) < 1e-12
    kept = V.truncate_padded(teacher, 50)
    assert kept.shape == (3, 5, 50)
    full, cut = kd_loss(student, teacher, T=1.0), kd_loss(student[..., :50], kept, T=1.0)
    assert abs(float(cut - full)) / float(full) < 1e-4
    assert V.truncate_padded(teacher, 64) is not None and V.padding_mass(teacher, 64) == 0.0


def test_truncation_refuses_padded_rows_with_mass():
    g = torch.Generator().manual_seed(1)
    teacher = padded_logits(g, pad=3.0)  # the "padding" rows are likely tokens: not padding at all
    mass = V.padding_mass(teacher, 50)
    assert mass > 0.1
    with pytest.raises(ValueError, match=r"on ids >= 50, more than tol=0.0001"):
        V.truncate_padded(teacher, 50)
    with pytest.raises(ValueError, match="n_shared"):
        V.padding_mass(teacher, 65)
    mask = torch.zeros(3, 5)
    mask[0, 0] = 1
    assert V.padding_mass(teacher, 50, mask) == pytest.approx(
        float(torch.softmax(teacher[0, 0], -1)[50:].sum()), rel=1e-5)


# ---------------------------------------------------------------- shared tokens and the tail bucket
def test_shared_vocab_aligns_strings(toks):
    t_ids, s_ids = V.shared_vocab(toks["word"], toks["word_part"])
    assert t_ids.dtype == s_ids.dtype == torch.long and len(t_ids) == 9
    t_inv = {i: w for w, i in toks["word"].get_vocab().items()}
    s_inv = {i: w for w, i in toks["word_part"].get_vocab().items()}
    assert [t_inv[int(i)] for i in t_ids] == [s_inv[int(i)] for i in s_ids]
    with pytest.raises(ValueError, match="share no token"):
        V.shared_vocab(toks["word"], {"x": 0, "y": 1})


def test_bucket_logprobs_sum_to_one_and_feed_topk_loss():
    g = torch.Generator().manual_seed(2)
    teacher = torch.randn(2, 4, 12, generator=g) * 2
    t_ids, s_ids = torch.tensor([0, 3, 5, 7, 11]), torch.tensor([2, 0, 1, 6, 4])
    buckets = V.bucket_logprobs(teacher, t_ids, T=2.0)
    assert buckets.shape == (2, 4, 6)
    torch.testing.assert_close(buckets.exp().sum(-1), torch.ones(2, 4))
    p = torch.softmax(teacher / 2.0, -1)
    torch.testing.assert_close(buckets[..., :-1].exp(), p[..., t_ids])
    assert V.shared_vocab_mass(teacher, t_ids) == pytest.approx(float(torch.softmax(teacher, -1)[..., t_ids]
                                                                      .sum(-1).mean()), rel=1e-5)
    # all ids shared: the tail is clamped, not -inf
    assert torch.isfinite(V.bucket_logprobs(teacher, torch.arange(12))).all()

    student = torch.randn(2, 4, 9, generator=g)
    cache = V.shared_topk(teacher, t_ids, s_ids, n_student=9)
    q = torch.softmax(student, -1)
    q_b = torch.cat([q[..., s_ids], 1 - q[..., s_ids].sum(-1, keepdim=True)], -1)
    p_b = V.bucket_logprobs(teacher, t_ids).exp()
    manual = (p_b * (p_b.log() - q_b.log())).sum(-1).mean()
    torch.testing.assert_close(topk_loss(student, cache), manual)
    with pytest.raises(ValueError, match="every one of the student's 5 tokens is shared"):
        V.shared_topk(teacher, t_ids, torch.tensor([2, 0, 1, 3, 4]), n_student=5)
    with pytest.raises(ValueError, match=r"student_ids must lie in \[0, 6\) \(the student's vocabulary\)"):
        V.shared_topk(teacher, t_ids, s_ids, n_student=6)


def test_bad_shared_ids_are_refused():
    teacher = torch.randn(2, 12)
    with pytest.raises(ValueError, match=r"teacher_ids must lie in \[0, 12\) .*got \[12\] at entries \[1\]"):
        V.bucket_logprobs(teacher, torch.tensor([0, 12]))
    with pytest.raises(ValueError, match="repeats ids"):
        V.shared_vocab_mass(teacher, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="1-D integer tensor"):
        V.bucket_logprobs(teacher, torch.tensor([1.0, 2.0]))


# ---------------------------------------------------------------- explicit vocab maps
def test_check_vocab_map():
    good = torch.tensor([4, 0, 2])
    assert V.check_vocab_map(good, 3, 5) is good
    with pytest.raises(ValueError, match=r"not injective: student ids \[0, 2\] all map to teacher id 4"):
        V.check_vocab_map(torch.tensor([4, 1, 4]), 3, 5)
    with pytest.raises(ValueError, match=r"outside the teacher's vocabulary \[0, 5\): student ids \[1, 2\] map to "
                                         r"\[5, -1\]"):
        V.check_vocab_map(torch.tensor([0, 5, -1]), 3, 5)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        V.check_vocab_map(torch.tensor([0, 1]), 3, 5)
    with pytest.raises(ValueError, match="integer"):
        V.check_vocab_map(torch.tensor([0.0, 1.0, 2.0]), 3, 5)


# ---------------------------------------------------------------- aligning two tokenisations
def test_align_tokens_by_character_end():
    text = "the cat sat"
    teacher = [(0, 3), (4, 7), (8, 11)]
    student = [(0, 2), (2, 3), (3, 4), (4, 7), (7, 8), (8, 10), (10, 11)]
    a = V.align_tokens(text, teacher, student)
    assert a.teacher_index.tolist() == [-1, 0, 0, 1, 1, 1, 2]
    assert a.exact.tolist() == [False, True, False, True, False, False, True]


def test_align_tokenizers_word_against_char(toks):
    text = "the cat sat on a mat"
    a = V.align_tokenizers(toks["word"], toks["char"], text)
    assert len(a.teacher_ids) == 6 and len(a.student_ids) == len(text)
    ends = [j + 1 for j in range(len(text)) if bool(a.exact[j])]
    assert ends == [3, 7, 11, 14, 16, 20]  # the student's token ending each word
    assert a.teacher_index[a.exact].tolist() == list(range(6))
    # ULD on the exact positions: teacher logits gathered per student token
    teacher_logits = torch.randn(6, 11)
    student_logits = torch.randn(len(text), 28, requires_grad=True)
    loss = uld_loss(student_logits, teacher_logits[a.teacher_index.clamp_min(0)], mask=a.exact)
    assert torch.isfinite(loss)


def test_alignment_refuses_differing_texts(toks):
    with pytest.raises(ValueError, match="the texts differ from character 4"):
        V.align_tokenizers(toks["word"], toks["char"], "the cat", student_text="the dog")
    with pytest.raises(ValueError, match="cover different text"):
        V.align_tokens("the cat sat", [(0, 3), (4, 7)], [(0, 3), (4, 7), (8, 11)])
    with pytest.raises(ValueError, match="outside the text of 7 characters"):
        V.align_tokens("the cat", [(0, 3), (4, 11)], [(0, 3), (4, 7)])
    with pytest.raises(ValueError, match="text order"):
        V.align_tokens("the cat", [(4, 7), (0, 3)], [(0, 3), (4, 7)])
    # trailing whitespace read by one tokenizer only is not a different text
    assert V.align_tokens("the cat ", [(0, 3), (4, 7)], [(0, 4), (4, 8)]).exact.tolist() == [False, False]


# ---------------------------------------------------------------- ULD
def test_uld_hand_computed():
    s = torch.tensor([0.5, 0.3, 0.2]).log()[None]
    t = torch.tensor([0.1, 0.6, 0.2, 0.1]).log()[None]
    # sorted, padded: [.5 .3 .2 0] against [.6 .2 .1 .1] -> .1 + .1 + .1 + .1
    assert float(uld_loss(s, t)) == pytest.approx(0.4, abs=1e-6)
    assert float(uld_loss(t, s)) == pytest.approx(0.4, abs=1e-6)
    assert sorted_probs(s, 4)[0].tolist() == pytest.approx([0.5, 0.3, 0.2, 0.0])


def test_uld_is_zero_for_identical_and_permuted_distributions():
    g = torch.Generator().manual_seed(3)
    t = torch.randn(2, 5, 9, generator=g)
    assert float(uld_loss(t.clone(), t)) == pytest.approx(0.0, abs=1e-6)
    assert float(uld_loss(t[..., torch.randperm(9, generator=g)], t)) == pytest.approx(0.0, abs=1e-6)
    # an extra student token with ~no mass changes nothing either
    extra = torch.cat([t, torch.full((2, 5, 3), -60.0)], -1)
    assert float(uld_loss(extra, t)) == pytest.approx(0.0, abs=1e-6)


def test_uld_gradient_reaches_the_student_only():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(2, 3, 7, generator=g, requires_grad=True)
    t = torch.randn(2, 3, 10, generator=g, requires_grad=True)
    uld_loss(s, t, T=2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_uld_mask_and_values():
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(2, 4, 6, generator=g), torch.randn(2, 4, 8, generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    noisy = s.clone()
    noisy[mask == 0] = float("nan")
    per = torch.stack([uld_loss(s[b, i], t[b, i]) for b, i in [(0, 0), (0, 1), (1, 0)]])
    torch.testing.assert_close(uld_loss(noisy, t, mask), per.mean())
    with pytest.raises(ValueError, match="every position is masked out"):
        uld_loss(s, t, torch.zeros(2, 4))
    with value_checks(False):
        assert float(uld_loss(s, t, torch.zeros(2, 4))) == 0.0
        assert math.isnan(float(uld_loss(noisy, t)))
    assert torch.isfinite(uld_loss(s.half(), t.bfloat16()))


def test_uld_refuses_bad_input():
    s, t = torch.randn(2, 4, 6), torch.randn(2, 4, 8)
    for T in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="T must be"):
            uld_loss(s, t, T=T)
    with pytest.raises(ValueError, match=r"positions \(2, 4\) and \(2, 5\) must match"):
        uld_loss(s, torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="mask has shape"):
        uld_loss(s, t, torch.ones(2, 5))
    with pytest.raises(ValueError, match="floating point"):
        uld_loss(s.long(), t)
    with pytest.raises(ValueError, match="NaN or infinite"):
        uld_loss(s, t.masked_fill(t > 1, float("inf")))


def test_uld_exercise_cases_are_fixed_and_valid():
    first, again = uld_exercise_cases(), uld_exercise_cases()
    assert len(first) == 5 and {c[0].shape[-1] != c[1].shape[-1] for c in first} == {True, False}
    for (s, t, m), (s2, t2, m2) in zip(first, again):
        torch.testing.assert_close(s, s2, equal_nan=True)
        assert torch.isfinite(uld_loss(s, t, m))


@settings(max_examples=30, deadline=None)
@given(v_s=st.integers(1, 12), v_t=st.integers(1, 12), n=st.integers(1, 4), seed=st.integers(0, 2**16),
       T=st.floats(0.25, 4.0))
def test_uld_property_sorted_l1_in_range_and_permutation_invariant(v_s, v_t, n, seed, T):
    g = torch.Generator().manual_seed(seed)
    s, t = torch.randn(n, v_s, generator=g, dtype=torch.float64) * 3, torch.randn(n, v_t, generator=g,
                                                                                  dtype=torch.float64) * 3
    loss = float(uld_loss(s, t, T=T))
    ref = 0.0
    for i in range(n):
        p = sorted(torch.softmax(s[i] / T, -1).tolist(), reverse=True)
        q = sorted(torch.softmax(t[i] / T, -1).tolist(), reverse=True)
        size = max(v_s, v_t)
        p, q = p + [0.0] * (size - len(p)), q + [0.0] * (size - len(q))
        ref += sum(abs(a - b) for a, b in zip(p, q)) / n
    assert loss == pytest.approx(ref, abs=1e-9) and -1e-12 <= loss <= 2 + 1e-12
    perm_s, perm_t = torch.randperm(v_s, generator=g), torch.randperm(v_t, generator=g)
    assert float(uld_loss(s[:, perm_s], t[:, perm_t], T=T)) == pytest.approx(loss, abs=1e-9)
