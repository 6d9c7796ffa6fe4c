"""Distilling across tokenizers (issue 20): the decision tree on hand-made tokenizers, padded rows, shared tokens with
a tail bucket, vocab maps, aligning two tokenisations by character, and the ULD loss. Notebook 05 (cross-tokenizer
section). Tiny in-memory tokenizers and random tensors only: no model is loaded. The end of the file tests
``kdlib.lm.cross`` (notebook 05b: aligned blocks, the cached ULD, re-tokenised teacher text, metrics across
tokenizers)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from kdlib.core.validate import value_checks
from kdlib.lm import cross as C
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


# ---------------------------------------------------------------- kdlib.lm.cross: training across tokenizers (05b)
TEXTS = ["the cat sat on the mat and the dog ran far from home", "a dog sat on a mat far from the cat"]


def test_bpe_tokenizer_is_lossless_and_refuses_bad_input():
    tok = C.bpe_tokenizer(TEXTS * 5, vocab_size=300)
    assert tok.eos_token == tok.pad_token == "<|endoftext|>" and len(tok) <= 300
    text = "the cat sat, £5 café"  # unseen bytes still round-trip
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    with pytest.raises(ValueError, match="vocab_size must be"):
        C.bpe_tokenizer(TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        C.bpe_tokenizer([], vocab_size=300)


def test_aligned_blocks_windows_and_alignment(toks):
    blocks = C.aligned_blocks(toks["word"], toks["char"], TEXTS, block=8)
    n_chars = [len(t) // 8 for t in TEXTS]
    assert len(blocks) == sum(n_chars) and blocks.student_ids.shape == (sum(n_chars), 8)
    assert blocks.teacher_index.shape == blocks.exact.shape == blocks.ends.shape == (len(blocks), 8)
    for i, text in enumerate(blocks.texts):  # each window's characters, read by both
        assert len(text) == 8 and int(blocks.ends[i, -1]) == 8
        assert text in TEXTS[0] or text in TEXTS[1]
        words = text.split()
        assert int(blocks.teacher_lengths[i]) == len(words)
    # a character student is exact where a word of the teacher ends
    text, exact = blocks.texts[0], blocks.exact[0]
    assert [j for j in range(8) if exact[j]] == [j for j in range(8) if text[j] != " " and
                                                 (j == 7 or text[j + 1] == " ")]
    assert blocks.prompts(3) == [t[:3] for t in blocks.texts]
    assert len(C.aligned_blocks(toks["word"], toks["char"], TEXTS, block=8, max_tokens=16)) == 2
    with pytest.raises(ValueError, match="no text holds 100 student tokens"):
        C.aligned_blocks(toks["word"], toks["char"], TEXTS, block=100)


def test_rank_buckets_sorted_sum_to_one_and_differentiable():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 3, 10, generator=g, requires_grad=True)
    b = C.rank_buckets(x, 4)
    assert b.shape == (2, 3, 5)
    torch.testing.assert_close(b.exp().sum(-1), torch.ones(2, 3))
    p = torch.softmax(x, -1).sort(-1, descending=True).values
    torch.testing.assert_close(b[..., :4].exp(), p[..., :4])
    b.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="k must be a whole number"):
        C.rank_buckets(x, 10)


def test_uld_topk_is_exact_without_tails_and_a_lower_bound_otherwise():
    # both distributions put (almost) no mass beyond the top k: ULD_k is the exact ULD
    peaked = torch.full((1, 10), -50.0)
    peaked[0, :3] = torch.tensor([3.0, 2.0, 1.0])
    other = torch.full((1, 12), -50.0)
    other[0, 5:8] = torch.tensor([1.0, 2.5, 0.0])
    torch.testing.assert_close(C.uld_topk(C.rank_buckets(peaked, 4), C.rank_buckets(other, 4)),
                               uld_loss(peaked, other), atol=1e-6, rtol=1e-5)
    # hand-computed: [.5 .3 | .2] against [.6 .2 | .2] -> .1 + .1 + 0
    s, t = torch.tensor([0.5, 0.3, 0.2]).log(), torch.tensor([0.6, 0.2, 0.1, 0.1]).log()
    assert float(C.uld_topk(C.rank_buckets(s, 2), C.rank_buckets(t, 2))) == pytest.approx(0.2, abs=1e-6)
    g = torch.Generator().manual_seed(11)
    for _ in range(20):
        s, t = torch.randn(3, 4, 9, generator=g) * 2, torch.randn(3, 4, 15, generator=g) * 2
        mask = torch.rand(3, 4, generator=g) > 0.3
        mask[0, 0] = True
        for k in (1, 3, 8):
            assert float(C.uld_topk(C.rank_buckets(s, k), C.rank_buckets(t, k), mask)) <= \
                float(uld_loss(s, t, mask)) + 1e-6
    student = torch.randn(2, 3, 9, generator=g, requires_grad=True)
    teacher = C.rank_buckets(torch.randn(2, 3, 15, generator=g), 3).requires_grad_(True)
    C.uld_topk(C.rank_buckets(student, 3), teacher).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None
    with pytest.raises(ValueError, match="same k"):
        C.uld_topk(C.rank_buckets(student, 3), C.rank_buckets(student, 4))


class _Lookup(torch.nn.Module):
    """A 'causal LM' whose logits at each position are a learned row per input token."""

    def __init__(self, vocab):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0)))

    def forward(self, input_ids, **kw):
        from types import SimpleNamespace
        return SimpleNamespace(logits=self.table[input_ids])


def test_uld_cache_and_step(toks):
    blocks = C.aligned_blocks(toks["word"], toks["char"], TEXTS, block=8)
    teacher, student = _Lookup(len(toks["word"])), _Lookup(len(toks["char"]))
    cache = C.uld_cache(teacher, blocks, k=3, batch_size=2, progress=False)
    assert cache.log_probs.shape == (len(blocks), 7, 4) and torch.equal(cache.mask, blocks.exact[:, :-1])
    # row 0, first exact position: the teacher's buckets at its aligned position
    j = int(blocks.exact[0, :-1].nonzero()[0])
    want = C.rank_buckets(teacher(blocks.teacher_ids[:1]).logits[0, int(blocks.teacher_index[0, j])], 3)
    torch.testing.assert_close(cache.log_probs[0, j], want.detach())
    step = C.uld_step(cache, weight=0.5)
    idx = torch.tensor([0, 2])
    with value_checks(True):
        loss, terms = step(student, blocks.student_ids[idx], idx)
        torch.testing.assert_close(loss, terms["ce"] + 0.5 * terms["uld"])
        loss.backward()
        assert student.table.grad.abs().sum() > 0
        with pytest.raises(ValueError, match="not the rows the ULD cache was built for"):
            step(student, blocks.student_ids[idx], idx + 1)
    mine = C.uld_step(cache, loss=lambda s, t, m: uld_loss(s, t, m) * 0)
    assert float(mine(student, blocks.student_ids[idx], idx)[1]["uld"].detach()) == 0.0
    with pytest.raises(ValueError, match="weight must be"):
        C.uld_step(cache, weight=-1.0)
    with pytest.raises(ValueError, match="ULDCache"):
        C.uld_step("cache")


def test_retokenize_masks_the_prompt_and_prepends_true_rows(toks):
    from kdlib.lm.steps import sequence_kd_step
    tok = toks["char"]
    samples = C.retokenize(tok, ["the ca", "a d"], ["t sat", "og ran far"], length=8,
                           true_rows=torch.arange(8).repeat(2, 1))
    assert samples.input_ids.shape == (4, 8)
    assert samples.completion_mask[:2].all() and samples.attention_mask[:2].all()
    assert samples.completion_mask[2].tolist() == [0] * 6 + [1, 1]
    assert samples.completion_mask[3].tolist() == [0] * 3 + [1] * 5  # cut at length 8
    assert samples.input_ids[2].tolist() == tok("the cat ", add_special_tokens=False)["input_ids"]
    step = sequence_kd_step(samples)  # accepted: right-padded, with completion tokens
    assert torch.isfinite(step(_Lookup(len(tok)), samples.input_ids[:3], torch.arange(3)))
    with pytest.raises(ValueError, match="one completion per prompt"):
        C.retokenize(tok, ["a"], [], length=8)
    with pytest.raises(ValueError, match=r"true_rows must have shape \(m, 8\)"):
        C.retokenize(tok, ["a"], ["b"], length=8, true_rows=torch.zeros(2, 5, dtype=torch.long))


def test_perplexity_and_text_agreement():
    model = _Lookup(5)
    with torch.no_grad():
        model.table.zero_()
    assert C.perplexity(model, torch.randint(0, 5, (3, 6)), batch_size=2) == pytest.approx(5.0)
    assert C.text_agreement(["a b c d"], ["a b c d e"]) == 1.0
    assert C.text_agreement(["a b c d", "x y"], ["a z c", "q y"], words=4) == pytest.approx((2 / 4 + 1 / 2) / 2)
    assert C.text_agreement(["a b c d"], ["a b x d"], words=2) == 1.0
    with pytest.raises(ValueError, match="one text per reference"):
        C.text_agreement(["a"], [])


def test_align_exercise_matches_align_tokens():
    cases = C.align_exercise_cases()
    assert len(cases) >= 5
    got = [C.align_exercise(*c) for c in cases]
    index, exact = got[0]
    assert index.tolist() == [-1, -1, 0, 0, 1, 1, 2] and exact.tolist() == [False, False, True, False, True, False,
                                                                               True]
    assert got[3][1].all() and got[3][0].tolist() == [0, 1, 2]  # identical tokenisations: all exact
    assert got[4][0].tolist() == [2, 3] and got[4][1].all()  # a coarser student
    assert all(i.dtype == torch.long and e.dtype == torch.bool for i, e in got)
