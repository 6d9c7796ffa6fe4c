"""The interview drills of notebook 00: a scenario, a model answer in the seven steps' order with the numbers this
kit measured, the follow-ups an interviewer would ask, and a self-scoring rubric.

``Drill.answer`` is a tuple of ``(step key, text)`` in the order of ``kdlib.teaching.playbook.STEPS``; its text
quotes numbers only through ``{fact}`` placeholders (``kdlib.teaching.evidence``), so ``render_answer`` reads them
from results files; a number a model answer may state without a placeholder is a given of the prompt (its traffic,
its budget) or a notebook's number, and ``numbers_outside_facts`` lists any other (``tests/test_playbook.py`` wants
none). ``rubric(drill)`` is the seven steps plus the drill's own traps; ``score`` tallies what a learner ticked.
The scenarios themselves live in ``kdlib.teaching.drill_bank``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kdlib.teaching.evidence import placeholders, render
from kdlib.teaching.playbook import STEP_KEYS, STEPS

# Tokens with digits that are names, not measurements: notebook numbers, percentiles, bit-widths, T^2, model sizes.
NAMES = re.compile(r"[(,] ?(?:0\d|1[01]|05b)\)|notebook (?:0\d|1[01]|05b)\b|\bp(?:50|95|99)\b|\bint[48]\b|T\^2|\b\d+B\b")
NUMBER = re.compile(r"\d[\d,.]*")


@dataclass(frozen=True)
class Drill:
    """A scenario: ``prompt`` (the interviewer's question, with its givens), ``answer`` ((step key, text) in the
    seven steps' order), ``traps`` (what a weak answer does here; the rubric's extra lines), ``follow_ups``."""

    name: str
    title: str
    prompt: str
    answer: tuple[tuple[str, str], ...]
    traps: tuple[str, ...]
    follow_ups: tuple[str, ...]

    def steps(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.answer)

    def facts(self) -> list[str]:
        return [name for _, text in self.answer for name in placeholders(text)]


def steps_covered(drill: Drill) -> list[str]:
    """The steps the model answer covers, in its order (all seven, in ``STEP_KEYS`` order, for a sound drill)."""
    return [key for key in drill.steps() if key in STEP_KEYS]


def in_order(drill: Drill) -> bool:
    """True when the answer covers every step once, in the playbook's order."""
    return drill.steps() == STEP_KEYS


def numbers_outside_facts(drill: Drill) -> list[str]:
    """Numbers the model answer states outside ``{fact}`` placeholders that are neither names (notebook numbers,
    p99, int8, T^2, 7B) nor givens of the prompt: each would be a number typed by hand."""
    givens = set(NUMBER.findall(NAMES.sub(" ", drill.prompt)))
    found = []
    for _, text in drill.answer:
        bare = NAMES.sub(" ", re.sub(r"\{[a-z0-9_]+\}", " ", text))
        found += [n.rstrip(".,") for n in NUMBER.findall(bare) if n.rstrip(".,") not in givens]
    return found


def render_answer(drill: Drill, results: dict[str, dict]) -> list[tuple[str, str]]:
    """The model answer as (step title, text with its numbers read from ``results``)."""
    titles = {step.key: step.title for step in STEPS}
    return [(titles[key], render(text, results)) for key, text in drill.answer]


def rubric(drill: Drill) -> list[str]:
    """The self-scoring rubric: one line per step (said something specific about it) and one per trap avoided."""
    return ([f"{step.title}: {step.rubric}" for step in STEPS]
            + [f"avoided: {trap}" for trap in drill.traps])


def score(drill: Drill, ticked) -> tuple[int, int]:
    """``(points, out of)`` for the rubric lines in ``ticked`` (lines or their indices); unknown lines raise."""
    lines = rubric(drill)
    points = set()
    for item in ticked:
        index = item if isinstance(item, int) else lines.index(item) if item in lines else -1
        if not 0 <= index < len(lines):
            raise ValueError(f"{item!r} is not a line of {drill.name}'s rubric ({len(lines)} lines)")
        points.add(index)
    return len(points), len(lines)


def drill_markdown(drill: Drill, results: dict[str, dict]) -> str:
    """The model answer, follow-ups and rubric as markdown (what static HTML shows inside a collapsed block)."""
    lines = [f"**Model answer: {drill.title}**", ""]
    lines += [f"{i}. **{title}.** {text}" for i, (title, text) in enumerate(render_answer(drill, results), 1)]
    lines += ["", "**Follow-ups an interviewer would ask:**", ""] + [f"- {q}" for q in drill.follow_ups]
    lines += ["", "**Score yourself** (one point a line):", ""] + [f"- [ ] {line}" for line in rubric(drill)]
    return "\n".join(lines)
