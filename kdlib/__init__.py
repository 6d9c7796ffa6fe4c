"""kdlib: the library behind the knowledge-distillation notebooks, in layers whose imports run one way.

::

    teaching    checks, exercise notebooks, report, plots, widgets           (every notebook)
    reasoning   arithmetic problems, rationales, the rationale teacher, judge (06-08)
    vision | encoders | lm    models and training steps per modality     (01-03 | 04 | 05-11)
    losses | data             objectives as tensor functions | verified loaders
    core        paths, profiles, results, fit(), teacher caches, metrics, serving

A package imports only from packages below it (``make test`` checks this with import-linter: the contract is
``[tool.importlinter]`` in ``pyproject.toml``).
Each package's docstring names its modules and the notebooks that teach them.
"""
from kdlib.core.profiles import get_profile
from kdlib.losses.logits import distillation_loss, kd_loss

__version__ = "0.1.0"
__all__ = ["kd_loss", "distillation_loss", "get_profile"]
