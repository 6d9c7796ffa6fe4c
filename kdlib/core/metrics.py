"""Evaluation: accuracy, error counts, calibration (ECE, reliability diagram), teacher agreement.

Notebook 02 counts test errors as in Hinton et al.; notebook 03 measures calibration.
Every metric raises ValueError on an empty set ("no examples": an accuracy of nothing is undefined, not 1.0),
on shapes that do not match (logits (N, classes), labels (N,)), on non-integer labels or labels outside
[0, classes), and on NaN or infinite logits or probabilities.

ECE with ``n_bins`` equal-width confidence bins B_b over (0, 1], confidence = max_c p[c]:
``ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|``.
"""
from __future__ import annotations

import torch

from kdlib.core.validate import check_classification, check_finite


def error_count(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """Number of examples whose argmax differs from the label."""
    check_classification(logits, labels)
    return int((logits.argmax(-1) != labels.to(logits.device)).sum())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of examples whose argmax equals the label (ValueError on an empty set)."""
    return 1.0 - error_count(logits, labels) / len(labels)


def agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """Fraction of examples where student and teacher predict the same class (right or wrong); the classes are the
    last dimension (``(N, classes)``, or ``(B, L, vocab)`` for tokens)."""
    if not isinstance(student_logits, torch.Tensor) or not isinstance(teacher_logits, torch.Tensor):
        raise ValueError("student_logits and teacher_logits must be tensors, got "
                         f"{type(student_logits).__name__} and {type(teacher_logits).__name__}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    if student_logits.dim() < 1 or student_logits.numel() == 0:
        raise ValueError(f"no examples: logits of shape {tuple(student_logits.shape)}; agreement needs at least one "
                         "example with at least one class")
    check_finite("student_logits", student_logits)
    check_finite("teacher_logits", teacher_logits)
    return float((student_logits.argmax(-1) == teacher_logits.argmax(-1).to(student_logits.device)).float().mean())


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Accuracy on the examples of each true class (NaN for a class with no examples), on ``logits``' device."""
    n_classes = check_classification(logits, labels, n_classes)
    labels = labels.to(logits.device)
    correct = (logits.argmax(-1) == labels).float()
    counts = torch.bincount(labels, minlength=n_classes).float()
    return torch.bincount(labels, weights=correct, minlength=n_classes) / counts


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, torch.Tensor]:
    """Per confidence bin: ``count``, mean ``confidence`` and ``accuracy`` (NaN where empty), and ``edges``.

    ``n_bins`` equal-width bins of the confidence ``max_c p[c]``; bin b holds (edges[b], edges[b+1]] (a
    confidence of exactly 0 falls in bin 0). Notebook 03. Every tensor is made on ``probs.device`` (labels
    are moved there), so CPU and CUDA inputs both work; the result lives on that device."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got n_bins={n_bins!r}")
    check_classification(probs, labels, what="probs")
    if not probs.dtype.is_floating_point:
        raise ValueError(f"probs must be floating-point probabilities, got dtype {probs.dtype}")
    ones = torch.ones(len(probs), dtype=probs.dtype, device=probs.device)
    if (probs < 0).any() or not torch.allclose(probs.sum(-1), ones, atol=1e-3):
        raise ValueError("probs must be probabilities (non-negative, rows summing to 1); apply softmax to logits first")
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels.to(probs.device)).float()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=probs.dtype, device=probs.device)
    # bin b holds confidences in (edges[b], edges[b+1]]
    which = torch.clamp(torch.bucketize(confidence, edges, right=False) - 1, 0, n_bins - 1)
    count = torch.bincount(which, minlength=n_bins).float()
    conf_sum = torch.bincount(which, weights=confidence.float(), minlength=n_bins)
    acc_sum = torch.bincount(which, weights=correct, minlength=n_bins)
    return {"edges": edges, "count": count, "confidence": conf_sum / count, "accuracy": acc_sum / count}


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """``ECE = sum_b |B_b|/N * |acc(B_b) - conf(B_b)|`` over ``n_bins`` equal-width bins of max-probability
    (``reliability_bins``; notebook 03). Works on ``probs``' device (CPU or CUDA); returns a Python float."""
    bins = reliability_bins(probs, labels, n_bins)
    filled = bins["count"] > 0
    gaps = (bins["accuracy"][filled] - bins["confidence"][filled]).abs()
    return float((bins["count"][filled] / bins["count"].sum() * gaps).sum())


def macro_f1(logits: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None) -> float:
    """Macro-averaged F1 (notebook 04): ``mean_c 2 P_c R_c / (P_c + R_c)`` with precision P_c and recall R_c
    of class c (a class never predicted and never present is skipped; one with no true positives scores 0)."""
    n_classes = check_classification(logits, labels, n_classes)
    pred, labels = logits.argmax(-1), labels.to(logits.device)
    scores = []
    for c in range(n_classes):
        tp = int(((pred == c) & (labels == c)).sum())
        n_pred, n_true = int((pred == c).sum()), int((labels == c).sum())
        if n_pred == 0 and n_true == 0:
            continue
        scores.append(2 * tp / (n_pred + n_true))
    return sum(scores) / len(scores)  # never empty: N >= 1 puts a class in
