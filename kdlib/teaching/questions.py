"""The question bank: every interview question of notebooks 01-11, collected from the notebooks themselves (notebook
00's mock interview reads it).

A notebook's ``## Interview questions`` cell holds questions in bold (``**Q3. ...**`` or ``**Q: ...**``), each
followed by its answer inside a collapsed block, so the answer stays hidden until asked, in JupyterLab and in static
HTML alike::

    **Q2. Why multiply the soft loss by T^2?**

    <details><summary>Answer</summary>

    The gradient of the KL ...

    </details>

``python -m kdlib.teaching.exercises`` calls ``write``: it folds any answer still in plain view into such a block (in
``solutions/``, before the exercise notebooks are made from them) and writes ``question_bank.json`` next to this
module; ``stale`` lists what is out of date (``tests/test_playbook.py`` fails on it, so a question added to a notebook
without regenerating the bank fails the tests).
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

from kdlib.core.paths import REPO_ROOT

SOLUTIONS = REPO_ROOT / "solutions"
BANK = Path(__file__).with_name("question_bank.json")
HEADING = "## Interview questions"
QUESTION = re.compile(r"^\*\*(Q(?:\d+\.|:))\s*(.+?)\*\*[ \t]*$", re.M | re.S)
OPEN, CLOSE = "<details><summary>Answer</summary>", "</details>"


def _blocks(source: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The cell's text before its first question, and (bold question as written, question, answer) for each."""
    matches = list(QUESTION.finditer(source))
    head = source[: matches[0].start()] if matches else source
    blocks = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(source)
        blocks.append((match.group(0), " ".join(match.group(2).split()), source[match.end():end].strip()))
    return head, blocks


def _plain_answer(answer: str) -> str:
    """The answer without its collapsed-block wrapper and its ``A:`` prefix."""
    text = answer.strip()
    if text.startswith(OPEN) and text.endswith(CLOSE):
        text = text[len(OPEN):-len(CLOSE)].strip()
    return re.sub(r"^A:\s*", "", text)


def hide_answers(source: str) -> str:
    """The interview cell with every answer folded into a collapsed block (unchanged when they already are)."""
    head, blocks = _blocks(source)
    parts = [head.rstrip() + "\n"] if head.strip() else []
    for original, _, answer in blocks:
        parts.append(f"{original}\n\n{OPEN}\n\n{_plain_answer(answer)}\n\n{CLOSE}\n")
    return "\n".join(parts).rstrip("\n")


def _is_interview(cell: dict) -> bool:
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return cell["cell_type"] == "markdown" and (source.startswith(HEADING) or f"\n{HEADING}\n" in source)


def interview_sources(notebook: Path) -> list[str]:
    """The sources of a notebook's interview-question cells (a cell holding the ``## Interview questions``
    heading; its questions run to the end of the cell)."""
    nb = json.loads(notebook.read_text())
    return ["".join(cell["source"]) for cell in nb["cells"] if _is_interview(cell)]


def collect(folder: Path = SOLUTIONS) -> list[dict]:
    """Every interview question of every notebook in ``folder``: ``{"id", "notebook", "question", "answer"}``."""
    bank = []
    for path in sorted(folder.glob("[0-9]*.ipynb")):
        blocks = [block for source in interview_sources(path) for block in _blocks(source)[1]]
        for number, (_, question, answer) in enumerate(blocks, 1):
            bank.append({"id": f"{path.stem.split('_')[0]}-Q{number}", "notebook": path.stem, "question": question,
                         "answer": _plain_answer(answer)})
    return bank


def load_bank(path: Path = BANK) -> list[dict]:
    """The committed question bank; a clear error when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"cannot read the question bank {path}: {err}; regenerate it with "
                                "python -m kdlib.teaching.exercises") from None


def visible_answers(folder: Path = SOLUTIONS) -> list[str]:
    """``notebook: question`` for each answer still in plain view."""
    out = []
    for path in sorted(folder.glob("[0-9]*.ipynb")):
        for source in interview_sources(path):
            if hide_answers(source) != source:
                out.append(f"{path.name}: an interview cell has answers in plain view")
    return out


def stale(folder: Path = SOLUTIONS, bank: Path = BANK) -> list[str]:
    """What is out of date: answers in plain view, or a bank that differs from the notebooks' questions."""
    problems = visible_answers(folder)
    try:
        current = load_bank(bank)
    except FileNotFoundError as err:
        return problems + [str(err)]
    fresh = collect(folder)
    if current != fresh:
        missing = [q["id"] for q in fresh if q not in current]
        problems.append(f"{bank.name} is out of date ({len(fresh)} questions in the notebooks, {len(current)} in "
                        f"the bank; differing: {', '.join(missing[:8]) or 'removed questions'})")
    return problems


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def write(folder: Path = SOLUTIONS, bank: Path = BANK) -> list[str]:
    """Hide every visible answer in ``folder``'s notebooks (their JSON otherwise untouched) and write the bank;
    returns what was written."""
    written = []
    for path in sorted(folder.glob("[0-9]*.ipynb")):
        text = path.read_text()
        nb = json.loads(text)
        for cell in nb["cells"]:
            if _is_interview(cell):
                cell["source"] = hide_answers("".join(cell["source"])).splitlines(keepends=True)
        new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if new != text:
            path.write_text(new)
            written.append(_shown(path))
    bank.write_text(json.dumps(collect(folder), indent=1, ensure_ascii=False) + "\n")
    return written + [_shown(bank)]


def mock_questions(bank: list[dict], n: int | None = None, seed: int | None = None,
                   notebooks: tuple[str, ...] = ()) -> list[dict]:
    """``n`` questions (all by default) in a shuffled order (``seed`` for a repeatable one), optionally only from
    notebooks whose name starts with one of ``notebooks`` (e.g. ``("05", "06")``)."""
    pool = [q for q in bank if not notebooks or q["notebook"].startswith(tuple(notebooks))]
    if not pool:
        raise ValueError(f"no questions from notebooks {notebooks}; the bank has "
                         f"{sorted({q['notebook'][:3].rstrip('_') for q in bank})}")
    random.Random(seed).shuffle(pool)
    return pool[:n] if n else pool
