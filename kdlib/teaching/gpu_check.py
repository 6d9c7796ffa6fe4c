"""Run every solution notebook in one profile, several at once, each within a time limit, and write one summary:
per notebook its status, seconds, whether its claims held, its headline metrics and the device (issue 17's
``make gpu-check``: one run on a GPU machine checks the whole kit).

    python -m kdlib.teaching.gpu_check                       # the gpu profile, 3 notebooks at a time, 600 s each
    python -m kdlib.teaching.gpu_check --sizes ci 01 02      # a smoke run: gpu code path at ci sizes
    python -m kdlib.teaching.gpu_check --profile laptop --parallel 1 --timeout 900 --out build/laptop_check

Each notebook runs in its own process through ``nbclient`` (no Jupyter server, no network: data and weights come
from ``datasets/cache``), with ``KDLIB_PROFILE`` (and ``KDLIB_SIZES``) set; the executed notebooks and
``summary.json`` / ``summary.md`` land in ``--out``. Claims are judged from the results file the notebook wrote
(its profile and overrides; a failed assertion is a failed claim); headline metrics are the README's rows
(``kdlib.teaching.report``) read from that file.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kdlib.core.paths import REPO_ROOT
from kdlib.teaching.report import ROWS, _lookup

SOLUTIONS = REPO_ROOT / "solutions"
RESULTS = REPO_ROOT / "results"


def _claims(record: dict | None, status: str, error: str) -> str:
    """From the results file this run wrote: claims are asserted in laptop and gpu at their own sizes, after
    ``run.write``, so a finished run asserted them; a failed assertion is a failed claim."""
    if status != "ok":
        return "failed" if "AssertionError" in error else "unknown"
    if record is None:
        return "unknown"
    return "held" if record["profile"] in ("laptop", "gpu") and not record["overrides"] else "not asserted"


def _headline(stem: str, metrics: dict) -> dict:
    out = {}
    for notebook, key, label, _ in ROWS:
        if notebook == stem:
            try:
                out[label] = _lookup(metrics, key)
            except (KeyError, IndexError, TypeError):
                continue
    return out


def run_one(path: Path, out: Path, timeout: int) -> dict:
    """Execute one notebook (in this process) and return its record."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO_ROOT)}})
    began, start, status, error = time.time(), time.perf_counter(), "ok", ""
    try:
        client.execute()
    except CellTimeoutError as err:
        status, error = "timeout", str(err).splitlines()[0][:300]
    except CellExecutionError as err:
        status, error = "failed", str(err).strip().splitlines()[-1][:300]
    seconds = time.perf_counter() - start
    nbformat.write(nb, out / path.name)
    results = RESULTS / f"{path.stem}.json"
    fresh = results.is_file() and results.stat().st_mtime >= began  # written by this run, not an older one
    record = json.loads(results.read_text()) if fresh else None
    return {"notebook": path.stem, "status": status, "seconds": round(seconds, 1),
            "claims": _claims(record, status, error), "device": record["device"] if record else "", "error": error,
            "headline": _headline(path.stem, record["metrics"]) if record else {}}


def _pick(names: list[str]) -> list[Path]:
    every = sorted(SOLUTIONS.glob("*.ipynb"))
    if not names:
        return every
    chosen = [p for p in every if any(p.stem == n or p.stem.startswith(f"{n}_") for n in names)]
    missing = [n for n in names if not any(p.stem == n or p.stem.startswith(f"{n}_") for p in every)]
    if missing:
        raise SystemExit(f"no solution notebook matches {', '.join(missing)}; known: "
                         + ", ".join(p.stem.split("_")[0] for p in every))
    return chosen


def run_all(paths: list[Path], out: Path, profile: str, sizes: str | None, parallel: int, timeout: int) -> list[dict]:
    """Each notebook in a subprocess, ``parallel`` at a time, with the machine's cores shared out among them
    (``OMP_NUM_THREADS``, unless set); a notebook past ``timeout`` seconds is killed."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KDLIB_PROFILE=profile, PYTHONWARNINGS="ignore")
    # the cores shared out: with more compute threads than cores the notebooks' threads wait on each other
    # (on 2 cores, two notebooks of 2 threads each ran several times slower than one after the other)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    env.pop("KDLIB_SIZES", None)
    if sizes:
        env["KDLIB_SIZES"] = sizes
    pending, running, records = list(paths), [], []
    while pending or running:
        while pending and len(running) < parallel:
            path = pending.pop(0)
            cmd = [sys.executable, "-m", "kdlib.teaching.gpu_check", "--one", str(path), "--out", str(out),
                   "--timeout", str(timeout)]
            running.append((path, time.perf_counter(), subprocess.Popen(cmd, env=env, cwd=REPO_ROOT)))
        time.sleep(0.5)
        for item in list(running):
            path, started, proc = item
            late = time.perf_counter() - started > timeout + 60
            if proc.poll() is None and not late:
                continue
            if late and proc.poll() is None:
                proc.kill()
            running.remove(item)
            record = out / f"{path.stem}.record.json"
            records.append(json.loads(record.read_text()) if record.is_file() and not late else
                           {"notebook": path.stem, "status": "timeout" if late else "crashed",
                            "seconds": round(time.perf_counter() - started, 1), "claims": "unknown", "device": "",
                            "error": f"exit code {proc.returncode}", "headline": {}})
    records.sort(key=lambda r: r["notebook"])
    _write_summary(records, out, profile, sizes)
    return records


def _write_summary(records: list[dict], out: Path, profile: str, sizes: str | None) -> None:
    (out / "summary.json").write_text(json.dumps({"profile": profile, "sizes": sizes or profile,
                                                  "notebooks": records}, indent=1))
    lines = [f"# gpu check: profile {profile}, sizes {sizes or profile}", "",
             "| notebook | status | seconds | claims | device | headline |", "|---|---|---|---|---|---|"]
    for r in records:
        head = "; ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in r["headline"].items())
        lines.append(f"| {r['notebook']} | {r['status']} | {r['seconds']} | {r['claims']} | {r['device']} | "
                     f"{head or r['error']} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="numbers or names (default: every solution notebook)")
    parser.add_argument("--profile", default="gpu", choices=("ci", "laptop", "gpu"))
    parser.add_argument("--sizes", default=None, choices=("ci", "laptop", "gpu"), help="another profile's sizes")
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per notebook")
    parser.add_argument("--out", default=str(REPO_ROOT / "build" / "gpu_check"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.one:
        path = Path(args.one)
        (out / f"{path.stem}.record.json").write_text(json.dumps(run_one(path, out, args.timeout)))
        return 0
    if args.parallel < 1 or args.timeout < 1:
        parser.error("--parallel and --timeout must be at least 1")
    records = run_all(_pick(args.notebooks), out, args.profile, args.sizes, args.parallel, args.timeout)
    print((out / "summary.md").read_text())
    return 0 if all(r["status"] == "ok" and r["claims"] != "failed" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
