"""Notebooks 10-11's library pieces on a tiny Llama: LoRA students with peft (frozen base, adapters that start at
zero, their optimizer state, merging), torchao's integer kernels against the simulated rounding, and the cached
teacher correction."""
import pytest
import torch

from kdlib.core.serving import param_count
from kdlib.lm.kernels import integer_kernels
from kdlib.lm.load import correct_teacher
from kdlib.lm.lora import adam_state_mb, lora_student, merged
from kdlib.lm.prune import mlp_importance, neuron_importance
from kdlib.lm.quantize import quantize_weights
from kdlib.lm.small import build_tokenizer, small_llama


@pytest.fixture(scope="module")
def model():
    tok = build_tokenizer(["a b c d"])
    return small_llama(tok, 2, 64, 2, intermediate=128, seed=0).eval(), torch.tensor([[4, 5, 6, 7, 4, 5, 6, 7]])


def test_lora_starts_as_the_model_trains_adapters_only_and_merges(model):
    base, x = model
    student = lora_student(base, r=4, alpha=8, targets=("q_proj", "down_proj"))
    trainable = param_count(student, trainable_only=True)
    assert trainable == 2 * 4 * ((64 + 64) + (128 + 64))  # r (in + out) per adapted layer, 2 layers
    assert adam_state_mb(student) == pytest.approx(trainable * 8 / 1e6)  # two fp32 moments per parameter
    with torch.no_grad():
        assert torch.allclose(student(input_ids=x).logits, base(input_ids=x).logits)  # B = 0 at the start
        for name, p in student.named_parameters():
            if "lora_B" in name:
                p.add_(0.01)
        plain = merged(student)
        assert not hasattr(plain, "merge_and_unload") and param_count(plain) == param_count(base)
        assert torch.allclose(plain(input_ids=x).logits, student(input_ids=x).logits, atol=1e-5)
    assert all(p.grad is None for p in student.parameters())
    with pytest.raises(ValueError, match="not linear layers.*gate_proj"):
        lora_student(base, targets=("query", "q_proj"))
    with pytest.raises(ValueError, match="r must"):
        lora_student(base, r=0)


def test_integer_kernels_agree_with_the_simulated_rounding(model):
    base, x = model
    with torch.no_grad():
        ref = base(input_ids=x).logits
        int4 = integer_kernels(base, 4, 32)(input_ids=x).logits
        simulated = quantize_weights(base, 4, 32)(input_ids=x).logits
        error4 = (int4 - ref).abs().max()  # torchao rounds with its own scale (max / 7.5): the same order of error
        assert 0 < error4 < 2 * (simulated - ref).abs().max()
        assert (integer_kernels(base, 8)(input_ids=x).logits - ref).abs().max() < error4 / 4
    assert isinstance(base.model.layers[0].mlp.up_proj.weight, torch.nn.Parameter)  # the input is unchanged
    with pytest.raises(ValueError, match="simulate other"):
        integer_kernels(base, 3)
    with pytest.raises(ValueError, match="does not divide"):
        integer_kernels(base, 4, 48)


def test_teacher_correction_is_trained_once_and_cached(model, tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    base, x = model
    blocks = x.repeat(4, 1)
    recipe = dict(steps=3, batch=2, lr=1e-3)
    logs = []
    first = correct_teacher(base, blocks, recipe, log=logs.append)
    again = correct_teacher(base, blocks, recipe, log=logs.append)
    assert "training it once" in logs[0] and "loaded from cache" in logs[1]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(first.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    assert torch.equal(first.get_input_embeddings().weight, base.get_input_embeddings().weight)  # frozen
    with pytest.raises(ValueError, match="missing"):
        correct_teacher(base, blocks, dict(steps=1))


def test_mlp_importance_takes_the_learners_score(model):
    base, x = model
    calls = []

    def score(activations, mask):
        calls.append(activations.shape)
        return neuron_importance(activations, mask)

    assert all(torch.equal(a, b) for a, b in zip(mlp_importance(base, [x], score=score), mlp_importance(base, [x])))
    assert len(calls) == 2
    with pytest.raises(ValueError, match="score must be a function"):
        mlp_importance(base, [x], score="abs")
