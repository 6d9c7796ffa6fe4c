"""Conventions of kdlib.losses that peers got wrong: T^2, KL direction, batchmean, alpha, bad input."""
import math

import pytest
import torch
import torch.nn.functional as F

from kdlib.losses.logits import distillation_loss, kd_loss, soft_cross_entropy
from kdlib.losses.registry import LOSSES, register


def logits(n=6, c=10, seed=0, scale=3.0):
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * scale


def test_zero_when_student_equals_teacher():
    t = logits()
    assert kd_loss(t.clone(), t, T=4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_direction_is_teacher_to_student():
    s, t, T = logits(seed=1), logits(seed=2), 3.0
    p_t, p_s = F.softmax(t / T, -1), F.softmax(s / T, -1)
    forward = (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * T * T   # KL(p_T || p_S)
    reverse = (p_s * (p_s.log() - p_t.log())).sum(-1).mean() * T * T
    assert kd_loss(s, t, T).item() == pytest.approx(forward.item(), rel=1e-5)
    assert abs(forward - reverse) > 1e-3  # the test would not notice a swapped direction otherwise


def test_batchmean_sums_classes_and_averages_examples():
    s, t = logits(n=8, c=5, seed=3), logits(n=8, c=5, seed=4)
    per_example = torch.stack([kd_loss(s[i:i + 1], t[i:i + 1], 2.0) for i in range(8)])
    assert kd_loss(s, t, 2.0).item() == pytest.approx(per_example.mean().item(), rel=1e-5)
    wrong_mean = (F.kl_div(F.log_softmax(s / 2, -1), F.softmax(t / 2, -1), reduction="none").mean()) * 4
    assert kd_loss(s, t, 2.0).item() == pytest.approx(wrong_mean.item() * 5, rel=1e-5)


def test_t_squared_keeps_gradient_scale_independent_of_T():
    """Without T^2 the gradient shrinks as 1/T^2 at high T; with it the scale stays put."""
    t = logits(n=64, seed=5, scale=1.0)
    s0 = logits(n=64, seed=6, scale=1.0)
    norms = {}
    for T in (10.0, 20.0, 40.0):
        s = s0.clone().requires_grad_(True)
        kd_loss(s, t, T).backward()
        norms[T] = s.grad.norm().item()
    # with T^2: the gradient T * (p_S - p_T) / N tends to (z_S - z_T) / (C N) at high T, independent of T
    assert norms[40.0] / norms[10.0] == pytest.approx(1.0, rel=0.1)
    # without it: 16x smaller from T=10 to T=40
    s = s0.clone().requires_grad_(True)
    (kd_loss(s, t, 40.0) / 40.0 ** 2).backward()
    unscaled_40 = s.grad.norm().item()
    assert unscaled_40 * 40.0 ** 2 == pytest.approx(norms[40.0], rel=1e-4)
    assert norms[10.0] / 100.0 / unscaled_40 == pytest.approx(16.0, rel=0.1)


def test_soft_cross_entropy_has_the_same_gradient_and_differs_by_teacher_entropy():
    t, T = logits(seed=7), 2.0
    s1 = logits(seed=8).requires_grad_(True)
    s2 = s1.detach().clone().requires_grad_(True)
    kl, ce = kd_loss(s1, t, T), soft_cross_entropy(s2, t, T)
    p_t = F.softmax(t / T, -1)
    entropy = -(p_t * p_t.log()).sum(-1).mean() * T * T
    assert (ce - kl).item() == pytest.approx(entropy.item(), rel=1e-5)
    kl.backward()
    ce.backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-6)


def test_alpha_one_is_plain_cross_entropy_and_zero_is_pure_kd():
    s, t = logits(seed=9), logits(seed=10)
    y = torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(0))
    assert distillation_loss(s, t, y, T=5.0, alpha=1.0).item() == pytest.approx(F.cross_entropy(s, y).item())
    assert distillation_loss(s, t, y, T=5.0, alpha=0.0).item() == pytest.approx(kd_loss(s, t, 5.0).item())
    mix = 0.3 * F.cross_entropy(s, y) + 0.7 * kd_loss(s, t, 5.0)
    assert distillation_loss(s, t, y, T=5.0, alpha=0.3).item() == pytest.approx(mix.item())


def test_no_gradient_flows_into_the_teacher():
    s, t = logits(seed=11).requires_grad_(True), logits(seed=12).requires_grad_(True)
    kd_loss(s, t, 2.0).backward()
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("T", [0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_is_refused(T):
    with pytest.raises(ValueError, match=r"T must be a finite number > 0, got T=.*temperature"):
        kd_loss(logits(), logits(seed=1), T)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_bad_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(logits(), logits(seed=1), torch.zeros(6, dtype=torch.long), 2.0, alpha)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(6, 10\).*\(6, 9\)"):
        kd_loss(logits(), logits(c=9), 2.0)


def test_labels_out_of_range_and_nan_logits_are_refused():
    with pytest.raises(ValueError, match="labels must lie in"):
        distillation_loss(logits(), logits(seed=1), torch.full((6,), 10), 2.0, 0.5)
    bad = logits()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        kd_loss(bad, logits(seed=1), 2.0)
    bad[0, 0] = math.inf
    with pytest.raises(ValueError, match="teacher_logits contains"):
        kd_loss(logits(), bad, 2.0)


def test_registry_names_the_public_functions():
    assert LOSSES["kd"] is kd_loss and LOSSES["distillation"] is distillation_loss
    assert LOSSES["soft_cross_entropy"] is soft_cross_entropy


def test_registry_holds_every_loss_of_every_module():
    """One registry for logit, feature, transformer, token and preference losses (importing kdlib.losses
    fills it), each entry a function of the module that defines it."""
    import kdlib.losses as package
    from kdlib.losses import features, preference, tokens, transformer

    expected = {"kd": kd_loss, "distillation": distillation_loss, "soft_cross_entropy": soft_cross_entropy,
                "hint": features.hint_loss, "cosine_feature": features.cosine_feature_loss,
                "hidden_state": transformer.hidden_state_loss, "embedding": transformer.embedding_loss,
                "attention": transformer.attention_loss, "minilm_relation": transformer.minilm_relation_loss,
                "forward_kl": tokens.forward_kl, "reverse_kl": tokens.reverse_kl,
                "generalized_jsd": tokens.generalized_jsd, "topk": tokens.topk_loss,
                "completion": tokens.completion_loss, "multitask": tokens.multitask_loss,
                "dpo": preference.dpo_loss}
    for name, fn in expected.items():
        assert LOSSES[name] is fn, name
        assert getattr(package, fn.__name__) is fn  # the package re-exports each registered loss
    assert all(fn.__module__.startswith("kdlib.losses.") for fn in LOSSES.values())


def test_register_refuses_a_second_loss_under_a_taken_name():
    with pytest.raises(ValueError, match="'kd' is already registered"):
        register("kd")(lambda s, t, T: s)
    assert register("kd")(kd_loss) is kd_loss and LOSSES["kd"] is kd_loss  # the same function again is fine
