"""What the autograded cells of a course notebook call (``kdlib.teaching.classroom`` writes those cells).

* ``examples(name, fn)``: the visible cases (the ones ``check`` runs in the exercise cell) must all pass;
* ``hidden(name, fn)``: the hidden cases (the visible ones and ``kdlib.teaching.bugs.EXTRA_CASES``) must pass; a
  failure names the classic mistake the learner's result matches (``kdlib.teaching.bugs.BUGS``: ``T^2`` missing,
  KL reversed, ``mean`` instead of ``batchmean``, the prompt not masked, ...) when it matches one;
* both first refuse a function that is not written in the notebook (``written_here``): kdlib's reference imported
  under the exercise's name, or a function that calls it or imports from kdlib;
* ``predicted(**values)``: a predict-then-run cell was filled in (graded for completion, not for being right).

Each raises ``AssertionError`` with a sentence the feedback shows; none returns a score (nbgrader scores a cell
by whether it raised).
"""
from __future__ import annotations

import dis
import inspect
import types
from typing import Callable

from kdlib.teaching.bugs import BUGS, EXTRA_CASES
from kdlib.teaching.checks import _REGISTRY, _argument_names, _reference
from kdlib.teaching.verdicts import NOT_SOLVED, fresh, judge, problem


def _codes(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def written_here(name: str, fn) -> str | None:
    """Why ``fn`` is not the learner's own code for exercise ``name`` (None when it is): it is the reference, is
    defined in a kdlib module, imports kdlib, or calls the reference or a kdlib module from the notebook."""
    reference = _reference(name)
    if fn is reference:
        return f"{name} is kdlib's reference itself: write the function in the exercise cell instead of importing it"
    module = getattr(fn, "__module__", None) or ""
    if module.split(".")[0] == "kdlib":
        return f"{name} comes from {module}, not from this notebook: write it in the exercise cell"
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"{name} is not a function written in this notebook (got {type(fn).__name__})"
    names = dict(getattr(fn, "__globals__", {}))
    names.update({var: cell.cell_contents for var, cell in zip(code.co_freevars, fn.__closure__ or ())
                  if _filled(cell)})
    for part in _codes(code):
        for ins in dis.get_instructions(part):
            if ins.opname == "IMPORT_NAME" and str(ins.argval).split(".")[0] == "kdlib":
                return f"{name} imports {ins.argval}: write the computation yourself, without kdlib"
        for used in (*part.co_names, *part.co_freevars):
            obj = names.get(used)
            if obj is reference or (inspect.ismodule(obj) and obj.__name__.split(".")[0] == "kdlib"):
                return f"{name} calls kdlib ({used}) instead of computing the result itself"
    return None


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # a closure variable not assigned yet
        return False
    return True


def _cases(name: str, hidden: bool) -> list[tuple]:
    _reference(name)  # imports the registered cases too
    cases = list(_REGISTRY[name][1]())
    return cases + list(EXTRA_CASES[name]()) if hidden and name in EXTRA_CASES else cases


def diagnose(name: str, fn: Callable, args: tuple, rtol: float = 1e-4, atol: float = 1e-5) -> str | None:
    """The label of the known bug of ``name`` whose result ``fn`` returns on ``args`` (None when none matches)."""
    try:
        got = fn(*fresh(args))
    except Exception:
        return None
    for label, buggy in BUGS.get(name, []):
        try:
            if problem(got, buggy(*fresh(args)), rtol, atol) is None:
                return label
        except Exception:  # a bug that cannot run on this case tells nothing
            continue
    return None


def first_failure(name: str, fn: Callable, hidden: bool = True, rtol: float = 1e-4, atol: float = 1e-5
                  ) -> str | None:
    """The first case of exercise ``name`` (hidden or visible) that ``fn`` fails, as a sentence naming the known
    bug its result matches when one does, or None when it passes them all. Does not ask who wrote ``fn``."""
    reference, names = _reference(name), _argument_names(_reference(name))
    which = "hidden" if hidden else "example"
    for i, args in enumerate(_cases(name, hidden)):
        verdict = judge(fn, args, reference(*fresh(args)), rtol, atol, names)
        if verdict == NOT_SOLVED:
            return f"{name}: not solved yet (the function raises NotImplementedError)"
        if verdict:
            bug = diagnose(name, fn, args, rtol, atol)
            head = f"{name}: {which} case {i} fails"
            return f"{head}: looks like {bug}" if bug else f"{head}: {verdict}"
    return None


def _run(name: str, fn: Callable, hidden: bool, rtol: float, atol: float) -> None:
    why = written_here(name, fn) or first_failure(name, fn, hidden, rtol, atol)
    if why:
        raise AssertionError(why)


def examples(name: str, fn: Callable, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Assert that ``fn``, written in the notebook, passes exercise ``name``'s visible cases."""
    _run(name, fn, False, rtol, atol)


def hidden(name: str, fn: Callable, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Assert that ``fn``, written in the notebook, passes exercise ``name``'s hidden cases; name the bug if not."""
    _run(name, fn, True, rtol, atol)


def predicted(**values) -> None:
    """Assert that each prediction was written (not None, ``...`` or blank): completion, not correctness."""
    missing = [k for k, v in values.items() if v is None or v is Ellipsis or (isinstance(v, str) and not v.strip())]
    if missing:
        raise AssertionError(f"no prediction written for {', '.join(missing)}: replace None with your prediction "
                             "before you run the experiment")
