"""Notebook 07's additions to kdlib.lm.dpo: where a lexicographic win rate comes from (win_rate_parts) and a
beta grid that brackets its best point (best_on_grid, extend_grid)."""
import pytest
import torch

from kdlib.lm.dpo import best_on_grid, extend_grid, win_rate, win_rate_parts


def test_win_rate_parts_split_the_win_rate_by_deciding_column():
    # item 0: verdict decides for A; 1: verdict decides for B; 2, 3: verdicts tie, likelihood decides for A;
    # 4: everything ties
    a = torch.tensor([[1.0, -9.0], [0.0, -1.0], [1.0, -2.0], [0.0, -3.0], [1.0, -5.0]])
    b = torch.tensor([[0.0, -1.0], [1.0, -9.0], [1.0, -4.0], [0.0, -6.0], [1.0, -5.0]])
    verdict, tiebreak, tie = win_rate_parts(a, b)
    assert (verdict["decided"], verdict["wins"], verdict["losses"], verdict["share"]) == (2, 1, 1, 0.0)
    assert (tiebreak["decided"], tiebreak["wins"], tiebreak["losses"]) == (2, 2, 0)
    assert tiebreak["share"] == pytest.approx(2 / 10) and tie["column"] == "tie" and tie["decided"] == 1
    assert 0.5 + verdict["share"] + tiebreak["share"] == pytest.approx(win_rate(a, b))
    # the verdict-only win rate is 0.5 plus the first column's share
    assert 0.5 + verdict["share"] == pytest.approx(win_rate(a[:, 0], b[:, 0]))


def test_win_rate_parts_one_column_and_bad_input():
    parts = win_rate_parts(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 0.0]))
    assert [p["decided"] for p in parts] == [2, 1] and parts[0]["share"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="score_a and score_b"):
        win_rate_parts(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="score_a and score_b"):
        win_rate_parts(torch.zeros(0), torch.zeros(0))


def test_best_on_grid_prefers_the_larger_beta_on_ties():
    assert best_on_grid({0.1: 0.2, 0.3: 0.25, 1.0: 0.25, 3.0: 0.1}) == 1.0
    assert best_on_grid({0.1: 0.3}) == 0.1


def test_extend_grid_until_the_best_is_bracketed():
    assert extend_grid({0.1: 0.3, 0.3: 0.2, 1.0: 0.1}) == pytest.approx(0.0333)
    assert extend_grid({0.1: 0.1, 0.3: 0.2, 1.0: 0.3}) == 3.0
    assert extend_grid({0.1: 0.1, 0.3: 0.2, 1.0: 0.3}, factor=10) == 10.0
    assert extend_grid({0.1: 0.3, 0.3: 0.2, 1.0: 0.3}) == 3.0  # a tie goes to the larger beta: the edge
    assert extend_grid({0.1: 0.1, 0.3: 0.4, 1.0: 0.3}) is None
    assert extend_grid({0.1: 0.1, 0.3: 0.2}) == 0.9  # 3 significant digits, not 0.8999999999999999
    scores = {0.1: 0.1, 0.3: 0.2, 1.0: 0.3}
    true_curve = {0.1: 0.1, 0.3: 0.2, 1.0: 0.3, 3.0: 0.35, 9.0: 0.2, 27.0: 0.1}
    while (new := extend_grid(scores)) is not None:
        scores[new] = true_curve[new]
    assert best_on_grid(scores) == 3.0 and sorted(scores) == [0.1, 0.3, 1.0, 3.0, 9.0]


@pytest.mark.parametrize("bad", [{}, {0.0: 0.1}, {-1.0: 0.1}, {0.1: float("nan")}, [0.1]])
def test_grid_functions_refuse_bad_scores(bad):
    with pytest.raises(ValueError, match="scores"):
        extend_grid(bad)
    with pytest.raises(ValueError, match="scores"):
        best_on_grid(bad)


def test_extend_grid_refuses_a_factor_that_does_not_grow():
    with pytest.raises(ValueError, match="factor"):
        extend_grid({0.1: 0.1}, factor=1.0)


def test_item_wins_are_the_per_item_win_rate():
    from kdlib.lm.dpo import item_wins
    a = torch.tensor([[1.0, -9.0], [0.0, -1.0], [1.0, -2.0], [1.0, -5.0]])
    b = torch.tensor([[0.0, -1.0], [1.0, -9.0], [1.0, -4.0], [1.0, -5.0]])
    assert item_wins(a, b).tolist() == [1.0, 0.0, 1.0, 0.5]
    assert float(item_wins(a, b).mean()) == win_rate(a, b)


def test_judge_samples_scores_only_problems_that_can_give_a_pair():
    pytest.importorskip("transformers")
    from kdlib.lm.small import build_tokenizer, small_llama
    from kdlib.reasoning.judge import completion_scores, judge_keys, judge_samples, judged_pairs, verdicts
    texts = ["Ann has 3 apples. Ann buys 2 more. How many apples does Ann have now?\n", "3+2=5. Answer: 5",
             "3+2=6. Answer: 6", "Answer: 7", "Ben has 9 pens.\n", "Answer: 5"]
    tok = build_tokenizer(texts)
    model = small_llama(tok, layers=1, hidden=32, heads=2, seed=0).eval()
    prompts = [texts[0], texts[4], texts[0]]
    samples = [[texts[1], texts[2], texts[3]], [texts[1], texts[5], texts[1]], [texts[2], texts[3], texts[2]]]
    answers = [5, 5, 5]  # problem 0 mixed, problem 1 all verified, problem 2 none verified
    keys = judge_samples(model, tok, prompts, samples, answers)
    flat = [t for s in samples for t in s]
    full = judge_keys(verdicts(flat, [5] * 9), completion_scores(model, tok, [p for p in prompts for _ in range(3)], flat))
    assert keys.shape == (9, 2) and torch.equal(keys[:, 0], full[:, 0])
    assert torch.allclose(keys[:3, 1], full[:3, 1], atol=1e-5) and keys[3:, 1].abs().sum() == 0
    got, want = judged_pairs(tok, prompts, samples, keys), judged_pairs(tok, prompts, samples, full)
    assert got[1:] == want[1:] and torch.equal(got[0].input_ids, want[0].input_ids)
    with pytest.raises(ValueError, match="one answer and k >= 1 samples"):
        judge_samples(model, tok, prompts, samples, answers[:2])
    with pytest.raises(ValueError, match="one answer and k >= 1 samples"):
        judge_samples(model, tok, prompts[:1], [[texts[1]], [texts[2], texts[3]]], [5, 5])
