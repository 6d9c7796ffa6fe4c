"""Fully connected nets for MNIST, as in Hinton et al. (2015). Notebook 02.

Teacher 784-1200-1200-10 with dropout (``prepare_mnist_teacher``, cached; notebook 09 reuses it); student
784-800-800-10 (and a tiny 784-30-30-10).
"""
from __future__ import annotations

import torch
from torch import nn

from kdlib.core.fit import cross_entropy_step, fit
from kdlib.core.teacher_cache import prepare_teacher
from kdlib.data.mnist import MNIST_SHA256
from kdlib.data.transforms import jitter
from kdlib.data.types import Split


def mlp(sizes: list[int] | tuple[int, ...], dropout: float = 0.0, input_dropout: float = 0.0) -> nn.Sequential:
    """``sizes = [784, 1200, 1200, 10]`` gives Linear-ReLU(-Dropout) blocks and a linear output layer.

    ``dropout`` applies after each hidden layer, ``input_dropout`` to the input (Hinton used 0.5 / 0.2).
    """
    if len(sizes) < 2 or any(int(s) <= 0 for s in sizes):
        raise ValueError(f"sizes must list at least an input and an output width, all positive; got {sizes}")
    layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout else []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def mnist_teacher_recipe(epochs: int, train_size: int | None) -> dict:
    """The cache key of Hinton's MNIST teacher (notebook 02, reused by 09): 784-1200-1200-10, dropout 0.5 and 0.2
    on the input, +-2 pixel jitter, Adam at 1e-3 with a cosine schedule, batch 128, seed 0."""
    return dict(arch=[784, 1200, 1200, 10], dropout=0.5, input_dropout=0.2, jitter_pixels=2, epochs=epochs, lr=1e-3,
                batch_size=128, seed=0, data=MNIST_SHA256, train_size=train_size, kdlib_train="adam-cosine-v1")


def prepare_mnist_teacher(train: Split, epochs: int, train_size: int | None, device: torch.device | str = "cpu",
                          log=print) -> nn.Module:
    """Hinton's MNIST teacher, loaded from ``datasets/cache/teachers`` when its recipe matches, else trained on
    ``train`` (``train_size`` images of it, None: all; the size is part of the key) and cached; in eval mode."""
    recipe = mnist_teacher_recipe(epochs, train_size)

    def train_teacher(model):
        fit(model, train, cross_entropy_step, epochs=epochs, batch_size=128, optimizer="adam", lr=1e-3,
            augment=lambda x, gen: jitter(x, 2, gen), device=device, seed=0, desc="teacher")

    build = lambda: mlp(recipe["arch"], dropout=0.5, input_dropout=0.2)  # noqa: E731
    return prepare_teacher("mnist_mlp_1200", recipe, build, train_teacher, log=log).to(device).eval()
