"""Model builders for the vision notebooks (01-03)."""
from .mlp import mlp

__all__ = ["mlp"]
