"""Notebook structure: all collected by nbval, committed clean, exercises generated from solutions."""
import json
import re

import nbformat
import pytest

from kdlib.teaching.exercises import BEGIN, END, EXERCISES, SOLUTIONS, stale, strip_solutions
from kdlib.core.paths import REPO_ROOT


def all_notebooks():
    return sorted([*SOLUTIONS.glob("*.ipynb"), *EXERCISES.glob("*.ipynb")])


def test_every_notebook_is_collected(request):
    folders = {SOLUTIONS.resolve(), EXERCISES.resolve()}
    if not folders <= set(request.config.kdlib_args):
        pytest.skip("this run did not include both notebook folders (the full `make test` does)")
    files = {p.resolve() for p in all_notebooks()}
    assert request.config.kdlib_collected_notebooks == files
    assert len(files) == 2 * len(list(SOLUTIONS.glob("*.ipynb"))) >= 4


def test_notebooks_are_committed_without_outputs():
    for path in all_notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name} has outputs"


def test_exercise_notebooks_are_up_to_date_and_hold_no_solution():
    assert stale() == [], "run: python -m kdlib.teaching.exercises"
    for path in EXERCISES.glob("*.ipynb"):
        text = path.read_text()
        assert BEGIN not in text and END not in text
    for path in SOLUTIONS.glob("*.ipynb"):
        assert BEGIN in path.read_text(), f"{path.name} has no exercise"


def test_strip_solutions_keeps_indentation_and_refuses_unbalanced_markers():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\nf = check('f', f)"
    assert strip_solutions(src) == ("def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
                                    "f = check('f', f)")
    with pytest.raises(ValueError, match="without"):
        strip_solutions("### END SOLUTION")
    with pytest.raises(ValueError, match="without"):
        strip_solutions("### BEGIN SOLUTION\nx = 1")


def test_each_notebook_has_goals_profile_exercises_interview_questions_and_results():
    for path in SOLUTIONS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(cell.source for cell in nb.cells)
        assert re.match(r"\d\d[a-z]?_", path.name), path.name  # 05b: 05's sequel
        assert "Learning goals" in nb.cells[0].source, path.name
        assert "get_profile(" in text and "check(" in text and "Interview questions" in text, path.name
        assert f'Run("{path.stem}"' in text, f"{path.name} must write results/{path.stem}.json"
        assert "torch.cuda" not in text, f"{path.name} branches on the hardware; use the profile"
    assert (REPO_ROOT / "notebooks").is_dir()
