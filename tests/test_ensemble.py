"""kdlib.core.ensemble.fit_ensemble: K members trained as one batched model reproduce K separate ``fit`` runs
(same initial weights, same per-seed batch order, each with its own T and alpha), and the stacked KD loss equals
``distillation_loss`` member by member."""
import copy

import pytest
import torch
import torch.nn.functional as F

from kdlib.core import fit
from kdlib.core.ensemble import fit_ensemble
from kdlib.core.profiles import seeded
from kdlib.data.types import Split
from kdlib.losses import distillation_loss
from kdlib.losses.logits import member_distillation_losses
from kdlib.vision import kd_step, mlp


def _data(n=200):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 20, generator=gen)
    return Split(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()), torch.randn(n, 3, generator=gen) * 3


def test_member_losses_equal_distillation_loss_per_member():
    gen = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(3, 16, 5, generator=gen), torch.randn(3, 16, 5, generator=gen), torch.randint(0, 5, (3, 16))
    Ts, alphas = [1.0, 4.0, 20.0], [0.0, 0.5, 1.0]
    got = member_distillation_losses(s, t, y, Ts, alphas)
    want = torch.stack([distillation_loss(s[k], t[k], y[k], T=Ts[k], alpha=alphas[k]) for k in range(3)])
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="one T and one alpha per member"):
        member_distillation_losses(s, t, y, Ts[:2], alphas)


@pytest.mark.parametrize("epochs,batch_size", [(2, 32), (1, 200)])
def test_ensemble_matches_separate_fits(epochs, batch_size):
    data, teacher = _data()
    seeds, Ts, alphas = [0, 1, 2], [1.0, 4.0, 20.0], [0.1, 0.5, 1.0]
    models = []
    for seed in seeds:
        with seeded(10 + seed):
            models.append(mlp([20, 16, 16, 3]))
    separate = [copy.deepcopy(m) for m in models]
    histories = [fit(m, data, kd_step(teacher, T=T, alpha=a), epochs=epochs, batch_size=batch_size, lr=1e-2,
                     seed=seed, progress=False) for m, T, a, seed in zip(separate, Ts, alphas, seeds)]
    out = fit_ensemble(models, data, lambda z, y, idx: member_distillation_losses(z, teacher[idx], y, Ts, alphas),
                       seeds=seeds, epochs=epochs, batch_size=batch_size, lr=1e-2)
    for k, (m, h) in enumerate(zip(models, histories)):
        assert torch.allclose(out["loss"][:, k], torch.tensor(h.loss), atol=1e-5), k
        for (name, p), q in zip(m.named_parameters(), separate[k].parameters()):
            assert torch.allclose(p, q, atol=1e-5), (k, name, (p - q).abs().max())
    moved = [(m[0].weight - s[0].weight).abs().max() for m, s in zip(models, separate)]
    assert all(d < 1e-5 for d in moved) and not torch.equal(models[0][0].weight, models[1][0].weight)


def test_ensemble_hard_labels_and_argument_checks():
    data, _ = _data()
    models = [mlp([20, 8, 3]) for _ in range(2)]

    def ce(z, y, idx):
        return F.cross_entropy(z.flatten(0, 1), y.flatten(), reduction="none").view(len(z), -1).mean(-1)
    out = fit_ensemble(models, data, ce, seeds=[0, 1], epochs=3, batch_size=50, lr=1e-2)
    assert out["loss"].shape == (12, 2) and (out["loss"][-1] < out["loss"][0]).all()
    with pytest.raises(ValueError, match="one seed per model"):
        fit_ensemble(models, data, ce, seeds=[0], epochs=1)
    with pytest.raises(ValueError, match="adam or adamw"):
        fit_ensemble(models, data, ce, seeds=[0, 1], epochs=1, optimizer="sgd")
