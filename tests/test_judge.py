"""kdlib.reasoning.judge (notebook 07): the teacher's answers by vote, verdicts, log-likelihood scores, judged pairs."""
import pytest
import torch

pytest.importorskip("transformers")
from kdlib.reasoning.judge import completion_scores, judge_keys, judged_pairs, teacher_answers, verdicts  # noqa: E402
from kdlib.lm.dpo import win_rate  # noqa: E402
from kdlib.lm.small import build_tokenizer, small_llama  # noqa: E402

TEXTS = ["Ann has 3 apples. Ann buys 2 more. How many apples does Ann have now?\n", "3+2=5. Answer: 5",
         "3+2=6. Answer: 6", "Answer: 7", "Ben has 9 pens.\n"]


def tok_and_model():
    tok = build_tokenizer(TEXTS)
    return tok, small_llama(tok, layers=1, hidden=32, heads=2, seed=0).eval()


def test_teacher_answers_by_vote_and_verdicts():
    assert teacher_answers([["Answer: 5", "x Answer: 6", "Answer: 5"], ["no answer", "none"]]) == [5, None]
    assert verdicts(["3+2=5. Answer: 5", "Answer: 6", "Answer: 7", "nothing"], [5, 5, None, 1]).tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="2 texts but 1 answers"):
        verdicts(["a", "b"], [1])


def test_completion_scores_are_summed_completion_logprobs_and_batch_invariant():
    tok, model = tok_and_model()
    prompts, completions = [TEXTS[0], TEXTS[0], TEXTS[4]], [TEXTS[1], TEXTS[3], TEXTS[2]]
    scores = completion_scores(model, tok, prompts, completions, batch_size=2)
    one = completion_scores(model, tok, prompts, completions, batch_size=1)
    assert scores.shape == (3,) and torch.allclose(scores, one, atol=1e-5)
    # by hand: prompt then completion then <eos>, scored token by token
    ids = tok(prompts[1] + completions[1], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n_prompt = len(tok(prompts[1], add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    by_hand = sum(float(logp[t - 1, ids[t]]) for t in range(n_prompt, len(ids)))
    assert float(scores[1]) == pytest.approx(by_hand, abs=1e-4)
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        completion_scores(model, tok, prompts[:2], completions[:1])


def test_judged_pairs_take_the_best_verified_and_the_worst_unverified():
    tok, _ = tok_and_model()
    samples = [[TEXTS[1], TEXTS[2], TEXTS[3]], [TEXTS[1], TEXTS[1], TEXTS[1]], [TEXTS[3], TEXTS[2], TEXTS[1]]]
    verified = torch.tensor([1.0, 0, 0, 1, 1, 1, 0, 1, 1])
    loglik = torch.tensor([-1.0, -2, -5, -1, -1, -1, -3, -4, -2])
    keys = judge_keys(verified, loglik)
    pairs, index, chosen, rejected = judged_pairs(tok, [TEXTS[0], TEXTS[0], TEXTS[4]], samples, keys)
    # problem 1 has no unverified sample
    assert index == [0, 2] and len(pairs) == 2 and chosen == [0, 8] and rejected == [2, 6]
    decode = lambda row, mask: tok.decode(row[mask.bool()])  # noqa: E731
    assert decode(pairs.input_ids[0, 0], pairs.completion_mask[0, 0]) == TEXTS[1] + "<eos>"
    assert decode(pairs.input_ids[0, 1], pairs.completion_mask[0, 1]) == TEXTS[3] + "<eos>"  # loglik -5 < -2
    assert decode(pairs.input_ids[1, 0], pairs.completion_mask[1, 0]) == TEXTS[1] + "<eos>"  # -2 beats -4
    assert decode(pairs.input_ids[1, 1], pairs.completion_mask[1, 1]) == TEXTS[3] + "<eos>"
    assert tok.decode(pairs.input_ids[1, 0][pairs.attention_mask[1, 0].bool() & ~pairs.completion_mask[1, 0].bool()]) \
        == TEXTS[4]
    with pytest.raises(ValueError, match="no problem has both"):
        judged_pairs(tok, [TEXTS[0]], [samples[1]], keys[3:6])
    with pytest.raises(ValueError, match="one key row per sample"):
        judged_pairs(tok, [TEXTS[0]], [samples[0]], keys)
    # the judge's keys order completions: verified first, then likelier
    assert win_rate(keys[:3], keys[6:]) == pytest.approx(1 / 3)  # (1,-1) > (0,-3); (0,-2) < (1,-4); (0,-5) < (1,-2)
    with pytest.raises(ValueError, match="shape"):
        judge_keys(verified, loglik[:2])


def test_step_level_pairs_cut_after_the_first_different_step():
    from kdlib.reasoning.judge import first_difference_step
    dot = 9
    c, r = [1, 2, dot, 3, 4, dot, 5, 2], [1, 2, dot, 3, 7, dot, 8, 2]
    assert first_difference_step(c, r, dot) == ([1, 2, dot, 3, 4, dot], [1, 2, dot, 3, 7, dot])
    assert first_difference_step([1, 2, 3], [1, 2, 4, dot, 6], dot) == ([1, 2, 3], [1, 2, 4, dot])  # no dot: whole
    assert first_difference_step([1, 2], [1, 2, 5, dot], dot) == ([1, 2], [1, 2, 5, dot])  # a prefix of the other
    tok, _ = tok_and_model()
    keys = judge_keys(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, -2.0]))
    pairs, *_ = judged_pairs(tok, [TEXTS[0]], [["3+2=5. 5+2=7. Answer: 7", "3+2=5. 5+2=8. Answer: 8"]], keys,
                             step_end=".")
    decode = lambda row: tok.decode(pairs.input_ids[0, row][pairs.completion_mask[0, row].bool()])  # noqa: E731
    assert decode(0) == "3+2=5. 5+2=7." and decode(1) == "3+2=5. 5+2=8."
    with pytest.raises(ValueError, match="single token"):
        judged_pairs(tok, [TEXTS[0]], [["Answer: 5", "Answer: 6"]], keys, step_end="Answer: ")


def test_verdicts_are_verify_answers_on_the_answered_problems(monkeypatch):
    """One verifier: judge.verdicts calls kdlib.reasoning.rationale.verify_answers; a problem the judge could
    not answer (None) is 0 without being verified."""
    import kdlib.reasoning.judge as judge
    from kdlib.reasoning.rationale import verify_answers
    texts, answers = ["3+2=5. Answer: 5", "Answer: 6", "Answer: 7", "nothing", "Answer: -3"], [5, 5, None, 1, -3]
    calls = []
    monkeypatch.setattr(judge, "verify_answers", lambda t, a: calls.append((t, a)) or verify_answers(t, a))
    got = verdicts(texts, answers)
    assert got.tolist() == [1, 0, 0, 0, 1] and got.dtype == torch.float32
    assert calls == [(["3+2=5. Answer: 5", "Answer: 6", "nothing", "Answer: -3"], [5, 5, 1, -3])]
    assert verdicts([], []).shape == (0,) and verdicts(["Answer: 1"], [None]).tolist() == [0.0]


def test_completion_scores_restore_the_mode_even_on_error():
    tok, model = tok_and_model()
    model.train()
    completion_scores(model, tok, [TEXTS[0]], [TEXTS[1]])
    assert model.training
    with pytest.raises(AttributeError):
        completion_scores(model, None, [TEXTS[0]], [TEXTS[1]])  # no tokenizer: fails inside the loop
    assert model.training
