"""Notebook 03's library pieces: feature losses, temperature scaling, conv nets, feature caches, seed stats."""
import pytest
import torch
from torch import nn

from kdlib.core.calibration import apply_temperature, fit_temperature
from kdlib.data.types import Split
from kdlib.core.metrics import expected_calibration_error
from kdlib.vision.features import WithRegressor, conv_regressor, cosine_step, hint_step, pool_features
from kdlib.losses.registry import LOSSES
from kdlib.losses.features import cosine_feature_loss, hint_loss
from kdlib.vision.cnn import DeepCNN, LightCNN
from kdlib.core.serving import param_count
from kdlib.core.stats import compare, mean_std
from kdlib.core.teacher_cache import TeacherCache
from kdlib.core.fit import fit


def test_feature_losses_are_zero_when_equal_and_registered():
    f = torch.randn(4, 8, 3, 3)
    assert float(hint_loss(f, f.clone())) == 0.0
    assert float(cosine_feature_loss(f, 3.0 * f)) == pytest.approx(0.0, abs=1e-6)  # length does not matter
    assert float(cosine_feature_loss(f, -f)) == pytest.approx(2.0, abs=1e-6)
    assert LOSSES["hint"] is hint_loss and LOSSES["cosine_feature"] is cosine_feature_loss


def test_hint_loss_is_elementwise_mse():
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.allclose(hint_loss(s, t), ((s - t) ** 2).mean())


@pytest.mark.parametrize("loss", [hint_loss, cosine_feature_loss])
def test_mismatched_shapes_without_regressor_name_both(loss):
    with pytest.raises(ValueError, match=r"\(2, 16, 7, 7\).*\(2, 32, 7, 7\)"):
        loss(torch.randn(2, 16, 7, 7), torch.randn(2, 32, 7, 7))


def test_hint_regressor_path_maps_shapes_and_gets_gradients():
    torch.manual_seed(0)
    reg = conv_regressor(16, 32)
    s, t = torch.randn(2, 16, 7, 7, requires_grad=True), torch.randn(2, 32, 7, 7, requires_grad=True)
    loss = hint_loss(s, t, reg)
    assert torch.allclose(loss, ((reg(s) - t) ** 2).mean())
    loss.backward()
    assert reg.weight.grad is not None and s.grad is not None and t.grad is None  # teacher is a constant
    with pytest.raises(ValueError, match="after the regressor"):
        hint_loss(s, torch.randn(2, 8, 7, 7), reg)


@pytest.mark.parametrize("true_T", [0.5, 1.0, 2.5, 6.0])
def test_fit_temperature_recovers_a_known_temperature(true_T):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(20000, 10, generator=gen) * 2.0
    labels = torch.distributions.Categorical(logits=z).sample()  # calibrated at T = 1 ...
    T = fit_temperature(z * true_T, labels)  # ... so logits scaled by true_T need T = true_T
    assert T == pytest.approx(true_T, rel=0.05)
    probs = apply_temperature(z * true_T, T)
    assert expected_calibration_error(probs, labels) < 0.02
    assert torch.equal(probs.argmax(-1), z.argmax(-1))


def test_models_expose_features_and_match_the_tutorial_sizes():
    n_params = lambda m: param_count(m, trainable_only=True)  # noqa: E731
    assert 1.1e6 < n_params(DeepCNN((3, 32, 32))) < 1.3e6 and 0.25e6 < n_params(LightCNN((3, 32, 32))) < 0.29e6
    for shape in [(3, 32, 32), (1, 28, 28)]:
        x = torch.randn(2, *shape)
        for model in (DeepCNN(shape), LightCNN(shape)):
            model.eval()
            assert model.feature_map(x).shape[1:] == model.map_shape
            assert torch.allclose(model.classify(model.features(x)), model(x))


def test_channel_mismatch_says_which_shapes_were_seen():
    model = LightCNN((3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\).*\(4, 1, 28, 28\)"):
        model(torch.randn(4, 1, 28, 28))


def test_feature_cache_stays_aligned_under_shuffling():
    torch.manual_seed(0)
    teacher = DeepCNN((1, 8, 8), widths=(4, 4, 4, 4), hidden=8).eval()
    x = torch.randn(50, 1, 8, 8)
    cache = TeacherCache.build(teacher, x, batch_size=7, outputs="features").check(teacher, x)
    idx = torch.randperm(50)
    with torch.no_grad():
        assert torch.allclose(cache[idx], teacher.features(x[idx]), atol=1e-6)
    seen = []

    def step(model, batch, i):  # the loop hands out shuffled indices: check each batch against the teacher
        with torch.no_grad():
            seen.append(torch.allclose(cache[i], teacher.features(batch.x), atol=1e-5))
        return model(batch.x).sum() * 0 + nn.functional.cross_entropy(model(batch.x), batch.y)

    fit(LightCNN((1, 8, 8)), Split(x, torch.randint(0, 10, (50,))), step, epochs=2, batch_size=8, optimizer="adam",
        lr=1e-3, progress=False)
    assert len(seen) == 14 and all(seen)
    with pytest.raises(ValueError, match="outputs"):
        TeacherCache.build(teacher, x, outputs="attention")


def test_hint_and_cosine_steps_train_student_and_regressor():
    torch.manual_seed(0)
    teacher = DeepCNN((1, 8, 8), widths=(4, 4, 4, 6), hidden=8).eval()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    feats = TeacherCache.build(teacher, x, outputs="features")
    student = LightCNN((1, 8, 8))
    model = WithRegressor(student, conv_regressor(student.map_shape[0], teacher.map_shape[0]))
    before = model.regressor.weight.detach().clone()
    fit(model, Split(x, y), hint_step(feats, teacher.map_shape), epochs=1, batch_size=8, optimizer="adam", lr=1e-3,
        progress=False)
    assert not torch.equal(before, model.regressor.weight)
    pooled = feats.map(lambda f: pool_features(f, student.features(x[:1]).shape[1]))
    fit(student, Split(x, y), cosine_step(pooled), epochs=1, batch_size=8, optimizer="adam", lr=1e-3, progress=False)


def test_seed_comparison_separates_gain_from_noise():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert compare([0.80, 0.81, 0.79], [0.90, 0.91, 0.89])["beyond_noise"]
    assert not compare([0.80, 0.85, 0.75], [0.81, 0.86, 0.76])["beyond_noise"]
