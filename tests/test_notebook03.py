"""Notebook 03's structure: goals, profile line, both exercises with checks, interview questions, results,
no committed outputs, and an exercise copy in notebooks/ generated from solutions/."""
import nbformat

from kdlib.teaching.exercises import EXERCISES, SOLUTIONS, exercise_text

NAME = "03_conv_features_calibration.ipynb"


def test_notebook03_structure_and_generated_exercises():
    nb = nbformat.read(SOLUTIONS / NAME, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells)
    for needle in ("Learning goals", "get_profile(", 'Run("03_conv_features_calibration"', "prepare_teacher(",
                   'check("hint_loss", hint_loss)', 'check("expected_calibration_error", expected_calibration_error)',
                   "fit_temperature(", "Interview questions", "run.write(metrics)", "profile.assert_claims"):
        assert needle in text, needle
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")  # two exercises, one written answer
    assert code.count("### BEGIN SOLUTION") == 2 == code.count("### END SOLUTION")
    assert text.count("### BEGIN SOLUTION") == 3 == text.count("### END SOLUTION")
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert (EXERCISES / NAME).read_text() == exercise_text(SOLUTIONS / NAME), \
        "run: python -m kdlib.teaching.exercises"
