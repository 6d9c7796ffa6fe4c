"""What the exercise checker (``kdlib.teaching.checks``) says about one call of a learner's function.

Every learner mistake becomes a sentence, never a crash of the checker:

* ``fresh(args)``: a deep copy of a case's inputs (tensors cloned, modules deep-copied), one per call, so that
  neither the reference nor another call ever sees what a learner's function did to its inputs;
* ``changed(before, after, names)``: which input a call modified in place (``x.mul_(2)``, ``x[0] = 0``, a
  module's weights), or None;
* ``problem(got, want, rtol, atol)``: why a result is wrong, or None when it matches the reference: None
  (a forgotten ``return``), a string or another non-tensor, a wrong dtype kind (int for float, float for int
  ids), a wrong device, a wrong shape, NaN or inf where the reference is finite, or values that differ
  ("differs from the reference"); a plain number stands for a number, never for a tensor (a loss must stay a
  tensor so that ``.backward()`` works);
* ``describe(value)``: a short, safe text of any value (a learner's object may fail to print);
* ``judge(fn, args, want)``: one call on a fresh copy, judged: None (right), ``NOT_SOLVED`` (a stub) or the
  verdict text.
"""
from __future__ import annotations

import copy
import math
import numbers

import torch
from torch import nn

DIFFERS = "differs from the reference"
NOT_SOLVED = "not solved yet"  # judge's answer for a stub that raises NotImplementedError


def fresh(value):
    """A deep copy of ``value``: tensors cloned (keeping ``requires_grad``), modules, lists, tuples and dicts
    copied all the way down, so that whatever the callee does to its copy leaves ``value`` untouched."""
    if isinstance(value, torch.Tensor):
        out = value.detach().clone()
        return out.requires_grad_(True) if value.requires_grad and out.is_floating_point() else out
    if type(value) in (list, tuple):
        return type(value)(fresh(v) for v in value)
    if type(value) is dict:
        return {k: fresh(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
                and (torch.equal(a, b) or (a.is_floating_point() and
                                           torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))))
    if isinstance(a, nn.Module):
        if not isinstance(b, nn.Module) or a.training != b.training:
            return False
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(_same(sa[k], sb[k]) for k in sa)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a is b or (type(a) is type(b) and bool(a == b))


def changed(before: tuple, after: tuple, names: list[str] | None = None) -> str | None:
    """The inputs that a call changed in place (``after``: the copies it was given; ``before``: the pristine
    inputs), as text, or None when it changed nothing."""
    names = names or []
    out = []
    for k, (a, b) in enumerate(zip(before, after)):
        try:
            same = _same(a, b)
        except Exception:  # a learner may put anything into a list it was given
            same = False
        if not same:
            out.append(f"argument {k}" + (f" ({names[k]})" if k < len(names) else ""))
    return ", ".join(out) or None


def describe(value, limit: int = 200) -> str:
    """A short text of ``value``: a tensor's shape, dtype and device when unusual, and first values; anything
    else by ``repr``, cut at ``limit`` characters. Never raises."""
    try:
        if isinstance(value, torch.Tensor):
            kind = "" if value.dtype == torch.float32 else f" {value.dtype}"
            where = "" if value.device.type == "cpu" else f" on {value.device}"
            if value.device.type == "meta" or value.is_sparse:
                return f"tensor{tuple(value.shape)}{kind}{where}"
            text = f"tensor{tuple(value.shape)}{kind}{where} {value.detach().flatten()[:6].cpu().tolist()}"
            return text + (" ..." if value.numel() > 6 else "")
        text = repr(value)
    except Exception:
        return f"<a {type(value).__name__} that cannot be shown>"
    return text if len(text) <= limit else text[:limit] + " ..."


def _a(value) -> str:
    """'None', 'a str', 'a list', ...: what kind of thing ``value`` is."""
    return "None" if value is None else f"a {type(value).__name__}"


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    return "floating-point" if dtype.is_floating_point else "complex" if dtype.is_complex else "integer"


def _tensor_problem(got, want: torch.Tensor, rtol: float, atol: float) -> str | None:
    if not isinstance(got, torch.Tensor):
        why = " (keep the result a tensor: no .item() or float(), so that .backward() still works)" \
            if isinstance(got, numbers.Number) else ""
        return f"returned {_a(got)} ({describe(got, 60)}), expected a tensor of shape {tuple(want.shape)}{why}"
    if _kind(got.dtype) != _kind(want.dtype):
        article = "an" if _kind(want.dtype) == "integer" else "a"
        return (f"returned a tensor of dtype {got.dtype}, expected {article} {_kind(want.dtype)} tensor (the "
                f"reference returns {want.dtype})")
    if got.device != want.device:
        return f"returned a tensor on {got.device}, expected one on {want.device} (where the inputs are)"
    if got.shape != want.shape:
        hint = " (a loss is one number: reduce over the batch)" if want.dim() == 0 and got.numel() > 1 else ""
        return f"{DIFFERS}: returned shape {tuple(got.shape)}, expected {tuple(want.shape)}{hint}"
    if got.is_sparse or got.layout != want.layout:
        return f"returned a tensor of layout {got.layout}, expected {want.layout}"
    got = got.detach()
    if want.dtype.is_floating_point or want.dtype.is_complex:
        bad = ~torch.isfinite(got) & torch.isfinite(want)
        if bad.any():
            return (f"{DIFFERS}: returned NaN or inf in {int(bad.sum())} of {got.numel()} entries where the "
                    "reference is finite")
        close = torch.allclose(got.to(want.dtype), want, rtol=rtol, atol=atol, equal_nan=True)
    else:
        close = torch.equal(got.to(want.dtype), want)
    return None if close else DIFFERS


def _number_problem(got, want, rtol: float, atol: float) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1 and _kind(got.dtype) in ("floating-point", "integer"):
        got = got.detach().cpu().item()  # a one-number tensor stands for a number
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return f"returned {_a(got)} ({describe(got, 60)}), expected a number"
    got, want = float(got), float(want)
    if not math.isfinite(want):  # inf or NaN: only the same value matches (inf - x <= inf would pass anything)
        return None if got == want or (math.isnan(got) and math.isnan(want)) else DIFFERS
    if not math.isfinite(got):
        return f"{DIFFERS}: returned {got} where the reference is finite"
    return None if abs(got - want) <= atol + rtol * abs(want) or got == want else DIFFERS


def problem(got, want, rtol: float = 1e-4, atol: float = 1e-5) -> str | None:
    """Why ``got`` (a learner's result) is not the reference's ``want``, as text, or None when it matches
    (``torch.allclose`` with ``rtol``, ``atol``; NaN matches NaN). Well-formed but wrong values start with
    ``DIFFERS``. May raise on objects that cannot be compared: ``judge`` turns that into a verdict too."""
    if got is None:
        return "returned None: did you forget `return`?"
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"returned {describe(got, 60)}, expected a {type(want).__name__} of {len(want)} values"
        for i, (g, w) in enumerate(zip(got, want)):
            wrong = problem(g, w, rtol, atol) if g is not None else "returned None"
            if wrong:
                return wrong if wrong.startswith(DIFFERS) else f"{wrong} (value {i} of the {len(want)} returned)"
        return None
    if isinstance(want, torch.Tensor):
        return _tensor_problem(got, want.detach(), rtol, atol)
    if isinstance(want, numbers.Real) and not isinstance(want, bool):
        return _number_problem(got, want, rtol, atol)
    return None if type(got) is type(want) and bool(got == want) else DIFFERS


def _text(err: BaseException) -> str:
    try:
        text = str(err) or "(no message)"
        return text if len(text) <= 300 else text[:300] + " ..."
    except Exception:
        return "(a message that cannot be shown)"


def judge(fn, args: tuple, want, rtol: float = 1e-4, atol: float = 1e-5, names: list[str] | None = None
          ) -> str | None:
    """Call ``fn`` on a fresh copy of ``args`` and judge it against the reference's result ``want``: None when it
    matches and left its copy unchanged, ``NOT_SOLVED`` for a stub, else the verdict: what went wrong (an
    exception with its type and message, ``problem``'s sentence, a change of the inputs), then the inputs,
    expected and got. Never raises on anything ``fn`` does (only ``KeyboardInterrupt`` and the like pass)."""
    mine = fresh(args)
    shown = ", ".join(describe(a) for a in args)
    try:
        got = fn(*mine)
    except NotImplementedError:
        return NOT_SOLVED
    except Exception as err:  # a learner's bug: show it, keep the notebook running
        return f"raised {type(err).__name__}: {_text(err)}\n    inputs: {shown}"
    mutated = changed(args, mine, names)
    try:
        wrong = problem(got, want, rtol, atol)
    except Exception as err:  # an object that cannot even be compared
        wrong = f"returned {describe(got, 60)}, which cannot be compared ({type(err).__name__}: {_text(err)})"
    if not wrong and not mutated:
        return None
    head = wrong or f"changed its inputs in place ({mutated}), though its result is right"
    also = f"\n    it also changed its inputs in place: {mutated}" if wrong and mutated else ""
    fix = "\n    work on copies (x * 2, not x.mul_(2) or x[...] = ...): a caller's inputs must stay as they were" \
        if mutated else ""
    return (f"{head}\n    inputs:   {shown}\n    expected: {describe(want)}\n    got:      {describe(got)}"
            f"{also}{fix}")
