"""The README's results table, made from committed reference runs in ``results/reference/``.

``python -m kdlib.teaching.report`` prints the Markdown table; ``tests/test_setup.py`` fails when the README's
table differs from it, so every number in the README comes from a results file a notebook wrote.
To refresh: run a notebook in the profile you want (``make run``), copy ``results/<name>.json`` to
``results/reference/``, and paste this command's output into the README.
"""
from __future__ import annotations

import json
from pathlib import Path

from kdlib.core.paths import REPO_ROOT

REFERENCE = REPO_ROOT / "results" / "reference"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# (notebook, metric path in "metrics" (dots go deeper), what it measures, what the paper reports)
ROWS = [
    ("00_interview_playbook", "drills", "interview drills, each answered in the seven steps", "-"),
    ("00_interview_playbook", "questions", "interview questions in the bank, collected from notebooks 01-11", "-"),
    ("00_interview_playbook", "facts_measured", "measured numbers the playbook quotes from results files", "-"),
    ("01_soft_targets_and_temperature", "gradient_slope_without_T2", "log-log slope of the KL gradient vs T", "-2"),
    ("01_soft_targets_and_temperature", "gradient_slope_with_T2", "same, with the T^2 factor", "0"),
    ("02_mnist_hinton", "baseline_test_errors.majority class", "baseline: majority class, test errors", "-"),
    ("02_mnist_hinton", "baseline_test_errors.untrained student", "baseline: untrained 800-800 student", "-"),
    ("02_mnist_hinton", "teacher_test_errors", "teacher 1200-1200 test errors", "67"),
    ("02_mnist_hinton", "student_test_errors", "student 800-800, hard labels (mean of seeds)", "146"),
    ("02_mnist_hinton", "kd_student_test_errors", "student 800-800, distilled T=20 (mean of seeds)", "74"),
    ("02_mnist_hinton", "full_data_change.beyond_noise", "full data: change beyond the seed noise (paired)?", "-"),
    ("02_mnist_hinton", "small_data_student_test_errors", "3% data, hard labels (mean of seeds)", "-"),
    ("02_mnist_hinton", "small_data_kd_student_test_errors", "3% data, distilled (mean of seeds)", "-"),
    ("02_mnist_hinton", "best_alpha_3pct", "3% data: best alpha of the sweep (mean of seeds)", "-"),
    ("02_mnist_hinton", "tiny_best_T", "30-30 student: best T of the sweep (one seed)", "2.5-4"),
    ("02_mnist_hinton", "omitted3_accuracy_on_3s_before_shift", "omitted-3 student, test 3s right, before shift",
     "0.868"),
    ("02_mnist_hinton", "omitted3_accuracy_on_3s_after_shift", "omitted-3 student, after the bias shift", "0.986"),
    ("03_conv_features_calibration", "dataset", "data set of notebook 03", "CIFAR-10"),
    ("03_conv_features_calibration", "baselines.majority class", "baseline: majority class, test accuracy", "-"),
    ("03_conv_features_calibration", "baselines.untrained", "baseline: untrained conv student", "-"),
    ("03_conv_features_calibration", "teacher.mean_accuracy", "conv teacher, test accuracy", "0.751 (CIFAR-10)"),
    ("03_conv_features_calibration", "student", "conv student, hard labels (mean ± std over seeds)",
     "0.699 (CIFAR-10)"),
    ("03_conv_features_calibration", "kd_student", "conv student, logit KD", "0.708 (CIFAR-10)"),
    ("03_conv_features_calibration", "hint_student", "conv student, FitNets hint", "0.708 (CIFAR-10)"),
    ("03_conv_features_calibration", "cosine_student", "conv student, cosine features", "0.715 (CIFAR-10)"),
    ("03_conv_features_calibration", "student.ece", "ECE, hard-label student", "-"),
    ("03_conv_features_calibration", "kd_student.ece", "ECE, KD student", "-"),
    ("03_conv_features_calibration", "kd_student.ece_after_temperature_scaling",
     "ECE, KD student after temperature scaling", "-"),
    # notebook 04: transformer compression
    ("04_transformer_compression", "teacher_accuracy", "all-MiniLM-L6-v2 fine-tuned on tweets, test accuracy", "-"),
    ("04_transformer_compression", "baselines.majority class.accuracy", "baseline: majority class, test accuracy",
     "-"),
    ("04_transformer_compression", "variants.a_labels_only.accuracy",
     "2-layer copied student, 200 labels only (mean of seeds)", "-"),
    ("04_transformer_compression", "headline.signal", "signal chosen on validation for the copied student", "-"),
    ("04_transformer_compression", "headline.gain", "its gain over labels only, same student (paired by seed)", "-"),
    ("04_transformer_compression", "headline.noise", "seed noise of that gain (2 x standard error)", "-"),
    ("04_transformer_compression", "headline.retained", "distilled student's share of the teacher's accuracy",
     "0.97 (DistilBERT), 0.968 (TinyBERT-4)"),
    ("04_transformer_compression", "headline.labels_only_retained", "labels-only student's share", "-"),
    ("04_transformer_compression", "headline.speedup_batch32", "speed-up at batch 32 (CPU)",
     "1.6 (DistilBERT), 9.4 (TinyBERT-4)"),
    ("04_transformer_compression", "variants.b_tinybert.accuracy",
     "randomly initialised student, + hidden + attention (1 seed)", "-"),
    ("04_transformer_compression", "variants.c_tinybert.accuracy", "narrow student, + hidden + attention (1 seed)",
     "-"),
    ("05_llm_token_sequence_kd", "teacher.heldout_perplexity", "SmolLM2-135M teacher, held-out perplexity (BBC News)",
     "-"),
    ("05_llm_token_sequence_kd", "baselines.unigram.heldout_perplexity", "baseline: unigram of the training tokens",
     "-"),
    ("05_llm_token_sequence_kd", "baselines.warm start.heldout_perplexity", "common warm start (plain LM), perplexity",
     "-"),
    ("05_llm_token_sequence_kd", "students.a_plain_lm.heldout_perplexity", "(a) plain-LM student, perplexity", "-"),
    ("05_llm_token_sequence_kd", "students.b_token_kd.heldout_perplexity", "(b) token-KD student (top-k), perplexity",
     "-"),
    ("05_llm_token_sequence_kd", "students.c_sequence_kd.heldout_perplexity", "(c) sequence-KD student, perplexity",
     "-"),
    ("05_llm_token_sequence_kd", "students.d_on_policy.heldout_perplexity", "(d) on-policy (GKD) student, perplexity",
     "-"),
    ("05_llm_token_sequence_kd", "students.a_plain_lm.teacher_top1_agreement", "(a) plain LM, top-1 agreement",
     "-"),
    ("05_llm_token_sequence_kd", "students.b_token_kd.teacher_top1_agreement", "(b) token KD, top-1 agreement",
     "-"),
    ("05_llm_token_sequence_kd", "kd_vs_plain.heldout_perplexity.beyond_noise",
     "(b) vs (a) perplexity: beyond the seed noise (paired)?", "-"),
    ("05_llm_token_sequence_kd", "students.c_sequence_kd.teacher_nll_of_samples",
     "(c) sequence KD: teacher NLL of its samples", "-"),
    ("05_llm_token_sequence_kd", "students.d_on_policy.teacher_nll_of_samples",
     "(d) on-policy: teacher NLL of its samples", "-"),
    ("05_llm_token_sequence_kd", "students.a_plain_lm.teacher_nll_of_samples",
     "(a) plain LM: teacher NLL of its samples", "-"),
    ("05_llm_token_sequence_kd", "topk_chosen", "k chosen from the storage curve", "-"),
    ("05_llm_token_sequence_kd", "students.b_token_kd.topk_loss_relative_error",
     "(b) top-k KL error vs full vocabulary, trained student", "-"),
    # notebook 05b: across tokenizers
    ("05b_cross_tokenizer", "padding_mass", "padded SmolLM2 rows: teacher probability on them (mean rows)", "-"),
    ("05b_cross_tokenizer", "padding_truncation_relative_change", "truncating them: relative change of the KD loss",
     "-"),
    ("05b_cross_tokenizer", "shared_vocab_mass", "teacher mass on the tokens shared with the kit's BPE", "-"),
    ("05b_cross_tokenizer", "cross_tokenizer.plain.perplexity_mean", "own-tokenizer student, plain LM, perplexity",
     "-"),
    ("05b_cross_tokenizer", "cross_tokenizer.seq_kd.perplexity_mean", "the same, sequence-level KD (re-tokenised)",
     "-"),
    ("05b_cross_tokenizer", "cross_tokenizer.uld.perplexity_mean", "the same, ULD (sorted probabilities)", "-"),
    ("05b_cross_tokenizer", "vs_plain.seq_kd.noise", "seed noise of those differences (seq KD, 2 x SE)", "-"),
    # notebook 06: in distribution (unseen problems, training templates) and held out (new templates, 4 steps)
    ("06_rationale_distillation", "teacher_test_accuracy", "rationale teacher, in-distribution test accuracy", "-"),
    ("06_rationale_distillation", "teacher_accuracy", "rationale teacher, held-out accuracy", "-"),
    ("06_rationale_distillation", "filter_kept_fraction", "teacher samples kept by the majority vote", "-"),
    ("06_rationale_distillation", "baselines.constant_answer_accuracy.test", "baseline: best constant answer, in "
     "distribution", "-"),
    ("06_rationale_distillation", "answer_only_test_accuracy", "answer-only student, in distribution (mean of seeds)",
     "-"),
    ("06_rationale_distillation", "rationale_test_accuracy", "rationale-then-answer student, in distribution", "-"),
    ("06_rationale_distillation", "rationale_vs_answer_only.test.noise", "seed noise of their gap (2 x SE, paired)",
     "-"),
    ("06_rationale_distillation", "baselines.constant_answer_accuracy.heldout", "baseline: best constant answer, "
     "held out", "-"),
    ("06_rationale_distillation", "answer_only_accuracy", "answer-only student, held out (mean of seeds)", "-"),
    ("06_rationale_distillation", "rationale_accuracy", "rationale-then-answer student, held out", "-"),
    ("06_rationale_distillation", "multitask_test_accuracy", "multi-task student (answers without rationale), "
     "in distribution", "-"),
    ("06_rationale_distillation", "data_efficiency_claim.test.fraction",
     "share of the problems with which the rationale student reaches answer-only's full-data accuracy",
     "same accuracy with <50% data"),
    ("06_rationale_distillation", "corrupted_rationale_accuracy", "rationale student on corrupted rationales, "
     "held out", "-"),
    ("06_rationale_distillation", "cost_per_answer.rationale.tokens", "tokens per answer, rationale student", "-"),
    ("06_rationale_distillation", "cost_per_answer.answer_only.tokens", "tokens per answer, answer-only student",
     "-"),
    # notebook 07
    ("07_preference_dpo", "constant_gold_accuracy", "baseline: the pool's most frequent answer, gold accuracy", "-"),
    ("07_preference_dpo", "sft_gold_accuracy", "SFT student, gold accuracy (test + held-out)", "-"),
    ("07_preference_dpo", "beta", "beta chosen by the teacher on dev problems (inside its grid)", "0.1 (typical)"),
    ("07_preference_dpo", "dpo_gold_accuracy", "DPO student from teacher-judged pairs, gold accuracy", "-"),
    ("07_preference_dpo", "dpo_seeds.gain", "DPO minus SFT, mean over 3 batch orders", "-"),
    ("07_preference_dpo", "dpo_minus_sft.se", "standard error of that change over the problems", "-"),
    ("07_preference_dpo", "win_rate_by_teacher", "win rate of DPO over SFT, judged by the teacher", "-"),
    ("07_preference_dpo", "win_rate_by_teacher_verdict_only", "the same, teacher's verdicts only (no tie-break)",
     "-"),
    ("07_preference_dpo", "win_rate_by_gold", "win rate of DPO over SFT, judged by gold answers", "-"),
    ("07_preference_dpo", "bias_slice.skewed_teacher", "skewed teacher: coin answers rounded to ten", "-"),
    ("07_preference_dpo", "bias_slice.sft", "SFT student: coin answers rounded to ten", "-"),
    ("07_preference_dpo", "bias_slice.dpo", "DPO student (teacher judge): coin answers rounded to ten", "-"),
    ("07_preference_dpo", "bias_slice.dpo_skewed_judge", "DPO student (skewed judge): coin answers rounded to ten",
     "-"),
    ("07_preference_dpo", "bias_gaps.skewed_judge_vs_teacher_judge.se", "standard error of the last two's gap", "-"),
    # notebook 09
    ("08_teacher_data_pipeline", "teacher.well-behaved.in range", "tool-trace teacher, in-range accuracy", "-"),
    ("08_teacher_data_pipeline", "teacher.well-behaved.out of range", "tool-trace teacher, out-of-range accuracy", "-"),
    ("08_teacher_data_pipeline", "teacher.well-behaved.distractors", "the same teacher, with a distractor sentence",
     "-"),
    ("08_teacher_data_pipeline", "execution_filter.right_before", "teacher samples that are right", "-"),
    ("08_teacher_data_pipeline", "execution_filter.right_after", "the same after the execution check", "-"),
    ("08_teacher_data_pipeline", "students.0.in_range_accuracy", "answer-only student, in range (one seed)", "-"),
    ("08_teacher_data_pipeline", "students.1.in_range_accuracy", "rationale student, in range (mean of seeds)", "-"),
    ("08_teacher_data_pipeline", "students.2.in_range_accuracy", "tool-trace student, in range (mean of seeds)", "-"),
    ("08_teacher_data_pipeline", "students.1.out_of_range_accuracy", "rationale student, out of range", "-"),
    ("08_teacher_data_pipeline", "students.2.out_of_range_accuracy", "tool-trace student, out of range", "-"),
    ("08_teacher_data_pipeline", "tool_vs_rationale.noise", "seed noise of their gap (2 x SE, paired)", "-"),
    ("08_teacher_data_pipeline", "critique.first_draft", "student of the teacher's first drafts, in range (one seed)",
     "-"),
    ("08_teacher_data_pipeline", "critique.revised", "student of critiqued and revised drafts, in range", "-"),
    ("08_teacher_data_pipeline", "mixing.0.distractors_accuracy", "student of the teacher's first drafts, "
     "distractors", "-"),
    ("08_teacher_data_pipeline", "mixing.-1.distractors_accuracy", "the same with gold traces only", "-"),
    ("08_teacher_data_pipeline", "safety.well-behaved.student_overrefusal",
     "look-alikes refused by the well-behaved teacher's students", "-"),
    ("08_teacher_data_pipeline", "safety.over-refusing.teacher_overrefusal", "look-alikes refused by the over-refusing "
     "teacher", "-"),
    ("08_teacher_data_pipeline", "safety.over-refusing.student_overrefusal", "look-alikes refused by its students",
     "-"),
    ("08_teacher_data_pipeline", "safety.over-refusing, safety review.student_overrefusal", "the same after the "
     "safety review (one seed)", "-"),
    ("09_capacity_cascades_scorecards", "capacity.0.gain", "smallest MNIST student (784-8-8-10): distilled minus hard "
     "labels, mean of seeds", "-"),
    ("09_capacity_cascades_scorecards", "capacity.-1.gain", "largest MNIST student of the sweep: distilled minus hard "
     "labels", "-"),
    ("09_capacity_cascades_scorecards", "teacher_assistant.direct", "smallest student distilled from the teacher "
     "directly", "-"),
    ("09_capacity_cascades_scorecards", "teacher_assistant.via_assistant", "the same through a teacher assistant",
     "better (Mirzadeh et al.)"),
    ("09_capacity_cascades_scorecards", "teacher.accuracy", "tweet teacher (notebook 04), test accuracy without "
     "the held-out topic", "-"),
    ("09_capacity_cascades_scorecards", "student.accuracy", "1-layer distilled student, test accuracy", "-"),
    ("09_capacity_cascades_scorecards", "chosen.accuracy", "cascade at its validation-chosen threshold, test "
     "accuracy", "-"),
    ("09_capacity_cascades_scorecards", "chosen.teacher_fraction", "share of test requests the cascade sends to the "
     "teacher", "-"),
    ("09_capacity_cascades_scorecards", "oracle.accuracy", "oracle router (sends exactly the student's mistakes)",
     "-"),
    ("09_capacity_cascades_scorecards", "equal_compute.accuracy", "one student of the cascade's compute, test "
     "accuracy", "-"),
    ("09_capacity_cascades_scorecards", "teacher.mean_ms", "teacher, mean latency at batch 1 (ms, CPU)", "-"),
    ("09_capacity_cascades_scorecards", "chosen.mean_ms", "cascade, mean latency at batch 1 as served (ms)", "-"),
    ("09_capacity_cascades_scorecards", "ece_before", "student's ECE before temperature scaling", "-"),
    ("09_capacity_cascades_scorecards", "ece_after", "student's ECE after temperature scaling", "-"),
    ("09_capacity_cascades_scorecards", "scorecards.teacher.shifted_accuracy", "teacher on the held-out topic (the "
     "shift)", "-"),
    ("09_capacity_cascades_scorecards", "scorecards.student.shifted_accuracy", "student on the held-out topic", "-"),
    ("09_capacity_cascades_scorecards", "scorecards.student.slices.teacher wrong.teacher_agreement", "student's "
     "agreement with the teacher where the teacher is wrong", "-"),
    ("09_capacity_cascades_scorecards", "break_even_requests", "requests after which the cascade pays for its "
     "distillation", "-"),
    ("10_compress_then_distil", "original_teacher_perplexity", "SmolLM2-135M-Instruct, held-out BBC perplexity", "-"),
    ("10_compress_then_distil", "teacher.perplexity", "the same after teacher correction (Minitron)", "-"),
    ("10_compress_then_distil", "pruned.width.perplexity_before", "MLP width halved by importance, before recovery",
     "-"),
    ("10_compress_then_distil", "pruned.width.perplexity_lm", "width-pruned, recovered with the LM loss", "-"),
    ("10_compress_then_distil", "pruned.width.perplexity_kd", "width-pruned, recovered by KD (same tokens, steps)",
     "lower than LM (Minitron)"),
    ("10_compress_then_distil", "width_kd_uncorrected_perplexity", "the same KD from the uncorrected teacher", "-"),
    ("10_compress_then_distil", "pruned.depth.perplexity_lm", "depth-pruned to equal size, recovered with LM", "-"),
    ("10_compress_then_distil", "pruned.depth.perplexity_kd", "depth-pruned, recovered by KD", "-"),
    ("10_compress_then_distil", "qat_bits", "bit-width where PTQ loses most (of 8, 4, 3)", "-"),
    ("10_compress_then_distil", "qat.lm", "QAT with the LM loss at that bit-width, perplexity", "-"),
    ("10_compress_then_distil", "qat.kd", "QAT with KD (= quantize then distil)", "-"),
    ("10_compress_then_distil", "order.distil_then_quantize", "distil then quantize (PTQ), same budget", "-"),
    ("11_lora_and_speculative_drafts", "lora.0.perplexity", "10-layer student, full fine-tuning + KD, perplexity",
     "-"),
    ("11_lora_and_speculative_drafts", "lora.1.perplexity", "the same with LoRA + KD", "-"),
    ("11_lora_and_speculative_drafts", "lora.2.perplexity", "LoRA + plain LM loss", "-"),
    ("11_lora_and_speculative_drafts", "speculative.0.acceptance_rate", "draft trained on text: greedy acceptance",
     "-"),
    ("11_lora_and_speculative_drafts", "speculative.2.acceptance_rate", "token-KD draft: greedy acceptance",
     "higher (DistillSpec)"),
    ("11_lora_and_speculative_drafts", "speculative.4.acceptance_rate", "sequence-KD draft: greedy acceptance", "-"),
    ("11_lora_and_speculative_drafts", "cost_ratio", "draft cost per token in target forwards (CPU, batch 1)", "-"),
    ("11_lora_and_speculative_drafts", "break_even_acceptance", "acceptance at which a draft would pay here", "-"),
]


def _lookup(metrics: dict, path: str):
    value = metrics
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]  # "capacity.-1.gain": the last row
    if isinstance(value, dict) and "mean_accuracy" in value:  # a method over seeds: mean ± std
        return f"{value['mean_accuracy']:.4f} ± {value['std_accuracy']:.4f}"
    return _fmt(value)


def table(folder: Path = REFERENCE) -> str:
    """Markdown: one row per headline metric, then one line per run (profile, device, seconds)."""
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    lines = ["| # | result | ours | paper |", "|---|---|---|---|"]
    for notebook, metric, what, paper in ROWS:
        if notebook in runs:
            number = notebook.split("_")[0]  # 05b: a sequel keeps its letter
            lines.append(f"| {number} | {what} | {_lookup(runs[notebook]['metrics'], metric)} | {paper} |")
    lines.append("")
    for name, run in runs.items():
        lines.append(f"- `{name}`: profile `{run['profile']}`, {run['device']}, {run['seconds']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
