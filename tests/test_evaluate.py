"""Evaluation on hand-made cases: errors, agreement, ECE."""
import pytest
import torch

from kdlib.evaluate import (accuracy, agreement, error_count, expected_calibration_error, per_class_accuracy,
                            reliability_bins)


def test_errors_accuracy_agreement():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0], [1.0, 2.0]])
    labels = torch.tensor([0, 1, 1, 0])
    assert error_count(logits, labels) == 2
    assert accuracy(logits, labels) == 0.5
    assert agreement(logits, torch.tensor([[1.0, 0.0]] * 4)) == 0.5
    assert per_class_accuracy(logits, labels).tolist() == [0.5, 0.5]


def test_ece_of_a_perfectly_calibrated_set_is_zero():
    # 10 predictions at confidence 0.8, of which 8 are right
    probs = torch.tensor([[0.8, 0.2]] * 10)
    labels = torch.tensor([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.0, abs=1e-6)


def test_ece_by_hand_two_bins():
    # bin (0.5, 0.6]: 2 at 0.55, 1 right -> gap 0.05; bin (0.9, 1.0]: 2 at 0.95, both right -> gap 0.05
    probs = torch.tensor([[0.55, 0.45], [0.55, 0.45], [0.95, 0.05], [0.95, 0.05]])
    labels = torch.tensor([0, 1, 0, 0])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.05, abs=1e-6)
    # overconfident: all wrong at 0.9 -> ECE 0.9
    assert expected_calibration_error(torch.tensor([[0.9, 0.1]] * 4), torch.ones(4, dtype=torch.long)) == \
        pytest.approx(0.9, abs=1e-6)


def test_bin_edges_are_right_closed():
    bins = reliability_bins(torch.tensor([[0.6, 0.4]]), torch.tensor([0]), n_bins=5)  # 0.6 is in (0.4, 0.6]
    assert bins["count"].tolist() == [0, 0, 1, 0, 0]


def test_ece_refuses_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="apply softmax"):
        expected_calibration_error(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="expected logits"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]))
