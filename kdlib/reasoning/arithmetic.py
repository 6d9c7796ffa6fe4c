"""Multi-step arithmetic word problems with a gold rationale and answer: a task with ground truth for LLM
rationale and preference distillation. Notebooks 06 (rationale distillation) and 07 (DPO).

A problem is an opening sentence, 1 to 4 *step sentences* (each one arithmetic operation on the running
count) and a question::

    Ann has 12 apples. Ann buys 5 more. Ann gives 3 to Ben. How many apples does Ann have now?
    rationale: 12+5=17. 17-3=14.        answer: 14

Every value, intermediate results included, stays in [2, 99] so that (with ``kdlib.lm.small``'s tokenizer,
digits as separate tokens) a number is one or two tokens.

**Templates.** A problem's template is its sequence of step phrasings (``STEPS``, two phrasings for each of
``+ - * /``). Training-side splits (``pool``, ``unlabelled``, ``test``) use 1 to 3 steps and only *training
templates*; ``heldout`` uses templates never seen in training: step sequences of 2 or 3 phrasings that the
deterministic partition ``is_heldout_template`` sets aside, and every 4-step sequence (a step count never seen
in training). Every single phrasing appears in training, so held-out problems test *composition* of known
steps, not recall of whole problems. Every split is seeded and deterministic, and no question text occurs in
two splits.
"""
from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass

from kdlib.core.validate import whole

__all__ = ["Problem", "NAMES", "OBJECTS", "STEPS", "OPS", "SPLITS", "generate", "arithmetic_splits",
           "is_heldout_template", "templates", "apply_op", "MAX_VALUE", "equation_chains"]

NAMES = ("Ann", "Ben", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lee", "Max", "Ned", "Oli",
         "Pam")
OBJECTS = ("apples", "pens", "cards", "coins", "eggs", "books", "cups", "stamps", "shells", "beads")
# (operation, phrasing); {p} is the person who owns the objects, {q} someone else, {k} the operand
STEPS = (
    ("+", "{p} buys {k} more."),
    ("+", "{q} gives {p} {k} more."),
    ("-", "{p} gives {k} to {q}."),
    ("-", "{p} loses {k}."),
    ("*", "{p} now has {k} times as many."),
    ("*", "{q} gives {p} enough to have {k} times as many."),
    ("/", "{p} splits them into {k} equal piles and keeps one."),
    ("/", "{p} gives away all but one in every {k}."),
)
OPS = "+-*/"
OPENING = "{p} has {n} {obj}."
QUESTION = "How many {obj} does {p} have now?"
MAX_VALUE = 99
SPLITS = ("pool", "unlabelled", "test", "heldout")
TRAIN_STEPS = (1, 2, 3)
HELDOUT_STEPS = (2, 3, 4)


@dataclass(frozen=True)
class Problem:
    """One word problem. ``rationale`` is the gold chain of equations (``"12+5=17. 17-3=14."``), ``answer``
    the final count, ``steps`` the number of operations, ``template`` the indices into ``STEPS``."""

    question: str
    rationale: str
    answer: int
    steps: int
    template: tuple[int, ...]
    split: str


def apply_op(x: int, op: str, k: int) -> int:
    """The running count after one step; ``/`` is exact integer division (the generator only asks for it
    when ``k`` divides ``x``)."""
    if op == "+":
        return x + k
    if op == "-":
        return x - k
    if op == "*":
        return x * k
    if op == "/":
        if x % k:
            raise ValueError(f"{x}/{k} is not a whole number")
        return x // k
    raise ValueError(f"unknown operation {op!r}; use one of {OPS}")


def is_heldout_template(template: tuple[int, ...]) -> bool:
    """True for templates that only the held-out split uses: every 4-step sequence, and about a quarter of
    the 2- and 3-step sequences (a fixed hash partition, the same on every machine). 1-step templates are
    all training templates, so every phrasing is seen in training."""
    if len(template) >= 4:
        return True
    if len(template) <= 1:
        return False
    digest = hashlib.sha256(",".join(map(str, template)).encode()).digest()
    return digest[0] % 4 == 0


def templates(steps: int, heldout: bool) -> list[tuple[int, ...]]:
    """All step-phrasing sequences of length ``steps`` on the held-out (or training) side of the partition."""
    return [t for t in itertools.product(range(len(STEPS)), repeat=steps) if is_heldout_template(t) == heldout]


def _operand(rng: random.Random, x: int, op: str, cap: float = MAX_VALUE) -> int | None:
    if op == "+":
        return rng.randint(1, min(40, cap - x)) if x < cap else None
    if op == "-":
        return rng.randint(1, min(40, x - 2)) if x > 2 else None
    if op == "*":
        ks = [k for k in (2, 3, 4, 5) if x * k <= cap]
    else:
        ks = [k for k in (2, 3, 4, 5) if x % k == 0 and x >= 2 * k]
    return rng.choice(ks) if ks else None


def _run(rng: random.Random, x: int, ops, cap: float = MAX_VALUE) -> list[tuple[str, int, int]] | None:
    """The operations ``ops`` applied in turn from ``x``: ``(op, k, result)`` per step, or None when one of
    them has no valid operand. Results stay at most ``cap`` (``math.inf``: the operands' ranges alone)."""
    out = []
    for op in ops:
        k = _operand(rng, x, op, cap)
        if k is None:
            return None
        x = apply_op(x, op, k)
        out.append((op, k, x))
    return out


def _equations(x: int, run: list[tuple[str, int, int]]) -> str:
    """The gold rationale of a run from ``x``: ``"12+5=17. 17-3=14."``."""
    parts = []
    for op, k, y in run:
        parts.append(f"{x}{op}{k}={y}.")
        x = y
    return " ".join(parts)


def _problem(rng: random.Random, template: tuple[int, ...], split: str) -> Problem:
    for _ in range(1000):  # rejection sampling: restart when an operation has no valid operand
        p, q = rng.sample(NAMES, 2)
        obj = rng.choice(OBJECTS)
        x = rng.randint(2, 60)
        run = _run(rng, x, [STEPS[t][0] for t in template])
        if run is None:
            continue
        sentences = [OPENING.format(p=p, n=x, obj=obj)]
        sentences += [STEPS[t][1].format(p=p, q=q, k=k) for t, (_, k, _) in zip(template, run)]
        sentences.append(QUESTION.format(obj=obj, p=p))
        return Problem(" ".join(sentences), _equations(x, run), run[-1][2], len(template), tuple(template), split)
    raise RuntimeError(f"could not find valid values for template {template}")


def equation_chains(n: int, seed: int = 0, max_steps: int = 4) -> list[str]:
    """``n`` chains of 1 to ``max_steps`` random operations on listed numbers: the numbers in the order they are
    used, a colon, then the equations in the gold rationale format (``"36 2 9: 36*2=72. 72-9=63."``), with the
    problems' operations and value range but no word problem. The "pretraining text" of notebook 06's base
    student: it learns to compute and to take its operands from the text before it, not to read a problem.
    Deterministic in ``seed``."""
    n, max_steps = whole("n", n, 0), whole("max_steps", max_steps, 1)
    rng = random.Random(f"kdlib-equations-{seed}")
    out = []
    while len(out) < n:
        x = rng.randint(2, 60)
        run = _run(rng, x, [rng.choice(OPS) for _ in range(rng.randint(1, max_steps))])
        if run is not None:
            out.append(" ".join(str(v) for v in [x] + [k for _, k, _ in run]) + ": " + _equations(x, run))
    return out


def generate(n: int, split: str = "pool", seed: int = 0, steps: tuple[int, ...] | None = None,
             exclude: set[str] | frozenset = frozenset()) -> list[Problem]:
    """``n`` problems of ``split`` (one of ``SPLITS``), deterministic in ``(split, seed)``.

    Training-side splits draw 1-3 steps uniformly and a training template uniformly among those of that
    length; ``heldout`` draws 2-4 steps and a held-out template. ``steps`` restricts the step counts (it must
    be a subset of the split's). Questions in ``exclude`` (and repeats) are skipped.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    allowed = HELDOUT_STEPS if split == "heldout" else TRAIN_STEPS
    steps = tuple(steps or allowed)
    if not set(steps) <= set(allowed):
        raise ValueError(f"split {split!r} has problems with {allowed} steps, not {steps}")
    heldout = split == "heldout"
    pools = {s: templates(s, heldout) for s in steps}
    rng = random.Random(f"kdlib-arithmetic-{split}-{seed}")
    seen, out = set(exclude), []
    for _ in range(50 * n + 100):
        if len(out) == n:
            break
        s = rng.choice(steps)
        problem = _problem(rng, rng.choice(pools[s]), split)
        if problem.question not in seen:
            seen.add(problem.question)
            out.append(problem)
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} distinct {split} problems found, asked for {n}")
    return out


def arithmetic_splits(n_pool: int, n_unlabelled: int, n_test: int, n_heldout: int, seed: int = 0
                      ) -> dict[str, list[Problem]]:
    """The four splits, with no question in two of them:

    * ``pool``: labelled problems (gold rationale and answer) the teacher is trained on;
    * ``unlabelled``: problems the teacher writes rationales for and the students learn from (their gold
      labels are used only for the contrast of filtering by the gold answer);
    * ``test``: unseen problems from the training templates (in distribution);
    * ``heldout``: held-out templates and step counts (the generalisation test).
    """
    out: dict[str, list[Problem]] = {}
    used: set[str] = set()
    for split, n in (("pool", n_pool), ("unlabelled", n_unlabelled), ("test", n_test), ("heldout", n_heldout)):
        out[split] = generate(n, split, seed, exclude=used)
        used |= {p.question for p in out[split]}
    return out
