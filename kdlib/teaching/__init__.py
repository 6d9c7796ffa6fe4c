"""What turns the library into a course: exercise checks, the exercise notebooks built from solutions, the
README's results table, plots and widgets. Every notebook.

Modules: ``checks`` (``check(name, fn)`` against references), ``verdicts`` (what ``check`` says about one
call of a learner's function), ``exercises`` (``python -m kdlib.teaching.exercises`` builds notebooks/ from
solutions/), ``report`` (``python -m kdlib.teaching.report``), ``claims`` (every number in a notebook's prose
is supported by its results), ``plots``, ``widgets`` (the T and alpha sliders of 01).
"""
from kdlib.teaching.checks import (check, softmax_with_temperature, best_bias_shift, topk_with_tail, hidden_state_mse,
                                   attention_mse)
from kdlib.teaching.plots import probability_bars, training_curves, sweep, reliability_diagram
from kdlib.teaching.widgets import draw_losses, temperature_explorer

__all__ = ["check", "softmax_with_temperature", "best_bias_shift", "topk_with_tail", "hidden_state_mse",
           "attention_mse", "probability_bars", "training_curves", "sweep", "reliability_diagram", "draw_losses",
           "temperature_explorer"]
