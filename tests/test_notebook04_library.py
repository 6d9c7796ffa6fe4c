"""What notebook 04 moved into the library: the low-label student's step (kdlib.encoders.low_label_step) and the
paired bootstrap of a difference of accuracies (kdlib.core.paired_bootstrap_se). Tiny tensors, no BERT."""
import math

import pytest
import torch
from torch import nn

from kdlib.core import TeacherCache, fit, paired_bootstrap_se, value_checks
from kdlib.data import Split
from kdlib.encoders import low_label_step


def coin_flips(n, p, seed):
    return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < p).float()


def test_bootstrap_se_is_zero_for_identical_predictions_and_shrinks_with_more_items():
    a = coin_flips(400, 0.7, seed=1)
    assert paired_bootstrap_se(a, a.clone(), resamples=200) == 0.0
    assert paired_bootstrap_se(a.bool(), a.bool(), resamples=200) == 0.0  # bools are scores too
    small = paired_bootstrap_se(coin_flips(100, 0.7, 1), coin_flips(100, 0.6, 2), resamples=500)
    large = paired_bootstrap_se(coin_flips(10_000, 0.7, 1), coin_flips(10_000, 0.6, 2), resamples=500)
    assert 0 < large < small / 5  # ~ 1/sqrt(n): 100x the items, about a tenth of the standard error


def test_bootstrap_se_matches_the_formula_and_pairs_the_items():
    a, b = coin_flips(2000, 0.7, 3), coin_flips(2000, 0.6, 4)
    d = a - b
    expected = float(d.std(unbiased=False)) / math.sqrt(len(d))  # sqrt(var(a - b) / n)
    assert paired_bootstrap_se(a, b, resamples=2000, seed=0) == pytest.approx(expected, rel=0.1)
    # Paired: a model that is right exactly where the other is, plus 50 items, has a tiny standard error,
    # far below the unpaired sqrt(var(a)/n + var(b)/n).
    c = a.clone()
    c[(a == 0).nonzero()[:50, 0]] = 1
    unpaired = math.sqrt(float(a.var()) / len(a) + float(c.var()) / len(c))
    assert paired_bootstrap_se(c, a, resamples=1000) < unpaired / 3


def test_bootstrap_se_is_seeded_locally_and_checks_its_inputs():
    a, b = coin_flips(300, 0.7, 5), coin_flips(300, 0.6, 6)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = paired_bootstrap_se(a, b, resamples=100, seed=7)
    assert torch.equal(torch.get_rng_state(), state), "the bootstrap must not draw from the global RNG"
    assert paired_bootstrap_se(a, b, resamples=100, seed=7) == first
    assert paired_bootstrap_se(a, b, resamples=100, seed=8) != first
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_se(a, b[:-1])
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap_se(a, b, resamples=1)


def batch_and_teacher(n=12, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    y[::3] = -1  # every third row is unlabelled transfer data
    teacher = torch.randn(n, classes, generator=g) * 3
    return Split(x, y), teacher


def by_hand(logits, teacher, y, T, alpha):
    """alpha * CE over the labelled rows + (1 - alpha) * T^2 * KL(p_T || p_S) over all rows, from the formulas."""
    known = y >= 0
    log_p = logits.log_softmax(-1)
    ce = -log_p[known, y[known]].mean() if known.any() else torch.tensor(0.0)
    log_ps, log_pt = (logits / T).log_softmax(-1), (teacher / T).log_softmax(-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()
    return alpha * ce + (1 - alpha) * T * T * kl


@pytest.mark.parametrize("T, alpha", [(2.0, 0.5), (4.0, 0.1), (1.0, 1.0), (3.0, 0.0)])
def test_low_label_step_is_alpha_ce_on_labelled_rows_plus_t2_kl_on_all(T, alpha):
    data, teacher = batch_and_teacher()
    torch.manual_seed(0)
    model = nn.Linear(5, 4)
    idx = torch.tensor([7, 0, 3, 11, 4, 9, 1])  # shuffled sample indices: the teacher is looked up by index
    batch = Split(data.x[idx], data.y[idx])
    loss = low_label_step(teacher, T=T, alpha=alpha)(model, batch, idx)
    expected = by_hand(model(batch.x), teacher[idx], batch.y, T, alpha)
    assert loss.shape == () and torch.allclose(loss, expected, atol=1e-6), (loss, expected)


def test_low_label_step_on_a_batch_without_labels_is_the_soft_term_only():
    data, teacher = batch_and_teacher()
    idx = torch.tensor([0, 3, 6, 9])  # all unlabelled
    assert (data.y[idx] < 0).all()
    model = nn.Linear(5, 4)
    loss = low_label_step(TeacherCache(teacher, "", ""), T=2.0, alpha=0.5)(model, Split(data.x[idx], data.y[idx]), idx)
    soft = by_hand(model(data.x[idx]), teacher[idx], data.y[idx], 2.0, 0.0)
    assert torch.isfinite(loss) and torch.allclose(loss, 0.5 * soft, atol=1e-6)
    loss.backward()
    assert torch.isfinite(model.weight.grad).all()


def test_low_label_step_checks_t_and_alpha_when_built():
    _, teacher = batch_and_teacher()
    with pytest.raises(ValueError, match="T must be"):
        low_label_step(teacher, T=0.0, alpha=0.5)
    with pytest.raises(ValueError, match="alpha must be"):
        low_label_step(teacher, T=2.0, alpha=1.5)


def test_low_label_step_reads_no_tensor_value_on_the_host(monkeypatch):
    data, teacher = batch_and_teacher()
    model, idx = nn.Linear(5, 4), torch.arange(12)
    step = low_label_step(teacher, T=2.0, alpha=0.5)

    def refuse(*args, **kwargs):
        raise AssertionError("the step read a tensor value on the host")
    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    with value_checks(False):  # as in every step of fit() after the first
        loss = step(model, data, idx)
    monkeypatch.undo()
    assert torch.isfinite(loss)


def test_low_label_step_trains_with_fit():
    data, _ = batch_and_teacher(n=64)
    teacher = 3 * data.x @ torch.randn(5, 4, generator=torch.Generator().manual_seed(1))  # a linear teacher
    torch.manual_seed(0)
    model = nn.Linear(5, 4)
    before = (model(data.x).argmax(-1) == teacher.argmax(-1)).float().mean()
    history = fit(model, data, low_label_step(teacher, T=2.0, alpha=0.5), epochs=30, batch_size=16,
                  optimizer="adam", lr=1e-2, progress=False)
    assert all(map(math.isfinite, history.train_loss)) and history.train_loss[-1] < history.train_loss[0]
    after = (model(data.x).argmax(-1) == teacher.argmax(-1)).float().mean()
    assert after > max(before, 0.7)  # the soft targets on every row pulled the student towards the teacher
