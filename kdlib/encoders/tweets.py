"""The tweet-sentiment teacher of notebook 04, shared with notebook 09: all-MiniLM-L6-v2 fine-tuned on the first
``len(data)`` training tweets of ``kdlib.data.tweets.split_tweets(seed=0)``, cached by its recipe.

The recipe names everything that changes the weights (the encoder's and the corpus's checksums, the split, the
sizes, the optimiser's settings, the profile), so the two notebooks share one cached teacher per profile and a
change to any of them trains a new one instead of loading a stale one.
"""
from __future__ import annotations

import torch

from kdlib.data.minilm import MINILM_FILES
from kdlib.data.tweets import TWEET_CLASSES, TWEETS_SHA256
from kdlib.data.types import Split
from kdlib.encoders.models import EncoderClassifier, load_encoder_teacher
from kdlib.encoders.train import prepare_encoder_teacher

__all__ = ["tweet_teacher_recipe", "prepare_tweet_teacher"]


def tweet_teacher_recipe(n_train: int, max_length: int, epochs: int, batch_size: int, lr: float, profile: str
                         ) -> dict:
    """The cache key of the fine-tuned tweet teacher."""
    return dict(name="minilm-tweets", model_sha256=MINILM_FILES["model.safetensors"], data_sha256=TWEETS_SHA256,
                split_seed=0, n_train=n_train, max_length=max_length, epochs=epochs, batch_size=batch_size, lr=lr,
                seed=0, profile=profile)


def prepare_tweet_teacher(data: Split, max_length: int, epochs: int, batch_size: int, lr: float, profile: str,
                          device: torch.device | str = "cpu", log=print) -> EncoderClassifier:
    """The fine-tuned teacher: loaded from ``datasets/cache/teachers`` when its recipe matches, else the offline
    all-MiniLM-L6-v2 with a fresh three-way head fine-tuned on ``data`` (token ids cut to ``max_length``,
    labels) and cached (``kdlib.encoders.train.prepare_encoder_teacher``)."""
    recipe = tweet_teacher_recipe(len(data.y), max_length, epochs, batch_size, lr, profile)
    return prepare_encoder_teacher(
        lambda: load_encoder_teacher(num_labels=len(TWEET_CLASSES), log=lambda *a: None).model, data, recipe,
        device=device, log=log)
