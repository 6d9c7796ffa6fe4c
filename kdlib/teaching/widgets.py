"""Interactive sliders for notebook 01: temperature T and the hard/soft weight alpha.

``temperature_explorer`` redraws, for the chosen T and alpha, the teacher's and the student's softened
distributions and the two terms of ``L = alpha * CE(y, p_S) + (1 - alpha) * T^2 * KL(p_T || p_S)``.
Without a live kernel (a rendered notebook, a test run) it draws once at the default values.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from kdlib.losses.logits import kd_loss
from kdlib.teaching.plots import probability_bars


def draw_losses(teacher_logits: torch.Tensor, student_logits: torch.Tensor, label: int, class_names,
                T: float = 4.0, alpha: float = 0.5):
    """One static frame of the explorer: distributions at T (left) and the weighted loss terms (right)."""
    t, s = teacher_logits.reshape(1, -1), student_logits.reshape(1, -1)
    hard = F.cross_entropy(s, torch.tensor([label]))
    soft = kd_loss(s, t, T)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    probability_bars({f"teacher, T={T:g}": torch.softmax(t[0] / T, -1),
                      f"student, T={T:g}": torch.softmax(s[0] / T, -1)}, class_names, ax=left,
                     title=f"true class: {class_names[label]}")
    terms = {"alpha * CE": alpha * float(hard), "(1-alpha) * T^2 * KL": (1 - alpha) * float(soft)}
    right.bar(list(terms), list(terms.values()), color=["tab:gray", "tab:orange"])
    right.set_title(f"loss = {sum(terms.values()):.3f}  (alpha={alpha:g})")
    fig.tight_layout()
    plt.show()
    return terms


def temperature_explorer(teacher_logits: torch.Tensor, student_logits: torch.Tensor, label: int, class_names):
    """T and alpha sliders that redraw ``draw_losses``; returns the ipywidgets ``interactive`` object."""
    import ipywidgets as widgets

    return widgets.interact(
        lambda T, alpha: draw_losses(teacher_logits, student_logits, label, class_names, T, alpha),
        T=widgets.FloatLogSlider(value=4.0, base=10, min=-0.5, max=1.5, step=0.05, description="T"),
        alpha=widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="alpha"))
