"""Weight quantization simulated in floating point (notebook 10): values on the integer grid, PTQ copies that leave
the input alone, QAT whose forward is the quantized model's and whose gradient passes the rounding, and sizes."""
import pytest
import torch

from kdlib.lm.quantize import fake_quantize, finish_qat, prepare_qat, quantize_weights, quantized_size_mb
from kdlib.lm.small import build_tokenizer, small_llama


def test_fake_quantize_puts_each_group_on_its_grid():
    w = torch.randn(6, 64, generator=torch.Generator().manual_seed(0))
    for bits in (2, 4, 8):
        q = fake_quantize(w, bits, 32).reshape(6, 2, 32)
        scale = w.reshape(6, 2, 32).abs().amax(-1, keepdim=True) / (2 ** (bits - 1) - 1)
        steps = q / scale
        assert torch.allclose(steps, steps.round(), atol=1e-4)  # whole multiples of the group's scale
        assert steps.abs().max() <= 2 ** (bits - 1)
        assert ((q - w.reshape(6, 2, 32)).abs() <= scale / 2 + 1e-6).all()  # round to nearest
    errors = [(fake_quantize(w, b, 32) - w).abs().mean() for b in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2]
    with pytest.raises(ValueError, match="does not divide"):
        fake_quantize(w, 4, 48)
    with pytest.raises(ValueError, match="bits"):
        fake_quantize(w, 1, 32)


@pytest.fixture(scope="module")
def model():
    tok = build_tokenizer(["a b c d"])
    return small_llama(tok, 2, 64, 2, intermediate=128, seed=0).eval(), torch.tensor([[4, 5, 6, 7, 4, 5]])


def test_ptq_and_qat_agree_and_the_gradient_passes(model):
    lm, ids = model
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    logits = lm(input_ids=ids).logits
    drift = {b: (quantize_weights(lm, b, 32)(input_ids=ids).logits - logits).abs().mean() for b in (3, 8)}
    assert drift[8] < drift[3] and all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())
    qat = prepare_qat(lm, 4, 32)
    out = qat(input_ids=ids, labels=ids)
    assert torch.allclose(out.logits, quantize_weights(lm, 4, 32)(input_ids=ids).logits, atol=1e-5)
    out.loss.backward()
    original = qat.model.layers[0].mlp.up_proj.parametrizations.weight.original
    assert original.grad is not None and original.grad.abs().sum() > 0  # straight through the rounding
    baked = finish_qat(qat)
    w = baked.model.layers[0].mlp.up_proj.weight
    assert torch.allclose(w, fake_quantize(w, 4, 32), atol=1e-6)  # on the grid, no parametrization left
    with pytest.raises(ValueError, match="does not divide"):
        prepare_qat(lm, 4, 48)
    with pytest.raises(TypeError, match="decoder"):
        quantize_weights(torch.nn.Linear(2, 2), 4)


def test_sizes_count_bits_scales_and_the_rest(model):
    lm, _ = model
    linear = sum(m.weight.numel() for m in lm.model.modules() if isinstance(m, torch.nn.Linear))
    rest = sum(p.numel() * 4 for n, p in lm.named_parameters() if "layers" not in n or "norm" in n)
    rest += sum(b.numel() * b.element_size() for b in lm.buffers())  # the rotary frequencies
    assert quantized_size_mb(lm, 4, 32) == pytest.approx((linear / 2 + linear / 32 * 2 + rest) / 1e6)
    assert quantized_size_mb(prepare_qat(lm, 4, 32), 4, 32) == pytest.approx(quantized_size_mb(lm, 4, 32))
    assert quantized_size_mb(lm, 8, 32) > quantized_size_mb(lm, 4, 32)
