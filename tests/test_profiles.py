"""Profiles: selection by KDLIB_PROFILE, sizes, overrides, claims, the gpu profile without CUDA."""
import pytest
import torch

from kdlib.core.profiles import get_profile

SIZES = dict(ci=dict(epochs=1), laptop=dict(epochs=8), gpu=dict(epochs=60))


def test_profile_picks_its_sizes(monkeypatch):
    monkeypatch.delenv("KDLIB_OVERRIDES", raising=False)
    monkeypatch.setenv("KDLIB_PROFILE", "laptop")
    p = get_profile(**SIZES)
    assert (p.name, p.epochs, p.assert_claims) == ("laptop", 8, True)
    monkeypatch.setenv("KDLIB_PROFILE", "ci")
    assert get_profile(**SIZES).assert_claims is False


def test_unknown_profile_and_size_are_clear_errors(monkeypatch):
    monkeypatch.setenv("KDLIB_PROFILE", "fast")
    with pytest.raises(ValueError, match="ci, laptop, gpu"):
        get_profile(**SIZES)
    monkeypatch.setenv("KDLIB_PROFILE", "ci")
    with pytest.raises(AttributeError, match="no size 'width'"):
        get_profile(**SIZES).width


def test_overrides_change_sizes_and_disable_claims(monkeypatch):
    monkeypatch.setenv("KDLIB_PROFILE", "laptop")
    monkeypatch.setenv("KDLIB_OVERRIDES", "epochs=2")
    p = get_profile(**SIZES)
    assert p.epochs == 2 and p.assert_claims is False and p.overridden == ("epochs",)
    monkeypatch.setenv("KDLIB_OVERRIDES", "epochs=3, seeds=[0, 1]")
    with pytest.raises(ValueError, match="seeds"):
        get_profile(**SIZES)
    p = get_profile(ci=dict(epochs=1, seeds=[0]), laptop=dict(epochs=1, seeds=[0]))
    assert p.seeds == [0, 1] and p.epochs == 3
    monkeypatch.setenv("KDLIB_OVERRIDES", "width=3")
    with pytest.raises(ValueError, match="width"):
        get_profile(**SIZES)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_gpu_profile_without_cuda_warns_and_runs_on_cpu(monkeypatch):
    monkeypatch.setenv("KDLIB_PROFILE", "gpu")
    monkeypatch.delenv("KDLIB_OVERRIDES", raising=False)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        p = get_profile(**SIZES)
    assert p.device.type == "cpu" and p.epochs == 60


def test_seed_makes_runs_repeatable(monkeypatch):
    monkeypatch.setenv("KDLIB_PROFILE", "ci")
    get_profile(**SIZES, seed=3)
    a = torch.rand(3)
    get_profile(**SIZES, seed=3)
    assert torch.equal(a, torch.rand(3))


def test_sizes_of_another_profile_run_this_profiles_code_path(monkeypatch):
    monkeypatch.setenv("KDLIB_PROFILE", "gpu")
    monkeypatch.delenv("KDLIB_OVERRIDES", raising=False)
    monkeypatch.setenv("KDLIB_SIZES", "ci")
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
        p = get_profile(**SIZES)
    assert (p.name, p.epochs, p.assert_claims, p.overridden) == ("gpu", 1, False, ("sizes of ci",))
    assert "sizes of ci" in p.describe()
    monkeypatch.setenv("KDLIB_OVERRIDES", "epochs=2")
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
        assert get_profile(**SIZES).epochs == 2  # overrides apply on top of the borrowed sizes
    monkeypatch.setenv("KDLIB_SIZES", "tiny")
    with pytest.raises(ValueError, match="KDLIB_SIZES"):
        get_profile(**SIZES)


def _nothing():
    import contextlib
    return contextlib.nullcontext()
