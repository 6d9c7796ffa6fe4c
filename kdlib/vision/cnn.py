"""Conv nets for notebook 03, after the PyTorch knowledge-distillation tutorial.

Teacher (``DeepCNN``): four 3x3 convolutions (128, 64, 64, 32 channels, a 2x2 max-pool after the 2nd and the
4th), then Linear(32*H/4*W/4, 512)-ReLU-Dropout-Linear(512, classes): about 1.2M parameters on 3x32x32.
Student (``LightCNN``): two 3x3 convolutions (16, 16, each followed by a 2x2 max-pool), then
Linear(16*H/4*W/4, 256)-ReLU-Dropout-Linear(256, classes): about 0.27M parameters on 3x32x32.

Both expose the pieces feature distillation needs:

* ``feature_map(x)``: the last conv block's output (N, C, H/4, W/4), the "hint" layer of FitNets;
* ``features(x)``: that map flattened to (N, C*H/4*W/4), the vector the classifier sees;
* ``classify(features)``: the classifier head, so ``forward(x) = classify(features(x))``.

Inputs whose shape differs from the one the model was built for raise a ValueError naming both shapes.
Parameters are counted with ``kdlib.core.serving.param_count``.
"""
from __future__ import annotations

import torch
from torch import nn


class _ConvNet(nn.Module):
    def __init__(self, convs: nn.Sequential, channels: int, hidden: int, in_shape: tuple[int, int, int],
                 n_classes: int, dropout: float):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.convs = convs
        c, h, w = self.in_shape
        self.map_shape = (channels, h // 4, w // 4)
        self.classifier = nn.Sequential(nn.Linear(channels * (h // 4) * (w // 4), hidden), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"{type(self).__name__} was built for inputs (N, {', '.join(map(str, self.in_shape))}) "
                             f"but got {tuple(x.shape)}: the data set's channel count or image size does not match "
                             f"the model (build it with in_shape=data.x.shape[1:])")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last conv block, (N, C, H/4, W/4)."""
        self._check(x)
        return self.convs(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened feature map, (N, C*H/4*W/4): what the classifier sees."""
        return torch.flatten(self.feature_map(x), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU()]


class DeepCNN(_ConvNet):
    """The teacher: conv(w0)-conv(w1)-pool-conv(w2)-conv(w3)-pool, then an MLP head of ``hidden`` units."""

    def __init__(self, in_shape=(3, 32, 32), n_classes: int = 10, widths=(128, 64, 64, 32), hidden: int = 512,
                 dropout: float = 0.1):
        w = list(widths)
        convs = nn.Sequential(*_conv(in_shape[0], w[0]), *_conv(w[0], w[1]), nn.MaxPool2d(2),
                              *_conv(w[1], w[2]), *_conv(w[2], w[3]), nn.MaxPool2d(2))
        super().__init__(convs, w[3], hidden, in_shape, n_classes, dropout)


class LightCNN(_ConvNet):
    """The student: conv(w0)-pool-conv(w1)-pool, then an MLP head of ``hidden`` units."""

    def __init__(self, in_shape=(3, 32, 32), n_classes: int = 10, widths=(16, 16), hidden: int = 256,
                 dropout: float = 0.1):
        w = list(widths)
        convs = nn.Sequential(*_conv(in_shape[0], w[0]), nn.MaxPool2d(2), *_conv(w[0], w[1]), nn.MaxPool2d(2))
        super().__init__(convs, w[1], hidden, in_shape, n_classes, dropout)
