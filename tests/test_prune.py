"""Structured pruning of a Llama-family LM (notebook 10): width by activation importance, depth by the loss a
layer's removal costs; the input model is never changed and the pruned copies generate."""
import pytest
import torch

from kdlib.lm.prune import (calibration_loss, drop_layers, head_importance, layer_importance, mlp_importance,
                             neuron_importance, prune_heads, prune_mlp)
from kdlib.lm.small import build_tokenizer, small_llama

TEXTS = ["Ann has 12 apples. Ann buys 5 more.", "Ben loses 3 pens.", "How many cards does Cal have now?"]


@pytest.fixture(scope="module")
def setup():
    tok = build_tokenizer(TEXTS)
    model = small_llama(tok, layers=3, hidden=32, heads=2, intermediate=48, seed=0).eval()
    batch = tok(TEXTS, return_tensors="pt", padding=True, add_special_tokens=False)
    return tok, model, [dict(batch)]


def test_mlp_importance_is_the_mean_absolute_activation(setup):
    tok, model, batches = setup
    scores = mlp_importance(model, batches)
    assert len(scores) == 3 and scores[0].shape == (48,)
    mlp, seen = model.model.layers[1].mlp, []
    handle = mlp.down_proj.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0]))
    model(**batches[0])
    handle.remove()
    mask = batches[0]["attention_mask"].bool()
    assert torch.allclose(scores[1], seen[0][mask].abs().mean(0), atol=1e-6)  # padding excluded


def test_prune_mlp_keeps_the_important_neurons_and_leaves_the_input_alone(setup):
    tok, model, batches = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = mlp_importance(model, batches)
    full = prune_mlp(model, 48, scores)
    assert torch.allclose(full(**batches[0]).logits, model(**batches[0]).logits, atol=1e-5)
    half = prune_mlp(model, 24, scores)
    assert half.config.intermediate_size == 24 and half.model.layers[0].mlp.gate_proj.weight.shape == (24, 32)
    low = prune_mlp(model, 24, [-s for s in scores])  # keeps the least important half
    logits = model(**batches[0]).logits
    change = {name: (m(**batches[0]).logits - logits).norm() for name, m in (("half", half), ("low", low))}
    assert change["half"] < change["low"]  # dropping the quiet neurons moves the outputs less
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    out = half.generate(**batches[0], max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == batches[0]["input_ids"].shape[1] + 3
    for bad, match in ((0, "keep"), (49, "keep")):
        with pytest.raises(ValueError, match=match):
            prune_mlp(model, bad, scores)
    with pytest.raises(ValueError, match="mlp_importance"):
        prune_mlp(model, 24, scores[:2])


def test_layer_importance_and_drop_layers(setup):
    tok, model, batches = setup
    scores = layer_importance(model, batches)
    assert len(scores) == 3 and len(model.model.layers) == 3 and model.config.num_hidden_layers == 3
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2]
    least = min(range(3), key=scores.__getitem__)
    shallow = drop_layers(model, [least])
    assert shallow.config.num_hidden_layers == 2 and len(model.model.layers) == 3
    dropped = calibration_loss(shallow, batches)
    assert dropped == pytest.approx(calibration_loss(model, batches) + scores[least], abs=1e-4)
    out = shallow.generate(**batches[0], max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == batches[0]["input_ids"].shape[1] + 3  # the key-value cache follows the renumbering
    for bad in ([3], [0, 1, 2], [-1]):
        with pytest.raises(ValueError, match="some, not all"):
            drop_layers(model, bad)
    with pytest.raises(TypeError, match="Llama-family"):
        mlp_importance(torch.nn.Linear(2, 2), batches)


def test_neuron_importance_ignores_padding_and_sign():
    a = torch.tensor([[[1.0, -2.0], [3.0, 4.0]], [[-5.0, 6.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert torch.allclose(neuron_importance(a, mask), torch.tensor([3.0, 4.0]))  # (1+3+5)/3, (2+4+6)/3
    with pytest.raises(ValueError, match="must match"):
        neuron_importance(a, mask[:, :1])


def test_head_pruning_keeps_whole_key_value_groups():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=20, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()  # grouped-query attention: 2 query heads per key-value head
    batches = [{"input_ids": torch.randint(3, 20, (3, 9)), "attention_mask": torch.ones(3, 9, dtype=torch.long)}]
    scores = head_importance(model, batches)
    assert len(scores) == 2 and scores[0].shape == (2,) and (scores[0] > 0).all()
    full = prune_heads(model, 2, scores)
    assert torch.allclose(full(**batches[0]).logits, model(**batches[0]).logits, atol=1e-5)
    half = prune_heads(model, 1, scores)
    assert (half.config.num_attention_heads, half.config.num_key_value_heads, half.config.head_dim) == (2, 1, 8)
    assert half.model.layers[0].self_attn.q_proj.weight.shape == (16, 32)
    assert half.model.layers[0].self_attn.o_proj.weight.shape == (32, 16)
    assert model.config.num_attention_heads == 4  # the input keeps its heads
    assert half.generate(batches[0]["input_ids"], max_new_tokens=2, do_sample=False).shape == (3, 11)
    with pytest.raises(ValueError, match="key-value groups"):
        prune_heads(model, 3, scores)
    with pytest.raises(ValueError, match="head_importance"):
        prune_heads(model, 1, [s[:1] for s in scores])
