"""What notebook 00 shows: drills with collapsed model answers and a rubric that tallies a score, spot-the-bug
snippets with their measured symptom, the checklists as a form, and the mock interview.

Every view has a static part (markdown with ``<details>`` blocks: readable, answers collapsed, in JupyterLab and in
the HTML of ``make run``) and, where ipywidgets is installed, an interactive part (checkboxes that tally a score;
"next question" and "show answer" buttons). Widgets need a live kernel, so the static part carries the content.
"""
from __future__ import annotations

from IPython.display import Markdown, display

from kdlib.teaching.checklists import SCEPTICAL, WORKS_WELL, be_sceptical, works_well
from kdlib.teaching.drill_bank import DRILLS
from kdlib.teaching.drills import Drill, drill_markdown, rubric, score
from kdlib.teaching.spot_bugs import SPOT_BUGS, symptom_numbers

BY_NAME = {drill.name: drill for drill in DRILLS}


def _widgets():
    try:
        import ipywidgets
    except ImportError:  # the static part still shows everything
        return None
    return ipywidgets


def collapsed(summary: str, body: str) -> str:
    """Markdown for a block that opens on a click (answers hidden until asked)."""
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def drill(name: str) -> Drill:
    if name not in BY_NAME:
        raise KeyError(f"no drill named {name!r}; the drills are {', '.join(BY_NAME)}")
    return BY_NAME[name]


def show_prompt(name: str) -> None:
    """The interviewer's question of drill ``name``."""
    display(Markdown(f"> **Interviewer:** {drill(name).prompt}"))


def rubric_widget(item: Drill):
    """Checkboxes for the rubric lines and a running score (None without ipywidgets)."""
    widgets = _widgets()
    if widgets is None:
        return None
    boxes = [widgets.Checkbox(description=line, indent=False, layout=widgets.Layout(width="auto"))
             for line in rubric(item)]
    tally = widgets.Label()

    def update(_=None):
        points, total = score(item, [i for i, box in enumerate(boxes) if box.value])
        tally.value = f"score: {points} / {total}"

    for box in boxes:
        box.observe(update, names="value")
    update()
    return widgets.VBox([widgets.Label("Tick what your answer covered:"), *boxes, tally])


def show_drill(name: str, results: dict[str, dict]) -> None:
    """Drill ``name``'s model answer (numbers from ``results``), follow-ups and rubric, collapsed; then the
    rubric as checkboxes that tally a score."""
    item = drill(name)
    display(Markdown(collapsed("Model answer, follow-ups and rubric (open after writing yours)",
                               drill_markdown(item, results))))
    box = rubric_widget(item)
    if box is not None:
        display(box)


def show_bug(name: str) -> dict[str, float]:
    """The shipped snippet, where it shipped, and its symptom measured on one case; returns the measurement."""
    if name not in SPOT_BUGS:
        raise KeyError(f"no spot-the-bug drill named {name!r}; they are {', '.join(SPOT_BUGS)}")
    bug, measured = SPOT_BUGS[name], symptom_numbers(name)
    numbers = f"output {measured['shipped']:.4g} against {measured['fixed']:.4g} fixed"
    if "shipped_gradient" in measured:
        numbers += (f"; gradient on the student's logits {measured['shipped_gradient']:.4g} against "
                    f"{measured['fixed_gradient']:.4g}")
    display(Markdown(f"```python\n{bug.snippet}```\n\n**Where it shipped:** {bug.origin}\n\n**What you would see "
                     f"in training:** {bug.symptom}\n\n**Measured on one case just now:** {numbers}; "
                     f"{measured['agree']:.0%} of the output right.\n\nFix `{bug.function}` in the next cell."))
    return measured


def reveal_bug(name: str) -> None:
    """The bug's answer, collapsed."""
    bug = SPOT_BUGS[name]
    display(Markdown(collapsed("The bug and the fix", f"**{bug.title}.** {bug.answer}")))


def checklist_form(table: dict, decide, title: str):
    """A checkbox per question of a checklist (``WORKS_WELL`` or ``SCEPTICAL``) and the recommendation, redrawn on
    every click (None without ipywidgets)."""
    widgets = _widgets()
    if widgets is None:
        return None
    boxes = {key: widgets.Checkbox(description=text, indent=False, layout=widgets.Layout(width="auto"))
             for key, (text, _) in table.items()}
    out = widgets.Output()

    def update(_=None):
        out.clear_output()
        with out:
            print(decide(**{key: box.value for key, box in boxes.items()}))

    for box in boxes.values():
        box.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), *boxes.values(), out])


def checklist_forms():
    """The two checklists as forms, displayed (works-well and be-sceptical)."""
    for table, decide, title in ((WORKS_WELL, works_well, "Does distillation look likely to pay? Tick what holds."),
                                 (SCEPTICAL, be_sceptical, "Red flags in a distillation result: tick what you see.")):
        form = checklist_form(table, decide, title)
        if form is not None:
            display(form)


def mock_interview(questions: list[dict]):
    """One question at a time: "show answer" reveals the answer, "next question" moves on (None without
    ipywidgets; ``static_questions`` is the readable fallback)."""
    widgets = _widgets()
    if widgets is None:
        return None
    state = {"i": 0}
    question, answer = widgets.HTML(), widgets.Output()
    show, following = widgets.Button(description="show answer"), widgets.Button(description="next question")

    def draw(_=None):
        q = questions[state["i"] % len(questions)]
        question.value = f"<b>{state['i'] % len(questions) + 1} / {len(questions)} ({q['id']}):</b> {q['question']}"
        answer.clear_output()

    def reveal(_):
        with answer:
            print(questions[state["i"] % len(questions)]["answer"])

    def advance(_):
        state["i"] += 1
        draw()

    show.on_click(reveal)
    following.on_click(advance)
    draw()
    return widgets.VBox([question, widgets.HBox([show, following]), answer])


def static_questions(questions: list[dict]) -> str:
    """The questions as markdown, each answer collapsed."""
    return "\n\n".join(f"**{q['id']}.** {q['question']}\n\n{collapsed('Answer', q['answer'])}" for q in questions)
