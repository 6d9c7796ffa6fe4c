"""Interactive sliders: temperature T and the hard/soft weight alpha (notebook 01), the break-even calculator
(notebook 09).

``temperature_explorer`` redraws, for the chosen T and alpha, the teacher's and the student's softened
distributions and the two terms of ``L = alpha * CE(y, p_S) + (1 - alpha) * T^2 * KL(p_T || p_S)``.
``break_even_explorer`` redraws the cumulative cost of serving with the teacher against distilling and serving
with the student (or a cascade), for the chosen traffic and prices.
Without a live kernel (a rendered notebook, a test run) they draw once at the default values.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from kdlib.core.costs import break_even_requests, cumulative_cost
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


def draw_break_even(labelling_seconds: float, training_seconds: float, teacher_seconds: float,
                    student_seconds: float, requests_per_day: float, price_per_hour: float = 1.0,
                    teacher_price_factor: float = 1.0, teacher_fraction: float = 0.0, days: int = 365,
                    ax=None) -> dict:
    """One frame of the break-even calculator (notebook 09), in currency units: compute costs ``price_per_hour``,
    and a second of the teacher ``teacher_price_factor`` times more (1: it runs on the same machine; more for a
    bigger GPU or a paid API). Distilling costs ``labelling_seconds`` of the teacher plus ``training_seconds`` of
    training, once; then a request costs ``student_seconds`` (measured per request of the deployed student or
    cascade) instead of ``teacher_seconds``, plus, for a cascade that sends ``teacher_fraction`` of its requests on,
    the teacher's price premium on those calls: ``(student_seconds + teacher_fraction * teacher_seconds *
    (teacher_price_factor - 1)) * price``. Draws both cumulative costs over
    ``days`` and marks the break-even day (``kdlib.core.costs.break_even_requests``). Returns
    ``{"break_even_requests", "break_even_days", "fixed_cost", "saving_per_request"}``."""
    price = price_per_hour / 3600
    teacher_cost = teacher_seconds * price * teacher_price_factor
    student_cost = (student_seconds + teacher_fraction * teacher_seconds * (teacher_price_factor - 1)) * price
    labelling, training = labelling_seconds * price * teacher_price_factor, training_seconds * price
    fixed = labelling + training
    requests = break_even_requests(labelling, training, teacher_cost, student_cost)
    day_grid = [days * i / 100 for i in range(101)]
    served = [d * requests_per_day for d in day_grid]
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    ax.plot(day_grid, cumulative_cost(served, 0.0, teacher_cost), label="teacher serves everything")
    ax.plot(day_grid, cumulative_cost(served, fixed, student_cost),
            label="distil once, then serve the distilled model")
    out = {"break_even_requests": requests, "break_even_days": requests / requests_per_day, "fixed_cost": fixed,
           "saving_per_request": teacher_cost - student_cost}
    if out["break_even_days"] <= days:
        ax.axvline(out["break_even_days"], ls="--", color="gray")
    verdict = (f"pays off after {requests:,.0f} requests ({out['break_even_days']:,.1f} days)"
               if requests < float("inf") else "never pays off: the student saves nothing per request")
    ax.set_title(f"{requests_per_day:,.0f} requests/day: {verdict}", fontsize=10)
    ax.set_xlabel("days of traffic")
    ax.set_ylabel("cumulative cost")
    ax.legend(fontsize=8)
    plt.show()
    return out


def break_even_explorer(labelling_seconds: float, training_seconds: float, teacher_seconds: float,
                        student_seconds: float, teacher_fraction: float = 0.0):
    """Sliders for traffic (requests per day), the price of a compute-hour and the teacher's price factor that
    redraw ``draw_break_even``; returns the ipywidgets ``interactive`` object."""
    import ipywidgets as widgets

    return widgets.interact(
        lambda requests_per_day, price_per_hour, teacher_price_factor: draw_break_even(
            labelling_seconds, training_seconds, teacher_seconds, student_seconds, requests_per_day, price_per_hour,
            teacher_price_factor, teacher_fraction),
        requests_per_day=widgets.FloatLogSlider(value=1e4, base=10, min=1, max=8, step=0.25,
                                                description="requests/day"),
        price_per_hour=widgets.FloatLogSlider(value=1.0, base=10, min=-2, max=2, step=0.25, description="price/hour"),
        teacher_price_factor=widgets.FloatLogSlider(value=1.0, base=10, min=0, max=3, step=0.25,
                                                    description="teacher x"))
