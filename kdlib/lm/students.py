"""Causal-LM students built from a teacher's config, and the vocabulary check every token-level loss needs.
Notebook 05 (and later LLM notebooks).

* ``build_student``: a small Llama from the teacher's config (fewer layers, narrower, the same vocabulary),
  randomly initialised or initialised from teacher layers (every matrix sliced to the student's width).
* ``check_vocab``: teacher and student must share the vocabulary: a mismatch is refused with both sizes
  (a model that pads its embedding matrix to a multiple of 64 has more rows than its tokenizer has tokens,
  and a loss over misaligned vocabularies compares unrelated tokens without an error), unless the caller
  maps the student's vocabulary onto the teacher's explicitly with ``vocab_map``.
"""
from __future__ import annotations

import torch

from kdlib.core.profiles import seeded

__all__ = ["build_student", "check_vocab", "model_vocab_size"]


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
    """A small Llama with the teacher's vocabulary, special tokens and rope, fewer and narrower layers (notebook 05).

    Heads keep the teacher's head dimension (``hidden_size`` must be a multiple of it); by default the
    student keeps the teacher's ratio of query to key/value heads. ``init="teacher"`` copies the teacher's
    ``layers`` (0-based, one per student layer; default: evenly spaced, ``round(i * (n_teacher - 1) /
    (num_layers - 1))``, first and last included), embedding and norms, every matrix sliced to the student's
    leading rows/columns (a crude width pruning; grouped-query heads stay consistent because the first query
    heads belong to the first key/value heads); a layer the teacher lacks is a ValueError naming it.
    ``init="random"`` uses transformers' init. The weights are drawn inside ``kdlib.core.profiles.seeded(seed)``:
    the same student for the same seed, and the caller's RNG is left as it was. ``num_layers`` must be >= 1.
    With ``teacher`` given, the student's vocabulary is checked against the teacher's (``check_vocab``).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a whole number >= 1, got {num_layers!r}")
    if init not in ("random", "teacher"):
        raise ValueError(f"init must be 'random' or 'teacher', got {init!r}")
    if init == "random" and layers is not None:
        raise ValueError(f"layers={layers!r} picks teacher layers to copy, which only init='teacher' does; pass "
                         "init='teacher' (and teacher=...) or drop layers")
    if init == "teacher":
        if teacher is None:
            raise ValueError("init='teacher' needs the teacher model: pass teacher=...")
        n_t = teacher.config.num_hidden_layers
        if layers is None:
            layers = [round(i * (n_t - 1) / max(1, num_layers - 1)) for i in range(num_layers)]
        layers = list(layers)
        if len(layers) != num_layers:
            raise ValueError(f"layers names {len(layers)} teacher layers for a {num_layers}-layer student; give "
                             f"one teacher layer per student layer (or leave layers=None for evenly spaced ones)")
        missing = [i for i in layers if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_t]
        if missing:
            raise ValueError(f"teacher layers {missing} do not exist: the teacher has layers 0..{n_t - 1}")
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
    with seeded(seed):
        student = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k != "model_type"}))
    if init == "teacher":
        t_state = teacher.state_dict()
        new = {}
        for name, param in student.state_dict().items():
            src = name
            if ".layers." in name:
                i = int(name.split(".layers.")[1].split(".")[0])
                src = name.replace(f".layers.{i}.", f".layers.{layers[i]}.")
            if src not in t_state:
                continue
            if any(s > t for s, t in zip(param.shape, t_state[src].shape)) or param.dim() != t_state[src].dim():
                raise ValueError(f"init='teacher' slices teacher weights, but the student's {name} has shape "
                                 f"{tuple(param.shape)}, larger than the teacher's {tuple(t_state[src].shape)}: "
                                 "choose hidden_size, intermediate_size and heads no larger than the teacher's")
            new[name] = t_state[src][tuple(slice(0, s) for s in param.shape)].clone()
        student.load_state_dict(new, strict=False)
        if tie_embeddings:
            student.tie_weights()
    if teacher is not None:
        check_vocab(teacher, student)
    return student
