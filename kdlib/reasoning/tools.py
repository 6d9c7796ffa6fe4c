"""Tool calls in a fixed, parseable format, and a runtime that executes them and never crashes (notebook 08).

A **tool trace** writes each step of a word problem as a call whose result the runtime fills in::

    question ...\\n  calc(120+35)=155. calc(155-12)=143. Answer: 143

The model writes ``calc(120+35)=``; generation pauses at the ``=`` that closes a call, the runtime parses the
call, runs the tool and appends its result and a full stop (``155.``), and generation resumes. Arithmetic is the
tool's job, so a trace generalises to numbers the model never saw as long as it copies operands correctly, which
a rationale (``120+35=155.``, the model computing) cannot.

**The ``ans`` register.** A later call may write ``ans`` for the previous call's result (``calc(36*3)=108.
calc(ans/4)=27.``), as on a pocket calculator: the model then never copies a result, only the question's numbers,
so results outside the range it trained on cost it nothing (notebook 08's out-of-range split). ``ans`` is the last
*successful* result; using it before any call returned one is a bad-arguments failure.

Everything a model writes is data, never code: ``parse_call`` and ``execute`` turn every malformed call into a
failed ``ToolCall`` with its reason (``unparseable``, ``unknown tool``, ``bad arguments``, ``tool error``), and
``complete_with_tools`` writes ``ERROR`` as that call's result and goes on; nothing a model writes can raise.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kdlib.core.validate import whole
from kdlib.reasoning.arithmetic import apply_op

__all__ = ["ToolCall", "calculator", "TOOLS", "parse_call", "execute", "trace_calls", "to_tool_trace", "to_rationale",
           "run_trace", "complete_with_tools", "run_call", "call_metrics", "execution_ok", "last_result", "ANS",
           "FAILURES"]

FAILURES = ("unparseable", "unknown tool", "bad arguments", "tool error")
CALL_AT_END = re.compile(r"([A-Za-z_]\w*)\(([^()]*)\)=$")
CALL_IN_TEXT = re.compile(r"([A-Za-z_]\w*)\(([^()]*)\)=(\S*?)\.(?=\s|$)")
ARITHMETIC = re.compile(r"^\s*(-?\d+)\s*([-+*/])\s*(-?\d+)\s*$")
EQUATION_STEP = re.compile(r"(-?\d+)\s*([-+*/])\s*(-?\d+)\s*=\s*(-?\d+)\.")
ANS = "ans"
ANS_WORD = re.compile(rf"\b{ANS}\b")


@dataclass(frozen=True)
class ToolCall:
    """One call as the model wrote it: ``name``, ``args`` (the text between the brackets), the ``result`` the
    tool returned (text) or None, and when it failed, ``reason`` (one of ``FAILURES``) and ``detail``."""

    name: str
    args: str
    result: str | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def calculator(args: str) -> int:
    """``calc(a op b)``: integers ``a``, ``b`` and one of ``+ - * /``; division must be exact. ValueError on
    anything else (the runtime records it as bad arguments)."""
    match = ARITHMETIC.match(args)
    if not match:
        raise ValueError(f"expected 'a op b' with whole numbers and one of + - * /, got {args!r}")
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    if op == "/" and b == 0:
        raise ValueError(f"{a}/0: division by zero")
    return apply_op(a, op, b)  # the problems' own arithmetic: exact division or ValueError


TOOLS: dict[str, Callable[[str], object]] = {"calc": calculator}


def execute(name: str, args: str, tools: dict[str, Callable[[str], object]] | None = None,
            ans: str | None = None) -> ToolCall:
    """Run ``tools[name](args)``, with ``ans`` written for the word ``ans`` in ``args``, and return the call (its
    arguments as written) with its result, or with the reason it failed: an unknown tool, bad arguments (``ans``
    with no previous result, or the tool raised ValueError or TypeError) or a tool error (anything else it
    raised)."""
    tools = TOOLS if tools is None else tools
    if name not in tools:
        return ToolCall(name, args, reason="unknown tool", detail=f"no tool {name!r}; known: {', '.join(tools)}")
    if ans is None and ANS_WORD.search(args):
        return ToolCall(name, args, reason="bad arguments", detail=f"{ANS!r} used before any call returned a result")
    try:
        return ToolCall(name, args, result=str(tools[name](ANS_WORD.sub(ans, args) if ans is not None else args)))
    except (ValueError, TypeError) as err:
        return ToolCall(name, args, reason="bad arguments", detail=str(err))
    except Exception as err:  # noqa: BLE001 - a tool's failure is data about the model's call, never a crash
        return ToolCall(name, args, reason="tool error", detail=f"{type(err).__name__}: {err}")


def last_result(calls: list[ToolCall]) -> str | None:
    """The result of the last successful call (what ``ans`` stands for next), or None."""
    return next((c.result for c in reversed(calls) if c.ok), None)


def parse_call(text: str) -> tuple[str, str] | ToolCall:
    """The call that ``text`` ends with (``...calc(12+5)=``) as ``(name, args)``, or a failed ``ToolCall``
    (``unparseable``) when the text ends in ``=`` but not in a well-formed ``name(args)=``."""
    match = CALL_AT_END.search(text)
    if match:
        return match.group(1), match.group(2)
    tail = text[-40:].split(".")[-1].strip()
    return ToolCall(tail, "", reason="unparseable", detail=f"expected name(arguments)= at the end, got {tail!r}")


def complete_with_tools(continue_text: Callable[[str], str], prompt: str, max_calls: int = 8,
                        tools: dict[str, Callable[[str], object]] | None = None) -> tuple[str, list[ToolCall]]:
    """Generate with tools: ``continue_text(text)`` returns the model's next piece of text, stopping early after
    an ``=`` (a model that pauses there for the runtime). While the text ends with ``=``, the call is parsed and
    executed, ``result.`` (or ``ERROR.``) is appended, and the model continues, for at most ``max_calls`` calls.
    Returns the completion (without ``prompt``) and the calls in order."""
    max_calls = whole("max_calls", max_calls, 0)
    text, calls = prompt, []
    while True:
        text += continue_text(text)
        if not text.endswith("=") or len(calls) >= max_calls:
            return text[len(prompt):], calls
        text += run_call(text, calls, tools)


def run_call(text: str, calls: list[ToolCall], tools: dict[str, Callable[[str], object]] | None = None) -> str:
    """The runtime's step once a model has written ``...name(args)=``: parse the call ``text`` ends with, execute
    it with ``ans`` the last successful result of ``calls``, append it to ``calls``, and return what the runtime
    writes next, ``result.`` or ``ERROR.`` (``complete_with_tools`` and the batched ``ToolRuntime`` share it)."""
    parsed = parse_call(text)
    call = parsed if isinstance(parsed, ToolCall) else execute(*parsed, tools=tools, ans=last_result(calls))
    calls.append(call)
    return (call.result if call.ok else "ERROR") + "."


def trace_calls(trace: str, tools: dict[str, Callable[[str], object]] | None = None) -> list[ToolCall]:
    """Every ``name(args)=result.`` of a finished trace, executed again: a call whose tool fails keeps its
    reason, and one whose recorded result differs from the tool's is a ``tool error`` ("recorded ... but")."""
    calls = []
    for match in CALL_IN_TEXT.finditer(trace):
        call = execute(match.group(1), match.group(2), tools, ans=last_result(calls))
        if call.ok and call.result != match.group(3):
            call = ToolCall(call.name, call.args, reason="tool error",
                            detail=f"recorded {match.group(3)!r} but the tool returns {call.result!r}")
        calls.append(call)
    return calls


def run_trace(trace: str) -> list[tuple[bool, str]]:
    """Notebook 08's exercise: per call of a finished trace, ``(True, result)`` when it runs and the trace recorded
    the tool's result, else ``(False, reason)`` (``trace_calls`` in two words)."""
    return [(c.ok, c.result if c.ok else c.reason) for c in trace_calls(trace)]


def to_tool_trace(rationale: str, ans: bool = False) -> str:
    """A gold rationale (``"12+5=17. 17-3=14."``) as a tool trace (``"calc(12+5)=17. calc(17-3)=14."``); with
    ``ans=True`` a step that starts from the previous result writes ``ans`` instead (``calc(ans-3)=14.``)."""
    steps = EQUATION_STEP.findall(rationale)
    if not steps:
        raise ValueError(f"no equation 'a op b=c.' in {rationale!r}")
    calls, previous = [], None
    for a, op, b, c in steps:
        calls.append(f"calc({ANS if ans and a == previous else a}{op}{b})={c}.")
        previous = c
    return " ".join(calls)


def to_rationale(trace: str, tools: dict[str, Callable[[str], object]] | None = None) -> str:
    """A tool trace read back as a rationale, each call's equation with ``ans`` written out as the value it stood
    for (``"calc(36*3)=108. calc(ans/4)=27."`` -> ``"36*3=108. 108/4=27."``): notebook 08's rationale students learn
    the teacher's traces this way. ValueError when the trace has no call or a call failed (filter by execution
    first)."""
    calls = trace_calls(trace, tools)
    failed = [c for c in calls if not c.ok]
    if not calls or failed:
        raise ValueError(f"only a trace whose calls all ran reads as a rationale; {trace!r} has "
                         + (f"a failed call ({failed[0].reason}: {failed[0].detail})" if failed else "no call"))
    parts, previous = [], None
    for call in calls:
        args = call.args.replace(" ", "")
        parts.append(f"{ANS_WORD.sub(previous, args) if previous is not None else args}={call.result}.")
        previous = call.result
    return " ".join(parts)


def call_metrics(predicted: list[list[ToolCall]], gold: list[list[ToolCall]]) -> dict:
    """Per-trace scores averaged over traces: ``tool_call_accuracy`` (the same number of calls with the same tool
    names, in order), ``argument_match`` (the share of gold calls whose arguments the trace wrote exactly, at the
    same position) and ``execution_success`` (the share of the trace's calls that ran; 1 for a trace without
    calls). ``predicted`` and ``gold`` hold one list of calls per trace."""
    if len(predicted) != len(gold) or not gold:
        raise ValueError(f"need one list of calls per trace for both, got {len(predicted)} predicted and "
                         f"{len(gold)} gold traces")
    same_tools = args = runs = 0.0
    for pred, want in zip(predicted, gold):
        same_tools += [c.name for c in pred] == [c.name for c in want]
        args += (sum(p.args.replace(" ", "") == w.args.replace(" ", "") for p, w in zip(pred, want))
                 / max(1, len(want)))
        runs += sum(c.ok for c in pred) / len(pred) if pred else 1.0
    n = len(gold)
    return {"tool_call_accuracy": same_tools / n, "argument_match": args / n, "execution_success": runs / n}


def execution_ok(trace: str, answer: int | None, tools: dict[str, Callable[[str], object]] | None = None) -> bool:
    """The pipeline's execution check: the trace has at least one call, every call runs and its recorded result
    is the tool's, and ``answer`` (the trace's final answer) is the last call's result."""
    calls = trace_calls(trace, tools)
    return bool(calls) and all(c.ok for c in calls) and answer is not None and calls[-1].result == str(answer)
