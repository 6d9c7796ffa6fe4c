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
import logging

from kdlib.core.profiles import get_profile
from kdlib.losses.logits import distillation_loss, kd_loss

# torchao (notebook 10's integer kernels), which transformers imports whenever it is installed, registers enums with
# torch.compile and torch logs a deprecation warning for each on every import: not the learner's concern
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

__version__ = "0.1.0"
__all__ = ["kd_loss", "distillation_loss", "get_profile"]
