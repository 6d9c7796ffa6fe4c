"""The arithmetic world of notebooks 06-08: generated word problems with gold rationales, how rationales
are formatted, read back and filtered, the rationale teacher, the teacher as judge, and tool calls.

Modules: ``arithmetic`` (problems, held-out templates), ``rationale`` (formats, answer extraction, votes,
filters, scoring), ``teacher`` (the rationale teacher, its cached samples, the base student), ``judge``
(preference pairs judged by the teacher), ``tools`` (tool traces and the runtime that executes calls: 08),
``tool_generation`` (batched generation with the tool runtime: 08), ``world`` (out-of-range numbers, distractors
and the policy slice: 08), ``pipeline`` (the teacher-data filters and their funnel: 08), ``critique`` (a teacher
flags the first wrong call of a draft and rewrites the rest: 08).
"""
from kdlib.reasoning.arithmetic import (Problem, NAMES, OBJECTS, STEPS, OPS, SPLITS, arithmetic_splits,
                                        is_heldout_template, templates, apply_op, MAX_VALUE, equation_chains)
from kdlib.reasoning.rationale import (FORMATS, ANSWER_PREFIX, format_prompt, format_completion, format_example,
                                       extract_answer, verify_answers, check_rationale, majority_vote, Kept,
                                       filter_samples, corrupt_rationale, EQUATION, format_texts, evaluate_answers,
                                       split_rationale)
from kdlib.reasoning.teacher import (prepare_sft_teacher, prepare_rationale_teacher, teacher_samples,
                                     prepare_base_student, TEACHER_RECIPE_KEYS, BASE_RECIPE_KEYS)
from kdlib.reasoning.judge import (teacher_answers, completion_scores, verdicts, judge_keys, judge_samples,
                                   judged_pairs, first_difference_step)
from kdlib.reasoning.tools import (ToolCall, calculator, TOOLS, parse_call, execute, trace_calls, to_tool_trace,
                                   complete_with_tools, run_call, call_metrics, execution_ok, last_result,
                                   to_rationale, run_trace, ANS, FAILURES)
from kdlib.reasoning.tool_generation import ToolRuntime, generate_with_tools
from kdlib.reasoning.world import (scaled_problems, wide_result_problems, with_distractor, POLICY, REFUSAL,
                                  policy_problems, must_refuse, tool_example, refusal_example, refused, refusal_rates,
                                  trace_answer, world_texts)
from kdlib.reasoning.pipeline import exact_duplicates, near_duplicates, jaccard_duplicates, balance_domains, funnel
from kdlib.reasoning.critique import first_disagreement, critique, revise

__all__ = ["Problem", "NAMES", "OBJECTS", "STEPS", "OPS", "SPLITS", "arithmetic_splits", "is_heldout_template",
           "templates", "apply_op", "MAX_VALUE", "equation_chains", "FORMATS", "ANSWER_PREFIX", "format_prompt",
           "format_completion", "format_example", "extract_answer", "verify_answers", "check_rationale",
           "majority_vote", "Kept", "filter_samples", "corrupt_rationale", "EQUATION", "format_texts",
           "evaluate_answers", "split_rationale", "prepare_rationale_teacher", "teacher_samples",
           "prepare_base_student", "TEACHER_RECIPE_KEYS", "BASE_RECIPE_KEYS", "teacher_answers", "completion_scores",
           "verdicts", "judge_keys", "judge_samples", "judged_pairs", "first_difference_step", "ToolCall",
           "calculator", "TOOLS", "parse_call", "execute", "trace_calls", "to_tool_trace", "complete_with_tools",
           "call_metrics", "FAILURES", "scaled_problems", "with_distractor", "POLICY", "REFUSAL", "policy_problems",
           "must_refuse", "ToolRuntime", "generate_with_tools", "exact_duplicates", "near_duplicates",
           "balance_domains", "funnel", "tool_example", "refusal_example", "prepare_sft_teacher",
           "execution_ok", "refused", "refusal_rates", "wide_result_problems",
           "last_result", "ANS", "run_call", "to_rationale", "run_trace", "trace_answer", "world_texts",
           "jaccard_duplicates", "first_disagreement", "critique", "revise"]
