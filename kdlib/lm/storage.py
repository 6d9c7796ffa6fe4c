"""What a teacher-logit cache costs and what it loses: bytes per token against KL error. Notebook 05.

For student and teacher next-token logits ``(..., V)``, the reference is the exact forward KL over the whole
vocabulary, ``KL(p || q) = sum_v p_v (log p_v - log q_v)``, mean over unmasked positions. Each way of storing
the teacher gives its own KL estimate and its relative error ``|KL_store - KL| / KL`` (ratio of the means):

* **dense fp32 / fp16**: all V logits per token (4V / 2V bytes); fp16 rounds the teacher's logits;
* **top-k + tail**: the teacher's k largest log-probs (fp32), their ids (int32) and the log of the rest of the
  mass as one bucket (fp32): ``8k + 4`` bytes. The KL over these k + 1 buckets is a lower bound of the full KL
  (merging outcomes never increases a KL; ``kdlib.losses.tokens.topk_loss``);
* **top-k, tail dropped**: the same k log-probs and ids (``8k`` bytes), teacher and student each renormalised
  over those k tokens: ``sum_{v in top k} p'_v (log p'_v - log q'_v)``, with ``p' = p / sum_{top k} p`` and
  ``q'`` likewise. It ignores how much mass the student puts outside the teacher's top k.
"""
from __future__ import annotations

import torch

from kdlib.losses.tokens import forward_kl, topk_from_logits, topk_loss

STORES = ("dense fp32", "dense fp16", "top-k + tail", "top-k, tail dropped")


def _dropped_tail_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int,
                     mask: torch.Tensor) -> torch.Tensor:
    topk = topk_from_logits(teacher_logits, k)
    log_p = topk.log_probs - torch.logsumexp(topk.log_probs, -1, keepdim=True)
    log_q = torch.log_softmax(student_logits.float(), -1).gather(-1, topk.indices.long())
    log_q = log_q - torch.logsumexp(log_q, -1, keepdim=True)
    per_token = (log_p.exp() * (log_p - log_q)).sum(-1)
    return (per_token * mask).sum() / mask.sum()


@torch.no_grad()
def storage_curve(student_logits: torch.Tensor, teacher_logits: torch.Tensor, ks: list[int],
                  mask: torch.Tensor | None = None) -> list[dict]:
    """One row per store and k: ``{"store", "k", "bytes_per_token", "kl", "kl_error"}`` (see the module
    docstring), the dense stores first. An analysis tool: it reads the KLs on the host."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} must have one shape (..., vocab)")
    vocab = teacher_logits.shape[-1]
    if not ks or any(not isinstance(k, int) or not 1 <= k < vocab for k in ks):
        raise ValueError(f"ks must be whole numbers in [1, {vocab - 1}], got {ks}")
    mask = torch.ones(student_logits.shape[:-1], device=student_logits.device) if mask is None else mask.float()
    full = float(forward_kl(student_logits, teacher_logits, mask))

    def row(store, k, nbytes, kl):
        return {"store": store, "k": k, "bytes_per_token": nbytes, "kl": kl, "kl_error": abs(kl - full) / full}

    rows = [row("dense fp32", vocab, 4 * vocab, full),
            row("dense fp16", vocab, 2 * vocab, float(forward_kl(student_logits, teacher_logits.half().float(), mask)))]
    for k in sorted(ks):
        with_tail = topk_loss(student_logits, topk_from_logits(teacher_logits, k), mask)
        rows.append(row("top-k + tail", k, 8 * k + 4, float(with_tail)))
        dropped = _dropped_tail_kl(student_logits, teacher_logits, k, mask)
        rows.append(row("top-k, tail dropped", k, 8 * k, float(dropped)))
    return rows


def smallest_k(rows: list[dict], max_error: float = 0.05, store: str = "top-k + tail") -> int | None:
    """The smallest k of ``store`` in ``storage_curve``'s rows whose KL error is below ``max_error``, or None."""
    if store not in STORES[2:]:
        raise ValueError(f"store must be one of {STORES[2:]}, got {store!r}")
    ok = [r["k"] for r in rows if r["store"] == store and r["kl_error"] < max_error]
    return min(ok) if ok else None
