"""Critique and revision of tool traces (notebook 08): a teacher reads a draft, names the first step it would
have written otherwise, and writes the rest of the trace from there.

* ``first_disagreement``: per draft, the index of its first call that the teacher would not have written (a
  token the model wrote, not one the runtime filled in, that is not the teacher's greedy choice given everything
  before it), or that failed to run; ``len(calls)`` when the draft stops where the teacher would go on; None
  when the teacher agrees with the whole draft. One teacher forward pass per draft (teacher forcing), as a
  verifier model scores a solution step by step (Lightman et al. 2023 train such verifiers; here the teacher's
  own greedy choice is the check).
* ``critique``: that index as a sentence a person can read ("call 2: calc(ans-9)= is not what the teacher
  writes").
* ``revise``: the draft kept up to the flagged call, then the teacher continues with the tool runtime (greedy),
  its ``ans`` register primed with the kept calls; drafts nothing was flagged in are returned unchanged.

Training on revised drafts is the critique-and-revision loop of Constitutional AI (Bai et al. 2022) with a
checkable critic: the revision keeps the student's own steps where they were right.
"""
from __future__ import annotations

import torch

from kdlib.lm.generate import pad_rows
from kdlib.reasoning.tool_generation import generate_with_tools
from kdlib.reasoning.tools import CALL_IN_TEXT, trace_calls

__all__ = ["first_disagreement", "critique", "revise"]


def _rows(tokenizer, prompts, drafts):
    for prompt, draft in zip(prompts, drafts):
        yield (tokenizer(prompt, add_special_tokens=False)["input_ids"],
               tokenizer(draft, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])


def _flag(tokenizer, predicted: torch.Tensor, prompt_ids: list[int], draft_ids: list[int]) -> int | None:
    """The call index of the first model-written token of the draft the teacher predicts otherwise."""
    call, filled = 0, False  # filled: inside a result the runtime wrote (after '=' up to its '.')
    pieces = tokenizer.convert_ids_to_tokens(draft_ids)
    for j, (token, piece) in enumerate(zip(draft_ids, pieces)):
        if filled:
            filled = piece != "."
            continue
        if int(predicted[len(prompt_ids) + j - 1]) != token:
            return call
        if piece == "=":
            call, filled = call + 1, True
    return None


@torch.no_grad()
def first_disagreement(teacher, tokenizer, prompts: list[str], drafts: list[str], batch_size: int = 256
                       ) -> list[int | None]:
    """For each ``(prompt, draft)``, the index of the first call the teacher flags (see the module docstring),
    the earlier of its first disagreement and the draft's first failed call, or None."""
    if len(prompts) != len(drafts):
        raise ValueError(f"{len(prompts)} prompts but {len(drafts)} drafts")
    device = next(teacher.parameters()).device
    out: list[int | None] = []
    for start in range(0, len(prompts), batch_size):
        rows = list(_rows(tokenizer, prompts[start:start + batch_size], drafts[start:start + batch_size]))
        batch = pad_rows([p + d for p, d in rows], tokenizer.pad_token_id, device, side="right")
        predicted = teacher(**batch).logits.argmax(-1).cpu()
        for r, (p, d) in enumerate(rows):
            failed = next((i for i, c in enumerate(trace_calls(drafts[start + r])) if not c.ok), None)
            flags = [f for f in (_flag(tokenizer, predicted[r], p, d), failed) if f is not None]
            out.append(min(flags) if flags else None)
    return out


def critique(draft: str, flagged: int | None) -> str:
    """The critique of a draft as a sentence: which call the teacher disagrees with, or that it agrees."""
    if flagged is None:
        return "the teacher agrees with every call"
    calls = CALL_IN_TEXT.findall(draft)
    if flagged >= len(calls):
        return f"after call {flagged}: the teacher would not stop here"
    name, args, result = calls[flagged]
    return f"call {flagged + 1}: {name}({args})={result} is not what the teacher writes"


def _prefix(draft: str, flagged: int) -> str:
    """The draft up to the end of its call ``flagged - 1`` (empty for 0)."""
    if flagged == 0:
        return ""
    matches = list(CALL_IN_TEXT.finditer(draft))
    return draft[:matches[min(flagged, len(matches)) - 1].end()] if matches else ""


def revise(teacher, tokenizer, prompts: list[str], drafts: list[str], flagged: list[int | None],
           max_new_tokens: int = 64, batch_size: int = 256) -> list[str]:
    """Each draft with a flagged call rewritten from that call on by the teacher (greedy, with the tool runtime);
    the others unchanged."""
    if not len(prompts) == len(drafts) == len(flagged):
        raise ValueError(f"need one draft and one flag per prompt: {len(prompts)}, {len(drafts)}, {len(flagged)}")
    todo = [i for i, f in enumerate(flagged) if f is not None]
    revised = list(drafts)
    if not todo:
        return revised
    prefixes = [_prefix(drafts[i], flagged[i]) for i in todo]
    samples, _ = generate_with_tools(teacher, tokenizer, [prompts[i] + pre for i, pre in zip(todo, prefixes)],
                                     max_new_tokens=max_new_tokens, history=[trace_calls(pre) for pre in prefixes],
                                     do_sample=False, batch_size=batch_size)
    for i, pre, text in zip(todo, prefixes, samples.texts):
        revised[i] = pre + text
    return revised
