"""Build the exercise notebooks in ``notebooks/`` from the complete ones in ``solutions/``.

``solutions/`` is the source. In its code cells, everything between nbgrader's markers::

    ### BEGIN SOLUTION
    ...
    ### END SOLUTION

is replaced by ``raise NotImplementedError()`` at the same indentation, and all outputs are cleared. In markdown
cells (written answers: a model answer and its rubric between the same markers) the block becomes
``YOUR ANSWER HERE``, as in an nbgrader release.
``python -m kdlib.teaching.exercises`` rewrites ``notebooks/``, after folding every interview answer into a collapsed
block and regenerating the question bank (``kdlib.teaching.questions``); ``--check`` lists what is out of date
(``tests/test_notebooks.py`` and ``tests/test_playbook.py`` fail on it). Never edit ``notebooks/`` by hand.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from kdlib.core.paths import REPO_ROOT
from kdlib.teaching import questions

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB, TEXT_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()"), ("YOUR ANSWER HERE",)
SOLUTIONS, EXERCISES = REPO_ROOT / "solutions", REPO_ROOT / "notebooks"


def strip_solutions(source: str, stub: tuple[str, ...] = CODE_STUB) -> str:
    """Replace each marked solution block with ``stub`` (one item a line); raise ValueError on unbalanced
    markers."""
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out += [f"{indent}{line}" for line in stub]
        elif marker == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def exercise_text(solution: Path) -> str:
    """The exercise notebook generated from one solution notebook, as text."""
    nb = nbformat.read(solution, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" and BEGIN not in cell.source:
            continue  # prose is copied as it is
        try:
            cell.source = strip_solutions(cell.source, CODE_STUB if cell.cell_type == "code" else TEXT_STUB)
        except ValueError as err:
            raise ValueError(f"{solution.name}: {err}") from None
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nbformat.writes(nb) + "\n"


def stale(src: Path = SOLUTIONS, dst: Path = EXERCISES) -> list[str]:
    """Names of exercise notebooks that are missing, out of date, or have no solution source."""
    problems = [p.name for p in sorted(src.glob("*.ipynb"))
                if not (dst / p.name).is_file() or (dst / p.name).read_text() != exercise_text(p)]
    problems += [f"{p.name} (no source in solutions/)" for p in sorted(dst.glob("*.ipynb"))
                 if not (src / p.name).is_file()]
    return problems


def build(src: Path = SOLUTIONS, dst: Path = EXERCISES) -> list[Path]:
    """Write every exercise notebook; return the paths written."""
    dst.mkdir(exist_ok=True)
    written = []
    for path in sorted(src.glob("*.ipynb")):
        target = dst / path.name
        target.write_text(exercise_text(path))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only report out-of-date exercise notebooks, visible interview answers or question bank")
    args = parser.parse_args(argv)
    if args.check:
        problems = [f"notebooks/{name}" for name in stale()] + questions.stale()
        for problem in problems:
            print(f"out of date: {problem}  (run: python -m kdlib.teaching.exercises)")
        return 1 if problems else 0
    written = questions.write()  # first: it folds interview answers in solutions/, which the exercises copy
    for path in written + [str(p.relative_to(REPO_ROOT)) for p in build()]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
