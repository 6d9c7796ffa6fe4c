"""Notebook 08's data filters and funnel on hand-made cases."""
import math

import pytest

from kdlib.reasoning.pipeline import balance_domains, exact_duplicates, funnel, jaccard_duplicates, near_duplicates


def test_exact_and_near_duplicates_keep_the_first_of_each_group():
    texts = ["Ann has 12 apples. Ann buys 5 more. How many apples does Ann have now?",
             "ann has 12 apples.  Ann buys 5 more. How many apples does Ann have now?",  # exact, up to case/space
             "Ann has 12 apples. Ann buys 5 more. How many apples does Ann have today?",  # one word changed
             "Ben has 40 pens. Ben loses 3. How many pens does Ben have now?"]
    assert exact_duplicates(texts) == [True, False, True, True]
    assert near_duplicates(texts, threshold=0.6) == [True, False, False, True]
    assert near_duplicates(texts, threshold=0.95) == [True, False, True, True]
    with pytest.raises(ValueError, match="more permutations"):
        near_duplicates(texts, threshold=0.99)
    assert near_duplicates(["a", "a", "b"], threshold=0.5) == [True, False, True]  # shorter than the n-gram
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(texts, threshold=0)


def test_balance_and_funnel_accounting():
    assert balance_domains(["a", "b", "a", "a", "b"], cap=2) == [True, True, True, False, True]
    with pytest.raises(ValueError, match="cap"):
        balance_domains(["a"], cap=0)
    wrong = [False, True, True, False, False, True]
    survivors, rows = funnel(6, [("odd ones", lambda idx: [i % 2 == 0 for i in idx]),  # removes 1, 3, 5
                                 ("nothing", lambda idx: [True] * len(idx)),
                                 ("first", lambda idx: [i == idx[0] for i in idx])], wrong)  # removes 2, 4
    assert survivors == [0]
    assert rows[0] == {"stage": "odd ones", "kept": 3, "removed": 3, "removed_wrong_fraction": 2 / 3}
    assert rows[1]["removed"] == 0 and math.isnan(rows[1]["removed_wrong_fraction"])
    assert rows[2]["kept"] == 1 and rows[2]["removed_wrong_fraction"] == 0.5
    with pytest.raises(ValueError, match="one bool per item"):
        funnel(2, [("bad", lambda idx: [1, 0])], [False, False])
    with pytest.raises(ValueError, match="wrong must say"):
        funnel(3, [], [False])


def test_the_exact_jaccard_rule_is_what_minhash_estimates():
    base = "Ann has 12 apples. Ann buys 5 more. Ann gives 3 to Ben. How many apples does Ann have now?"
    texts = [base, base.replace("Ben", "Cal"), "Eve loses 4.", base.replace("apples", "pens").replace("12", "40"),
             "Eve loses 4 pens today."]
    exact = jaccard_duplicates(texts, threshold=0.6)
    assert exact == [True, False, True, True, True]  # one word changed: Jaccard 15/21; three changed: 11/25
    assert near_duplicates(texts, threshold=0.6) == exact
    assert jaccard_duplicates(["a b", "A  B"], threshold=1.0) == [True, False]
