"""Make an nbgrader course from ``solutions/``: ``python -m kdlib.teaching.classroom`` (``make classroom``).

The course folder (``build/classroom`` unless ``--dest``) gets ``nbgrader_config.py`` and one source assignment
per solution notebook, ``source/<notebook>/<notebook>.ipynb``, with nbgrader's cell metadata:

* the exercise cells (``### BEGIN SOLUTION`` blocks ending in ``fn = check("name", fn)``) are solution cells, each
  followed by two autograded cells: ``grading.examples`` (the visible cases, 1 point) and ``grading.hidden``
  inside ``### BEGIN HIDDEN TESTS`` (the hidden cases, which name the bug, 2 points);
* markdown answer cells (a model answer and rubric between the markers) are manually graded (2 points);
* predict-then-run cells (a code cell that starts with ``# PREDICT`` and sets ``name = None``) stay editable and
  are followed by a completion check (``grading.predicted``, 1 point);
* every other cell is locked, and a locked cell after the title turns course mode on (``KDLIB_COURSE=1``: no
  fallback to the reference), as the course's ``nbgrader_config.py`` does for ``autograde``.

``nbgrader generate_assignment``, ``autograde``, ``generate_feedback`` and ``export`` then work unchanged;
``--release`` also runs ``generate_assignment`` for each assignment and scans the releases (``leaks``): no
solution line, model answer or hidden test may reach a student. ``rubrics.md`` collects the model answers and
rubrics for the graders.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from kdlib.core.paths import REPO_ROOT
from kdlib.teaching.exercises import BEGIN, END, SOLUTIONS

COURSE_DIR = REPO_ROOT / "build" / "classroom"
POINTS = {"examples": 1, "hidden": 2, "answer": 2, "prediction": 1}
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CHECK_CALL = re.compile(r"^(\w+)\s*=\s*check\(\s*\"(\w+)\"\s*,\s*(\w+)\s*\)", re.MULTILINE)
PREDICTION = re.compile(r"^(\w+)\s*=\s*None\b", re.MULTILINE)
COURSE_CELL = """# Course mode (a locked cell): check() still says whether your code matches the reference, but no
# longer replaces a wrong or missing function with the reference, so the graded cells test the code you wrote.
import os

os.environ["KDLIB_COURSE"] = "1"
import kdlib.teaching.grading as grading"""

CONFIG = '''"""nbgrader configuration of the kdlib course (written by python -m kdlib.teaching.classroom; run nbgrader
in this folder). Grading runs the notebooks in course mode (no fallback to the reference), in the ci profile (the
graded cells do not depend on the profile: ci is the fastest), and writes their results files here."""
import os

here = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
os.environ["KDLIB_COURSE"] = "1"
os.environ.setdefault("KDLIB_PROFILE", "ci")
os.environ.setdefault("KDLIB_RESULTS_DIR", os.path.join(here, "results"))

c = get_config()  # noqa: F821 (nbgrader's config loader defines it)
c.CourseDirectory.course_id = "kdlib"
c.CourseDirectory.root = here
c.Execute.timeout = 900  # seconds per cell: the ci profile needs far less, a laptop run of 04-08 may not
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
'''


def _meta(grade_id: str, *, grade=False, solution=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _cell(kind: str, source: str, cell_id: str, meta: dict):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    cell.id, cell.metadata["nbgrader"] = cell_id, meta
    return cell


def _grade_cells(name: str, variable: str) -> list:
    return [_cell("code", f"# Autograded ({POINTS['examples']} point): {name} on the cases check() ran above.\n"
                          f"grading.examples(\"{name}\", {variable})", f"{name}-examples",
                  _meta(f"{name}_examples", grade=True, locked=True, points=POINTS["examples"])),
            _cell("code", f"# Autograded ({POINTS['hidden']} points): {name} on hidden cases, run when the notebook "
                          f"is graded.\n{HIDDEN_BEGIN}\ngrading.hidden(\"{name}\", {variable})\n{HIDDEN_END}",
                  f"{name}-hidden", _meta(f"{name}_hidden", grade=True, locked=True, points=POINTS["hidden"]))]


def source_notebook(solution: Path) -> nbformat.NotebookNode:
    """The nbgrader source (instructor's) version of one solution notebook."""
    nb = nbformat.read(solution, as_version=4)
    cells = [nb.cells[0], _cell("code", COURSE_CELL, "course-mode", _meta("course_mode", locked=True))]
    for cell in nb.cells[1:]:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.cell_type == "code" and BEGIN in cell.source:
            calls = CHECK_CALL.findall(cell.source)
            if not calls:
                raise ValueError(f"{solution.name}, cell {cell.id}: a solution block without `fn = check(\"name\", "
                                 "fn)`: the course cannot grade it")
            cell.metadata["nbgrader"] = _meta(f"code_{cell.id}", solution=True)
            cells.append(cell)
            for variable, name, _ in calls:
                cells += _grade_cells(name, variable)
        elif cell.cell_type == "markdown" and BEGIN in cell.source:
            cell.metadata["nbgrader"] = _meta(f"answer_{cell.id}", grade=True, solution=True,
                                              points=POINTS["answer"])
            cells.append(cell)
        elif cell.cell_type == "code" and cell.source.startswith("# PREDICT"):
            names = PREDICTION.findall(cell.source)
            if not names:
                raise ValueError(f"{solution.name}, cell {cell.id}: a # PREDICT cell sets no `name = None`")
            cells.append(cell)  # no nbgrader metadata: editable, and kept as the learner wrote it
            cells.append(_cell("code", f"# Autograded ({POINTS['prediction']} point, for completion): the "
                                       "prediction above is written.\ngrading.predicted("
                                       + ", ".join(f"{n}={n}" for n in names) + ")", f"predicted-{cell.id}",
                               _meta(f"predicted_{cell.id}", grade=True, locked=True, points=POINTS["prediction"])))
        else:
            cell.metadata["nbgrader"] = _meta(f"locked_{cell.id}", locked=True)
            cells.append(cell)
    nb.cells[0].metadata["nbgrader"] = _meta("locked_title", locked=True)
    nb.cells = cells
    return nb


def _blocks(text: str, begin: str = BEGIN, end: str = END) -> list[str]:
    return re.findall(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, flags=re.S)


def rubric(nb: nbformat.NotebookNode, title: str) -> str:
    """The model answers and rubrics of one source notebook, each under the question it answers, as markdown."""
    out, question = [f"## {title}\n"], ""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        blocks = _blocks(cell.source)
        if blocks:
            out.append(f"{question.strip()}\n\n" + "\n".join(b.strip() for b in blocks) + "\n")
        else:
            question = cell.source
    return "\n".join(out) if len(out) > 1 else ""


def build(dst: Path = COURSE_DIR, names: list[str] | None = None, src: Path = SOLUTIONS) -> list[Path]:
    """Write the course folder: config, one source assignment per solution notebook (those in ``names`` when
    given: notebook stems), rubrics.md. Returns the source notebooks written."""
    solutions = sorted(src.glob("*.ipynb"))
    unknown = set(names or []) - {p.stem for p in solutions}
    if unknown:
        raise ValueError(f"no solution notebook named {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(p.stem for p in solutions)}")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "nbgrader_config.py").write_text(CONFIG)
    written, rubrics = [], ["# Rubrics of the kdlib course (instructors only: do not hand out)\n"]
    for path in solutions:
        if names and path.stem not in names:
            continue
        nb = source_notebook(path)
        target = dst / "source" / path.stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
        rubrics.append(rubric(nb, path.stem))
    (dst / "rubrics.md").write_text("\n".join(r for r in rubrics if r))
    return written


def leaks(source: Path, released: Path) -> list[str]:
    """What of the instructor's version reaches the released notebook: markers, hidden-test calls, and lines of
    solution blocks (20 characters or more) that the notebook has nowhere outside a block. Empty when clean."""
    text = released.read_text()
    found = [m for m in (BEGIN, END, HIDDEN_BEGIN, HIDDEN_END, "grading.hidden(") if m in text]
    nb = nbformat.read(source, as_version=4)
    inside = "\n".join(b for c in nb.cells for b in _blocks(c.source) + _blocks(c.source, HIDDEN_BEGIN, HIDDEN_END))
    outside = "\n".join(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), "", c.source, flags=re.S)
                        for c in nb.cells)
    released_sources = "\n".join(c.source for c in nbformat.read(released, as_version=4).cells)
    for line in {line.strip() for line in inside.splitlines()}:
        if len(line) >= 20 and line not in outside and line in released_sources:
            found.append(line)
    return found


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader *args`` in the course folder with this Python, its scripts first on PATH (nbgrader calls
    ``alembic`` by name when it creates the gradebook), output captured."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, text=True,
                          capture_output=True)
    if check and done.returncode:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def release(course: Path, assignments: list[str], db: bool = True) -> list[Path]:
    """Run ``nbgrader generate_assignment`` in ``course`` on ``assignments`` (one call for all of them; with
    ``db=False`` the gradebook is left alone) and check each release for leaks; the release folders."""
    pattern = assignments[0] if len(assignments) == 1 else "*"
    nbgrader(course, "generate_assignment", pattern, "--force", *([] if db else ["--no-db"]))
    out = []
    for assignment in assignments:
        out.append(course / "release" / assignment)
        for notebook in (course / "source" / assignment).glob("*.ipynb"):
            found = leaks(notebook, out[-1] / notebook.name)
            if found:
                raise RuntimeError(f"release {assignment} leaks what students must not see: {found[:5]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=COURSE_DIR, help="the course folder (default build/classroom)")
    parser.add_argument("--only", nargs="*", help="notebook stems, e.g. 01_soft_targets_and_temperature")
    parser.add_argument("--release", action="store_true", help="also run nbgrader generate_assignment on each")
    args = parser.parse_args(argv)
    written = build(args.dest, args.only)
    for path in written:
        print(f"source assignment: {path}")
    if args.release:
        if args.only and len(args.only) > 1:
            for name in args.only:
                release(args.dest, [name])
        else:
            release(args.dest, [p.parent.name for p in written])
        print(f"released (no solution or hidden test in them: scanned): {args.dest / 'release'}")
    print(f"course folder: {args.dest} (nbgrader_config.py, rubrics.md); see the README's 'For instructors'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
