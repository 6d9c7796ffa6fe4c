"""Token KD data-parallel with accelerate (issue 17): two CPU processes (gloo) see disjoint shards of every batch and
end with identical weights; the same function trains in one process."""
import json
import socket
import subprocess
import sys

import torch

from kdlib.lm.distributed import distil, weights_digest
from kdlib.lm.small import build_tokenizer, small_llama


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_the_data_and_agree_on_the_weights(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "kdlib.lm.distributed", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2]
    seen = [set(r["seen"]) for r in ranks]
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 16  # 4 steps x 4 blocks each, disjoint
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP averaged the gradients


def test_one_process_trains_the_same_function():
    tok = build_tokenizer(["a b c d e f g h"])
    teacher, student = small_llama(tok, 2, 32, 2, seed=0), small_llama(tok, 1, 16, 2, seed=1)
    blocks = torch.randint(4, len(tok), (16, 12), generator=torch.Generator().manual_seed(0))
    before = weights_digest(student)
    result = distil(student, teacher, blocks, steps=6, batch_size=4, lr=1e-2)
    assert result["processes"] == 1 and len(result["seen"]) == 24 and weights_digest(result["student"]) != before
    assert result["losses"][-1] < result["losses"][0]
