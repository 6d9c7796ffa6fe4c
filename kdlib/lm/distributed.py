"""Token-level KD, data-parallel across processes with ``accelerate`` (issue 17: the LM pipelines beyond one
machine). The same function trains in a notebook (one process) and under ``accelerate launch`` (DDP on several GPUs
or nodes, or CPU processes with the gloo backend), unchanged.

``distil(student, teacher, blocks, ...)`` minimises ``T^2 * KL(p_teacher(T) || p_student(T))`` per next-token
position (``kdlib.losses.tokens.forward_kl``: notebook 05's token KD with the full vocabulary) over shuffled
batches of ``blocks``; under several processes ``accelerator.prepare`` gives each process its own shard of every
batch and DDP averages the gradients, so every process ends with the same weights.

    python -m torch.distributed.run --nproc_per_node 2 -m kdlib.lm.distributed OUT   # OUT/rank<i>.json
    accelerate launch --num_processes 2 -m kdlib.lm.distributed OUT                  # the same on 2 GPUs

The check (run by ``make test``) trains a tiny student from a tiny teacher and writes, per rank, the block
indices it saw and a digest of its final weights: the shards must be disjoint and the digests equal.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from kdlib.core.validate import check_temperature, whole
from kdlib.losses.tokens import forward_kl

__all__ = ["distil", "weights_digest"]


def weights_digest(model: torch.nn.Module) -> str:
    """A short sha256 of every parameter's bytes, in order: equal digests mean equal weights."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def distil(student, teacher, blocks: torch.Tensor, steps: int, batch_size: int = 8, lr: float = 1e-3,
           T: float = 2.0, seed: int = 0, accelerator=None) -> dict:
    """``steps`` AdamW steps of token KD (module docstring) on batches of ``blocks`` (``(n, length)`` token ids).
    Returns the trained (unwrapped) student, the block indices this process saw, in order, and the losses."""
    from accelerate import Accelerator

    steps, batch_size, T = whole("steps", steps, 1), whole("batch_size", batch_size, 1), check_temperature(T)
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())  # CPU processes: gloo
    data = torch.utils.data.TensorDataset(blocks, torch.arange(len(blocks)))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)
    model, optimizer, loader = accelerator.prepare(student, optimizer, loader)
    teacher = teacher.to(accelerator.device).eval()
    seen, losses, step = [], [], 0
    while step < steps:
        for ids, index in loader:
            with torch.no_grad():
                teacher_logits = teacher(input_ids=ids).logits[:, :-1]
            loss = forward_kl(model(input_ids=ids).logits[:, :-1], teacher_logits, T=T)  # notebook 05's token KD
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            seen += index.tolist()
            losses.append(float(loss.detach()))
            step += 1
            if step == steps:
                break
    return {"student": accelerator.unwrap_model(model), "seen": seen, "losses": losses,
            "rank": accelerator.process_index, "processes": accelerator.num_processes}


def _check(out: Path) -> None:
    """The 2-process check of the module docstring."""
    from kdlib.lm.small import build_tokenizer, small_llama

    tok = build_tokenizer(["a b c d e f g h"])
    teacher = small_llama(tok, 2, 32, 2, seed=0)
    student = small_llama(tok, 1, 16, 2, seed=1)
    blocks = torch.randint(4, len(tok), (32, 12), generator=torch.Generator().manual_seed(0))
    result = distil(student, teacher, blocks, steps=4, batch_size=4)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{result['rank']}.json").write_text(json.dumps(
        {"rank": result["rank"], "processes": result["processes"], "seen": result["seen"],
         "losses": result["losses"], "weights": weights_digest(result["student"])}))


if __name__ == "__main__":
    _check(Path(sys.argv[1]))
