"""kdlib.reasoning.arithmetic: determinism, held-out disjointness, gold rationales and answers that are right."""
import re

import pytest

from kdlib.reasoning.arithmetic import (MAX_VALUE, OBJECTS, STEPS, apply_op, arithmetic_splits, generate,
                                        is_heldout_template, templates)
from kdlib.reasoning.rationale import check_rationale
from kdlib.lm.small import PIECE


@pytest.fixture(scope="module")
def splits():
    return arithmetic_splits(600, 600, 200, 300, seed=0)


def test_same_seed_same_problems_other_seed_other_problems():
    assert generate(50, "pool", seed=3) == generate(50, "pool", seed=3)
    assert generate(50, "pool", seed=3) != generate(50, "pool", seed=4)
    assert arithmetic_splits(20, 20, 10, 10, seed=1) == arithmetic_splits(20, 20, 10, 10, seed=1)


def test_gold_rationale_recomputes_to_the_gold_answer(splits):
    for problem in (p for v in splits.values() for p in v):
        equations = re.findall(r"(\d+)([-+*/])(\d+)=(\d+)\.", problem.rationale)
        assert len(equations) == problem.steps == len(problem.template)
        x = int(re.search(r"has (\d+) ", problem.question).group(1))
        for (a, op, b, c), t in zip(equations, problem.template):
            assert int(a) == x and op == STEPS[t][0] and apply_op(x, op, int(b)) == int(c)
            x = int(c)
            assert 2 <= x <= MAX_VALUE
        assert x == problem.answer
        assert check_rationale(f"{problem.rationale} Answer: {problem.answer}")
        assert any(obj in problem.question for obj in OBJECTS) and problem.question.endswith("have now?")


def test_heldout_uses_only_unseen_templates_and_step_counts(splits):
    train_side = [p for s in ("pool", "unlabelled", "test") for p in splits[s]]
    train_templates = {p.template for p in train_side}
    assert {p.steps for p in train_side} == {1, 2, 3}
    assert {p.steps for p in splits["heldout"]} == {2, 3, 4}
    assert not any(is_heldout_template(t) for t in train_templates)
    assert all(is_heldout_template(p.template) for p in splits["heldout"])
    assert not train_templates & {p.template for p in splits["heldout"]}
    # but every single step phrasing is seen in training, so held-out problems are new compositions
    assert {t for p in train_side for t in p.template} == set(range(len(STEPS)))
    assert len(templates(1, heldout=True)) == 0 and len(templates(4, heldout=False)) == 0


def test_no_question_in_two_splits_and_heldout_words_seen_in_training(splits):
    questions = [p.question for v in splits.values() for p in v]
    assert len(questions) == len(set(questions))
    train_pieces = {piece for p in splits["pool"] + splits["unlabelled"] for piece in re.findall(PIECE, p.question)}
    heldout_pieces = {piece for p in splits["heldout"] for piece in re.findall(PIECE, p.question)}
    assert heldout_pieces <= train_pieces


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="split must be one of"):
        generate(3, "train")
    with pytest.raises(ValueError, match="not \\(4,\\)"):
        generate(3, "pool", steps=(4,))
    with pytest.raises(ValueError, match="not a whole number"):
        apply_op(7, "/", 2)
