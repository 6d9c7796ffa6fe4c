"""The teacher of notebooks 06 and 07: a causal LM trained once on labelled problems with gold rationales, and
its sampled rationales, both cached under the data directory; and notebook 06's base student.

* ``prepare_rationale_teacher``: a ``small_llama`` trained with ``kdlib.lm.sft`` on the ``rationale`` format of a
  labelled pool (``prepare_sft_teacher``: on any prompt-completion pairs, notebook 08's teachers), through
  ``kdlib.core.teacher_cache.prepare_teacher`` (a tqdm bar while training, weights cached under
  ``datasets/cache/teachers`` keyed by the recipe, which includes the tokenizer's vocabulary and the pool;
  rebuilt on a key or checksum mismatch).
* ``teacher_samples``: ``k`` sampled completions per prompt from *any* ``transformers`` causal LM, cached as
  JSON under ``datasets/cache/teacher_samples`` keyed by the teacher's weights fingerprint, the prompts and
  the sampling settings (a teacher's outputs are computed once, like ``kdlib.core.teacher_cache.TeacherCache``);
  a corrupt cache file is resampled with a log line, never trusted.
* ``prepare_base_student``: the students' starting point in notebook 06, a small LM pretrained on equation chains
  over listed numbers (``kdlib.reasoning.arithmetic.equation_chains``) and cached like the teacher, as real
  rationale distillation starts from a pretrained model that can already do some arithmetic.
"""
from __future__ import annotations

import copy
import hashlib
import json

import torch

from kdlib.core.files import atomic_write, check_writable
from kdlib.core.fit import fit
from kdlib.core.paths import data_dir
from kdlib.core.teacher_cache import describe, fingerprint, prepare_teacher, recipe_key
from kdlib.lm.sft import answer, sft_data, sft_step
from kdlib.lm.small import small_llama
from kdlib.reasoning.arithmetic import equation_chains
from kdlib.reasoning.rationale import format_example
from kdlib.reasoning.tool_generation import generate_with_tools
from kdlib.reasoning.tools import to_tool_trace

__all__ = ["prepare_sft_teacher", "prepare_rationale_teacher", "teacher_samples", "prepare_base_student",
           "TEACHER_RECIPE_KEYS", "BASE_RECIPE_KEYS"]

TEACHER_RECIPE_KEYS = ("layers", "hidden", "heads", "steps", "batch", "lr", "n_pool", "seed")
BASE_RECIPE_KEYS = ("layers", "hidden", "heads", "intermediate", "steps", "batch", "lr", "n_chains", "seed")


def _digest(strings) -> str:
    h = hashlib.sha256()
    for s in strings:
        h.update(s.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _check_recipe(recipe: dict, keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in recipe]
    if missing:
        raise ValueError(f"{what} recipe lacks {', '.join(missing)}; it needs {', '.join(keys)}")


def _vocab(tokenizer) -> str:
    return _digest(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))


def _train_sft(model, tokenizer, pairs, recipe: dict, device, desc: str) -> None:
    """``recipe["steps"]`` AdamW steps of next-token loss on the completions of ``(prompt, completion)`` pairs."""
    data = sft_data(tokenizer, [a for a, _ in pairs], [b for _, b in pairs])
    fit(model, data, sft_step, steps=recipe["steps"], batch_size=recipe["batch"], optimizer="adamw",
        betas=(0.9, 0.95), weight_decay=0.01, warmup=10, clip=1.0, lr=recipe["lr"], device=device,
        seed=recipe["seed"], desc=desc)


def prepare_sft_teacher(tokenizer, pairs: list[tuple[str, str]], recipe: dict, device="cpu",
                        name: str = "sft_teacher", log=print, init: torch.nn.Module | None = None) -> torch.nn.Module:
    """A ``small_llama(tokenizer, layers, hidden, heads)`` trained ``steps`` steps at ``batch`` and ``lr`` on the
    completions of ``(prompt, completion)`` pairs, loaded from the cache when it holds this recipe (the key adds
    the tokenizer's vocabulary and a digest of the pairs). ``init``: start from a copy of this model instead
    (fine-tuning; the key adds its weights' fingerprint). Returns it in eval mode on ``device``. Notebook 08's
    teachers (tool traces, refusals, and a safety fine-tune that over-refuses) are made this way."""
    _check_recipe(recipe, TEACHER_RECIPE_KEYS, "teacher")
    if len(pairs) != recipe["n_pool"]:
        raise ValueError(f"recipe says n_pool={recipe['n_pool']} but {len(pairs)} examples were given")
    key = dict(recipe, vocab=_vocab(tokenizer), pool=_digest(a + b for a, b in pairs),
               **({"init": fingerprint(init)} if init is not None else {}))

    def build():
        if init is not None:
            return copy.deepcopy(init).cpu().train()
        return small_llama(tokenizer, recipe["layers"], recipe["hidden"], recipe["heads"], seed=recipe["seed"])

    return prepare_teacher(name, key, build, lambda model: _train_sft(model, tokenizer, pairs, recipe, device,
                                                                      "teacher"), log=log).to(device).eval()


def prepare_rationale_teacher(tokenizer, pool, recipe: dict, device="cpu", name: str = "arithmetic_teacher",
                              log=print) -> torch.nn.Module:
    """``prepare_sft_teacher`` on the ``rationale`` format (question -> gold rationale and answer) of ``pool``
    (``recipe["n_pool"]`` problems): the teacher of notebooks 06 and 07."""
    return prepare_sft_teacher(tokenizer, [format_example(p, "rationale") for p in pool], recipe, device, name, log)


def prepare_base_student(tokenizer, recipe: dict, device="cpu", name: str = "arithmetic_base",
                         log=print) -> torch.nn.Module:
    """Notebook 06's base student: ``small_llama(tokenizer, layers, hidden, heads, intermediate)`` trained
    ``steps`` steps on ``n_chains`` equation chains on listed numbers (``"36 2 9: 36*2=72. 72-9=63."``; no word
    problems, no questions: it learns to compute and to copy operands from context, not to read a problem), cached
    like the teacher. Every student of 06 starts from a copy of it. With ``recipe["tool_chains"]`` true (notebook
    08) it also reads every chain written as tool calls (``"36 2 9: calc(36*2)=72. calc(ans-9)=63."``), so that
    students of either format start from the same base. Returns it in eval mode on ``device``."""
    _check_recipe(recipe, BASE_RECIPE_KEYS, "base student")
    chains = equation_chains(recipe["n_chains"], seed=recipe["seed"])
    if recipe.get("tool_chains"):  # notebook 08: the same chains written as tool calls too
        chains += [f"{head}: {to_tool_trace(body, ans=True)}" for head, body in (c.split(": ", 1) for c in chains)]
    key = dict(recipe, vocab=_vocab(tokenizer), chains=_digest(chains))

    def build():
        return small_llama(tokenizer, recipe["layers"], recipe["hidden"], recipe["heads"], recipe["intermediate"],
                           seed=recipe["seed"])

    pairs = [("", chain) for chain in chains]
    return prepare_teacher(name, key, build, lambda model: _train_sft(model, tokenizer, pairs, recipe, device,
                                                                      "base student"), log=log).to(device).eval()


def _stored_samples(path, settings: dict, n: int, k: int) -> tuple[list | None, str]:
    """The samples stored at ``path`` for these settings, or None and why not ("" when there is no file).
    A file that is not JSON or not of the expected shape is reported as corrupt, never raised."""
    if not path.is_file():
        return None, ""
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"is corrupt (not readable JSON: {describe(err)})"
    if not isinstance(stored, dict) or stored.get("settings") != settings:
        return None, "holds other settings"
    samples = stored.get("samples")
    if not (isinstance(samples, list) and len(samples) == n and all(
            isinstance(row, list) and len(row) == k and all(isinstance(s, str) for s in row) for row in samples)):
        return None, f"is corrupt (its samples are not {n} lists of {k} strings)"
    return samples, ""


def teacher_samples(teacher, tokenizer, prompts: list[str], k: int, max_new_tokens: int = 64,
                    temperature: float = 1.0, seed: int = 0, batch_size: int = 256, cache: bool = True,
                    with_tools: bool = False, log=print) -> list[list[str]]:
    """``k`` sampled completions per prompt (``result[i]`` answers ``prompts[i]``), from the cache under
    ``datasets/cache/teacher_samples`` when this teacher (by weights fingerprint), these prompts and these
    settings were sampled before; ``cache=False`` always samples and stores nothing. A cache file that is
    corrupt (truncated JSON, samples of the wrong shape) is resampled with a log line saying why, never
    trusted; the folder is checked writable before sampling, and the file is written atomically.
    ``with_tools=True`` samples through notebook 08's tool runtime (``kdlib.reasoning.tool_generation``): the texts
    hold the results it wrote, and ``kdlib.reasoning.tools.trace_calls`` reads the calls back from them."""
    settings = dict(teacher=fingerprint(teacher), prompts=_digest(prompts), k=k, max_new_tokens=max_new_tokens,
                    temperature=temperature, seed=seed, **({"tools": True} if with_tools else {}))
    path = data_dir() / "teacher_samples" / f"{recipe_key(settings)}.json"
    if cache:
        samples, why = _stored_samples(path, settings, len(prompts), k)
        if samples is not None:
            log(f"teacher samples: loaded {len(prompts)} x {k} from cache {path.name}")
            return samples
        if why:
            log(f"teacher samples: cache {path.name} {why}; resampling")
        check_writable(path.parent, "teacher samples cache")
    if with_tools:
        texts = generate_with_tools(teacher, tokenizer, prompts, num_samples=k, max_new_tokens=max_new_tokens,
                                    do_sample=True, temperature=temperature, batch_size=batch_size, seed=seed)[0].texts
    else:
        texts = answer(teacher, tokenizer, prompts, max_new_tokens=max_new_tokens, num_samples=k, do_sample=True,
                       temperature=temperature, batch_size=batch_size, seed=seed)
    samples = [texts[i * k:(i + 1) * k] for i in range(len(prompts))]
    if cache:
        try:
            with atomic_write(path, "w") as handle:
                handle.write(json.dumps({"settings": settings, "samples": samples}))
        except OSError as err:
            log(f"teacher samples: sampled, but could not be cached in {path.parent} ({describe(err)})")
    return samples
