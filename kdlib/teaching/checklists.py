"""The decision checklists of notebook 00 as small functions: answer a few questions, get a recommendation with its
reasons and the notebooks that measured them. The rules are the survey's:

* **fine-tune, distil or both** (``fine_tune_or_distil``): too little traffic to earn back distilling's fixed cost
  -> serve the teacher (the break-even of notebook 09); a behaviour the teacher lacks, with human labels -> fine-tune
  on them (distilling copies the teacher's behaviour, 08); lacking it without labels -> collect labels first; a
  teacher with the behaviour that is too costly to serve -> distil, and with human labels too -> both (gold data
  fixes what the teacher gets wrong consistently, 08); a teacher cheap enough to serve -> serve it.
* **task or general distillation** (``task_or_general``): one task with in-domain inputs -> task distillation (04);
  a general small model for many tasks -> general distillation, or start from a generally distilled model when the
  budget is small; one task without in-domain inputs -> general then task, or teacher-generated inputs (05, 06).
* **works well when** (``works_well``) and **be sceptical when** (``be_sceptical``): the conditions the kit's
  results support, and the red flags (teacher-only evaluation, gains within seed noise, no no-teacher baseline...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

SERVE_TEACHER, FINE_TUNE, DISTIL, BOTH, LABEL_FIRST = (
    "serve the teacher", "fine-tune", "distil", "both: distil, with gold data mixed in", "collect labels first")
TASK, GENERAL, GENERAL_THEN_TASK, DISTILLED_BASE = (
    "task distillation", "general distillation", "general, then task distillation",
    "start from a generally distilled model, then task distillation")


@dataclass
class Recommendation:
    """``verdict`` with the ``reasons`` that led to it and the ``notebooks`` that measured them."""

    verdict: str
    reasons: list[str] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Recommendation: {self.verdict}"] + [f"  - {r}" for r in self.reasons]
        return "\n".join(lines + ([f"  (measured in notebooks {', '.join(self.notebooks)})"] if self.notebooks else []))


def _positive(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0 (or None when unknown), got {value!r}")
    return float(value)


def fine_tune_or_distil(*, teacher_has_behaviour: bool, human_labels: bool, teacher_too_costly: bool,
                        requests_per_day: float | None = None, break_even_requests: float | None = None,
                        horizon_days: float = 365) -> Recommendation:
    """Fine-tune, distil, both, or neither. ``break_even_requests`` is ``kdlib.core.costs.break_even_requests``
    (notebook 09's calculator); with ``requests_per_day`` it decides whether distilling pays within
    ``horizon_days``."""
    per_day, needed = _positive("requests_per_day", requests_per_day), _positive("break_even_requests",
                                                                                 break_even_requests)
    if per_day is not None and needed is not None and per_day * horizon_days < needed:
        days = "never" if per_day == 0 else f"after {needed / per_day:,.0f} days"
        return Recommendation(SERVE_TEACHER, [f"too little traffic: distilling pays {days}, beyond the "
                                              f"{horizon_days:,.0f}-day horizon"], ["09"])
    if not teacher_has_behaviour:
        if human_labels:
            return Recommendation(FINE_TUNE, ["the teacher lacks the behaviour you want, so a student would copy "
                                              "what it does instead", "human labels teach the behaviour directly"],
                                  ["08"])
        return Recommendation(LABEL_FIRST, ["the teacher lacks the behaviour and there are no labels to teach it: "
                                            "collect or write gold examples (then fine-tune the teacher or the "
                                            "student)"], ["08"])
    if not teacher_too_costly:
        return Recommendation(SERVE_TEACHER, ["the teacher already does the job at an acceptable cost: a student "
                                              "adds training, evaluation and maintenance"], ["09"])
    if human_labels:
        return Recommendation(BOTH, ["the teacher has the behaviour and is too costly to serve: distil",
                                     "gold labels fix what the teacher gets wrong consistently: mix them in"],
                              ["02", "08"])
    return Recommendation(DISTIL, ["the teacher has the behaviour and is too costly to serve",
                                   "unlabelled in-domain inputs labelled by the teacher are the transfer set"],
                          ["02", "04"])


def task_or_general(*, many_tasks: bool, in_domain_inputs: bool, large_budget: bool) -> Recommendation:
    """Task-specific or general (pre-training stage) distillation."""
    if many_tasks:
        if large_budget:
            return Recommendation(GENERAL, ["a small model for many tasks needs the teacher's general behaviour, "
                                            "distilled on broad text (DistilBERT, MiniLM)"], ["04", "05"])
        return Recommendation(DISTILLED_BASE, ["general distillation is a pre-training run: reuse a published "
                                               "distilled model and distil each task into it"], ["04"])
    if in_domain_inputs:
        return Recommendation(TASK, ["one task with in-domain inputs: the teacher labels them, the student "
                                     "learns only what the task needs"], ["02", "04"])
    return Recommendation(GENERAL_THEN_TASK, ["one task but few in-domain inputs: start from general "
                                              "distillation, or let the teacher generate the inputs"], ["05", "06"])


WORKS_WELL = {
    "teacher_better": ("the teacher is clearly better than the same student trained without it", ["02", "04"]),
    "labels_scarce": ("labels are scarce but unlabelled in-domain inputs are plentiful", ["02", "04"]),
    "rich_signal": ("the teacher gives more than a label: probabilities, rationales, preferences", ["02", "06"]),
    "capacity_ok": ("the student has the capacity for the task (no huge teacher-student gap)", ["09"]),
    "shared_structure": ("teacher and student share a tokenizer or layers, for the richer signals", ["04", "05b"]),
    "matching_data": ("the transfer set looks like production traffic", ["08", "09"]),
}
SCEPTICAL = {
    "teacher_only_evaluation": ("quality is measured only by agreement with the teacher or a teacher judge",
                                ["07", "09"]),
    "within_noise": ("the gain is within seed noise, or only one seed was run", ["02", "03"]),
    "no_baseline": ("there is no baseline of the same student without the teacher", ["02", "04"]),
    "teacher_wrong_slices": ("the teacher is wrong or biased on slices that matter", ["07", "09"]),
    "distribution_shift": ("production inputs differ from the transfer set", ["09"]),
    "tokenizer_mismatch": ("token-level KD is claimed across different tokenizers", ["05b"]),
    "terms_unchecked": ("the teacher's licence or terms of use were not checked", []),
}


def _tick(table: dict, answers: dict[str, bool]) -> tuple[list[str], list[str]]:
    unknown = sorted(set(answers) - set(table))
    if unknown:
        raise ValueError(f"unknown question(s) {unknown}; the questions are {sorted(table)}")
    reasons = [table[key][0] for key, yes in answers.items() if yes]
    notebooks = sorted({nb for key, yes in answers.items() if yes for nb in table[key][1]})
    return reasons, notebooks


def works_well(**answers: bool) -> Recommendation:
    """``likely to pay`` when at least four of the six conditions hold, else ``doubtful``; the reasons list the
    conditions that hold and, prefixed "missing:", those that do not."""
    reasons, notebooks = _tick(WORKS_WELL, answers)
    missing = [f"missing: {WORKS_WELL[k][0]}" for k in WORKS_WELL if not answers.get(k, False)]
    verdict = "likely to pay" if len(reasons) >= 4 else "doubtful"
    return Recommendation(verdict, reasons + missing, notebooks)


def be_sceptical(**answers: bool) -> Recommendation:
    """``sceptical`` when any red flag is raised (each is a reason), else ``no red flags``."""
    reasons, notebooks = _tick(SCEPTICAL, answers)
    return Recommendation("sceptical" if reasons else "no red flags", reasons, notebooks)
