"""Distillation objectives as functions of tensors, each with its formula, reduction and notebook.

Modules: ``logits`` (KD, the hard/soft mix, soft cross-entropy: 01-03), ``features`` (FitNets hint, cosine
features: 03), ``transformer`` (hidden states and embeddings: 04) with ``attention`` (attention maps, MiniLM
relations: 04) and ``layermap`` (layer maps, padding masks), ``tokens`` (forward and reverse KL, GKD's JSD,
top-k caches: 05) with ``completion`` (the next-token shift, completion and multi-task losses: 05-06),
``preference`` (DPO: 07), ``uld`` (Universal Logit Distillation across tokenizers: 05b), ``inputs`` (the one
rule every loss applies to its inputs: dtypes, shapes, empty batches, 0/1 masks, all-masked batches, NaN), and
``registry``: ``LOSSES``, every loss by name, filled by the ``@register`` decorator where each loss is defined.

Bad input raises ValueError naming the argument; while ``kdlib.core.validate.values_checked()`` is False
(``kdlib.core.fit``'s later steps) no loss reads a tensor value on the host, NaN propagates to the loss and a
fully masked batch gives 0.
"""
from kdlib.losses.logits import kd_loss, distillation_loss, soft_cross_entropy
from kdlib.losses.features import hint_loss, cosine_feature_loss
from kdlib.losses.transformer import (layer_map, hidden_state_loss, embedding_loss, attention_loss, value_relation,
                                      minilm_relation_loss)
from kdlib.losses.tokens import (forward_kl, reverse_kl, generalized_jsd, TopK, topk_from_logits, bucket_log_probs,
                                 topk_loss, topk_relative_error, shift_for_next_token, completion_loss, multitask_loss)
from kdlib.losses.preference import dpo_loss
from kdlib.losses.uld import uld_loss
from kdlib.losses.registry import LOSSES, register

__all__ = ["kd_loss", "distillation_loss", "soft_cross_entropy", "hint_loss", "cosine_feature_loss", "layer_map",
           "hidden_state_loss", "embedding_loss", "attention_loss", "value_relation", "minilm_relation_loss",
           "forward_kl", "reverse_kl", "generalized_jsd", "TopK", "topk_from_logits", "bucket_log_probs",
           "topk_loss", "topk_relative_error", "shift_for_next_token", "completion_loss", "multitask_loss",
           "dpo_loss", "uld_loss", "LOSSES", "register"]
