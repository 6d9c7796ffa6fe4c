"""Notebooks 05-08's LM pipelines data-parallel (issue 17): two CPU processes (gloo) under torchrun train the same
``fit`` calls as one process; each sees a disjoint shard of every batch, the teacher's top-k cache is split and
gathered whole, and both end with the same weights, those of one process on the whole batches."""
import json
import socket
import subprocess
import sys

import pytest
import torch

from kdlib.core.parallel import shard, world
from kdlib.lm.distributed import pipelines

PIPELINES = ("topk_kd", "sequence_kd", "sft", "dpo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one():
    return pipelines()


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "kdlib.lm.distributed", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_processes_split_every_batch_and_agree_on_the_weights(two):
    assert [r["processes"] for r in two] == [2, 2] and [r["rank"] for r in two] == [0, 1]
    for name in PIPELINES:
        first, second = (set(r[name]["seen"]) for r in two)
        assert not first & second and len(first) == len(second) == 8, name  # 4 steps x 2 of each batch of 4
        assert two[0][name]["weights"] == two[1][name]["weights"], name


def test_the_split_cache_is_the_one_process_cache(one, two):
    assert one["processes"] == 1
    assert two[0]["cache"] == two[1]["cache"] == one["cache"]


@pytest.mark.parametrize("name", ["topk_kd", "dpo"])  # losses averaged over samples of equal weight
def test_two_processes_train_what_one_process_trains(one, two, name):
    assert sorted(two[0][name]["seen"] + two[1][name]["seen"]) == sorted(one[name]["seen"])
    torch.testing.assert_close(torch.tensor(two[0][name]["head"]), torch.tensor(one[name]["head"]),
                               rtol=1e-4, atol=1e-5)


def test_one_process_trains_and_learns(one):
    for name in PIPELINES:
        assert len(one[name]["seen"]) == 16 and one[name]["weights"]
    assert world() == (0, 1)


def test_shards_are_disjoint_and_cover_the_batch():
    idx = torch.tensor([5, 3, 9, 1, 7])
    parts = [shard(idx, r, 2) for r in (0, 1)]
    assert sorted(torch.cat(parts).tolist()) == sorted(idx.tolist())
    assert torch.equal(shard(idx[:1], 1, 2), idx[:1])  # fewer samples than processes: the whole batch
