"""GPU seconds of each notebook's ``gpu`` profile, estimated from steps counted in its profile and work measured
on this CPU at the GPU shapes (``kdlib.core.budget``: per step max(ops x per_op_s, FLOPs / FLOPs_per_s)).

For every section of notebooks 02-11 this script counts the optimiser steps (and decoding forwards where
generation matters) that the notebook's gpu sizes imply, read from the notebook's own profile cell; it builds
the section's model at those shapes (random weights and token ids: only the shapes matter), runs a few steps of
the kit's own step function on the CPU (seconds per step, median) and counts one step's ATen operators and FLOPs.
Two constants turn that into GPU seconds, calibrated from the H200 runs reported in issue 17:

* launch floor: notebook 02's 800-800 student, ``fit`` with hard labels at batch 128, 0.52 s per epoch of 391
  steps alone on the GPU (FLOPs negligible): seconds per dispatched operator;
* throughput: notebook 06's teacher (6 layers, hidden 384, batch 128 rows of 84 tokens), 294 s for 6000 steps
  while two other notebooks shared the GPU (as ``make gpu-check`` runs them): FLOPs per second, fp32 (no bf16);
* decoding: 06's 160,000 teacher samples (batch 256, at most 64 new tokens) in 65 s, also shared: seconds per
  operator of a decoding forward, whose Python overhead differs from a training step's.

Teachers cached under ``datasets/cache`` (rows marked cached) are left out of the totals; teacher samples are
counted (they are cached after a first run). Writes ``benchmarks/results/gpu_budget.md`` and ``.json``.
Usage: ``python benchmarks/gpu_budget.py [--repeats 2] [--only 02,06]``.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import time
from pathlib import Path

import torch

from gpu_budget_sections import sections
from gpu_budget_shapes import Shapes, arithmetic_widths, decode_shape, ensemble_shape, llama, lm_shape, mlp_shape
from kdlib.core.budget import calibrate, section_seconds, step_seconds

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
H200 = dict(mlp_fit_epoch_s=0.52, mlp_steps=391, t06_s=294.0, t06_steps=6000, samples06_s=65.0, samples06=160000,
            teacher02_epoch_s=0.74, answer06_s=50.0, answer06_steps=3125)


def gpu_sizes(notebook: str) -> dict:
    """The ``gpu=dict(...)`` of the notebook's ``get_profile`` call, read from its solution notebook."""
    path = next((ROOT / "solutions").glob(f"{notebook}_*.ipynb"))
    for cell in json.loads(path.read_text())["cells"]:
        src = "".join(cell["source"])
        if "get_profile(" in src:
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "get_profile":
                    gpu = next(k.value for k in node.keywords if k.arg == "gpu")
                    return eval(compile(ast.Expression(gpu), str(path), "eval"), {"__builtins__": {}, "dict": dict})
    raise ValueError(f"no get_profile call in {path}")


NOTEBOOKS = ("02", "03", "04", "05", "05b", "06", "07", "08", "09", "10", "11")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated notebooks, e.g. 02,06 (default: all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    shape, aw = Shapes(args.repeats), arithmetic_widths()
    vocab = aw["vocab"]
    _, mlp_work = shape("mlp 800-800 b128 CE", mlp_shape([784, 800, 800, 10], 128))
    _, t06_work = shape("llama 6x384 b128 rationale", lm_shape(lambda: llama(vocab, 6, 384, 6), 128, aw["rationale"]))
    _, dec_work = shape("decode 6x384 b256", decode_shape(lambda: llama(vocab, 6, 384, 6), 256))
    train_cal = calibrate(H200["mlp_fit_epoch_s"] / H200["mlp_steps"], mlp_work, H200["t06_s"] / H200["t06_steps"],
                          t06_work, "H200: 02 student fit 0.52 s/391 steps alone; 06 teacher 294 s/6000 steps shared")
    dec_steps = math.ceil(H200["samples06"] / 256) * 64
    dec_cal = type(train_cal)(H200["samples06_s"] / (dec_steps * dec_work.ops), train_cal.flops_per_s,
                              "H200: 06 teacher samples 65 s shared, at most 64 tokens per sample")
    rows, totals = [], {}
    for nb in [n.strip() for n in args.only.split(",") if n.strip()] or NOTEBOOKS:
        g = gpu_sizes(nb)
        print(f"notebook {nb}", flush=True)
        for section, steps, (name, build), cached, note in sections(nb, g, aw):
            cpu_s, work = shape(name, build)
            cal = dec_cal if name.startswith("decode") else train_cal
            gpu_s = step_seconds(work, cal)
            bound = "launch" if work.ops * cal.per_op_s >= work.flops / cal.flops_per_s else "FLOPs"
            total = section_seconds(steps, work, cal)
            rows.append(dict(notebook=nb, section=section, steps=steps, shape=name, cpu_s_per_step=cpu_s,
                             ops=work.ops, gflops=work.flops / 1e9, gpu_s_per_step=gpu_s, bound=bound,
                             gpu_s=total, cached=cached, note=note))
            if not cached:
                totals[nb] = totals.get(nb, 0.0) + total
    t02 = shape("mlp 1200-1200 b128 CE", mlp_shape([784, 1200, 1200, 10], 128))[1]
    a06 = shape(f"llama 4x256 b128x{aw['answer']}", lm_shape(lambda: llama(vocab, 4, 256, 4, inter=1024), 128,
                                                            aw["answer"]))[1]
    checks = [("02 teacher 1200-1200, one epoch alone", H200["mlp_steps"] * step_seconds(t02, train_cal),
               H200["teacher02_epoch_s"]),
              ("06 answer-only student, 3125 steps, shared", H200["answer06_steps"] * step_seconds(a06, train_cal),
               H200["answer06_s"])]
    # what if 02's full-data students (5 seeds x hard and KD) trained as one 10-member ensemble (kdlib.core.ensemble)
    ens = shape("ensemble of 10 mlp 800-800 b128 KD", ensemble_shape([784, 800, 800, 10], 128, 10))[1]
    kd = shape("mlp 800-800 b128 KD", mlp_shape([784, 800, 800, 10], 128, kd=True))[1]
    whatif = [("02's full-data students (5 seeds x hard, KD), 800-800 at batch 128: one step of each, s",
               10 * step_seconds(kd, train_cal), step_seconds(ens, train_cal))]
    if args.only:  # a partial table is printed, never written over the full one
        print("\n".join(table(rows, totals, train_cal, dec_cal, {}, checks, whatif)))
        return
    write(rows, totals, train_cal, dec_cal, checks, whatif)


def write(rows, totals, train_cal, dec_cal, checks, whatif) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=f"{torch.get_num_threads()} torch threads, CPU, torch {torch.__version__}",
                date=time.strftime("%Y-%m-%d"), per_op_s=train_cal.per_op_s, flops_per_s=train_cal.flops_per_s,
                decode_per_op_s=dec_cal.per_op_s, calibration=[train_cal.source, dec_cal.source])
    (OUT / "gpu_budget.json").write_text(json.dumps(dict(meta=meta, rows=rows, totals=totals, checks=checks,
                                                         whatif=whatif), indent=1) + "\n")
    lines = table(rows, totals, train_cal, dec_cal, meta, checks, whatif)
    (OUT / "gpu_budget.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def table(rows, totals, train_cal, dec_cal, meta, checks, whatif) -> list[str]:
    lines = ["# GPU budget of the gpu profiles (estimated, not measured on a GPU)\n",
             f"Written by `benchmarks/gpu_budget.py` on {meta.get('date')} ({meta.get('machine')}). Per step: "
             f"max(ops x {train_cal.per_op_s * 1e6:.2f} us, FLOPs / {train_cal.flops_per_s / 1e12:.1f} TFLOP/s); "
             f"decoding forwards {dec_cal.per_op_s * 1e6:.2f} us per op. Calibration: {train_cal.source}; "
             f"{dec_cal.source}. Cached rows are not in the totals.\n",
             "| notebook | section | steps | shape | CPU s/step | ops | GFLOP | est. GPU s/step | bound | est. s "
             "| note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['notebook']} | {r['section']}{' (cached)' if r['cached'] else ''} | {r['steps']:,} | "
                     f"{r['shape']} | {r['cpu_s_per_step']:.4f} | {r['ops']} | {r['gflops']:.2f} | "
                     f"{r['gpu_s_per_step'] * 1e3:.2f} ms | {r['bound']} | {r['gpu_s']:.0f} | {r['note']} |")
    lines += ["", "| notebook | est. GPU s (teachers cached) |", "|---|---|"]
    lines += [f"| {nb} | {s:.0f} |" for nb, s in totals.items()]
    lines += ["", "The model against H200 runs it was not calibrated on:", "",
              "| run | model s | measured s | model / measured |", "|---|---|---|---|"]
    lines += [f"| {what} | {est:.2f} | {got:.2f} | {est / got:.2f} |" for what, est, got in checks]
    lines += ["", "What if (estimated both ways): K students as K separate `fit` runs or as one `kdlib.core.ensemble`:",
              "", "| students | separately, est. s | ensemble, est. s | separately / ensemble |", "|---|---|---|---|"]
    return lines + [f"| {what} | {a:.4f} | {b:.4f} | {a / b:.2f} |" for what, a, b in whatif]

if __name__ == "__main__":
    main()
