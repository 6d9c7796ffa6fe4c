"""Spot-the-bug drills of notebook 00: short snippets, each carrying a bug that a widely used library, example or
tutorial shipped or nearly shipped (the ``origin`` says where, with the public thread), the symptom a learner would
see in training, a hidden answer, and a check of the learner's fix.

``SPOT_BUGS[name].snippet`` is the buggy code as source; ``buggy(name)`` compiles it, so the symptom shown is
measured on the snippet itself (``symptom_numbers``: the buggy and fixed outputs, and the gradients' sizes, on one
case). Each drill is registered with ``kdlib.teaching.checks`` as ``spot_<name>`` against the kit's reference
(``kd_loss``, ``distillation_loss``, ``completion_logprobs``, an index lookup), so ``check("spot_missing_T2", fix)``
judges a fix like any exercise, and ``tests/test_playbook.py`` checks that every snippet fails its own check.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdlib.teaching.checks import _logit_cases, register


@dataclass(frozen=True)
class SpotBug:
    """A drill: the function the learner fixes (``function``), the buggy ``snippet``, where it shipped
    (``origin``), what training shows (``symptom``), the hidden ``answer``, and the registered check's
    ``reference`` and ``cases`` (``module:function`` names); ``demo`` is the case the symptom is measured on."""

    name: str
    title: str
    function: str
    snippet: str
    origin: str
    symptom: str
    answer: str
    reference: str
    cases: str
    demo: int = 0


def aligned_targets(cached_logits: torch.Tensor, idx: torch.Tensor, step: int) -> torch.Tensor:
    """Reference: the cached teacher logits of the batch's samples, looked up by sample index (notebook 02)."""
    return cached_logits[idx]


def kd_cases() -> list[tuple]:
    return _logit_cases(False)


def mix_cases() -> list[tuple]:
    return _logit_cases(True)


def cache_cases() -> list[tuple]:
    gen = torch.Generator().manual_seed(21)
    cache = torch.randn(24, 5, generator=gen)
    order = torch.randperm(24, generator=gen)  # a shuffled epoch: batches of 6 sample indices
    return [(cache, order[6 * step:6 * (step + 1)], step) for step in range(3)]


_KD = "kd_loss(student_logits, teacher_logits, T)"
SPOT_BUGS: dict[str, SpotBug] = {b.name: b for b in (
    SpotBug("missing_T2", "The T^2 factor missing", _KD,
            "def kd_loss(student_logits, teacher_logits, T):\n"
            "    p_teacher = F.softmax(teacher_logits / T, dim=-1)\n"
            "    log_p_student = F.log_softmax(student_logits / T, dim=-1)\n"
            "    return F.kl_div(log_p_student, p_teacher, reduction='batchmean')\n",
            "IntelLabs/distiller shipped its KD loss without T*T; the maintainer confirmed and fixed it "
            "(github.com/IntelLabs/distiller/issues/122). Keras's knowledge-distillation example left it out on "
            "purpose; a pull request proposed adding it (github.com/keras-team/keras-io/issues/869).",
            "The higher the temperature, the weaker the teacher's pull: the soft loss's gradients shrink as 1/T^2 "
            "(notebook 01 measured the slope), so every new T needs a new alpha and learning rate.",
            "Multiply the soft loss by T**2: the gradient of the KL then keeps the same scale for any T.",
            "kdlib.losses.logits:kd_loss", "kdlib.teaching.spot_bugs:kd_cases", demo=2),
    SpotBug("kl_reversed", "The KL reversed", _KD,
            "def kd_loss(student_logits, teacher_logits, T):\n"
            "    log_p_teacher = F.log_softmax(teacher_logits / T, dim=-1)\n"
            "    p_student = F.softmax(student_logits / T, dim=-1)\n"
            "    return F.kl_div(log_p_teacher, p_student, reduction='batchmean') * T**2\n",
            "F.kl_div(input, target) computes KL(target || input) with the input as log-probabilities, the opposite "
            "order of the notation; which side takes log_softmax is a recurring question in KD code "
            "(github.com/haitongli/knowledge-distillation-pytorch/issues/41), and microsoft/ProDA shipped a "
            "distillation KL with the sides mixed up, confirmed a bug (github.com/microsoft/ProDA/issues/20).",
            "The loss is KL(student || teacher): mode seeking. The student may put no mass where the teacher "
            "does, so the dark knowledge in the teacher's small probabilities is lost (notebook 05 compares them).",
            "The student's log-probabilities are the input and the teacher's probabilities the target: "
            "F.kl_div(F.log_softmax(student / T), F.softmax(teacher / T), reduction='batchmean') * T**2.",
            "kdlib.losses.logits:kd_loss", "kdlib.teaching.spot_bugs:kd_cases"),
    SpotBug("mean_not_batchmean", "mean instead of batchmean", _KD,
            "def kd_loss(student_logits, teacher_logits, T):\n"
            "    p_teacher = F.softmax(teacher_logits / T, dim=-1)\n"
            "    log_p_student = F.log_softmax(student_logits / T, dim=-1)\n"
            "    return F.kl_div(log_p_student, p_teacher, reduction='mean') * T**2\n",
            "PyTorch's KLDivLoss averaged over every element by default, not a KL; the docs warn and 'batchmean' was "
            "added for the true value (github.com/pytorch/pytorch/pull/14457). Teacher-free-Knowledge-Distillation "
            "kept the default (github.com/yuanli2333/Teacher-free-Knowledge-Distillation/issues/5), and DeiT divides "
            "by numel() for reproducibility (github.com/facebookresearch/deit/issues/61).",
            "The soft loss is divided by the number of classes too: small for ten digits, vanishing for an LLM's "
            "vocabulary. The teacher's term barely moves the student and alpha seems not to matter.",
            "reduction='batchmean': sum over the classes, average over the examples.",
            "kdlib.losses.logits:kd_loss", "kdlib.teaching.spot_bugs:kd_cases"),
    SpotBug("one_sided_T", "The temperature on one side only", _KD,
            "def kd_loss(student_logits, teacher_logits, T):\n"
            "    p_teacher = F.softmax(teacher_logits / T, dim=-1)\n"
            "    log_p_student = F.log_softmax(student_logits, dim=-1)\n"
            "    return F.kl_div(log_p_student, p_teacher, reduction='batchmean') * T**2\n",
            "Asked of Teacher-free-Knowledge-Distillation's regularised loss, whose student side is not divided by T "
            "as the paper's equation is (github.com/yuanli2333/Teacher-free-Knowledge-Distillation/issues/24).",
            "A student with exactly the teacher's logits still has a loss above zero; the student is pushed to make "
            "its raw logits as flat as the teacher's softened ones, so it is underconfident at T = 1.",
            "Divide both logits by the same T before the softmax.",
            "kdlib.losses.logits:kd_loss", "kdlib.teaching.spot_bugs:kd_cases", demo=1),
    SpotBug("scales_apart", "A hard and a soft loss on different scales",
            "distillation_loss(student_logits, teacher_logits, labels, T, alpha)",
            "def distillation_loss(student_logits, teacher_logits, labels, T, alpha):\n"
            "    hard = F.cross_entropy(student_logits, labels)  # averaged over the batch\n"
            "    soft = F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.softmax(teacher_logits / T, dim=-1),\n"
            "                    reduction='sum') * T**2  # summed over the batch\n"
            "    return alpha * hard + (1 - alpha) * soft\n",
            "A user of Teacher-free-Knowledge-Distillation printed both terms and found alpha could not balance them "
            "(github.com/yuanli2333/Teacher-free-Knowledge-Distillation/issues/41); neuralmagic/sparseml changed "
            "its distillation reduction to fix the teacher loss's scale (github.com/neuralmagic/sparseml/pull/592).",
            "The soft term grows with the batch size: alpha between its extremes changes almost nothing, the labels "
            "are ignored, and a new batch size silently changes the effective learning rate.",
            "Average both terms over the examples (batchmean for the KL), so that alpha means what it says.",
            "kdlib.losses.logits:distillation_loss", "kdlib.teaching.spot_bugs:mix_cases", demo=1),
    SpotBug("dpo_mean", "DPO with the mean of token log-probabilities",
            "sequence_logprob(logits, input_ids, completion_mask)",
            "def sequence_logprob(logits, input_ids, completion_mask):\n"
            "    logp = F.log_softmax(logits[:, :-1], dim=-1)\n"
            "    token = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)\n"
            "    mask = completion_mask[:, 1:].float()\n"
            "    return (token * mask).sum(-1) / mask.sum(-1)\n",
            "The DPO reference implementation has an average_log_prob flag and keeps it off for DPO "
            "(github.com/eric-mitchell/direct-preference-optimization/issues/40); averaging is SimPO's "
            "length-normalised objective, and trainers have shipped normalisation bugs "
            "(github.com/modelscope/ms-swift/pull/9925).",
            "DPO's implicit reward becomes a per-token average: the reward margins shrink by the answer length, the "
            "beta tuned for sums is far too small, and long and short answers are compared on another scale.",
            "Sum the completion's token log-probabilities: log pi(y | x) is a sum; divide by nothing.",
            "kdlib.lm.generate:completion_logprobs", "kdlib.teaching.cases:completion_logprob_cases"),
    SpotBug("misaligned_cache", "Cached teacher logits misaligned by shuffling",
            "teacher_targets(cached_logits, idx, step)",
            "def teacher_targets(cached_logits, idx, step):\n"
            "    # cached_logits were written batch after batch; read back the rows of this step\n"
            "    batch = len(idx)\n"
            "    return cached_logits[step * batch:(step + 1) * batch]\n",
            "haitongli/knowledge-distillation-pytorch computed teacher outputs once and read them by batch number "
            "in reshuffled epochs (github.com/haitongli/knowledge-distillation-pytorch/issues/4), fixed by "
            "github.com/haitongli/knowledge-distillation-pytorch/pull/17; modelscope/easydistill read logits by "
            "global step (github.com/modelscope/easydistill/issues/21).",
            "The student learns other samples' soft targets: the KD loss plateaus high, the KD student is no better "
            "than (or worse than) the hard-label one, and a cached-against-online check fails.",
            "Look the logits up by sample index: cached_logits[idx] (kdlib.core.teacher_cache does, with a "
            "fingerprint of the teacher and the data).",
            "kdlib.teaching.spot_bugs:aligned_targets", "kdlib.teaching.spot_bugs:cache_cases"),
)}


def buggy(name: str):
    """The snippet of drill ``name`` compiled: the function as shipped."""
    bug = SPOT_BUGS[name]
    namespace = {"F": F, "torch": torch}
    exec(compile(bug.snippet, f"<spot_bugs:{name}>", "exec"), namespace)  # noqa: S102 - our own source
    return namespace[bug.function.split("(")[0]]


def symptom_numbers(name: str) -> dict[str, float]:
    """Measured on the drill's ``demo`` case: the snippet's output and the reference's (their mean absolute
    value), for losses the size of the gradient each sends to the student's logits, and ``agree``: the share of
    output elements the snippet gets right."""
    from kdlib.teaching.checks import _REGISTRY, _reference
    reference = _reference(f"spot_{name}")
    args = list(_REGISTRY[f"spot_{name}"][1]()[SPOT_BUGS[name].demo])
    out = {}
    for label, fn in (("shipped", buggy(name)), ("fixed", reference)):
        leaf = args[0].detach().clone().float().requires_grad_(SPOT_BUGS[name].reference.endswith("_loss"))
        value = fn(leaf, *args[1:])
        out[label] = float(value.detach().abs().mean())
        outputs = out.setdefault("_outputs", [])
        outputs.append(value.detach())
        if leaf.requires_grad:
            value.backward()
            out[f"{label}_gradient"] = float(leaf.grad.norm())
    shipped, fixed = out.pop("_outputs")
    out["agree"] = float(torch.isclose(shipped, fixed, rtol=1e-4, atol=1e-5).float().mean())
    return out


for _bug in SPOT_BUGS.values():
    register(f"spot_{_bug.name}", _bug.reference, _bug.cases)
