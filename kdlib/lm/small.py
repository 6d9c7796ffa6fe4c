"""A small word-and-digit tokenizer and small Llama causal LMs built for it, so that teacher and student are
ordinary ``transformers`` causal LMs trained from scratch in minutes. Notebooks 06 and 07.

* ``build_tokenizer(texts)``: a ``PreTrainedTokenizerFast`` whose tokens are words (with their leading space),
  single digits, single spaces, newlines and single punctuation marks, with ``<pad>``, ``<eos>`` and ``<unk>``.
  Every digit is its own token, so ``37+25=62`` is eight tokens and a model sees the digits it adds. It is
  lossless on its own vocabulary: ``decode(encode(text)) == text``; words outside it become ``<unk>``.
* ``small_llama(tokenizer, layers, hidden, ...)``: a randomly initialised ``LlamaForCausalLM`` with the
  tokenizer's vocabulary and special tokens. Rotary positions (no learned position table) let a model trained
  on 1-3 step problems still read the longer 4-step ones.

Nothing in the rest of the path (``kdlib.lm.sft``, ``kdlib.reasoning.rationale``, ``kdlib.lm.generate``) depends on
these two: any ``transformers`` causal LM with its tokenizer can be the teacher or the student.
"""
from __future__ import annotations

import re

import torch

from kdlib.core.profiles import seeded

__all__ = ["PIECE", "SPECIAL_TOKENS", "build_tokenizer", "small_llama"]

PIECE = r" ?[A-Za-z]+|\d| |\n|[^\sA-Za-z\d]"  # the pre-tokenizer: a word with its leading space, a digit, ...
SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")


def build_tokenizer(texts: list[str], extra: tuple[str, ...] = ()):
    """A word-and-digit tokenizer whose vocabulary is every piece of ``texts`` (plus all digits, and the
    ``extra`` strings' pieces), sorted, so the same texts give the same ids on every machine."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = set("0123456789 \n")
    for text in [*texts, *extra]:
        pieces.update(re.findall(PIECE, text))
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *sorted(pieces)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def small_llama(tokenizer, layers: int = 2, hidden: int = 128, heads: int = 4, intermediate: int | None = None,
                max_positions: int = 512, seed: int = 0) -> torch.nn.Module:
    """A ``LlamaForCausalLM`` with ``layers`` layers of width ``hidden`` (``heads`` heads, MLP width
    ``intermediate``, default 4 * hidden), tied embeddings, the tokenizer's vocabulary and special tokens,
    randomly initialised inside ``kdlib.core.profiles.seeded(seed)`` (the same weights for the same seed; the
    caller's RNG is left as it was). Notebooks 06-07."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         head_dim=hidden // heads, max_position_embeddings=max_positions, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.eos_token_id)
    with seeded(seed):
        return LlamaForCausalLM(config)
