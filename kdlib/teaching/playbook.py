"""The seven-step answer to "how would you distil model X for use Y?" (notebook 00), each step with what a
strong answer says, the trap, and the measured number in this kit that backs it.

The order is the survey's: 1 target, 2 teacher, 3 student, 4 signal, 5 data, 6 evaluation, 7 serving. The weak
answer it replaces is "train a small model on outputs from a big model": true, and it names none of the decisions.
``STEPS`` holds the steps; their ``evidence`` text cites ``kdlib.teaching.evidence.FACTS`` by name, so every number
is read from a results file when the notebook runs (``render``).
"""
from __future__ import annotations

from dataclasses import dataclass

from kdlib.teaching.evidence import render

WEAK_ANSWER = "Train a small model on outputs from a big model."


@dataclass(frozen=True)
class Step:
    """One step of the answer: ``key`` (as the drills name it), what a ``strong`` answer says, the ``trap``, the
    notebooks that teach it, the ``evidence`` (a template with ``{fact}`` placeholders) and the ``rubric`` line a
    learner ticks when their answer covered the step."""

    key: str
    title: str
    strong: str
    trap: str
    notebooks: tuple[str, ...]
    evidence: str
    rubric: str


STEPS: tuple[Step, ...] = (
    Step("target", "Target",
         "State the product constraint first: latency percentile, memory, cost per request, device, and the quality "
         "floor on the slices that matter. Distillation is a means; the target decides whether it is needed.",
         "Starting from a model size instead of a constraint, or quoting mean latency when the users feel p99.",
         ("09",),
         "a cascade that kept the teacher for {cascade_teacher_share} of requests had p50 {cascade_p50} ms but p99 "
         "{cascade_p99} ms (09): the tail is a different number from the median.",
         "named the constraint: latency percentile, memory or cost, and a quality floor per slice"),
    Step("teacher", "Teacher",
         "Say which teacher and why it is good on the target distribution; correct or fine-tune it on that "
         "distribution first; check its failure slices, licence and terms (may its outputs train a model?).",
         "Assuming the teacher is right: a student copies its mistakes and its biases faithfully.",
         ("08", "09", "10"),
         "where the teacher was wrong the student was right on only {teacher_wrong_student} (09); a pruned student "
         "recovered to perplexity {recovery_kd} from a corrected teacher and {recovery_uncorrected} from the "
         "uncorrected one (10).",
         "named the teacher, how it is checked on the target data, and its terms of use"),
    Step("student", "Student",
         "Choose the student from the target: depth for latency at batch 1, width for throughput; initialise from the "
         "teacher (copied or pruned layers) when the architectures match; mind the capacity gap.",
         "A student too small to hold the task, or one initialised at random when the teacher's layers were free.",
         ("04", "09", "10"),
         "a student of the teacher's copied layers kept {bert_retained} of the teacher's accuracy at {bert_speedup}x "
         "its speed (04); a teacher assistant changed accuracy by {assistant_gain} against noise {assistant_noise} "
         "(09).",
         "chose the student from the target and said how it is initialised"),
    Step("signal", "Signal",
         "Pick what the student learns from: hard labels, soft logits (T, alpha, T^2), top-k logits for LLMs, "
         "hidden states or attention, sequences, rationales, preferences. Richer signals need more shared structure.",
         "Saying 'KD' without naming the loss, its temperature and weight, or the tokenizer it needs.",
         ("01", "02", "05", "06"),
         "the gradient of the soft loss falls with slope {t2_slope} against T on a log-log plot without the T^2 "
         "factor (01); a token-KD student reached perplexity {lm_kd_ppl} against {lm_plain_ppl} for the plain loss, "
         "and with the teacher's top-{lm_topk} logits cached its training took {lm_kd_cost}x as long (05).",
         "named the loss or signal and what it needs (T, alpha, top-k, tokenizer)"),
    Step("data", "Data",
         "Say where the transfer set comes from (unlabelled in-domain inputs, teacher samples, a prompt pool), how it "
         "is filtered (verification, deduplication, balance), and how much gold data is kept.",
         "Generating teacher data without filtering or gold labels, so the student learns the teacher's errors.",
         ("02", "06", "08"),
         "with 3% of MNIST's labels a KD student made {mnist_3pct_kd} test errors against {mnist_3pct_hard} (02); an "
         "execution filter raised the share of right traces from {execution_filter_before} to "
         "{execution_filter_after} (08).",
         "said where the transfer set comes from, how it is filtered, and where gold data enters"),
    Step("evaluation", "Evaluation",
         "Evaluate against gold labels, on slices and under shift, with seeds and error bars, and against the cheap "
         "baselines (the same student without the teacher). Agreement with the teacher is a diagnostic, not quality.",
         "Reporting teacher agreement or a teacher-judged win rate as the result.",
         ("03", "07", "09"),
         "the DPO student's win rate was {judge_win_rate} judged by the teacher and {gold_win_rate} judged by gold "
         "answers (07); logit KD gained {fashion_kd_gain} against seed noise {fashion_kd_noise} (03).",
         "evaluated on gold labels, per slice, with seeds and a no-teacher baseline"),
    Step("serving", "Serving",
         "Close with the system: latency percentiles at the served batch, cost per successful request, quantization, "
         "a cascade with the teacher for hard inputs, and the break-even volume that makes distilling pay.",
         "Ignoring the fixed cost: at low traffic the teacher is cheaper than distilling.",
         ("09", "10", "11"),
         "the cascade paid for its distillation after {break_even} requests (09); a draft model pays only above "
         "acceptance {draft_break_even} on this machine (11).",
         "gave latency percentiles, cost per request and the break-even volume"),
)
STEP_KEYS = tuple(step.key for step in STEPS)


def step_evidence(results: dict[str, dict]) -> dict[str, str]:
    """Each step's evidence with its numbers read from ``results`` (``kdlib.teaching.evidence.load_results``)."""
    return {step.key: render(step.evidence, results) for step in STEPS}


def playbook_markdown(results: dict[str, dict]) -> str:
    """The seven steps as one markdown table: step, strong answer, trap, evidence (with numbers), notebooks."""
    rows = ["| step | a strong answer says | the trap | measured in this kit |", "|---|---|---|---|"]
    for number, step in enumerate(STEPS, 1):
        rows.append(f"| {number}. {step.title} | {step.strong} | {step.trap} | {render(step.evidence, results)} |")
    return "\n".join(rows)
