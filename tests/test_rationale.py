"""Rationale distillation pieces: tokenizer, prompt masking, completion and multi-task losses, answer extraction
and verification, voting and filtering, corruption, batched generation, the cached teacher and its samples."""
import random
import re

import pytest
import torch

pytest.importorskip("transformers")
from kdlib.reasoning.arithmetic import arithmetic_splits  # noqa: E402
from kdlib.lm.generate import sequence_logprobs  # noqa: E402
from kdlib.losses.tokens import completion_loss, multitask_loss  # noqa: E402
from kdlib.reasoning.rationale import (check_rationale, corrupt_rationale, extract_answer, filter_samples,  # noqa: E402
                                       format_example, format_prompt, format_texts, majority_vote, verify_answers)
from kdlib.reasoning.teacher import prepare_rationale_teacher, teacher_samples  # noqa: E402
from kdlib.core.fit import fit  # noqa: E402
from kdlib.lm.sft import MultitaskData, answer, multitask_step, sft_data, sft_step  # noqa: E402
from kdlib.reasoning.rationale import evaluate_answers  # noqa: E402
from kdlib.lm.small import build_tokenizer, small_llama  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    splits = arithmetic_splits(32, 16, 8, 8, seed=0)
    tok = build_tokenizer(format_texts([p for v in splits.values() for p in v]))
    return splits, tok


def test_tokenizer_is_lossless_with_one_token_per_digit(setup):
    splits, tok = setup
    for fmt in ("answer", "rationale", "label", "explain"):
        prompt, completion = format_example(splits["heldout"][0], fmt)
        ids = tok(prompt + completion, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == prompt + completion
    assert tok.convert_ids_to_tokens(tok("37+25=62", add_special_tokens=False)["input_ids"]) == list("37+25=62")
    assert tok("Zorro", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_prompt_tokens_are_masked_and_the_eos_is_learned(setup):
    splits, tok = setup
    prompts, completions = zip(*[format_example(p, "rationale") for p in splits["pool"][:3]])
    data = sft_data(tok, list(prompts), list(completions))
    for i in range(3):
        n_prompt = len(tok(prompts[i], add_special_tokens=False)["input_ids"])
        n_completion = len(tok(completions[i], add_special_tokens=False)["input_ids"]) + 1
        row = data.completion_mask[i]
        assert row[:n_prompt].sum() == 0 and row[n_prompt:n_prompt + n_completion].all()
        assert row[n_prompt + n_completion:].sum() == 0 and int(data.lengths[i]) == n_prompt + n_completion
        assert data.input_ids[i, n_prompt + n_completion - 1] == tok.eos_token_id
        assert tok.decode(data.input_ids[i, n_prompt:n_prompt + n_completion - 1]) == completions[i]


def test_completion_loss_ignores_prompt_and_padding():
    torch.manual_seed(0)
    logits, ids = torch.randn(2, 6, 11), torch.randint(0, 11, (2, 6))
    mask = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1]])
    loss = completion_loss(logits, ids, mask)
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert torch.allclose(loss, -(lp * mask[:, 1:]).sum() / mask[:, 1:].sum())
    changed = logits.clone()
    changed[0, :2] += 5.0  # positions predicting prompt tokens only
    changed[0, 5] += 5.0  # the prediction after the last token (padding)
    assert torch.allclose(completion_loss(changed, ids, mask), loss)
    # the same as -sum log p over completion tokens / count, i.e. kdlib.lm.generate's sequence sum / tokens
    with pytest.raises(ValueError, match="must agree"):
        completion_loss(logits, ids[:, :4], mask)


def test_multitask_loss_is_label_plus_lambda_rationale():
    torch.manual_seed(1)
    a, ia = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    b, ib = torch.randn(3, 8, 7), torch.randint(0, 7, (3, 8))
    ma, mb = torch.ones(2, 5, dtype=torch.long), torch.ones(3, 8, dtype=torch.long)
    ma[:, :2] = 0
    mb[:, :3] = 0
    la, lb = completion_loss(a, ia, ma), completion_loss(b, ib, mb)
    assert torch.allclose(multitask_loss(a, ia, ma, b, ib, mb, 0.5), la + 0.5 * lb)
    assert torch.allclose(multitask_loss(a, ia, ma, b, ib, mb, 0.0), la)
    with pytest.raises(ValueError, match="lam"):
        multitask_loss(a, ia, ma, b, ib, mb, -1.0)


def test_sft_step_equals_sequence_logprobs_per_token(setup):
    splits, tok = setup
    model = small_llama(tok, layers=1, hidden=32, heads=2)
    prompts, completions = zip(*[format_example(p, "answer") for p in splits["pool"][:4]])
    data = sft_data(tok, list(prompts), list(completions))
    idx = torch.arange(4)
    with torch.no_grad():
        loss = sft_step(model, data.batch(idx), idx)
        total = sequence_logprobs(model, data.input_ids, data.attention_mask, data.completion_mask).sum()
    assert torch.allclose(loss, -total / data.completion_mask[:, 1:].sum(), atol=1e-5)


def test_extraction_verification_and_rationale_check():
    assert extract_answer("3+4=7. Answer: 7") == 7
    assert extract_answer("Answer: 3. no, Answer: 12") == 12 and extract_answer("7+1=8.") is None
    assert verify_answers(["Answer: 5", "Answer: 6", "nothing"], [5, 5, 5]).tolist() == [1.0, 0.0, 0.0]
    assert check_rationale("12+5=17. 17-3=14. Answer: 14")
    assert not check_rationale("12+5=18. 18-3=15. Answer: 15")  # a wrong step
    assert not check_rationale("12+5=17. 16-3=13. Answer: 13")  # not chained
    assert not check_rationale("12+5=17. Answer: 18") and not check_rationale("Answer: 3")
    with pytest.raises(ValueError, match="gold"):
        verify_answers(["Answer: 1"], [1, 2])


def test_majority_vote_and_filters():
    assert majority_vote([3, 4, 3, None]) == (3, 0.5) and majority_vote([None, None]) == (None, 0.0)
    samples = [["Answer: 5", "x Answer: 5", "Answer: 6"],  # vote 5 (right)
               ["Answer: 2", "Answer: 2", "Answer: 9"],  # vote 2 (wrong: gold 9)
               ["Answer: 1", "Answer: 2", "none"]]  # no majority of half
    vote = filter_samples(samples, "vote")
    assert vote.index == [0, 1] and vote.answers == [5, 2] and vote.texts == ["Answer: 5", "Answer: 2"]
    assert vote.keep.sum() == 4 and abs(vote.fraction - 4 / 9) < 1e-6
    gold = filter_samples(samples, "gold", gold=[5, 9, 2])
    assert gold.index == [0, 1, 2] and gold.texts == ["Answer: 5", "Answer: 9", "Answer: 2"]
    with pytest.raises(ValueError, match="gold"):
        filter_samples(samples, "gold")


def test_corrupted_rationale_is_wrong_in_one_step_and_consistent_after(setup):
    splits, _ = setup
    rng = random.Random(0)
    for p in splits["heldout"]:
        bad, answer_ = corrupt_rationale(p.rationale, rng)
        assert answer_ != p.answer and not check_rationale(f"{bad} Answer: {answer_}")
        wrong = [eq for eq, gold in zip(bad.split(" "), p.rationale.split(" ")) if eq != gold]
        assert wrong and bad.endswith(f"={answer_}.")


def test_batched_generation_matches_one_at_a_time(setup):
    splits, tok = setup
    model = small_llama(tok, layers=1, hidden=32, heads=2, seed=3)
    prompts, completions = zip(*[format_example(p, "rationale") for p in splits["pool"]])
    fit(model, sft_data(tok, list(prompts), list(completions)), sft_step, steps=15, batch_size=16, optimizer="adamw",
        lr=1e-2, betas=(0.9, 0.95), weight_decay=0.01, warmup=10, clip=1.0, progress=False)
    questions = [format_prompt(p.question, "rationale") for p in splits["heldout"]]  # different lengths
    together = answer(model, tok, questions, max_new_tokens=12, batch_size=8)
    alone = [answer(model, tok, [q], max_new_tokens=12)[0] for q in questions]
    assert together == alone and len(set(together)) > 1  # not all the same text
    scores = evaluate_answers(["Answer: %d" % p.answer for p in splits["heldout"]], splits["heldout"])
    assert scores["accuracy"] == 1.0 and set(scores["by_steps"]) <= {2, 3, 4}


def test_multitask_data_needs_aligned_rows_and_the_step_a_valid_lambda(setup):
    splits, tok = setup
    a = sft_data(tok, *map(list, zip(*[format_example(p, "label") for p in splits["pool"][:4]])))
    b = sft_data(tok, *map(list, zip(*[format_example(p, "explain") for p in splits["pool"][:3]])))
    with pytest.raises(ValueError, match="same problem"):
        MultitaskData(a, b)
    with pytest.raises(ValueError, match="lam"):
        multitask_step(-1.0)


def test_teacher_is_cached_by_recipe_and_samples_by_teacher(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    splits, tok = setup
    recipe = dict(layers=1, hidden=32, heads=2, steps=2, batch=8, lr=3e-3, n_pool=32, seed=0)
    logs = []
    t1 = prepare_rationale_teacher(tok, splits["pool"], recipe, log=logs.append)
    t2 = prepare_rationale_teacher(tok, splits["pool"], recipe, log=logs.append)
    assert "training it once" in logs[0] and "loaded from cache" in logs[1]
    assert all(torch.equal(a, b) for a, b in zip(t1.state_dict().values(), t2.state_dict().values()))
    with pytest.raises(ValueError, match="n_pool"):
        prepare_rationale_teacher(tok, splits["pool"][:5], recipe)
    prompts = [format_prompt(p.question, "rationale") for p in splits["unlabelled"][:3]]
    s1 = teacher_samples(t1, tok, prompts, k=2, max_new_tokens=5, log=logs.append)
    s2 = teacher_samples(t1, tok, prompts, k=2, max_new_tokens=5, log=logs.append)
    assert s1 == s2 and len(s1) == 3 and all(len(s) == 2 for s in s1) and "loaded" in logs[-1]
    assert len(list((tmp_path / "teacher_samples").glob("*.json"))) == 1


def test_answer_cost_counts_generated_tokens_and_times_each_answer(setup):
    from kdlib.core.serving import call_latency
    from kdlib.lm.sft import answer_cost
    splits, tok = setup
    model = small_llama(tok, layers=1, hidden=32, heads=2)
    prompts = [format_prompt(p.question, "answer") for p in splits["test"][:4]]
    cost = answer_cost(model, tok, prompts, max_new_tokens=3, warmup=1)
    assert 1 <= cost["tokens"] <= 3 and cost["p50_ms"] > 0 and cost["p99_ms"] >= cost["p50_ms"]
    calls = []
    lat = call_latency(calls.append, warmup=2, repeats=3)
    assert calls == [0, 0, 0, 1, 2] and set(lat) == {"p50_ms", "p95_ms", "p99_ms", "mean_ms"}
    with pytest.raises(ValueError, match="repeats"):
        call_latency(calls.append, repeats=0)


def test_equation_chains_are_valid_rationales_in_range():
    from kdlib.reasoning.arithmetic import MAX_VALUE, equation_chains
    chains = equation_chains(200, seed=3)
    assert chains == equation_chains(200, seed=3) and chains != equation_chains(200, seed=4)
    numbers, equations = zip(*(c.split(": ") for c in chains))
    assert all(check_rationale(f"{e} Answer: {e.split('=')[-1].rstrip('.')}") for e in equations)
    # the listed numbers are the operands, in the order the equations use them
    for listed, eqs in zip(numbers, equations):
        first = re.findall(r"(\d+)[-+*/]", eqs)[:1]
        used = [int(x) for x in first + re.findall(r"[-+*/](\d+)=", eqs)]
        assert [int(v) for v in listed.split()] == used
    steps = [e.count("=") for e in equations]
    assert set(steps) == {1, 2, 3, 4}
    values = [int(v) for c in chains for v in re.findall(r"\d+", c)]
    assert max(values) <= MAX_VALUE and {op for c in chains for op in "+-*/" if op in c} == set("+-*/")
    with pytest.raises(ValueError, match="max_steps"):
        equation_chains(3, max_steps=0)


def test_base_student_is_pretrained_on_equations_and_cached(setup, tmp_path, monkeypatch):
    from kdlib.reasoning.teacher import prepare_base_student
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    _, tok = setup
    recipe = dict(layers=1, hidden=32, heads=2, intermediate=64, steps=2, batch=8, lr=3e-3, n_chains=40, seed=0)
    logs = []
    b1 = prepare_base_student(tok, recipe, log=logs.append)
    b2 = prepare_base_student(tok, recipe, log=logs.append)
    assert "training it once" in logs[0] and "loaded from cache" in logs[1]
    assert all(torch.equal(a, b) for a, b in zip(b1.state_dict().values(), b2.state_dict().values()))
    assert b1.config.intermediate_size == 64 and not b1.training
    with pytest.raises(ValueError, match="lacks n_chains"):
        prepare_base_student(tok, {k: v for k, v in recipe.items() if k != "n_chains"})
