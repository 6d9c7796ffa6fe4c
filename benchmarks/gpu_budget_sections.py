"""Sections of each notebook's gpu profile for ``benchmarks/gpu_budget.py``: what each trains or decodes, how
many steps its gpu sizes imply (read from the notebook's profile cell), and at which shape. Rows marked cached
(teachers, and students another notebook caches) are left out of the notebook's total."""
from __future__ import annotations

import math

from gpu_budget_shapes import (cnn_shape, decode_shape, encoder_shape, ensemble_shape, llama, lm_shape, mlp_shape,
                               own_teacher)
from kdlib.vision import DeepCNN, LightCNN


def sections(nb: str, g: dict, aw: dict) -> list[tuple]:
    """(section, steps, (shape name, builder), cached, note) of notebook ``nb`` at its gpu sizes ``g``."""
    c = math.ceil
    s800, s800kd = ("mlp 800-800 b128 CE", mlp_shape([784, 800, 800, 10], 128)), \
        ("mlp 800-800 b128 KD", mlp_shape([784, 800, 800, 10], 128, kd=True))
    if nb == "02":
        n, spe = 50000, 391
        small = c(round(g["small_fraction"] * n) / 128)
        seeds = len(g["seeds"])
        teacher = ("teacher 1200-1200", g["teacher_epochs"] * spe, ("mlp 1200-1200 b128 CE",
                   mlp_shape([784, 1200, 1200, 10], 128)), True, "")
        omitted = ("omitted-3 student", g["epochs"] * c(0.898 * n / 128), s800kd, False, "89.8% of MNIST is not a 3")
        if g.get("ensemble"):  # kdlib.vision.together: the students of one shape and data as one batched model
            def ens(members, sizes=(784, 800, 800, 10), batch=128):
                return (f"ensemble of {members} mlp {sizes[1]}-{sizes[2]} b{batch} KD",
                        ensemble_shape(list(sizes), batch, members))
            return [teacher,
                    ("full-data students, hard + KD, one ensemble", g["epochs"] * spe, ens(2 * seeds), False,
                     f"{2 * seeds} members"),
                    ("3% students, hard + KD, an ensemble per seed", seeds * g["small_epochs"] * small, ens(2), False,
                     f"{small} steps/epoch"),
                    ("T sweep, 800-800 on 3%, one ensemble", g["sweep_epochs"] * small, ens(len(g["T_sweep"])), False,
                     ""),
                    ("T sweep, 30-30 full data, one ensemble", g["tiny_epochs"] * c(n / 256),
                     ens(1 + len(g["tiny_T_sweep"]), (784, 30, 30, 10), 256), False, "batch 256"),
                    ("alpha sweep on 3%, an ensemble per seed", seeds * g["small_epochs"] * small,
                     ens(len(g["alpha_sweep"])), False, ""),
                    omitted]
        return [teacher,
                ("full-data students, hard", seeds * g["epochs"] * spe, s800, False, f"{seeds} seeds"),
                ("full-data students, KD", seeds * g["epochs"] * spe, s800kd, False, f"{seeds} seeds"),
                ("3% students, hard + KD", 2 * seeds * g["small_epochs"] * small, s800kd, False,
                 f"{small} steps/epoch"),
                ("T sweep, 800-800 on 3%", len(g["T_sweep"]) * g["sweep_epochs"] * small, s800kd, False, ""),
                ("T sweep, 30-30 full data", (1 + len(g["tiny_T_sweep"])) * g["tiny_epochs"] * c(n / 256),
                 ("mlp 30-30 b256 KD", mlp_shape([784, 30, 30, 10], 256, kd=True)), False, "batch 256"),
                ("alpha sweep on 3%", len(g["alpha_sweep"]) * seeds * g["small_epochs"] * small, s800kd, False, ""),
                omitted]
    if nb == "03":
        spe = c((55000 if g["n_train"] is None else g["n_train"]) / g["batch_size"])
        light = lambda kd: (f"LightCNN b{g['batch_size']} {'KD' if kd else 'CE'}",  # noqa: E731
                            cnn_shape(lambda: LightCNN((1, 28, 28), 10), g["batch_size"], kd))
        deep = ("DeepCNN teacher b128", cnn_shape(lambda: DeepCNN((1, 28, 28), 10, g["teacher_widths"],
                                                                  g["teacher_hidden"]), 128))
        run = g["seeds"] * g["student_epochs"] * spe
        return [("teacher", g["teacher_epochs"] * spe, deep, True, "Fashion-MNIST 55,000 images"),
                ("students, hard labels", run, light(False), False, f"{g['seeds']} seeds"),
                ("students, logit KD + hint + cosine", 3 * run, light(True), False,
                 "hint and cosine priced as logit KD")]
    if nb == "04":
        runs = 4 + 2 + 2 + 2 * (len(g["seeds"]) - 1)
        return [("teacher (MiniLM fine-tuned)", g["teacher_epochs"] * c(g["teacher_train"] / g["teacher_batch"]),
                 ("BERT 6x384 b32", encoder_shape(6, g["teacher_batch"], g["max_length"])), True, ""),
                ("students", runs * c((g["labels"] + g["transfer"]) / g["batch"]),
                 ("BERT 3x384 b16", encoder_shape(3, g["batch"], g["max_length"])), False,
                 f"{runs} runs; internal losses priced as CE")]
    if nb == "09":
        seeds, spe = len(g["seeds"]), c(g["capacity_size"] / 128)
        run = seeds * g["capacity_epochs"] * spe
        ce, kd = (("mlp 1200-1200 b128 CE", mlp_shape([784, 1200, 1200, 10], 128)),
                  ("mlp 1200-1200 b128 KD", mlp_shape([784, 1200, 1200, 10], 128, kd=True)))
        return [("MNIST capacity sweep, hard", len(g["widths"]) * run, ce, False, "every width priced as 1200-1200"),
                ("MNIST capacity sweep, KD", len(g["widths"]) * run, kd, False, f"{spe} steps/epoch"),
                ("via the assistant", run, kd, False, ""),
                ("tweet students (1 layer, equal size)", 2 * c(g["student_train"] / g["batch"]),
                 (f"BERT {g['max_layers']}x384 b{g['batch']}", encoder_shape(g["max_layers"], g["batch"],
                                                                             g["max_length"])), False, "")]
    if nb in ("05", "05b"):
        own = g.get("own_teacher") or dict(vocab_size=g.get("student_vocab", 16384))
        vocab = own["vocab_size"] if nb == "05" else g["student_vocab"]
        student = (f"llama 6x384 v{vocab} b{g['batch']}x{g['block']}",
                   lm_shape(lambda: llama(vocab, g["layers"], g["hidden"]), g["batch"], g["block"]))
        seeds = len(g["seeds"])
        rows = [("warm start", seeds * g["warm_steps"], student, False, f"{seeds} seeds")]
        if nb == "05":
            rows += [("own teacher (12x768)", own["steps"], ("llama 12x768 b32x256", lm_shape(own_teacher, 32, 256)),
                      True, "gpu: SmolLM2 does not travel"),
                     ("plain LM + token KD", seeds * 2 * g["steps"], student, False, "KD priced as plain LM"),
                     ("sequence KD", g["steps"], student, False, ""),
                     ("teacher text (decoding)", c(g["seq_prompts"] / 16) * g["seq_new_tokens"],
                      ("decode 12x768 b16", decode_shape(own_teacher, 16)), False, "batch 16"),
                     ("on-policy: student decoding", g["steps"] * g["onpolicy_new_tokens"],
                      ("decode 6x384 b16", decode_shape(lambda: llama(vocab, g["layers"], g["hidden"]),
                                                        g["onpolicy_batch"])), False, "one token per forward"),
                     ("on-policy: updates", g["steps"], student, False, "")]
        else:
            smol = lambda: llama(49152, 30, 576, 9, 3, 1536, 64)  # noqa: E731  SmolLM2-135M's shape
            rows += [("students plain / seq KD / ULD", seeds * 3 * g["steps"], student, False, "ULD priced as LM"),
                     ("teacher text (decoding)", c(g["seq_prompts"] / g["gen_batch"]) * g["seq_new_tokens"],
                      (f"decode SmolLM2 b{g['gen_batch']}", decode_shape(smol, g["gen_batch"])), False, "")]
        return rows
    if nb in ("06", "07", "08"):
        vocab, rat = aw["vocab"], aw["rationale"]
        teacher = ("llama 6x384 b128 rationale", lm_shape(lambda: llama(vocab, 6, 384, 6), 128, rat))
        if nb == "06":
            b = g["base"]
            base_model = lambda: llama(vocab, b["layers"], b["hidden"], b["heads"], inter=b["intermediate"])  # noqa
            base = lambda w: (f"llama 4x256 b{g['batch']}x{w}", lm_shape(base_model, g["batch"], w))  # noqa: E731
            seeds, n = len(g["seeds"]), g["n_unlabelled"]
            cap = lambda n, s: min(s, c(g["max_epochs"] * n / g["batch"]))  # noqa: E731
            small = [max(g["batch"], round(f * n)) for f in g["fractions"] if round(f * n) < n]
            evals = (2 * seeds + 1 + 2 * len(small)) * (c(g["n_test"] / g["eval_batch"]) +
                                                         c(g["n_heldout"] / g["eval_batch"])) * g["max_new_tokens"]
            return [("teacher", g["teacher"]["steps"], teacher, True, ""),
                    ("base student", b["steps"], ("llama 4x256 b256 chains", lm_shape(
                        lambda: llama(vocab, b["layers"], b["hidden"], b["heads"], inter=b["intermediate"]), 256,
                        aw["answer"])), True, "chains priced at the answer width"),
                    ("teacher samples (decoding)", c(n * g["k"] / 256) * g["max_new_tokens"],
                     ("decode 6x384 b256", decode_shape(lambda: llama(vocab, 6, 384, 6), 256)), False,
                     f"{n} x {g['k']} samples"),
                    ("answer-only students", seeds * cap(n, g["answer_steps"]), base(aw["answer"]), False, ""),
                    ("rationale students", seeds * cap(n, g["steps"]), base(rat), False, ""),
                    ("multi-task student", 2 * cap(n, g["steps"]), base(rat), False, "two forwards per step"),
                    ("data-efficiency curve", sum(cap(m, g["answer_steps"]) + cap(m, g["steps"]) for m in small),
                     base(rat), False, f"sizes {small}"),
                    ("greedy evaluation (decoding)", evals, ("decode 4x256 b1000", decode_shape(
                        lambda: llama(vocab, b["layers"], b["hidden"], b["heads"], inter=b["intermediate"]),
                        g["eval_batch"])), False, "every student, both splits")]
        if nb == "07":
            s = g["student"]
            stu = lambda rows: (f"llama {s['layers']}x{s['hidden']} b{rows}x{rat}",  # noqa: E731
                                lm_shape(lambda: llama(vocab, s["layers"], s["hidden"], s["heads"]), rows, rat))
            return [("SFT student", g["sft_steps"], stu(g["sft_batch"]), True, "cached"),
                    ("DPO beta grid + seeds", (g["max_betas"] + len(g["seeds"]) - 1) * g["dpo_steps"],
                     stu(2 * g["dpo_batch"]), False, "grid at its largest; chosen + rejected rows"),
                    ("skewed teacher fine-tune", g["skew_steps"], teacher, False, ""),
                    ("samples (decoding)", c((g["n_coin_pairs"] + g["n_dev"] + g["n_test"] + g["n_heldout"]) * g["k"]
                                             / 256) * g["max_new_tokens"],
                     ("decode 6x384 b256", decode_shape(lambda: llama(vocab, 6, 384, 6), 256)), False,
                     "approximate: pairs, dev and evaluation prompts x k")]
        t, b = g["teacher"], g["base"]
        stu = (f"llama {b['layers']}x{b['hidden']} b{g['batch']}x{rat}",
               lm_shape(lambda: llama(vocab, b["layers"], b["hidden"], b["heads"], inter=b["intermediate"]),
                        g["batch"], rat))
        seeds = len(g["seeds"])
        runs = 1 + 2 * seeds + 2 + len(g["gold_fractions"]) + seeds
        prompts = sum(g["sources"].values())
        t_model = lambda: llama(vocab, t["layers"], t["hidden"], t["heads"])  # noqa: E731
        return [("teacher + safety fine-tune", t["steps"] + g["safety"]["steps"],
                 (f"llama {t['layers']}x{t['hidden']} b128", lm_shape(t_model, 128, rat)), True, ""),
                ("students", runs * g["steps"], stu, False, f"{runs} runs; tool traces priced at the rationale width"),
                ("teacher samples (decoding)", 2 * c(prompts * g["k"] / 256) * g["max_new_tokens"],
                 ("decode 4x256 b256", decode_shape(lambda: llama(vocab, t["layers"], t["hidden"], t["heads"]), 256)),
                 False, "two teachers")]
    own = g["own_teacher"]
    target = ("llama 12x768 b32x256", lm_shape(own_teacher, 32, 256))
    half = (f"llama 12x768 b{g['batch']}x{g['block']}", lm_shape(own_teacher, g["batch"], g["block"]))
    if nb == "10":
        runs = 2 + 2 + 1 + 2 * len(g["bits"])
        return [("own teacher", own["steps"], target, True, "gpu: SmolLM2 does not travel"),
                ("teacher correction", g["correction"]["steps"], half, True, "cached"),
                ("recovery + QAT students", runs * g["steps"], half, False,
                 f"{runs} runs, each priced as the unpruned 12x768 (an upper bound)")]
    draft = (f"llama {g['draft_layers']}x768 b{g['batch']}x{g['block']}",
             lm_shape(lambda: own_teacher(layers=g["draft_layers"]), g["batch"], g["block"]))
    return [("own teacher", own["steps"], target, True, "gpu: SmolLM2 does not travel"),
            ("LoRA / full students, KD and LM", 4 * g["steps"], half, False, "priced as the 12-layer target"),
            ("drafts, token KD and sequence KD", 2 * g["steps"], draft, False, ""),
            ("target text (decoding)", c(g["seq_prompts"] / 16) * g["seq_new_tokens"],
             ("decode 12x768 b16", decode_shape(own_teacher, 16)), False, "batch 16")]
