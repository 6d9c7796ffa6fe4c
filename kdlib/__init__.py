"""kdlib: the library behind the knowledge-distillation notebooks.

Modules, one concern each: ``profiles`` (sizes per run profile), ``losses`` (objectives with their
formulas), ``data`` (verified offline data sets), ``models``, ``teacher`` (teacher-output cache),
``train`` (the loop), ``evaluate``, ``serving``, ``plots``, ``widgets``, ``checks`` (exercise checks),
``exercises`` (builds notebooks/ from solutions/), ``results`` (results JSON).
"""
from .losses import distillation_loss, kd_loss
from .profiles import get_profile

__version__ = "0.1.0"
__all__ = ["kd_loss", "distillation_loss", "get_profile"]
