"""The gpu check (issue 17): every solution notebook through the gpu profile's code at ci sizes on this machine (the
CPU fallback of the gpu profile), and the records of a notebook that fails a claim or runs out of time."""
import json

import nbformat
import pytest

from kdlib.teaching import gpu_check


def test_every_notebook_runs_the_gpu_code_path_at_ci_sizes(tmp_path):
    paths = sorted(gpu_check.SOLUTIONS.glob("*.ipynb"))
    records = gpu_check.run_all(paths, tmp_path, profile="gpu", sizes="ci", parallel=2, timeout=300)
    assert [r["notebook"] for r in records] == [p.stem for p in paths]
    bad = [(r["notebook"], r["status"], r["error"]) for r in records if r["status"] != "ok"]
    assert not bad, bad
    assert all(r["claims"] == "not asserted" and r["headline"] for r in records)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sizes"] == "ci" and len(summary["notebooks"]) == len(paths)
    assert "| 01_soft_targets_and_temperature | ok |" in (tmp_path / "summary.md").read_text()


def _notebook(path, source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(nb, path)
    return path


def test_a_failed_claim_and_a_timeout_are_recorded(tmp_path):
    claim = gpu_check.run_one(_notebook(tmp_path / "zz_claim.ipynb", "assert 1 > 2, 'the claim'"), tmp_path, 60)
    assert (claim["status"], claim["claims"]) == ("failed", "failed") and "AssertionError" in claim["error"]
    slow = gpu_check.run_one(_notebook(tmp_path / "zz_slow.ipynb", "import time; time.sleep(30)"), tmp_path, 2)
    assert slow["status"] == "timeout" and (tmp_path / "zz_slow.ipynb").is_file()
    with pytest.raises(SystemExit, match="no solution notebook matches 99"):
        gpu_check._pick(["99"])
