"""Notebook 02's students trained together as one batched model give the students ``fit`` trains one by one."""
import pytest
import torch

from kdlib.core.fit import cross_entropy_step, fit
from kdlib.core.profiles import seeded
from kdlib.data import Split
from kdlib.vision import kd_step, mlp
from kdlib.vision.together import train_together

SIZES = [12, 16, 5]


def _data(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, SIZES[0], generator=gen), torch.randint(0, SIZES[-1], (n,), generator=gen))


def _alone(data, seed, teacher, T, alpha, epochs=2):
    with seeded(seed):
        model = mlp(SIZES)
    step = cross_entropy_step if teacher is None else kd_step(teacher, T=T, alpha=alpha)
    fit(model, data, step, epochs=epochs, batch_size=8, optimizer="adam", lr=1e-2, seed=seed, progress=False)
    return model


def test_students_trained_together_equal_students_trained_alone():
    data = _data()
    teacher = torch.randn(len(data.y), SIZES[-1], generator=torch.Generator().manual_seed(3)) * 3
    specs = [(0, None, 1.0, 0.0), (1, teacher, 4.0, 0.1), (2, teacher, 1.0, 0.5)]
    jobs = [dict(data=data, seed=s, teacher_outputs=t, T=T, alpha=a, sizes=SIZES, epochs=2, lr=1e-2, batch_size=8,
                 val=data) for s, t, T, a in specs]
    together = train_together(jobs)
    for (model, history), (s, t, T, a) in zip(together, specs):
        alone = _alone(data, s, t, T, a)
        for p, q in zip(model.parameters(), alone.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)
        assert len(history.loss) == 2 * 5 and history.val and 0 <= history.val[0]["accuracy"] <= 1


def test_jobs_of_different_shapes_train_as_separate_groups_in_order():
    data, other = _data(), _data(24, seed=1)
    jobs = [dict(data=d, seed=0, teacher_outputs=None, T=1.0, alpha=0.0, sizes=SIZES, epochs=e, lr=1e-2,
                 batch_size=8) for d, e in ((data, 1), (other, 1), (data, 2))]
    out = train_together(jobs)
    assert [len(h.loss) for _, h in out] == [5, 3, 10]
    with pytest.raises(ValueError, match="every job needs"):
        train_together([dict(data=data, seed=0)])
