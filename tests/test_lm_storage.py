"""Notebook 05's learner functions drive training (top-k cache built by a given select, KD step and on-policy
step with a given loss), the on-policy phase clock, and the storage curve (bytes per token against KL error)."""
import pytest
import torch

pytest.importorskip("transformers")

from kdlib.lm import (build_tokenizer, cache_topk, on_policy_kd_step, small_llama, smallest_k,  # noqa: E402
                      storage_curve, topk_kd_step)
from kdlib.losses import forward_kl, reverse_kl, generalized_jsd, topk_from_logits  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog sat on the log", "a bird flew over the house and the cat saw the bird"]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def blocks(tok):
    ids = [i for t in TEXTS for i in tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    n = len(ids) // 8
    return torch.tensor(ids[:n * 8]).view(n, 8)


def model(tok, seed=0, layers=1):
    return small_llama(tok, layers=layers, hidden=32, heads=2, seed=seed).eval()


def as_tuple(logits, k):
    t = topk_from_logits(logits, k)
    return t.log_probs, t.indices.long(), t.tail


def test_a_given_select_builds_the_same_cache_and_a_wrong_one_is_refused(tok, blocks):
    teacher = model(tok, seed=1, layers=2)
    reference, _ = cache_topk(teacher, blocks, k=4, progress=False)
    learner, _ = cache_topk(teacher, blocks, k=4, progress=False, select=as_tuple)
    assert torch.equal(reference.log_probs, learner.log_probs) and torch.equal(reference.indices, learner.indices)
    assert torch.equal(reference.tail, learner.tail)
    with pytest.raises(ValueError, match="select"):
        cache_topk(teacher, blocks, k=4, progress=False, select=lambda logits, k: None)
    with pytest.raises(ValueError, match="T=1"):
        cache_topk(teacher, blocks, k=4, progress=False, select=as_tuple, T=2.0)


def test_a_learner_loss_trains_the_topk_student_like_the_library_loss(tok, blocks):
    teacher, student = model(tok, seed=1, layers=2), model(tok, seed=2)
    cache, _ = cache_topk(teacher, blocks, k=4, progress=False)
    idx = torch.tensor([1, 0])
    library = topk_kd_step(cache, kind="forward")(student, blocks[idx], idx)
    learner = topk_kd_step(cache, loss=forward_kl)(student, blocks[idx], idx)
    assert learner.item() == pytest.approx(library.item(), rel=1e-5)
    wrong = topk_kd_step(cache, loss=lambda s, t, m: forward_kl(t, s, m))(student, blocks[idx], idx)
    assert wrong.item() != pytest.approx(library.item(), rel=1e-3)  # a wrong loss shows in what trains
    with pytest.raises(ValueError, match="loss must be a function"):
        topk_kd_step(cache, loss="forward")


def test_on_policy_step_uses_the_given_loss_and_clocks_its_phases(tok, blocks):
    teacher, student = model(tok, seed=1, layers=2), model(tok, seed=2)
    idx = torch.tensor([0, 1])
    times = {}
    calls = []

    def learner(s, t, m):
        calls.append(m.shape)
        return reverse_kl(s, t, m)
    step = on_policy_kd_step(teacher, tok, prompt_len=3, max_new_tokens=4, loss=learner, timings=times)
    loss = step(student, blocks[idx], idx)
    assert torch.isfinite(loss) and calls and set(times) == {"student generation", "teacher scoring",
                                                             "student update"}
    assert all(t > 0 for t in times.values())
    default = on_policy_kd_step(teacher, tok, prompt_len=3, max_new_tokens=4, beta=1.0)(student, blocks[idx], idx)
    assert default.item() == pytest.approx(loss.item(), rel=1e-4)  # scaled JSD at beta = 1 is the reverse KL
    with pytest.raises(ValueError, match="timings"):
        on_policy_kd_step(teacher, tok, prompt_len=3, max_new_tokens=4, timings=[])
    assert generalized_jsd  # imported for the docstring's formula


def test_storage_curve_bounds_and_choice():
    g = torch.Generator().manual_seed(0)
    teacher, student = 3 * torch.randn(2, 6, 200, generator=g), torch.randn(2, 6, 200, generator=g)
    rows = storage_curve(student, teacher, [1, 8, 64, 199])
    full = rows[0]["kl"]
    assert rows[0]["store"] == "dense fp32" and rows[0]["bytes_per_token"] == 800 and rows[0]["kl_error"] == 0
    kept = [r for r in rows if r["store"] == "top-k + tail"]
    assert all(r["kl"] <= full + 1e-5 for r in kept)  # merging outcomes never increases a KL
    assert [r["kl_error"] for r in kept] == sorted([r["kl_error"] for r in kept], reverse=True)
    assert kept[-1]["kl_error"] < 1e-4 and kept[0]["bytes_per_token"] == 12
    assert smallest_k(rows, 0.05) in (64, 199) and smallest_k(rows, 1e-9) is None
    with pytest.raises(ValueError, match="ks"):
        storage_curve(student, teacher, [0])
    with pytest.raises(ValueError, match="one shape"):
        storage_curve(student[:, :3], teacher, [4])


def test_unigram_baseline_and_teacher_nll_of_samples(tok, blocks):
    from kdlib.lm import UnigramLM, evaluate_lms, teacher_nll_of_samples
    unigram = UnigramLM(blocks, len(tok))
    logits = unigram(input_ids=blocks[:2]).logits
    assert logits.shape == (2, blocks.shape[1], len(tok))
    assert torch.allclose(logits.exp().sum(-1), torch.ones(2, blocks.shape[1]))
    most = int(torch.bincount(blocks.flatten()).argmax())
    assert int(logits[0, 0].argmax()) == most
    teacher, student = model(tok, seed=1, layers=2), model(tok, seed=2)
    metrics = evaluate_lms(teacher, {"unigram": unigram, "student": student}, blocks, progress=False)
    assert metrics["unigram"]["heldout_perplexity"] < len(tok) + 1
    prompts = [tok.decode(b[:3]) for b in blocks[:2]]
    nll = teacher_nll_of_samples(teacher, {"student": student}, tok, prompts, max_new_tokens=4)
    assert set(nll) == {"teacher", "student"} and all(v > 0 for v in nll.values())
    with pytest.raises(ValueError, match="token ids"):
        UnigramLM(blocks, 3)
    with pytest.raises(ValueError, match="prompts"):
        teacher_nll_of_samples(teacher, {}, tok, [], max_new_tokens=4)
