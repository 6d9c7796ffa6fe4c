"""Model builders for the vision notebooks (01-03): MLPs (02) and conv nets (03)."""
from .cnn import DeepCNN, LightCNN, n_params
from .mlp import mlp

__all__ = ["mlp", "DeepCNN", "LightCNN", "n_params"]
