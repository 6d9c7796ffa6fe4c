"""Notebook 00's playbook: drills in the seven steps' order with every number from a results file, the question bank
generated from the notebooks, the checklists' rules, and spot-the-bug checks that catch their own snippets."""
import json
import shutil

import pytest
import torch
from hypothesis import given, settings, strategies as st

from kdlib.teaching import checklists as cl
from kdlib.teaching.checks import _reference, check
from kdlib.teaching.drill_bank import DRILLS
from kdlib.teaching.drills import Drill, in_order, numbers_outside_facts, render_answer, rubric, score
from kdlib.teaching.evidence import FACTS, NOT_MEASURED, fact, load_results, lookup, render
from kdlib.teaching.playbook import STEP_KEYS, STEPS, step_evidence
from kdlib.teaching.questions import BANK, SOLUTIONS, collect, hide_answers, load_bank, stale, write
from kdlib.teaching.spot_bugs import SPOT_BUGS, buggy

REFERENCE = load_results()


# ---- drills and the seven steps
def test_there_are_enough_drills_and_each_covers_the_seven_steps_in_order():
    assert len(DRILLS) >= 8 and len({d.name for d in DRILLS}) == len(DRILLS)
    assert STEP_KEYS == ("target", "teacher", "student", "signal", "data", "evaluation", "serving")
    for drill in DRILLS:
        assert in_order(drill), f"{drill.name}: steps {drill.steps()}"
        assert all(text.strip() for _, text in drill.answer), drill.name
        assert drill.traps and len(drill.follow_ups) >= 2, drill.name


def test_a_drill_with_steps_missing_or_out_of_order_is_caught():
    good = DRILLS[0]
    swapped = Drill("x", "x", "x", (good.answer[1], good.answer[0], *good.answer[2:]), good.traps, good.follow_ups)
    short = Drill("y", "y", "y", good.answer[:-1], good.traps, good.follow_ups)
    assert not in_order(swapped) and not in_order(short)


@pytest.mark.parametrize("drill", DRILLS, ids=lambda d: d.name)
def test_every_number_a_model_answer_quotes_comes_from_a_results_file(drill):
    assert numbers_outside_facts(drill) == [], "a number typed by hand: cite a fact instead"
    assert drill.facts(), "a model answer backs itself with at least one measured number"
    for name in drill.facts():
        assert name in FACTS, f"unknown fact {name}"
        assert not fact(name, REFERENCE).startswith("[not measured"), f"{name} has no reference result"
    rendered = " ".join(text for _, text in render_answer(drill, REFERENCE))
    assert "{" not in rendered and "not measured" not in rendered


def test_a_typed_number_is_reported():
    good = DRILLS[0]
    typed = Drill("t", "t", "Traffic is 500 a day.", ((good.answer[0][0], "Serve 500 a day, KD gained 3.2 points "
                                                     "({bert_retained}, 04)"),) + good.answer[1:], (), ())
    assert numbers_outside_facts(typed) == ["3.2"]


def test_the_steps_evidence_reads_every_number_from_the_reference_results():
    evidence = step_evidence(REFERENCE)
    assert set(evidence) == set(STEP_KEYS) and all(step.notebooks for step in STEPS)
    assert not any("not measured" in text or "{" in text for text in evidence.values())


def test_a_fact_reads_its_file_and_says_so_when_it_is_missing(tmp_path):
    assert lookup({"a": [{"b c": 2.5}]}, "a[0].b c") == 2.5
    assert fact("mnist_3pct_kd", REFERENCE) == format(REFERENCE["02"]["small_data_kd_student_test_errors"], ",.0f")
    without = {k: v for k, v in REFERENCE.items() if k != "02"}
    assert fact("mnist_3pct_kd", without).startswith(NOT_MEASURED.split("{")[0])
    assert "not measured" in render("KD made {mnist_3pct_kd} errors", {})
    with pytest.raises(KeyError, match="no fact named"):
        fact("nope", REFERENCE)
    assert load_results(reference=tmp_path) == {}


def test_the_rubric_tallies_a_score_and_refuses_unknown_lines():
    drill = DRILLS[0]
    lines = rubric(drill)
    assert len(lines) == len(STEPS) + len(drill.traps)
    assert score(drill, []) == (0, len(lines))
    assert score(drill, [0, 1, lines[2], 1]) == (3, len(lines))
    with pytest.raises(ValueError, match="not a line"):
        score(drill, ["something else"])


# ---- the question bank
def test_the_question_bank_holds_every_interview_question_of_every_notebook():
    bank = load_bank()
    assert bank == collect(), "run python -m kdlib.teaching.exercises"
    assert stale() == []
    notebooks = {q["notebook"] for q in bank}
    expected = {p.stem for p in SOLUTIONS.glob("[0-9]*.ipynb") if not p.stem.startswith("00")}
    assert notebooks == expected
    assert all(q["question"] and q["answer"] and "<details>" not in q["answer"] for q in bank)


def _copy_notebook(tmp_path, name="02_mnist_hinton.ipynb"):
    folder = tmp_path / "solutions"
    folder.mkdir()
    shutil.copy(SOLUTIONS / name, folder / name)
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(collect(folder)))
    return folder / name, folder, bank


def test_a_question_added_without_regenerating_the_bank_is_reported(tmp_path):
    path, folder, bank = _copy_notebook(tmp_path)
    assert stale(folder, bank) == []
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith("## Interview questions"))
    cell["source"] = "".join(cell["source"]) + "\n\n**Q7. Why not?**\nBecause."
    path.write_text(json.dumps(nb))
    problems = stale(folder, bank)
    assert any("out of date" in p for p in problems) and any("plain view" in p for p in problems)
    write(folder, bank)  # hides the new answer and regenerates the bank
    assert stale(folder, bank) == []
    assert json.loads(bank.read_text())[-1] == {"id": "02-Q7", "notebook": "02_mnist_hinton", "question": "Why not?",
                                                "answer": "Because."}


def test_hiding_answers_keeps_every_question_and_answer_and_is_idempotent():
    source = ("## Interview questions\n\n**Q1. First?**\nOne.\n\n**Q: Second, over\ntwo lines?**\nA: Two,\n"
              "still two.\n")
    hidden = hide_answers(source)
    assert hide_answers(hidden) == hidden and hidden.count("<details>") == 2
    assert "**Q: Second, over\ntwo lines?**" in hidden and "A: Two" not in hidden and "still two." in hidden


def test_the_bank_file_is_the_one_the_notebook_reads():
    assert BANK.name == "question_bank.json" and BANK.is_file()


# ---- the checklists, against the survey's rules
def test_low_traffic_means_serve_the_teacher():
    rec = cl.fine_tune_or_distil(teacher_has_behaviour=True, human_labels=False, teacher_too_costly=True,
                                 requests_per_day=10, break_even_requests=20000, horizon_days=365)
    assert rec.verdict == cl.SERVE_TEACHER and "09" in rec.notebooks
    busy = cl.fine_tune_or_distil(teacher_has_behaviour=True, human_labels=False, teacher_too_costly=True,
                                  requests_per_day=1000, break_even_requests=20000)
    assert busy.verdict == cl.DISTIL


def test_behaviour_absent_from_the_teacher_with_human_labels_means_fine_tune():
    rec = cl.fine_tune_or_distil(teacher_has_behaviour=False, human_labels=True, teacher_too_costly=True)
    assert rec.verdict == cl.FINE_TUNE
    assert cl.fine_tune_or_distil(teacher_has_behaviour=False, human_labels=False,
                                  teacher_too_costly=True).verdict == cl.LABEL_FIRST


def test_a_good_costly_teacher_means_distil_and_gold_labels_mean_both():
    assert cl.fine_tune_or_distil(teacher_has_behaviour=True, human_labels=True,
                                  teacher_too_costly=True).verdict == cl.BOTH
    assert cl.fine_tune_or_distil(teacher_has_behaviour=True, human_labels=True,
                                  teacher_too_costly=False).verdict == cl.SERVE_TEACHER


def test_task_or_general_distillation():
    assert cl.task_or_general(many_tasks=False, in_domain_inputs=True, large_budget=False).verdict == cl.TASK
    assert cl.task_or_general(many_tasks=True, in_domain_inputs=True, large_budget=True).verdict == cl.GENERAL
    assert cl.task_or_general(many_tasks=True, in_domain_inputs=False,
                              large_budget=False).verdict == cl.DISTILLED_BASE
    assert cl.task_or_general(many_tasks=False, in_domain_inputs=False,
                              large_budget=True).verdict == cl.GENERAL_THEN_TASK


def test_only_teacher_agreement_as_evaluation_means_sceptical():
    assert cl.be_sceptical(teacher_only_evaluation=True).verdict == "sceptical"
    assert cl.be_sceptical(teacher_only_evaluation=False, within_noise=False).verdict == "no red flags"
    assert cl.works_well(teacher_better=True, labels_scarce=True, rich_signal=True,
                         capacity_ok=True).verdict == "likely to pay"
    assert cl.works_well(teacher_better=True).verdict == "doubtful"


def test_checklists_refuse_bad_answers():
    with pytest.raises(ValueError, match="unknown question"):
        cl.be_sceptical(teacher_agreement=True)
    with pytest.raises(ValueError, match="requests_per_day"):
        cl.fine_tune_or_distil(teacher_has_behaviour=True, human_labels=True, teacher_too_costly=True,
                               requests_per_day=-5, break_even_requests=10)


# ---- spot the bug
def test_there_are_enough_spot_the_bug_drills_each_with_its_public_thread():
    assert len(SPOT_BUGS) >= 6
    for bug in SPOT_BUGS.values():
        assert "github.com/" in bug.origin and bug.symptom and bug.answer, bug.name


@pytest.mark.parametrize("name", list(SPOT_BUGS))
def test_each_snippet_fails_its_check_and_the_reference_passes(name, capsys):
    reference = _reference(f"spot_{name}")
    shipped = buggy(name)
    assert check(f"spot_{name}", shipped) is reference, "the check must catch the shipped snippet"
    assert "[x]" in capsys.readouterr().out
    assert check(f"spot_{name}", reference) is reference
    assert "[v]" in capsys.readouterr().out


def test_the_cache_drill_shuffles_its_batches():
    from kdlib.teaching.spot_bugs import cache_cases
    cases = cache_cases()
    assert not torch.equal(cases[0][1], torch.arange(len(cases[0][1])))


# ---- the checklists' rules as properties over every combination of answers
_flags = st.booleans()


@settings(max_examples=200, deadline=None)
@given(_flags, _flags, _flags, st.floats(0, 1e6), st.floats(1, 1e9), st.floats(1, 3650))
def test_fine_tune_or_distil_follows_the_rules(has, labels, costly, per_day, needed, horizon):
    rec = cl.fine_tune_or_distil(teacher_has_behaviour=has, human_labels=labels, teacher_too_costly=costly,
                                 requests_per_day=per_day, break_even_requests=needed, horizon_days=horizon)
    assert rec.reasons
    if per_day * horizon < needed:
        assert rec.verdict == cl.SERVE_TEACHER  # too little traffic: whatever else holds
    elif not has:
        assert rec.verdict == (cl.FINE_TUNE if labels else cl.LABEL_FIRST)
    elif not costly:
        assert rec.verdict == cl.SERVE_TEACHER
    else:
        assert rec.verdict == (cl.BOTH if labels else cl.DISTIL)


@settings(max_examples=100, deadline=None)
@given(st.fixed_dictionaries({k: _flags for k in cl.SCEPTICAL}))
def test_any_red_flag_makes_a_sceptic_and_each_raised_flag_is_a_reason(answers):
    rec = cl.be_sceptical(**answers)
    assert (rec.verdict == "sceptical") == any(answers.values())
    assert len(rec.reasons) == sum(answers.values())


@settings(max_examples=100, deadline=None)
@given(st.fixed_dictionaries({k: _flags for k in cl.WORKS_WELL}))
def test_works_well_needs_four_conditions_and_lists_the_missing_ones(answers):
    rec = cl.works_well(**answers)
    assert (rec.verdict == "likely to pay") == (sum(answers.values()) >= 4)
    assert sum(r.startswith("missing:") for r in rec.reasons) == len(answers) - sum(answers.values())
