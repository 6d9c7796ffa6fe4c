"""Training steps for image classifiers: hard labels and logit distillation. Notebooks 02 and 03.

A step is ``step(model, batch, idx) -> loss`` for ``kdlib.core.fit``: ``batch`` is the ``Split`` of the
samples ``idx`` (inputs augmented by the loop), and teacher outputs are looked up by ``idx``, so augmentation
and shuffling never misalign teacher and student (see ``kdlib.core.teacher_cache``).
"""
from __future__ import annotations


from kdlib.core.teacher_cache import by_index
from kdlib.core.validate import check_number, check_temperature
from kdlib.losses.logits import distillation_loss


def kd_step(teacher_outputs, T: float, alpha: float):
    """Distillation from teacher logits looked up by sample index (a ``TeacherCache`` or a tensor of logits):
    ``alpha * CE + (1 - alpha) * T^2 * KL(p_T || p_S)`` (``kdlib.losses.distillation_loss``). T and alpha are
    checked here, once; the teacher's logits move to the training device on the first step."""
    T = check_temperature(T)
    alpha = check_number("alpha", alpha, 0.0, 1.0, hint="alpha is the weight of the hard-label loss")
    lookup = by_index(teacher_outputs)

    def step(model, batch, idx):
        return distillation_loss(model(batch.x), lookup(idx), batch.y, T=T, alpha=alpha)
    return step
