"""Notebook 08's world: out-of-range problems, distractors and the policy slice, checked against the
arithmetic they claim."""
import random
import re

import pytest

from kdlib.lm.small import build_tokenizer
from kdlib.reasoning.arithmetic import MAX_VALUE, arithmetic_splits, generate
from kdlib.reasoning.rationale import FORMATS, check_rationale, format_example
from kdlib.reasoning.tools import trace_calls
from kdlib.reasoning.world import (POLICY, REFUSAL, must_refuse, policy_problems, refusal_example, refusal_rates,
                                  refused, scaled_problems, tool_example, trace_answer, wide_result_problems,
                                  with_distractor, world_texts)


def _numbers(text):
    return [int(t) for t in re.findall(r"\d+", text)]


def test_scaled_problems_are_consistent_and_out_of_range():
    problems = scaled_problems(60, seed=0)
    assert len(problems) == 60 and scaled_problems(60, seed=0) == problems  # deterministic
    for p in problems:
        assert check_rationale(f"{p.rationale} Answer: {p.answer}")  # every equation right, chained
        assert max(_numbers(p.rationale)) > MAX_VALUE  # something the students never saw
        # the question holds the rationale's opening number and operands, in order
        opening = _numbers(p.question)[0]
        assert p.rationale.startswith(f"{opening}")
    # the same templates as the in-range problems of the split
    assert [p.template for p in problems] == [p.template for p in generate(60, "test", 0)]
    with pytest.raises(ValueError, match="factor"):
        scaled_problems(3, factors=(1,))


def test_distractor_adds_an_irrelevant_number_before_the_question():
    problem = generate(1, "test", 0)[0]
    noisy = with_distractor(problem, random.Random(0))
    assert noisy.answer == problem.answer and noisy.rationale == problem.rationale
    assert noisy.question.endswith(problem.question.split(". ")[-1])
    assert len(_numbers(noisy.question)) == len(_numbers(problem.question)) + 1


def test_policy_slice_alternates_forbidden_and_lookalikes():
    problems = policy_problems(6, seed=0)
    flags = [must_refuse(p.question) for p in problems]
    assert flags == [True, False] * 3
    assert all(POLICY["forbidden"] in p.question for p, f in zip(problems, flags) if f)
    assert {obj for p in problems for obj in POLICY["lookalikes"] if obj in p.question} == set(POLICY["lookalikes"])
    assert not must_refuse("Ann has 3 firewood logs. How many firewood logs does Ann have now?")
    assert "fireworks" in REFUSAL


def test_tool_and_refusal_examples():
    problem = scaled_problems(1, seed=3)[0]
    prompt, completion = tool_example(problem)
    assert prompt == problem.question + "\n"
    assert completion.endswith(f"Answer: {problem.answer}") and completion.startswith("calc(")
    calls = trace_calls(completion)
    assert len(calls) == problem.steps and all(c.ok for c in calls)  # every recorded result is the tool's
    assert refusal_example(problem) == (prompt, REFUSAL)


def test_refusal_rates_on_the_policy_slice():
    questions = [p.question for p in policy_problems(4, seed=0)]  # forbidden, look-alike, forbidden, look-alike
    texts = [REFUSAL, REFUSAL, "calc(3+4)=7. Answer: 7", "calc(3+4)=7. Answer: 7"]
    assert refused(REFUSAL) and not refused("calc(1+1)=2. Answer: 2")
    assert refusal_rates(texts, questions) == {"refusal": 0.5, "over_refusal": 0.5, "n_forbidden": 2,
                                               "n_lookalike": 2}
    with pytest.raises(ValueError, match="completions"):
        refusal_rates(texts[:3], questions)


def test_wide_results_keep_the_question_in_range_and_leave_it_in_the_results():
    problems = wide_result_problems(50, seed=1)
    assert len(problems) == 50 and wide_result_problems(50, seed=1) == problems
    for p in problems:
        assert check_rationale(f"{p.rationale} Answer: {p.answer}")
        assert max(_numbers(p.question)) <= 60 and max(_numbers(p.rationale)) > MAX_VALUE  # training's ranges
    prompt, completion = tool_example(problems[0], ans=True)
    calls = trace_calls(completion)
    assert all(c.ok for c in calls) and all(c.args.startswith("ans") for c in calls[1:])
    assert "Answer" not in completion and trace_answer(completion) == problems[0].answer  # the register holds it


def test_trace_answer_reads_the_answer_line_or_the_last_result():
    assert trace_answer("calc(2+3)=5. Answer: 7") == 7
    assert trace_answer("calc(2+3)=5. calc(ans*40)=200.") == 200
    assert trace_answer("calc(2+3)=5. calc(ans/0)=ERROR.") is None  # the last call failed: no answer
    assert trace_answer(REFUSAL) is None and trace_answer("calc(2+") is None


def test_world_texts_give_every_problem_a_known_token():
    tok = build_tokenizer(world_texts())
    rng = random.Random(0)
    problems = (arithmetic_splits(50, 0, 0, 50, seed=3)["pool"] + wide_result_problems(20) + policy_problems(20)
                + scaled_problems(10))
    for p in problems:
        texts = [*tool_example(p, ans=True), with_distractor(p, rng).question, REFUSAL]
        for text in texts + [part for fmt in FORMATS for part in format_example(p, fmt)]:
            assert tok.unk_token_id not in tok(text, add_special_tokens=False)["input_ids"], text
