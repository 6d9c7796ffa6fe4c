"""Batched generation with tools (notebook 08): a language model writes tool traces, and the runtime fills in
each call's result while the batch generates.

``ToolRuntime`` is a ``transformers`` logits processor. At every step it looks at each row's completion so far;
when the row has just written a call's closing ``=`` (``calc(120+35)=``), the runtime parses and executes the call
(``kdlib.reasoning.tools``: a malformed call becomes a failed ``ToolCall`` and the text ``ERROR``) and queues the
tokens of ``result.``; while a row has queued tokens, the next token is forced (every other logit set to -inf), so
the model continues after the result as if it had written it. The batch stays in step (one token per row per
step), sampling and the key-value cache work as usual, and nothing the model writes can raise. The tokenizer
must be able to write digits, ``.``, ``-`` and ``ERROR`` (``kdlib.lm.small.build_tokenizer(texts,
extra=("ERROR",))``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from kdlib.lm.generate import Samples, generate
from kdlib.reasoning.tools import ToolCall, run_call

__all__ = ["ToolRuntime", "generate_with_tools"]


class ToolRuntime:
    """The logits processor of one batch: rows are samples ``first_row + r`` of the whole run; ``calls`` maps a
    sample to the calls it made, in order."""

    def __init__(self, tokenizer, prompt_length: int, first_row: int, calls: dict[int, list[ToolCall]],
                 tools: dict[str, Callable[[str], object]] | None = None, max_calls: int = 8):
        self.tokenizer, self.prompt_length, self.first_row = tokenizer, prompt_length, first_row
        self.calls, self.tools, self.max_calls = calls, tools, max_calls
        self.queued: dict[int, list[int]] = {}

    def _call(self, row: int, completion: str) -> list[int]:
        made = self.calls.setdefault(self.first_row + row, [])
        if len(made) >= self.max_calls:
            return []
        return self.tokenizer(run_call(completion, made, self.tools), add_special_tokens=False)["input_ids"]

    def _closing_ids(self, device) -> torch.Tensor:
        """The ids of the tokens whose text ends with ``=`` (computed once): only rows that just wrote one are
        decoded, so the runtime costs almost nothing on the other steps."""
        if not hasattr(self, "_closing"):
            pieces = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
            self._closing = torch.tensor([i for i, piece in enumerate(pieces) if piece and piece.endswith("=")],
                                         dtype=torch.long)
        return self._closing.to(device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = set(self.queued)
        if input_ids.shape[1] > self.prompt_length:
            closed = torch.isin(input_ids[:, -1], self._closing_ids(input_ids.device))
            rows |= set(closed.nonzero().flatten().tolist())
        for row in sorted(rows):
            queue = self.queued.get(row)
            if not queue and input_ids.shape[1] > self.prompt_length:
                completion = self.tokenizer.decode(input_ids[row, self.prompt_length:], skip_special_tokens=True)
                queue = self.queued[row] = self._call(row, completion)
            if queue:
                forced = queue.pop(0)
                scores[row] = float("-inf")
                scores[row, forced] = 0.0
            if not queue:
                self.queued.pop(row, None)
        return scores


def generate_with_tools(model, tokenizer, prompts: list[str], num_samples: int = 1, max_new_tokens: int = 64,
                        tools: dict[str, Callable[[str], object]] | None = None, max_calls: int = 8,
                        history: list[list[ToolCall]] | None = None, **generate_kw
                        ) -> tuple[Samples, list[list[ToolCall]]]:
    """``kdlib.lm.generate.generate`` with the tool runtime: the samples (their texts include the results the
    runtime wrote) and, per sample, the calls it made. ``history[i]``: the calls already made in ``prompts[i]``
    (a prompt that ends inside a trace, as a revision does), so that ``ans`` continues from them; they head each
    sample's list of calls. ``generate_kw``: ``temperature``, ``do_sample``, ``batch_size``, ``seed``."""
    if history is not None and len(history) != len(prompts):
        raise ValueError(f"history must hold one list of calls per prompt: {len(history)} for {len(prompts)} prompts")
    calls: dict[int, list[ToolCall]] = ({} if history is None else
                                        {i: list(history[i // num_samples]) for i in range(len(prompts) * num_samples)})
    samples = generate(model, tokenizer, prompts, num_samples=num_samples, max_new_tokens=max_new_tokens,
                       logits_processor=lambda p_len, first: ToolRuntime(tokenizer, p_len, first, calls, tools,
                                                                          max_calls), **generate_kw)
    return samples, [calls.get(i, []) for i in range(len(samples.texts))]
