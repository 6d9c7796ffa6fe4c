"""Image classifiers and their distillation steps. Notebooks 01-03 (and 09).

Modules: ``mlp`` (Hinton's MNIST nets and the cached teacher: 02, 09), ``cnn`` (the PyTorch KD tutorial's conv nets:
03), ``steps`` (logit KD for ``kdlib.core.fit``: 02-03), ``features`` (FitNets hint and cosine feature steps: 03), ``together`` (students of one shape trained as one
batched model: 02's seeds and sweeps on the gpu profile).
"""
from kdlib.vision.mlp import mlp, mnist_teacher_recipe, prepare_mnist_teacher
from kdlib.vision.cnn import DeepCNN, LightCNN
from kdlib.vision.steps import kd_step
from kdlib.vision.features import WithRegressor, conv_regressor, pool_features, hint_step, cosine_step

__all__ = ["mlp", "mnist_teacher_recipe", "prepare_mnist_teacher", "DeepCNN", "LightCNN", "kd_step", "WithRegressor",
           "conv_regressor", "pool_features", "hint_step", "cosine_step"]
