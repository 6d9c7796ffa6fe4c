"""Fully connected nets for MNIST, as in Hinton et al. (2015). Notebook 02.

Teacher 784-1200-1200-10 with dropout; student 784-800-800-10 (and a tiny 784-30-30-10).
"""
from __future__ import annotations

from torch import nn


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
