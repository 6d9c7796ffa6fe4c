"""What turns the library into a course: exercise checks, the exercise notebooks built from solutions, the
README's results table, plots and widgets. Every notebook.

Modules: ``checks`` (``check(name, fn)`` against references), ``cases`` (exercise cases of 06-11), ``verdicts``
(what ``check`` says about one call of a learner's function), ``exercises`` (``python -m kdlib.teaching.exercises``
builds notebooks/ from solutions/), ``report`` (``python -m kdlib.teaching.report``), ``claims`` (every number in a
notebook's prose is supported by its results), ``plots`` (with the two scorecards of 09), ``widgets`` (the T and
alpha sliders of 01, the break-even calculator of 09), ``gpu_check`` (``python -m kdlib.teaching.gpu_check``: every
notebook in one profile, several at once, with a summary). For a graded course: ``bugs`` (each exercise's classic
mistakes as code, which the hidden tests name), ``grading`` (what the autograded cells call: visible and hidden
cases, a reference imported instead of written, predictions filled in), ``classroom``
(``python -m kdlib.teaching.classroom``: the nbgrader course made from solutions/). For interview practice (notebook
00): ``playbook`` (the seven steps), ``evidence`` (the measured numbers it quotes, read from results files),
``drills`` and ``drill_bank`` (scenarios with model answers and rubrics), ``spot_bugs`` (snippets with shipped bugs),
``checklists`` (fine-tune or distil, task or general, works well, be sceptical), ``questions`` (the question bank,
made by ``python -m kdlib.teaching.exercises``) and ``interview`` (their views and widgets).
"""
from kdlib.teaching.checks import (check, softmax_with_temperature, best_bias_shift, topk_with_tail, hidden_state_mse,
                                   attention_mse)
from kdlib.teaching.plots import (probability_bars, training_curves, sweep, reliability_diagram, scorecard_plot,
                                 show_scorecard)
from kdlib.teaching.widgets import draw_losses, temperature_explorer, draw_break_even, break_even_explorer

__all__ = ["check", "softmax_with_temperature", "best_bias_shift", "topk_with_tail", "hidden_state_mse",
           "attention_mse", "probability_bars", "training_curves", "sweep", "reliability_diagram", "scorecard_plot",
           "show_scorecard", "draw_losses", "temperature_explorer", "draw_break_even", "break_even_explorer"]
