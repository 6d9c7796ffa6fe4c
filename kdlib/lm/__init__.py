"""Causal language models: loading, students, generation, token blocks and top-k caches, and the training
steps for token KD, SFT and DPO. Notebooks 05-07 (and 08, 10-11).

Modules: ``load`` (the offline SmolLM2 teacher or an own one: 05; the corrected teacher: 10),
``students`` (students from the teacher's
config, the vocabulary check: 05), ``small`` (a small tokenizer and Llama: 06-07), ``generate`` (sampling and
sequence log-probs: 05-07), ``blocks`` (token blocks, the top-k cache, LM metrics: 05), ``storage`` (bytes per
token against KL error of dense and top-k caches: 05), ``quality`` (a unigram baseline, the teacher's NLL of
students' samples: 05), ``steps`` (plain LM, top-k,
sequence-level and on-policy KD steps: 05), ``sft`` (SFT and multi-task steps, answering: 06-07), ``dpo`` (pairs
and the DPO step: 07), ``toy`` (the bimodal toy of forward vs reverse KL: 05), ``vocab`` (teacher and student
with different vocabularies: the decision tree, padded rows, shared tokens, aligning two tokenisations: 05b),
``cross`` (a student with its own tokenizer: aligned blocks, the ULD cache and step, re-tokenised teacher text:
05b), ``prune`` (structured pruning by calibration importance: MLP neurons, key-value groups of heads, whole layers:
10), ``speculative``
(the speculative-decoding speed-up and a greedy draft-and-verify loop that measures acceptance: 11),
``quantize`` (weight quantization simulated in floating point: PTQ, QAT with a straight-through estimator,
sizes: 10), ``kernels`` (quantized weights on torchao's integer kernels, for size and latency: 10),
``lora`` (LoRA students with peft, their optimizer state: 11), ``distributed`` (the LM pipelines of 05-08 as a
script, data-parallel under torchrun or accelerate launch: the gpu profile's scale-out).
"""
from kdlib.lm.load import LoadedLM, load_teacher, train_own_teacher, teacher_or_own, correct_teacher
from kdlib.lm.students import build_student, check_vocab, model_vocab_size
from kdlib.lm.small import PIECE, SPECIAL_TOKENS, build_tokenizer, small_llama
from kdlib.lm.generate import (Samples, pack_right, chat_prompts, generate, completion_logprobs, sequence_logprobs,
                               token_logprobs)
from kdlib.lm.storage import storage_curve, smallest_k
from kdlib.lm.prune import (calibration_loss, neuron_importance, mlp_importance, prune_mlp, layer_importance,
                            drop_layers, head_importance, prune_heads)
from kdlib.lm.speculative import (tokens_per_target_forward, speedup, break_even_acceptance, speculative_greedy,
                                  expected_acceptance, assisted_generate)
from kdlib.lm.quantize import fake_quantize, quantize_weights, prepare_qat, finish_qat, quantized_size_mb
from kdlib.lm.kernels import integer_kernels
from kdlib.lm.quality import UnigramLM, teacher_nll_of_samples
from kdlib.lm.blocks import TopKCache, token_blocks, cache_topk, evaluate_lms, tokens_per_second
from kdlib.lm.steps import lm_step, topk_kd_step, sequence_kd_step, on_policy_kd_step
from kdlib.lm.sft import SFTData, MultitaskData, sft_data, sft_step, multitask_step, answer, answer_cost
from kdlib.lm.dpo import (PreferencePairs, pair_logprobs, rows_logprobs, reference_logprobs, dpo_step, item_wins,
                         win_rate, win_rate_parts, best_on_grid, extend_grid)
from kdlib.lm.toy import bimodal_teacher, gaussian_logits, fit_gaussian, draw_fits, jsd_explorer
from kdlib.lm.vocab import (padding_mass, truncate_padded, shared_vocab, bucket_logprobs, shared_vocab_mass,
                            shared_topk, check_vocab_map, Alignment, align_tokens, align_tokenizers, VocabCase,
                            vocab_case, describe_case)

__all__ = ["LoadedLM", "load_teacher", "train_own_teacher", "teacher_or_own", "correct_teacher", "integer_kernels", "build_student",
           "check_vocab", "model_vocab_size",
           "PIECE", "SPECIAL_TOKENS", "build_tokenizer", "small_llama", "Samples", "pack_right", "chat_prompts",
           "generate", "completion_logprobs", "sequence_logprobs", "token_logprobs", "TopKCache", "token_blocks",
           "cache_topk", "storage_curve", "smallest_k", "UnigramLM", "teacher_nll_of_samples", "evaluate_lms",
           "tokens_per_second", "lm_step", "topk_kd_step", "sequence_kd_step",
           "on_policy_kd_step",
           "SFTData", "MultitaskData", "sft_data", "sft_step", "multitask_step", "answer", "answer_cost",
           "PreferencePairs", "pair_logprobs", "rows_logprobs", "reference_logprobs", "dpo_step", "win_rate",
           "item_wins", "win_rate_parts", "best_on_grid", "extend_grid",
           "bimodal_teacher", "gaussian_logits", "fit_gaussian", "draw_fits", "jsd_explorer",
           "padding_mass", "truncate_padded", "shared_vocab", "bucket_logprobs", "shared_vocab_mass", "shared_topk",
           "check_vocab_map", "Alignment", "align_tokens", "align_tokenizers", "VocabCase", "vocab_case",
           "describe_case", "calibration_loss", "neuron_importance", "mlp_importance", "prune_mlp", "layer_importance",
           "drop_layers", "head_importance", "prune_heads",
           "tokens_per_target_forward", "speedup", "break_even_acceptance", "speculative_greedy",
           "expected_acceptance", "assisted_generate",
           "fake_quantize", "quantize_weights", "prepare_qat", "finish_qat", "quantized_size_mb"]
