"""Rationale distillation, the text side: how a problem becomes a training sequence, how an answer is read back
and verified, how the teacher's sampled rationales are filtered, and how a rationale is corrupted on purpose.
Notebook 06 (Distilling step-by-step, Hsieh et al. 2023; Orca); notebook 07 reuses the formats and verifier.

Formats (``FORMATS``), each a prompt and a completion; the completion ends with the tokenizer's end of sequence:

* ``answer``:     ``"<question>\\n"`` -> ``"Answer: 14"``
* ``rationale``:  ``"<question>\\n"`` -> ``"12+5=17. 17-3=14. Answer: 14"`` (rationale, then answer)
* ``label`` and ``explain``, the two tasks of the multi-task student: ``"[label] <question>\\n"`` ->
  ``"Answer: 14"`` and ``"[rationale] <question>\\n"`` -> ``"12+5=17. 17-3=14."``; at inference it is asked
  with the ``[label]`` prefix and answers without writing a rationale.

``extract_answer`` reads the number after the last ``Answer:``, ``split_rationale`` splits a completion into
rationale and answer; ``check_rationale`` re-does every equation ``a op b = c`` and checks that each step starts
from the previous result and that the answer is the last result. ``majority_vote`` and ``filter_samples`` keep
the teacher's rationales whose answer is verified: by self-consistency (the majority answer over the teacher's
own samples, no labels needed) or by the gold answer.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

import torch

from kdlib.reasoning.arithmetic import MAX_VALUE, Problem, apply_op

__all__ = ["FORMATS", "ANSWER_PREFIX", "format_prompt", "format_completion", "format_example", "extract_answer",
           "verify_answers", "check_rationale", "majority_vote", "Kept", "filter_samples", "corrupt_rationale",
           "EQUATION", "format_texts", "evaluate_answers", "split_rationale", "constant_answer"]

ANSWER_PREFIX = "Answer:"
FORMATS = ("answer", "rationale", "label", "explain")
TASK_PREFIX = {"label": "[label] ", "explain": "[rationale] "}
ANSWER_RE = re.compile(r"Answer:\s*(-?\d+)")
EQUATION = re.compile(r"(-?\d+)\s*([-+*/])\s*(-?\d+)\s*=\s*(-?\d+)")


def format_prompt(question: str, fmt: str) -> str:
    """The prompt for ``fmt`` (one of ``FORMATS``): the question, with a task prefix for ``label``/``explain``,
    and a newline after which the completion starts."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return TASK_PREFIX.get(fmt, "") + question + "\n"


def format_completion(rationale: str | None, answer: int | str | None, fmt: str) -> str:
    """The completion for ``fmt``: ``Answer: a``, ``rationale Answer: a``, or (``explain``) the rationale alone."""
    if fmt in ("answer", "label"):
        return f"{ANSWER_PREFIX} {answer}"
    if fmt == "rationale":
        return f"{rationale} {ANSWER_PREFIX} {answer}"
    if fmt == "explain":
        return str(rationale)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def format_example(problem: Problem, fmt: str, rationale: str | None = None, answer: int | None = None
                   ) -> tuple[str, str]:
    """``(prompt, completion)`` for a problem; the gold rationale and answer unless others are given (a
    teacher's rationale and its answer, or a corrupted one)."""
    rationale = problem.rationale if rationale is None else rationale
    answer = problem.answer if answer is None else answer
    return format_prompt(problem.question, fmt), format_completion(rationale, answer, fmt)


def format_texts(problems: list[Problem]) -> list[str]:
    """Every prompt and completion of every format for these problems (a tokenizer's vocabulary source)."""
    return [part for p in problems for fmt in FORMATS for part in format_example(p, fmt)]


def extract_answer(text: str) -> int | None:
    """The integer after the last ``Answer:`` in ``text``, or None when there is none."""
    found = ANSWER_RE.findall(text)
    return int(found[-1]) if found else None


def split_rationale(text: str) -> tuple[str, int | None]:
    """A ``rationale``-format completion split back into ``(rationale, answer)``: the text before the first
    ``" Answer:"`` (the separator ``format_completion`` writes) and ``extract_answer(text)``, the integer after
    the last ``Answer:``. ``"12+5=17. 17-3=14. Answer: 14"`` gives ``("12+5=17. 17-3=14.", 14)``. A text with no
    ``" Answer:"`` is returned whole as the rationale (a text that *starts* with ``Answer:`` included), with
    answer None when it has none. Notebooks 06 and 07 train students on the teacher's rationales this way, each
    with the answer its filter verified."""
    return text.split(f" {ANSWER_PREFIX}")[0], extract_answer(text)


def verify_answers(texts: list[str], gold: list[int]) -> torch.Tensor:
    """1.0 where the answer extracted from ``texts[i]`` equals ``gold[i]``, else 0.0 (no answer counts as
    wrong), as a float tensor of shape ``(len(texts),)``; its mean is the accuracy."""
    if len(texts) != len(gold):
        raise ValueError(f"{len(texts)} texts but {len(gold)} gold answers")
    return torch.tensor([float(extract_answer(t) == int(g)) for t, g in zip(texts, gold)])


def check_rationale(text: str) -> bool:
    """True when ``text`` has at least one equation, every equation ``a op b = c`` is right, each one starts
    from the previous result, and the answer (if given) is the last result."""
    equations = EQUATION.findall(text.split(ANSWER_PREFIX)[0])
    if not equations:
        return False
    previous = None
    for a, op, b, c in equations:
        a, b, c = int(a), int(b), int(c)
        if previous is not None and a != previous:
            return False
        try:
            if apply_op(a, op, b) != c:
                return False
        except (ValueError, ZeroDivisionError):
            return False
        previous = c
    answer = extract_answer(text)
    return answer is None or answer == previous


def majority_vote(answers: list[int | None]) -> tuple[int | None, float]:
    """The most frequent answer among ``answers`` (None entries, samples with no answer, are ignored; ties go
    to the answer seen first) and its share of *all* samples. ``(None, 0.0)`` when nothing was answered."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0.0
    answer, n = counts.most_common(1)[0]
    return answer, n / len(answers)


@dataclass
class Kept:
    """The outcome of filtering: ``index`` (problem i), ``text`` (the kept sample) and ``answer`` per kept
    problem; ``keep`` (n_problems, k) marks every sample that passed; ``fraction`` = kept samples / samples."""

    index: list[int]
    texts: list[str]
    answers: list[int]
    keep: torch.Tensor

    @property
    def fraction(self) -> float:
        return float(self.keep.float().mean()) if self.keep.numel() else 0.0


def filter_samples(samples: list[list[str]], by: str = "vote", gold: list[int] | None = None,
                   min_share: float = 0.5) -> Kept:
    """Keep the teacher's samples whose answer is verified, one sample per problem for training.

    ``samples[i]`` are the teacher's k completions for problem i. ``by="vote"``: a sample passes when its
    answer is the majority answer of problem i's samples and that answer has at least ``min_share`` of the
    votes (self-consistency, Wang et al. 2023: no labels needed). ``by="gold"``: a sample passes when its
    answer equals ``gold[i]`` (needs labels: the contrast). The first passing sample of each problem is kept.
    """
    if by not in ("vote", "gold"):
        raise ValueError(f"by must be 'vote' or 'gold', got {by!r}")
    if by == "gold" and (gold is None or len(gold) != len(samples)):
        raise ValueError("by='gold' needs one gold answer per problem (gold=[...])")
    k = max((len(s) for s in samples), default=0)
    keep = torch.zeros(len(samples), k, dtype=torch.bool)
    index, texts, answers = [], [], []
    for i, texts_i in enumerate(samples):
        extracted = [extract_answer(t) for t in texts_i]
        if by == "vote":
            target, share = majority_vote(extracted)
            if share < min_share:
                continue
        else:
            target = int(gold[i])
        for j, a in enumerate(extracted):
            keep[i, j] = a is not None and a == target
        if keep[i].any():
            j = int(keep[i].nonzero()[0])
            index.append(i)
            texts.append(texts_i[j])
            answers.append(int(target))
    return Kept(index, texts, answers, keep)


def corrupt_rationale(rationale: str, rng: random.Random) -> tuple[str, int] | None:
    """A wrong but persuasive rationale: one step's result is off by a little (1 to 3, or a ten), and every
    later step is computed *correctly* from the wrong value, so the chain reads as consistent and ends at a
    wrong answer. Returns ``(rationale, answer)``, or None when no such change keeps all values in
    [1, MAX_VALUE] and every division whole."""
    equations = [(int(a), op, int(b)) for a, op, b, _ in EQUATION.findall(rationale)]
    if not equations:
        return None
    for _ in range(20):
        step = rng.randrange(len(equations))
        delta = rng.choice([-10, -3, -2, -1, 1, 2, 3, 10])
        x, out = equations[0][0], []
        try:
            for i, (_, op, b) in enumerate(equations):
                y = apply_op(x, op, b) + (delta if i == step else 0)
                if not 1 <= y <= MAX_VALUE:
                    raise ValueError
                out.append(f"{x}{op}{b}={y}.")
                x = y
        except ValueError:
            continue
        return " ".join(out), x
    return None


def evaluate_answers(texts: list[str], problems) -> dict:
    """Accuracy of the answers extracted from ``texts`` against the problems' gold answers: overall
    (``accuracy``), by number of steps (``by_steps``, {steps: accuracy}), ``n``, and ``right`` (1.0 or 0.0 per
    problem, in order: what a paired comparison of two models on the same problems needs)."""
    if len(texts) != len(problems):
        raise ValueError(f"{len(texts)} texts but {len(problems)} problems")
    right = verify_answers(texts, [p.answer for p in problems])
    by_steps: dict[int, list[float]] = {}
    for r, p in zip(right.tolist(), problems):
        by_steps.setdefault(p.steps, []).append(r)
    return {"accuracy": float(right.mean()) if len(right) else float("nan"), "n": len(problems),
            "by_steps": {s: sum(v) / len(v) for s, v in sorted(by_steps.items())}, "right": right.tolist()}


def constant_answer(train_answers: list[int], problems) -> dict:
    """The best constant answer, the floor a student must clear to show it learned more than the answers'
    prior: ``c = argmax_a count(a in train_answers)`` (the answer most frequent among the answers the student
    is trained on; ties go to the one seen first), scored on ``problems`` like ``evaluate_answers`` (accuracy
    ``= (1/n) sum_i [gold_i == c]``, by steps, per problem), with ``answer`` = c. It is computed from the
    training answers only, never from the evaluation split it is scored on. Notebook 06."""
    answers = [a for a in train_answers if a is not None]
    if not answers:
        raise ValueError("train_answers is empty: a constant answer needs the training answers to count")
    c = Counter(int(a) for a in answers).most_common(1)[0][0]
    return dict(evaluate_answers([f"{ANSWER_PREFIX} {c}"] * len(problems), problems), answer=c)
