"""Evaluation on hand-made cases: errors, agreement, ECE."""
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from kdlib.core.metrics import (accuracy, agreement, error_count, expected_calibration_error, per_class_accuracy,
                                reliability_bins)


def test_errors_accuracy_agreement():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0], [1.0, 2.0]])
    labels = torch.tensor([0, 1, 1, 0])
    assert error_count(logits, labels) == 2
    assert accuracy(logits, labels) == 0.5
    assert agreement(logits, torch.tensor([[1.0, 0.0]] * 4)) == 0.5
    assert per_class_accuracy(logits, labels).tolist() == [0.5, 0.5]


def test_ece_of_a_perfectly_calibrated_set_is_zero():
    # 10 predictions at confidence 0.8, of which 8 are right
    probs = torch.tensor([[0.8, 0.2]] * 10)
    labels = torch.tensor([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.0, abs=1e-6)


def test_ece_by_hand_two_bins():
    # bin (0.5, 0.6]: 2 at 0.55, 1 right -> gap 0.05; bin (0.9, 1.0]: 2 at 0.95, both right -> gap 0.05
    probs = torch.tensor([[0.55, 0.45], [0.55, 0.45], [0.95, 0.05], [0.95, 0.05]])
    labels = torch.tensor([0, 1, 0, 0])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.05, abs=1e-6)
    # overconfident: all wrong at 0.9 -> ECE 0.9
    assert expected_calibration_error(torch.tensor([[0.9, 0.1]] * 4), torch.ones(4, dtype=torch.long)) == \
        pytest.approx(0.9, abs=1e-6)


def test_bin_edges_are_right_closed():
    bins = reliability_bins(torch.tensor([[0.6, 0.4]]), torch.tensor([0]), n_bins=5)  # 0.6 is in (0.4, 0.6]
    assert bins["count"].tolist() == [0, 0, 1, 0, 0]


def test_ece_refuses_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="apply softmax"):
        expected_calibration_error(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="expected probs"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]))


FACTORIES = {"linspace", "ones", "zeros", "full", "arange", "empty", "tensor", "eye", "rand", "randn", "as_tensor"}


class RecordFactories(TorchFunctionMode):
    """Records the device argument of every tensor factory call (None when it is left out)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in FACTORIES:
            self.calls.append((func.__name__, kwargs.get("device")))
        return func(*args, **kwargs)


def test_reliability_bins_make_every_tensor_on_the_device_of_probs():
    """CUDA inputs used to fail (edges and bins made on the CPU): every factory call now names probs.device."""
    probs = torch.tensor([[0.55, 0.45], [0.55, 0.45], [0.95, 0.05], [0.95, 0.05]])
    labels = torch.tensor([0, 1, 0, 0])
    with RecordFactories() as record:
        bins = reliability_bins(probs, labels, n_bins=10)
        ece = expected_calibration_error(probs, labels, n_bins=10)
    assert record.calls and all(device == probs.device for _, device in record.calls), record.calls
    assert ece == pytest.approx(0.05, abs=1e-6)
    assert all(t.device == probs.device for t in bins.values())
    assert bins["edges"].dtype == probs.dtype and bins["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]


def test_param_count_is_the_one_count_and_counts_shared_tensors_once():
    """kdlib.vision.cnn.n_params merged into kdlib.core.serving.param_count (trainable_only=True: its old count)."""
    import kdlib.vision.cnn as cnn
    from kdlib.core.serving import param_count
    from kdlib.vision.cnn import LightCNN
    assert not hasattr(cnn, "n_params")
    net = LightCNN((3, 32, 32))
    total = sum(p.numel() for p in net.parameters())
    assert param_count(net) == param_count(net, trainable_only=True) == total and 0.25e6 < total < 0.29e6
    for p in net.convs.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in net.convs.parameters())
    assert param_count(net) == total and param_count(net, trainable_only=True) == total - frozen
    emb = nn.Embedding(10, 4)
    tied = nn.ModuleDict({"inp": emb, "out": nn.Linear(4, 10, bias=False)})
    tied["out"].weight = emb.weight
    assert param_count(tied) == 40


def test_eval_mode_restores_every_submodule_even_on_error():
    from kdlib.core.inference import eval_mode, predict
    from kdlib.core.serving import latency
    frozen = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)).eval()
    wrapper = nn.Sequential(frozen, nn.Dropout(0.5))  # in training mode around a teacher in eval mode
    before = [m.training for m in wrapper.modules()]
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(wrapper):
            assert not any(m.training for m in wrapper.modules())
            raise RuntimeError("boom")
    assert [m.training for m in wrapper.modules()] == before == [True, False, False, False, True]
    x = torch.randn(5, 3)
    assert predict(wrapper, x, batch_size=2).shape == (5, 3)
    latency(wrapper, x, warmup=0, repeats=1)
    assert [m.training for m in wrapper.modules()] == before
