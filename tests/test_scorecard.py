"""kdlib.core.scorecard on hand-made cases (notebook 09)."""
import pytest
import torch

from kdlib.core.scorecard import quality_card, scorecard_table, system_card


def _case():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1, 1, 1])  # wrong on request 2
    teacher = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])  # wrong on 2 and 3
    return logits, labels, teacher


def test_quality_card_slices_agreement_and_the_trap():
    logits, labels, teacher = _case()
    long = torch.tensor([False, False, True, True])
    card = quality_card(logits, labels, teacher, slices={"long": long, "none": torch.zeros(4, dtype=torch.bool)},
                        shifted=(logits[:2], labels[:2]))
    assert card["accuracy"] == 0.75 and card["teacher_agreement"] == 0.75 and card["shifted_accuracy"] == 1.0
    # on the long requests the student agrees with its teacher half the time, and is right half the time
    assert card["slices"]["long"] == {"accuracy": 0.5, "n": 2, "teacher_agreement": 0.5}
    assert card["slices"]["none"]["n"] == 0
    assert quality_card(logits, labels, slices={"long": long})["slices"]["long"] == {"accuracy": 0.5, "n": 2}
    # a student that copies the teacher agrees fully and is less accurate: agreement is not accuracy
    copy = quality_card(teacher, labels, teacher)
    assert copy["teacher_agreement"] == 1.0 and copy["accuracy"] == 0.5 < card["accuracy"]
    assert 0 <= card["ece"] <= 1
    with pytest.raises(ValueError, match="bool mask"):
        quality_card(logits, labels, slices={"bad": torch.tensor([1, 0, 1, 0])})
    with pytest.raises(ValueError, match="differ in shape"):
        quality_card(logits, labels, teacher[:3])


def test_system_card_costs_and_table():
    lat = {"p50_ms": 2.0, "p95_ms": 3.0, "p99_ms": 4.0, "mean_ms": 2.5}
    card = system_card(lat, batch=10, params=1000, size_mb=0.01, price_per_second=2.0, accuracy=0.5,
                       teacher_fraction=0.25)
    assert card["requests_per_s"] == pytest.approx(4000)  # 10 requests per 2.5 ms
    assert card["cost_per_1k"] == pytest.approx(1000 * 0.00025 * 2.0)
    assert card["cost_per_1k_successes"] == pytest.approx(2 * card["cost_per_1k"])
    table = scorecard_table({"student": {**quality_card(*_case()[:2]), **card}, "teacher": {"accuracy": 0.9}})
    lines = table.splitlines()
    assert len(lines) == 3 and "cost/1k" in lines[0] and lines[2].split()[0] == "teacher" and "-" in lines[2]
    with pytest.raises(ValueError, match="latency_ms lacks"):
        system_card({"p50_ms": 1.0}, 1, 1, 1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="price_per_second"):
        system_card(lat, 1, 1, 1.0, -1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="teacher_fraction"):
        system_card(lat, 1, 1, 1.0, 1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="no cards"):
        scorecard_table({})
