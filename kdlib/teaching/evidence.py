"""The measured numbers the interview playbook quotes (notebook 00), read from results files, never typed.

A ``Fact`` names a notebook's results file, one or more dotted paths into its ``metrics`` (``students[2].p50_ms``)
and how to print the value; ``combine`` turns several values into one (a ratio, a difference). ``FACTS`` is the
registry the playbook's steps and drills cite by name, as ``{name}`` placeholders in their text::

    render("KD cut the 3%-data student's errors from {mnist_3pct_hard} to {mnist_3pct_kd}", load_results())

``load_results()`` reads the committed reference runs (``results/reference/``), or, with ``own=True``, a learner's
own laptop or gpu run of a notebook (``results/``) where there is one. A fact whose file or key is missing renders
as ``[not measured in this kit yet: ...]``, so the playbook says so instead of quoting a paper as if the kit had
measured it.
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kdlib.core.paths import REPO_ROOT, results_dir

REFERENCE = REPO_ROOT / "results" / "reference"
NOT_MEASURED = "[not measured in this kit yet: {what}]"
_INDEX = re.compile(r"^(.*?)\[(\d+)\]$")


@dataclass(frozen=True)
class Fact:
    """``paths`` into notebook ``notebook``'s metrics (``NN`` prefix of the results file), printed with ``fmt``
    (a format spec such as ``.1f``, ``,.0f``, ``.1%``) after ``combine`` (default: the single value); ``what``
    says in words what the number is."""

    notebook: str
    paths: tuple[str, ...]
    fmt: str
    what: str
    combine: Callable | None = None


def _ratio(a, b):
    return a / b


def _points(a, b):
    return 100 * (a - b)


FACTS: dict[str, Fact] = {
    "t2_slope": Fact("01", ("gradient_slope_without_T2",), ".2f", "log-log slope of the KD gradient against T"),
    "mnist_full_gain": Fact("02", ("full_data_change.gain",), ".1f", "test-error change from KD on full MNIST"),
    "mnist_full_noise": Fact("02", ("full_data_change.noise",), ".1f", "seed noise of that change"),
    "mnist_3pct_hard": Fact("02", ("small_data_student_test_errors",), ",.0f", "3%-data student's test errors"),
    "mnist_3pct_kd": Fact("02", ("small_data_kd_student_test_errors",), ",.0f", "3%-data KD student's test errors"),
    "mnist_3pct_ratio": Fact("02", ("small_data_student_test_errors", "small_data_kd_student_test_errors"), ".1f",
                             "error ratio, hard labels over KD, on 3% of MNIST", _ratio),
    "mnist_student_speedup": Fact("02", ("serving[1].p50_ms", "serving[3].p50_ms"), ".1f",
                                  "teacher/student p50 latency ratio at batch 256", _ratio),
    "fashion_kd_gain": Fact("03", ("gains_over_student.logit KD.gain",), ".2%", "logit-KD accuracy gain (Fashion)"),
    "fashion_kd_noise": Fact("03", ("gains_over_student.logit KD.noise",), ".2%", "its seed noise"),
    "fashion_kd_ece": Fact("03", ("kd_student.ece",), ".3f", "KD student's ECE before temperature scaling"),
    "fashion_kd_ece_after": Fact("03", ("kd_student.ece_after_temperature_scaling",), ".3f",
                                 "KD student's ECE after temperature scaling"),
    "bert_retained": Fact("04", ("headline.retained",), ".0%", "teacher accuracy kept by the distilled student"),
    "bert_labels_retained": Fact("04", ("headline.labels_only_retained",), ".0%",
                                 "teacher accuracy kept by the same student on labels only"),
    "bert_speedup": Fact("04", ("headline.speedup_batch32",), ".1f", "student speed-up at batch 32"),
    "bert_labels": Fact("04", ("data.labelled",), ",.0f", "human-labelled tweets the students had"),
    "bert_transfer": Fact("04", ("data.transfer",), ",.0f", "unlabelled tweets the teacher labelled"),
    "lm_plain_ppl": Fact("05", ("students.a_plain_lm.heldout_perplexity",), ",.0f", "plain-LM student perplexity"),
    "lm_kd_ppl": Fact("05", ("students.b_token_kd.heldout_perplexity",), ",.0f", "token-KD student perplexity"),
    "lm_topk": Fact("05", ("topk_chosen",), "d", "top-k teacher logits kept"),
    "lm_kd_cost": Fact("05", ("students.b_token_kd.train_seconds", "students.a_plain_lm.train_seconds"), ".2f",
                       "training time of cached top-k KD over plain LM training, same steps", _ratio),
    "lm_topk_error": Fact("05", ("students.b_token_kd.topk_loss_relative_error",), ".1%", "relative error of the top-k KD loss"),
    "lm_onpolicy_gen": Fact("05", ("on_policy_seconds.student generation", "on_policy_seconds.student update"),
                            ".1f", "on-policy KD: generation seconds per update second", _ratio),
    "xtok_shared_mass": Fact("05b", ("shared_vocab_mass",), ".0%", "teacher probability mass on shared tokens"),
    "xtok_seqkd_ppl": Fact("05b", ("cross_tokenizer.seq_kd.perplexity_mean",), ",.0f",
                           "cross-tokenizer sequence-KD student perplexity"),
    "xtok_plain_ppl": Fact("05b", ("cross_tokenizer.plain.perplexity_mean",), ",.0f",
                           "cross-tokenizer plain student perplexity"),
    "rationale_acc": Fact("06", ("rationale_test_accuracy",), ".1%", "rationale student's test accuracy"),
    "answer_only_acc": Fact("06", ("answer_only_test_accuracy",), ".1%", "answer-only student's test accuracy"),
    "rationale_data_fraction": Fact("06", ("data_efficiency_claim.test.fraction",), ".0%",
                                    "data share at which rationales match answer-only on all data"),
    "rationale_tokens": Fact("06", ("cost_per_answer.rationale.tokens", "cost_per_answer.answer_only.tokens"),
                             ".1f", "tokens per answer, rationale over answer-only", _ratio),
    "dpo_gain": Fact("07", ("dpo_seeds.gain",), ".1%", "DPO gain in gold accuracy over SFT"),
    "judge_win_rate": Fact("07", ("win_rate_by_teacher",), ".1%", "DPO win rate judged by the teacher"),
    "gold_win_rate": Fact("07", ("win_rate_by_gold",), ".1%", "DPO win rate judged by gold answers"),
    "bias_teacher": Fact("07", ("bias_slice.skewed_teacher",), ".1%", "biased judge's rate on its slice"),
    "bias_student": Fact("07", ("bias_slice.dpo_skewed_judge", "bias_slice.sft"), ".1f",
                         "DPO-on-biased-judge student's bias, percentage points over SFT", _points),
    "tool_out_of_range": Fact("08", ("students[2].out_of_range_accuracy",), ".1%",
                              "tool student's accuracy out of range"),
    "rationale_out_of_range": Fact("08", ("students[1].out_of_range_accuracy",), ".1%",
                                   "rationale student's accuracy out of range"),
    "execution_filter_after": Fact("08", ("execution_filter.right_after",), ".1%", "traces right after filtering"),
    "execution_filter_before": Fact("08", ("execution_filter.right_before",), ".1%", "traces right before it"),
    "overrefusal_inherited": Fact("08", ("safety.over-refusing.student_overrefusal",), ".0%",
                                  "look-alikes refused by students of the over-refusing teacher"),
    "gold_mix_distractors": Fact("08", ("mixing[2].distractors_accuracy", "mixing[0].distractors_accuracy"), ".1f",
                                 "distractor accuracy, percentage points, gold traces over teacher traces", _points),
    "cascade_acc": Fact("09", ("chosen.accuracy",), ".1%", "cascade test accuracy"),
    "cascade_teacher_acc": Fact("09", ("teacher.accuracy",), ".1%", "teacher test accuracy"),
    "cascade_teacher_share": Fact("09", ("chosen.teacher_fraction",), ".0%", "requests the cascade sends on"),
    "cascade_p99": Fact("09", ("chosen.p99_ms",), ".1f", "cascade p99 latency at batch 1, ms"),
    "cascade_p50": Fact("09", ("chosen.p50_ms",), ".1f", "cascade p50 latency at batch 1, ms"),
    "break_even": Fact("09", ("break_even_requests",), ",.0f", "requests before the cascade pays off"),
    "teacher_wrong_student": Fact("09", ("scorecards.student.slices.teacher wrong.accuracy",), ".1%",
                                  "student accuracy where the teacher is wrong"),
    "assistant_gain": Fact("09", ("teacher_assistant.gain",), ".2%", "teacher-assistant gain"),
    "assistant_noise": Fact("09", ("teacher_assistant.noise",), ".2%", "its seed noise"),
    "prune_random": Fact("10", ("width_pruning.MLP 1536 -> 768, random neurons.perplexity",
                                "width_pruning.MLP 1536 -> 768, by importance.perplexity"), ",.0f",
                         "perplexity ratio, random half over important half", _ratio),
    "recovery_kd": Fact("10", ("pruned.width.perplexity_kd",), ".1f", "width-pruned student after KD recovery"),
    "recovery_lm": Fact("10", ("pruned.width.perplexity_lm",), ".1f", "after plain-LM recovery"),
    "recovery_uncorrected": Fact("10", ("width_kd_uncorrected_perplexity",), ".1f",
                                 "after KD from the uncorrected teacher"),
    "qat_kd": Fact("10", ("qat.kd",), ".1f", "QAT + KD perplexity at the lowest bit-width"),
    "qat_lm": Fact("10", ("qat.lm",), ".1f", "QAT + LM perplexity"),
    "distil_then_quantize": Fact("10", ("order.distil_then_quantize",), ".1f", "distil, then quantize"),
    "lora_state": Fact("11", ("lora[1].optimizer_mb",), ".1f", "LoRA's AdamW state, MB"),
    "full_state": Fact("11", ("lora[0].optimizer_mb",), ".1f", "full fine-tuning's AdamW state, MB"),
    "draft_alpha_text": Fact("11", ("expected_acceptance.text (full + LM).greedy",), ".3f",
                             "acceptance of a draft trained on text"),
    "draft_alpha_kd": Fact("11", ("expected_acceptance.token KD (full + KD).greedy",), ".3f",
                           "acceptance of a token-KD draft"),
    "draft_break_even": Fact("11", ("break_even_acceptance",), ".2f", "acceptance a draft needs to pay here"),
    "draft_cost": Fact("11", ("cost_ratio",), ".2f", "draft forward / target forward"),
}
NOTEBOOKS = {"01": "01_soft_targets_and_temperature", "02": "02_mnist_hinton", "03": "03_conv_features_calibration",
             "04": "04_transformer_compression", "05": "05_llm_token_sequence_kd", "05b": "05b_cross_tokenizer",
             "06": "06_rationale_distillation", "07": "07_preference_dpo", "08": "08_teacher_data_pipeline",
             "09": "09_capacity_cascades_scorecards", "10": "10_compress_then_distil",
             "11": "11_lora_and_speculative_drafts"}


def load_results(own: bool = False, reference: Path = REFERENCE) -> dict[str, dict]:
    """``{"02": metrics, ...}`` from the reference runs; with ``own``, a learner's own finished laptop or gpu run
    (``results/<notebook>.json``) replaces the reference where it exists. Missing files are simply absent."""
    out = {}
    for short, stem in NOTEBOOKS.items():
        candidates = ([results_dir() / f"{stem}.json"] if own else []) + [reference / f"{stem}.json"]
        for path in candidates:
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if path.parent == reference or record.get("profile") in ("laptop", "gpu"):
                out[short] = record.get("metrics", {})
                break
    return out


def lookup(metrics: dict, path: str):
    """The value at a dotted path (``a.b[2].c``; keys may contain spaces and ``->``); KeyError if absent."""
    value = metrics
    for part in path.split("."):
        match = _INDEX.match(part)
        key, index = (match.group(1), int(match.group(2))) if match else (part, None)
        if key:
            value = value[key]
        if index is not None:
            value = value[index]
    if value is None:
        raise KeyError(path)
    return value


def fact_value(name: str, results: dict[str, dict]) -> float:
    """The number behind fact ``name``; KeyError (naming what is missing) when its results are not there."""
    fact = FACTS[name]
    if fact.notebook not in results:
        raise KeyError(f"no results of notebook {fact.notebook}")
    values = [lookup(results[fact.notebook], p) for p in fact.paths]
    return fact.combine(*values) if fact.combine else values[0]


def fact(name: str, results: dict[str, dict]) -> str:
    """Fact ``name`` formatted, or the not-measured marker naming what is missing."""
    if name not in FACTS:
        raise KeyError(f"no fact named {name!r}; known: {', '.join(sorted(FACTS))}")
    try:
        return format(fact_value(name, results), FACTS[name].fmt)
    except (KeyError, IndexError, TypeError, ZeroDivisionError):
        return NOT_MEASURED.format(what=f"{FACTS[name].what} ({FACTS[name].notebook})")


def placeholders(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template, in order."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def render(template: str, results: dict[str, dict]) -> str:
    """``template`` with every ``{name}`` replaced by ``fact(name, results)``."""
    return template.format(**{name: fact(name, results) for name in placeholders(template)})
