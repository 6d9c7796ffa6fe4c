"""The teacher as judge: preference pairs from a student's own samples, and win rates. Notebook 07.

A teacher LM judges the SFT student's sampled completions without gold labels, in two ways:

* **teacher-verified correctness**: the teacher answers each problem itself (majority vote over its sampled
  rationales, ``kdlib.reasoning.rationale.majority_vote``); a student completion is *verified* when its final answer
  equals the teacher's;
* **teacher log-likelihood**: ``log p_teacher(y | x)``, summed over the completion's tokens with the prompt
  masked (``kdlib.lm.generate.completion_logprobs``): how likely the teacher was to write that completion.

``judge_keys`` combines them into the teacher's preference order: verified first, then more likely. It is a
lexicographic key per completion, shape (n, 2); ``kdlib.lm.dpo.win_rate`` compares such keys. The pairs for
DPO (``judged_pairs``) take, per problem, the teacher's favourite verified sample as ``y+`` and its least
favourite unverified one as ``y-``; problems whose samples are all verified or all unverified give no pair.
"""
from __future__ import annotations

import torch

from kdlib.core.inference import eval_mode
from kdlib.lm.dpo import PreferencePairs
from kdlib.lm.generate import completion_logprobs
from kdlib.lm.sft import sft_data
from kdlib.reasoning.rationale import extract_answer, majority_vote, verify_answers

__all__ = ["teacher_answers", "completion_scores", "verdicts", "judge_keys", "judge_samples", "judged_pairs",
           "first_difference_step"]


def teacher_answers(samples: list[list[str]]) -> list[int | None]:
    """The teacher's answer per problem: the majority answer of its sampled completions ``samples[i]``
    (None when none of them gives an answer). No gold label is used."""
    return [majority_vote([extract_answer(t) for t in texts])[0] for texts in samples]


@torch.no_grad()
def completion_scores(model, tokenizer, prompts: list[str], completions: list[str], batch_size: int = 128
                      ) -> torch.Tensor:
    """``log p_model(completion + <eos> | prompt)`` per pair, summed over the completion's tokens (prompt
    masked), shape (n,), on the CPU. Any ``transformers`` causal LM; eval mode (``kdlib.core.inference.eval_mode``:
    the model's mode is restored afterwards, even on an error), no gradients. Notebook 07."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for start in range(0, len(prompts), batch_size):
            data = sft_data(tokenizer, prompts[start:start + batch_size], completions[start:start + batch_size])
            ids, attn, comp = (t.to(device) for t in data.batch(torch.arange(len(data))))
            out.append(completion_logprobs(model(input_ids=ids, attention_mask=attn).logits, ids, comp).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def verdicts(texts: list[str], answers: list[int | None]) -> torch.Tensor:
    """1.0 where the answer extracted from ``texts[i]`` equals ``answers[i]`` (the teacher's, or the gold
    answer), else 0.0; a completion without an answer, or a problem the judge could not answer
    (``answers[i] is None``), is 0. Notebook 07: ``kdlib.reasoning.rationale.verify_answers`` on the
    answered problems, 0 on the others."""
    if len(texts) != len(answers):
        raise ValueError(f"{len(texts)} texts but {len(answers)} answers")
    out = torch.zeros(len(texts))
    known = [i for i, a in enumerate(answers) if a is not None]
    if known:
        out[known] = verify_answers([texts[i] for i in known], [answers[i] for i in known])
    return out


def judge_keys(verified: torch.Tensor, loglik: torch.Tensor) -> torch.Tensor:
    """The teacher's preference as a lexicographic key (n, 2): ``[verified, log-likelihood]``; a larger key is
    preferred (verified beats unverified, and between equals the completion the teacher finds likelier)."""
    if verified.shape != loglik.shape or verified.dim() != 1:
        raise ValueError(f"verified and loglik must both have shape (n,), got {tuple(verified.shape)} and "
                         f"{tuple(loglik.shape)}")
    return torch.stack([verified.double(), loglik.double()], 1)


def judge_samples(model, tokenizer, prompts: list[str], samples: list[list[str]], answers: list[int | None]
                  ) -> torch.Tensor:
    """The judge's keys (n * k, 2) of ``samples`` (k completions of each of the n ``prompts``, problem by
    problem), as ``judged_pairs`` reads them: ``[verified, log p_model(y | x)]`` with ``verified`` against
    ``answers[i]`` (the judge's answer to problem i). The log-likelihood only breaks ties *within* a problem
    that has both a verified and an unverified sample, so it is computed for those problems only; the other
    rows get 0 there (``judged_pairs`` never reads them). Notebook 07: on a weak student most problems give no
    pair, and skipping their forward passes is most of the judging time."""
    k = len(samples[0]) if samples else 0
    if len(prompts) != len(samples) or len(answers) != len(samples) or any(len(s) != k for s in samples) or not k:
        raise ValueError(f"need one answer and k >= 1 samples per prompt: {len(prompts)} prompts, {len(answers)} "
                         f"answers, sample counts {sorted({len(s) for s in samples})}")
    flat = [t for texts in samples for t in texts]
    verified = verdicts(flat, [a for a in answers for _ in range(k)])
    mixed = (verified.view(-1, k).sum(1) > 0) & (verified.view(-1, k).sum(1) < k)
    rows = [i * k + j for i in mixed.nonzero().flatten().tolist() for j in range(k)]
    loglik = torch.zeros(len(flat))
    if rows:
        loglik[rows] = completion_scores(model, tokenizer, [prompts[r // k] for r in rows], [flat[r] for r in rows])
    return judge_keys(verified, loglik)


def first_difference_step(chosen: list[int], rejected: list[int], step_end: int) -> tuple[list[int], list[int]]:
    """Both completions cut after the first *step* in which they differ: from the first differing token up to
    and including the next ``step_end`` token (e.g. the id of ``"."`` that ends each equation) in each; a
    completion with no ``step_end`` after that point is kept whole. The shared prefix stays (its log-probs
    cancel in the DPO margin); what follows the first different step is conditioned on different histories,
    so it says nothing about which step was better (step-level pairs, as in Step-DPO, Lai et al. 2024)."""
    d = next((t for t, (a, b) in enumerate(zip(chosen, rejected)) if a != b), min(len(chosen), len(rejected)))

    def cut(ids):
        end = next((t for t in range(d, len(ids)) if ids[t] == step_end), len(ids) - 1)
        return ids[:end + 1]
    return cut(chosen), cut(rejected)


def judged_pairs(tokenizer, prompts: list[str], samples: list[list[str]], keys: torch.Tensor,
                 step_end: str | None = None) -> tuple[PreferencePairs, list[int], list[int], list[int]]:
    """Preference pairs from the student's samples and the judge's keys.

    ``samples[i]`` are the student's k completions of ``prompts[i]``; ``keys`` (n * k, 2) the judge's keys of
    those completions in the same order (problem by problem), column 0 the verdict. For each problem with at
    least one verified and one unverified sample: ``y+`` = the verified sample with the largest key, ``y-`` =
    the unverified one with the smallest. Returns the pairs (completions end with the end-of-sequence token),
    the problem behind each pair, and the flat sample index (``i * k + j``) of each pair's ``y+`` and ``y-``.
    With ``step_end`` (a one-token string such as ``"."``), both completions are cut after the first step in which
    they differ (``first_difference_step``)."""
    k = len(samples[0]) if samples else 0
    if any(len(s) != k for s in samples) or keys.shape != (len(samples) * k, 2):
        raise ValueError(f"need k samples per prompt and one key row per sample: {len(samples)} prompts, "
                         f"keys of shape {tuple(keys.shape)}")
    chosen, rejected, index = [], [], []
    for i in range(len(samples)):
        rows = keys[i * k:(i + 1) * k]
        good = [j for j in range(k) if rows[j, 0] > 0]
        bad = [j for j in range(k) if rows[j, 0] <= 0]
        if good and bad:
            chosen.append(i * k + max(good, key=lambda j: float(rows[j, 1])))
            rejected.append(i * k + min(bad, key=lambda j: float(rows[j, 1])))
            index.append(i)
    if not index:
        raise ValueError("no problem has both a verified and an unverified sample: sample more completions per "
                         "problem (k), at a higher temperature, or from a weaker student")
    flat = [t for texts in samples for t in texts]
    eos = [tokenizer.eos_token_id]

    def encode(rows):
        return [ids + eos for ids in tokenizer([flat[r] for r in rows], add_special_tokens=False)["input_ids"]]

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    chosen_ids, rejected_ids = encode(chosen), encode(rejected)
    if step_end is not None:
        end = tokenizer(step_end, add_special_tokens=False)["input_ids"]
        if len(end) != 1:
            raise ValueError(f"step_end must be a single token, but {step_end!r} is {len(end)} tokens")
        cut = [first_difference_step(c, r, end[0]) for c, r in zip(chosen_ids, rejected_ids)]
        chosen_ids, rejected_ids = [c for c, _ in cut], [r for _, r in cut]
    pairs = PreferencePairs.from_tokens(tokenizer([prompts[i] for i in index], add_special_tokens=False)["input_ids"],
                                        chosen_ids, rejected_ids, pad)
    return pairs, index, chosen, rejected
