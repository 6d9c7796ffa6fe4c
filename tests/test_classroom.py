"""The nbgrader course end to end (kdlib.teaching.classroom): build it, release notebook 01, autograde a correct, a
blank, a planted-wrong (T^2 missing) and a reference-importing submission, write feedback and export the grades;
and scan every release for solutions and hidden tests. About a minute and a half on 2 CPU cores."""
import copy
import csv
import json

import nbformat
import pytest

from kdlib.teaching import classroom
from kdlib.teaching.exercises import BEGIN, SOLUTIONS

pytest.importorskip("nbgrader", reason="the classroom extra: pip install -e '.[classroom]' (make test installs it)")
from nbgrader.api import Gradebook  # noqa: E402

FIRST = "01_soft_targets_and_temperature"


def _solution_cells(source):
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def _submit(course, student, nb):
    folder = course / "submitted" / student / FIRST
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{FIRST}.ipynb")


def _edit(nb, old, new):
    hits = [c for c in nb.cells if old in c.source]
    assert len(hits) == 1, old
    hits[0].source = hits[0].source.replace(old, new)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    classroom.build(course, [FIRST])
    (released,) = classroom.release(course, [FIRST])
    student = nbformat.read(released / f"{FIRST}.ipynb", as_version=4)
    answers = _solution_cells(nbformat.read(course / "source" / FIRST / f"{FIRST}.ipynb", as_version=4))
    correct = copy.deepcopy(student)
    for cell in correct.cells:
        cell.source = answers.get(cell.metadata.get("nbgrader", {}).get("grade_id"), cell.source)
        if cell.source.startswith("# PREDICT"):
            cell.source = classroom.PREDICTION.sub(lambda m: f"{m.group(1)} = 'it falls'", cell.source)
    planted = copy.deepcopy(correct)
    _edit(planted, "return T * T * kl", "return kl")
    importer = copy.deepcopy(correct)
    _edit(importer, "def softmax_with_temperature(logits, T):",
          "from kdlib.teaching.checks import softmax_with_temperature\n\n\ndef unused(logits, T):")
    for name, nb in [("correct", correct), ("blank", student), ("planted", planted), ("importer", importer)]:
        _submit(course, name, nb)
    for step in ("autograde", "generate_feedback"):
        classroom.nbgrader(course, step, FIRST)
    classroom.nbgrader(course, "export")
    return course


def _scores(course, student):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(FIRST, FIRST, student)
        return {g.name: (g.score, g.max_score) for g in nb.grades}


def _feedback(course, student):
    return (course / "feedback" / student / FIRST / f"{FIRST}.html").read_text()


def test_a_correct_submission_gets_full_marks_on_every_autograded_cell(graded):
    scores = _scores(graded, "correct")
    autograded = {k: v for k, v in scores.items() if not k.startswith("answer_")}
    assert len(autograded) >= 6 and all(score == top > 0 for score, top in autograded.values()), scores
    rows = {r["student_id"]: r for r in csv.DictReader((graded / "grades.csv").open())}
    manual = sum(top for k, (_, top) in scores.items() if k.startswith("answer_"))
    assert manual > 0 and any(k.startswith("predicted_") for k in autograded)  # 01 has both kinds of new work
    assert float(rows["correct"]["raw_score"]) == float(rows["correct"]["max_score"]) - manual > 0


def test_a_blank_submission_scores_zero_without_crashing(graded):
    scores = _scores(graded, "blank")
    assert scores and all(not score for score, _ in scores.values()), scores
    assert "not solved yet" in _feedback(graded, "blank")


def test_a_missing_t_squared_fails_the_hidden_test_and_the_feedback_names_it(graded):
    scores, right = _scores(graded, "planted"), _scores(graded, "correct")
    assert scores["kd_loss_hidden"][0] == 0 < right["kd_loss_hidden"][0]
    assert scores["softmax_with_temperature_hidden"][0] == right["softmax_with_temperature_hidden"][0] > 0
    assert "looks like T^2 missing" in _feedback(graded, "planted")


def test_importing_the_reference_is_flagged(graded):
    scores = _scores(graded, "importer")
    assert scores["softmax_with_temperature_examples"][0] == scores["softmax_with_temperature_hidden"][0] == 0
    assert scores["kd_loss_hidden"][0] > 0
    assert "reference itself" in _feedback(graded, "importer")


def test_no_release_holds_a_solution_or_a_hidden_test(tmp_path):
    written = classroom.build(tmp_path)
    assert len(written) == len(list(SOLUTIONS.glob("*.ipynb")))
    releases = classroom.release(tmp_path, [p.parent.name for p in written], db=False)  # raises on a leak
    for folder, source in zip(releases, written):
        text = (folder / source.name).read_text()
        assert "BEGIN HIDDEN TESTS" not in text and BEGIN not in text and "grading.hidden(" not in text
        cells = json.loads(source.read_text())["cells"]
        grade_cells = [c for c in cells if c["metadata"].get("nbgrader", {}).get("grade")]
        assert grade_cells, source.name
        assert "YOUR ANSWER HERE" in text or "# PREDICT" in text, f"{source.name}: no prediction or written answer"
    # the scan finds a leak: the instructor's version handed out as it is
    assert classroom.leaks(written[0], written[0])


def test_the_course_refuses_what_it_cannot_grade(tmp_path):
    with pytest.raises(ValueError, match="no solution notebook named 99_x"):
        classroom.build(tmp_path, ["99_x"])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"),
                                         nbformat.v4.new_code_cell(f"x = 1\n{BEGIN}\ny = 2\n### END SOLUTION")])
    nbformat.write(nb, tmp_path / "99_x.ipynb")
    with pytest.raises(ValueError, match="without `fn = check"):
        classroom.source_notebook(tmp_path / "99_x.ipynb")
