"""Exercise cases of notebooks 06, 07, 08, 10 and 11, registered by ``kdlib.teaching.checks`` under the names of their
references (imported on the first check)."""
from __future__ import annotations

import torch


# ---- notebook 06: answer extraction and verification, and the multi-task loss of Distilling step-by-step
def verify_cases() -> list[tuple]:
    return [(["12+5=17. Answer: 17", "Answer: 3", "7+1=8. 8-2=6."], [17, 4, 6]),  # no "Answer:" is wrong
            (["Answer: 5. Wait. Answer: 9", "Answer:42", "Answer: 12 apples"], [9, 42, 12]),  # the last one counts
            (["", "Answer: -3", "Answer: 7 Answer: 7"], [0, -3, 7]),
            (["3*4=12. Answer: 12", "Answer: 120"], [12, 12])]


def multitask_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(7)
    cases = []
    for (b1, l1), (b2, l2), v, lam in [((2, 5), (2, 9), 11, 1.0), ((3, 4), (3, 7), 6, 0.3), ((1, 6), (1, 6), 9, 0.0)]:
        label = torch.randn(b1, l1, v, generator=gen), torch.randint(0, v, (b1, l1), generator=gen)
        rationale = torch.randn(b2, l2, v, generator=gen), torch.randint(0, v, (b2, l2), generator=gen)
        label_mask = torch.zeros(b1, l1, dtype=torch.long)
        label_mask[:, l1 - 2:] = 1  # the answer tokens at the end
        rationale_mask = (torch.rand(b2, l2, generator=gen) > 0.5).long()
        rationale_mask[:, -1] = 1
        cases.append((label[0], label[1], label_mask, rationale[0], rationale[1], rationale_mask, lam))
    return cases


# ---- notebook 07: summed completion log-probs with the prompt and padding masked, and the DPO loss
def completion_logprob_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(7)
    cases = []
    for n, length, v, prompt in [(2, 6, 9, 2), (3, 8, 13, 4), (1, 5, 7, 1)]:
        ids = torch.randint(0, v, (n, length), generator=gen)
        mask = torch.zeros(n, length, dtype=torch.long)
        mask[:, prompt:] = 1
        mask[0, -1] = 0  # a shorter first completion: right padding
        cases.append((torch.randn(n, length, v, generator=gen) * 2, ids, mask))
    return cases


def dpo_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(8)
    cases = []
    for n, beta in [(4, 0.1), (3, 1.0), (5, 0.5)]:
        pc, pr, rc, rr = (-torch.rand(n, generator=gen) * 20 for _ in range(4))
        cases.append((pc, pr, rc, rr, beta))
    z = torch.full((2,), -3.0)
    cases.append((z, z - 1, z, z - 1, 0.2))  # policy == reference: log 2
    return cases


# ---- notebook 08: reading and executing a finished tool trace, and the exact near-duplicate filter
def run_trace_cases() -> list[tuple]:
    return [("calc(12+5)=17. calc(ans-3)=14.",),
            ("calc(36*3)=108. calc(ans/4)=27. calc(ans/5)=ERROR.",),  # 27/5 is not whole: bad arguments
            ("calc(ans+1)=2. calc(2+2)=5. calc(7-2)=5.",),  # ans before any result; a recorded result that is wrong
            ("sqrt(16)=4. calc(3 * 4)=12. Answer: 12",), ("Answer: 3",)]


def jaccard_cases() -> list[tuple]:
    a = "Ann has 12 apples. Ann buys 5 more. How many apples does Ann have now?"
    return [([a, a.replace("12", "13"), a.replace("apples", "pens"), "Ben loses 3."], 0.5),
            ([a, a.replace("12", "13"), a.replace("apples", "pens"), "Ben loses 3."], 0.9),
            (["a b c d", "A  b c D", "x y z", "a b c e"], 0.5), (["one two", "one two", "two"], 1.0)]


# ---- notebooks 10 and 11: the width-pruning importance score, and the speculative-decoding speed-up
def neuron_importance_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(3)
    cases = []
    for b, length, n in ((2, 5, 7), (3, 4, 16), (1, 6, 3)):
        mask = (torch.rand(b, length, generator=gen) > 0.3).long()
        mask[:, 0] = 1
        cases.append((torch.randn(b, length, n, generator=gen), mask))  # negative activations count by size
    return cases


def speedup_cases() -> list[tuple]:
    return [(0.0, 4, 0.1), (1.0, 4, 0.0), (0.8, 4, 0.1), (0.6, 2, 0.25), (0.95, 8, 0.05)]
