"""Notebook 06's additions: the best constant answer (from the training answers, scored on any split), per-problem
scores for paired comparisons, and a learner's multi-task loss driving the multi-task step."""
import pytest
import torch

pytest.importorskip("transformers")
from kdlib.lm.sft import MultitaskData, multitask_step, sft_data  # noqa: E402
from kdlib.lm.small import build_tokenizer, small_llama  # noqa: E402
from kdlib.losses.tokens import multitask_loss  # noqa: E402
from kdlib.reasoning.arithmetic import arithmetic_splits  # noqa: E402
from kdlib.reasoning.rationale import constant_answer, evaluate_answers, format_example, format_texts  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    splits = arithmetic_splits(32, 16, 8, 24, seed=0)
    tok = build_tokenizer(format_texts([p for v in splits.values() for p in v]))
    return splits, tok


def test_evaluate_answers_scores_each_problem_in_order(setup):
    splits, _ = setup
    problems = splits["heldout"][:4]
    texts = [f"Answer: {p.answer}" for p in problems[:2]] + ["Answer: -1", "no answer"]
    scores = evaluate_answers(texts, problems)
    assert scores["right"] == [1.0, 1.0, 0.0, 0.0] and scores["accuracy"] == 0.5 and scores["n"] == 4
    with pytest.raises(ValueError, match="texts"):
        evaluate_answers(texts[:3], problems)


def test_constant_answer_is_the_most_frequent_training_answer_scored_on_the_split(setup):
    splits, _ = setup
    problems = splits["heldout"]
    gold = [p.answer for p in problems]
    train = [7, 3, 7, 5, None, 3, 7]  # 7 is most frequent; None (no answer) is not counted
    scores = constant_answer(train, problems)
    assert scores["answer"] == 7
    assert scores["accuracy"] == pytest.approx(sum(g == 7 for g in gold) / len(gold))
    assert scores["right"] == [float(g == 7) for g in gold]
    by = {s: [g == 7 for g, p in zip(gold, problems) if p.steps == s] for s in {p.steps for p in problems}}
    assert scores["by_steps"] == {s: pytest.approx(sum(v) / len(v)) for s, v in sorted(by.items())}
    # a training set whose most frequent answer is the split's first gold answer scores at least 1/n
    assert constant_answer([gold[0]] * 3 + [gold[0] + 1], problems)["accuracy"] >= 1 / len(problems)
    assert constant_answer([4, 9, 9, 4], problems)["answer"] == 4  # a tie goes to the answer seen first
    with pytest.raises(ValueError, match="train_answers"):
        constant_answer([None], problems)


def test_multitask_step_trains_with_the_loss_it_is_given(setup):
    splits, tok = setup
    pool = splits["pool"][:4]
    label = sft_data(tok, *map(list, zip(*[format_example(p, "label") for p in pool])))
    explain = sft_data(tok, *map(list, zip(*[format_example(p, "explain") for p in pool])))
    data = MultitaskData(label, explain)
    model = small_llama(tok, layers=1, hidden=16, heads=2, seed=0)
    idx = torch.arange(4)
    reference = multitask_step(0.5)(model, data.batch(idx), idx)
    seen = []

    def learner(*args):
        seen.append(args[-1])
        return multitask_loss(*args) * 2

    given = multitask_step(0.5, loss=learner)(model, data.batch(idx), idx)
    assert seen == [0.5] and torch.allclose(given, 2 * reference)
    assert torch.allclose(multitask_step(0.5, loss=multitask_loss)(model, data.batch(idx), idx), reference)
    with pytest.raises(ValueError, match="loss"):
        multitask_step(1.0, loss="multitask_loss")
