"""kdlib.core.cascade and kdlib.core.costs on hand-made cases (notebook 09)."""
import math

import pytest
import torch

from kdlib.core.cascade import (cascade_logits, choose_threshold, confidence, oracle_route, route,
                                threshold_sweep)
from kdlib.core.costs import (break_even_requests, cost_per_1k, cost_per_request, cost_per_success,
                              cumulative_cost)


def _pair():
    # 4 requests, 2 classes; the student is right on 0 and 1 (confident) and wrong on 2 and 3 (unsure)
    student = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]]))
    teacher = torch.log(torch.tensor([[0.4, 0.6], [0.1, 0.9], [0.3, 0.7], [0.9, 0.1]]))  # wrong on request 0
    labels = torch.tensor([0, 1, 1, 0])
    return student, teacher, labels


def test_confidence_max_prob_and_margin():
    student, _, _ = _pair()
    assert torch.allclose(confidence(student), torch.tensor([0.9, 0.8, 0.6, 0.55]))
    assert torch.allclose(confidence(student, "margin"), torch.tensor([0.8, 0.6, 0.2, 0.1]), atol=1e-6)
    softer = confidence(student, T=4.0)
    assert (softer < confidence(student)).all() and (softer > 0.5).all()
    with pytest.raises(ValueError, match="kind"):
        confidence(student, "entropy")
    with pytest.raises(ValueError, match="T must be"):
        confidence(student, T=0)
    with pytest.raises(ValueError, match="classes >= 2"):
        confidence(torch.zeros(3, 1))


def test_route_and_cascade_answer():
    student, teacher, _ = _pair()
    to_teacher = route(confidence(student), 0.7)
    assert to_teacher.tolist() == [False, False, True, True]
    answer = cascade_logits(student, teacher, to_teacher)
    assert answer.argmax(-1).tolist() == [0, 1, 1, 0] and torch.equal(answer[:2], student[:2])
    with pytest.raises(ValueError, match="one boolean per request"):
        cascade_logits(student, teacher, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="one boolean per request"):
        cascade_logits(student, teacher, torch.tensor([True, False]))
    with pytest.raises(ValueError, match="same shape"):
        cascade_logits(student, teacher[:3], to_teacher)


def test_sweep_endpoints_oracle_and_choice():
    student, teacher, labels = _pair()
    sweep = threshold_sweep(student, teacher, labels, [0.0, 0.58, 0.7, 1.01])
    assert [r["teacher_fraction"] for r in sweep] == [0.0, 0.25, 0.5, 1.0]
    assert [r["accuracy"] for r in sweep] == [0.5, 0.75, 1.0, 0.75]  # the cascade beats the teacher alone
    assert sweep[2]["macro_f1"] == 1.0
    oracle = oracle_route(student, labels)
    assert oracle.tolist() == [False, False, True, True]
    best = choose_threshold(sweep, target_accuracy=0.75, tolerance=0.0)
    assert best["threshold"] == 0.58  # the fewest teacher calls at the teacher's accuracy
    assert choose_threshold(sweep, target_accuracy=2.0)["accuracy"] == 1.0  # none qualifies: the most accurate
    # paired with the teacher (right on 1-3): the student alone is 0.25 behind, threshold 0.58 level, 0.7 ahead
    assert [r["gap"] for r in sweep] == [-0.25, 0.0, 0.25, 0.0]
    assert sweep[1]["gap_se"] == pytest.approx(torch.tensor([1.0, 0, -1, 0]).std().item() / 2)
    assert sweep[3]["gap_se"] == 0
    assert choose_threshold(sweep, tolerance=0.0)["threshold"] == 0.58
    # two standard errors of margin: 0.58 might be luck (gap 0, se 0.41), 0.7 is within 0.3 of the teacher
    assert choose_threshold(sweep, tolerance=0.3, z=2.0)["threshold"] == 0.7
    assert choose_threshold(sweep, tolerance=0.0, z=2.0)["threshold"] == 1.01  # only the teacher itself is sure
    with pytest.raises(ValueError, match="z must be"):
        choose_threshold(sweep, z=-1)
    with pytest.raises(ValueError, match="empty"):
        choose_threshold([], 0.5)
    with pytest.raises(ValueError, match="labels"):
        threshold_sweep(student, teacher, labels[:3], [0.5])


def test_costs_and_break_even():
    assert cost_per_request(0.002, 0.5) == pytest.approx(0.001)
    assert cost_per_1k(0.002, 0.5) == pytest.approx(1.0)
    assert cost_per_success(1.0, 0.5) == 2.0 and cost_per_success(1.0, 0.0) == math.inf
    # 100 to label with the teacher + 50 to train; the teacher costs 0.004 a request, the student 0.001
    assert break_even_requests(100, 50, 0.004, 0.001) == pytest.approx(50_000)
    assert break_even_requests(100, 50, 0.001, 0.004) == math.inf
    assert cumulative_cost([0, 10, 20], 5.0, 0.5) == [5.0, 10.0, 15.0]
    for bad in (lambda: cost_per_request(-1, 1), lambda: cost_per_1k(1, -0.1),
                lambda: break_even_requests(-5, 0, 1, 0), lambda: cumulative_cost([1, -2], 0, 1),
                lambda: cost_per_success(1, 1.5)):
        with pytest.raises(ValueError, match="must be a finite number"):
            bad()
