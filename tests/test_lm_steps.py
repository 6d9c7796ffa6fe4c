"""The LM training steps of notebook 05 (top-k KD, sequence-level KD, on-policy GKD) and the rationale split of
notebooks 06-07: each step against its formula on tiny models, hyperparameters refused when a step is built,
and a few steps of fit() with each."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from kdlib.core import fit  # noqa: E402
from kdlib.lm import (generate, on_policy_kd_step, pack_right, sequence_kd_step, sequence_logprobs, small_llama,  # noqa: E402
                      build_tokenizer, topk_kd_step)
from kdlib.losses import generalized_jsd, topk_from_logits, topk_loss  # noqa: E402
from kdlib.reasoning import ANSWER_PREFIX, extract_answer, format_completion, split_rationale  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog sat on the log",
         "a bird flew over the house and the cat saw the bird",
         "the dog and the cat ran to the house on the hill"]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def blocks(tok):
    ids = [i for t in TEXTS for i in tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    n = len(ids) // 8
    return torch.tensor(ids[:n * 8]).view(n, 8)


def model(tok, seed=0, layers=1, hidden=32):
    return small_llama(tok, layers=layers, hidden=hidden, heads=2, seed=seed).eval()


# ---------------------------------------------------------------- top-k KD
def test_topk_step_is_topk_loss_on_the_blocks_cache_rows(tok, blocks):
    teacher, student = model(tok, seed=1, layers=2), model(tok, seed=2)
    with torch.no_grad():
        cache = topk_from_logits(teacher(input_ids=blocks).logits[:, :-1], k=4)
    idx = torch.tensor([3, 0])
    logits = student(input_ids=blocks[idx]).logits[:, :-1]
    for kind in ("forward", "reverse", "jsd"):
        got = topk_kd_step(cache, kind=kind)(student, blocks[idx], idx)
        assert torch.equal(got, topk_loss(logits, cache[idx], kind=kind))
    # the rows of the cache follow idx: another block's cache gives another loss
    wrong = topk_loss(logits, cache[torch.tensor([0, 3])], kind="forward")
    assert not torch.allclose(topk_kd_step(cache)(student, blocks[idx], idx), wrong)
    # alpha mixes in the plain LM loss on the true next tokens
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), blocks[idx][:, 1:].reshape(-1))
    mixed = topk_kd_step(cache, alpha=0.25)(student, blocks[idx], idx)
    assert mixed.item() == pytest.approx(0.25 * ce.item() + 0.75 * topk_loss(logits, cache[idx]).item(), rel=1e-5)


def test_topk_step_refuses_bad_hyperparameters_when_built(tok, blocks):
    cache = topk_from_logits(torch.randn(2, 3, len(tok)), k=4)
    with pytest.raises(ValueError, match="alpha"):
        topk_kd_step(cache, alpha=1.5)
    with pytest.raises(ValueError, match="kind"):
        topk_kd_step(cache, kind="backward")


# ---------------------------------------------------------------- sequence-level KD
@pytest.fixture(scope="module")
def samples(tok):
    teacher = model(tok, seed=1, layers=2)
    prompts = ["the cat", "a bird flew over", "the dog and the", "the"]
    return generate(teacher, tok, prompts, max_new_tokens=5, temperature=1.0, batch_size=4, seed=0)


def test_pack_right_moves_left_padding_to_the_end_and_keeps_the_tokens(tok, samples):
    packed = pack_right(samples, pad_id=0)
    assert samples.attention_mask[:, 0].eq(0).any()  # the fixture really is left-padded
    for r in range(len(samples.input_ids)):
        real = (samples.attention_mask[r] > 0) | (samples.completion_mask[r] > 0)
        n = int(real.sum())
        assert packed.input_ids[r, :n].tolist() == samples.input_ids[r][real].tolist()
        assert packed.completion_mask[r, :n].tolist() == samples.completion_mask[r][real].tolist()
        assert packed.attention_mask[r].tolist() == [1] * n + [0] * (len(real) - n)
        assert packed.input_ids[r, n:].eq(0).all() and packed.completion_mask[r, n:].eq(0).all()


def test_sequence_step_is_the_mean_nll_over_completion_tokens(tok, samples):
    student = model(tok, seed=2)
    idx = torch.tensor([2, 0, 3])
    packed = pack_right(samples)
    loss = sequence_kd_step(packed)(student, packed.input_ids[idx], idx)
    # the same as the summed completion log-probs of the left-padded samples (prompt and padding masked, attention
    # mask passed) over the number of completion tokens: packing changes nothing but the positions' padding
    ids, attn, comp = (t[idx] for t in (samples.input_ids, samples.attention_mask, samples.completion_mask))
    with torch.no_grad():
        total = sequence_logprobs(student, ids, attn, comp).sum()
    assert loss.item() == pytest.approx(-(total / comp[:, 1:].sum()).item(), rel=1e-5)
    # mean over tokens, not over sequences: the per-row mean would weigh a short completion like a long one
    per_row = (sequence_logprobs(student, ids, attn, comp) / comp[:, 1:].sum(1)).mean()
    if len(set(comp.sum(1).tolist())) > 1:
        assert loss.item() != pytest.approx(-per_row.item(), rel=1e-4)
    assert loss.requires_grad
    # right padding is never a target and, behind the causal mask, never seen: another pad id changes nothing
    other = packed.input_ids[idx].clone()
    other[packed.attention_mask[idx] == 0] = tok.eos_token_id
    assert sequence_kd_step(packed)(student, other, idx).item() == pytest.approx(loss.item(), rel=1e-6)


def test_sequence_step_refuses_empty_left_padded_or_misshapen_samples(tok, samples):
    with pytest.raises(ValueError, match="left-padded"):
        sequence_kd_step(samples)
    packed = pack_right(samples)
    empty = copy.copy(packed)
    empty.completion_mask = torch.zeros_like(packed.completion_mask)
    with pytest.raises(ValueError, match="no completion tokens"):
        sequence_kd_step(empty)
    bad = copy.copy(packed)
    bad.completion_mask = packed.completion_mask[:, :-1]
    with pytest.raises(ValueError, match="one shape"):
        sequence_kd_step(bad)


def test_fit_with_sequence_step_lowers_the_loss_on_the_teacher_text(tok, samples):
    student = model(tok, seed=2)
    samples = pack_right(samples)
    step = sequence_kd_step(samples)
    idx = torch.arange(len(samples.input_ids))
    with torch.no_grad():
        before = step(student, samples.input_ids, idx).item()
    history = fit(student, samples.input_ids, step, steps=20, batch_size=4, optimizer="adamw", betas=(0.9, 0.95),
                  weight_decay=0.01, warmup=2, clip=1.0, lr=1e-2, progress=False)
    with torch.no_grad():
        after = step(student, samples.input_ids, idx).item()
    assert len(history["loss"]) == 20 and after < before - 0.5
    assert history["tokens"] == 20 * 4 * samples.input_ids.shape[1]


# ---------------------------------------------------------------- on-policy KD (GKD)
def test_on_policy_step_is_jsd_on_the_students_own_samples(tok, blocks):
    teacher, student = model(tok, seed=1, layers=2), model(tok, seed=2)
    idx = torch.tensor([2, 1])
    step = on_policy_kd_step(teacher, tok, prompt_len=3, max_new_tokens=4, beta=0.5)
    student.train()
    loss = step(student, blocks[idx], idx)
    assert student.training  # generation does not leave the student in eval mode
    # the same samples by hand: the student's continuations of the first 3 tokens, seeded by idx[0]
    prompts = [tok.decode(b[:3]) for b in blocks[idx]]
    own = generate(student, tok, prompts, max_new_tokens=4, temperature=1.0, batch_size=2, seed=2)
    with torch.no_grad():
        t = teacher(input_ids=own.input_ids, attention_mask=own.attention_mask).logits[:, :-1]
        s = student(input_ids=own.input_ids, attention_mask=own.attention_mask).logits[:, :-1]
        expected = generalized_jsd(s, t, own.completion_mask[:, 1:], beta=0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and loss.item() > 0
    # reproducible (seeded by the batch's first index), gradients reach the student only
    assert step(student, blocks[idx], idx).item() == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_on_policy_step_is_zero_when_the_student_is_the_teacher(tok, blocks):
    teacher = model(tok, seed=1)
    student = copy.deepcopy(teacher)
    for beta in (0.0, 0.5, 1.0):
        loss = on_policy_kd_step(teacher, tok, 3, 4, beta=beta)(student, blocks[:2], torch.tensor([0, 1]))
        assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_on_policy_step_refuses_bad_hyperparameters_when_built(tok):
    teacher = model(tok)
    for kw, match in ((dict(beta=1.5), "beta"), (dict(beta=math.nan), "beta"), (dict(temperature=0.0), "T must be"),
                      (dict(prompt_len=0), "prompt_len"), (dict(max_new_tokens=2.5), "max_new_tokens")):
        args = dict(prompt_len=3, max_new_tokens=4) | kw
        with pytest.raises(ValueError, match=match):
            on_policy_kd_step(teacher, tok, **args)


def test_fit_with_on_policy_step_runs_and_records_finite_losses(tok, blocks):
    teacher, student = model(tok, seed=1, layers=2), model(tok, seed=2)
    history = fit(student, blocks, on_policy_kd_step(teacher, tok, 3, 3), steps=2, batch_size=2, optimizer="adamw",
                  betas=(0.9, 0.95), weight_decay=0.01, warmup=10, clip=1.0, lr=1e-3, progress=False)
    assert len(history["loss"]) == 2 and all(math.isfinite(v) and v > 0 for v in history["loss"])
    assert not student.training


# ---------------------------------------------------------------- the rationale split (notebooks 06, 07)
def test_split_rationale_inverts_the_rationale_format():
    for rationale, answer in (("12+5=17. 17-3=14.", 14), ("3*4=12.", 12), ("50-8=42. 42/6=7. 7+1=8.", 8)):
        assert split_rationale(format_completion(rationale, answer, "rationale")) == (rationale, answer)
    assert split_rationale("12+5=17. 17-3=14.") == ("12+5=17. 17-3=14.", None)
    # a self-correcting text: the rationale stops at the first answer, the answer is the last one
    assert split_rationale("1+1=2. Answer: 2. Wait. Answer: 3") == ("1+1=2.", 3)
    # no space before the prefix (an answer-only text): nothing is split off, the answer is still read
    text = f"{ANSWER_PREFIX} 5"
    assert split_rationale(text) == (text, 5) and extract_answer(text) == 5
