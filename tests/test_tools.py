"""The tool-call runtime of notebook 08: every malformed call a model can write is recorded with its reason,
and nothing it writes crashes generation or evaluation."""
import pytest

from kdlib.reasoning.tools import (ToolCall, calculator, call_metrics, complete_with_tools, execute, execution_ok,
                                   parse_call, to_tool_trace, trace_calls)


def test_calculator_is_exact_arithmetic_on_whole_numbers_of_any_size():
    assert calculator("120+35") == 155 and calculator(" 7 * 12 ") == 84 and calculator("-3-4") == -7
    assert calculator("144/12") == 12 and calculator("123456789*1000") == 123456789000
    for bad in ("7/2", "7/0", "1+2+3", "a+b", "", "2**3"):
        with pytest.raises(ValueError):
            calculator(bad)


def test_every_failure_is_a_call_with_its_reason():
    assert execute("calc", "12+5") == ToolCall("calc", "12+5", result="17")
    unknown = execute("search", "weather")
    assert unknown.reason == "unknown tool" and "calc" in unknown.detail and not unknown.ok
    bad = execute("calc", "12+")
    assert bad.reason == "bad arguments" and "a op b" in bad.detail

    def broken(args):
        raise RuntimeError("the database is down")

    failed = execute("lookup", "x", tools={"lookup": broken})
    assert failed.reason == "tool error" and "RuntimeError: the database is down" in failed.detail
    assert parse_call("Ann has 12. calc(12+5)=") == ("calc", "12+5")
    garbled = parse_call("Ann has 12. calc(12+5=")
    assert isinstance(garbled, ToolCall) and garbled.reason == "unparseable"


def test_generation_with_tools_fills_results_and_survives_malformed_calls():
    script = iter(["calc(120+35)=", " calc(155-12)=", " calc(7/0)=", " calc(143=", " wurst(1)=", " Answer: 143"])
    text, calls = complete_with_tools(lambda so_far: next(script), "Q\n")
    assert text == ("calc(120+35)=155. calc(155-12)=143. calc(7/0)=ERROR. calc(143=ERROR. wurst(1)=ERROR."
                    " Answer: 143")
    assert [c.reason for c in calls] == [None, None, "bad arguments", "unparseable", "unknown tool"]
    # a model that never stops calling is cut after max_calls
    text, calls = complete_with_tools(lambda so_far: " calc(1+1)=", "Q\n", max_calls=3)
    assert len(calls) == 3 and text.endswith("calc(1+1)=")
    with pytest.raises(ValueError, match="max_calls"):
        complete_with_tools(lambda so_far: "", "Q\n", max_calls=-1)


def test_traces_are_checked_call_by_call_and_scored_against_gold():
    gold = to_tool_trace("120+35=155. 155-12=143.")
    assert gold == "calc(120+35)=155. calc(155-12)=143."
    assert all(c.ok for c in trace_calls(gold))
    wrong = trace_calls("calc(120+35)=154. calc(155-12)=143. calc(9/2)=4.")
    assert [c.reason for c in wrong] == ["tool error", None, "bad arguments"]
    assert "recorded '154'" in wrong[0].detail
    predicted = [trace_calls(gold), trace_calls("calc(120+36)=156."), []]
    metrics = call_metrics(predicted, [trace_calls(gold)] * 3)
    assert metrics["tool_call_accuracy"] == pytest.approx(1 / 3)
    assert metrics["argument_match"] == pytest.approx((1 + 0 + 0) / 3)
    assert metrics["execution_success"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one list of calls per trace"):
        call_metrics(predicted, [])
    with pytest.raises(ValueError, match="no equation"):
        to_tool_trace("Answer: 3")


def test_execution_check_of_the_pipeline():
    trace = "calc(120+35)=155. calc(155-12)=143."
    assert execution_ok(trace, 143)
    assert not execution_ok(trace, 142)  # the answer is not the last result
    assert not execution_ok(trace, None)
    assert not execution_ok("calc(120+35)=154. calc(154-12)=142.", 142)  # a recorded result the tool disagrees with
    assert not execution_ok("calc(7/2)=3.", 3) and not execution_ok("no calls at all", 5)


def test_the_ans_register_stands_for_the_last_successful_result():
    gold = to_tool_trace("36*3=108. 108/4=27. 27+5=32.", ans=True)
    assert gold == "calc(36*3)=108. calc(ans/4)=27. calc(ans+5)=32."
    assert to_tool_trace("12+5=17. 3+4=7.", ans=True) == "calc(12+5)=17. calc(3+4)=7."  # not chained: no ans
    assert [c.result for c in trace_calls(gold)] == ["108", "27", "32"] and execution_ok(gold, 32)
    assert execute("calc", "ans*2", ans="21").result == "42" and execute("calc", "ans*2", ans="21").args == "ans*2"
    early = execute("calc", "ans+1")
    assert early.reason == "bad arguments" and "before any call" in early.detail
    assert execute("calc", "answer+1", ans="3").reason == "bad arguments"  # only the word ans is the register
    script = iter(["calc(ans+1)=", " calc(7*5)=", " calc(ans/0)=", " calc(ans-5)=", ""])
    text, calls = complete_with_tools(lambda so_far: next(script), "Q\n")
    assert text == "calc(ans+1)=ERROR. calc(7*5)=35. calc(ans/0)=ERROR. calc(ans-5)=30."  # failures skip ans
    assert [c.reason for c in calls] == ["bad arguments", None, "bad arguments", None]
