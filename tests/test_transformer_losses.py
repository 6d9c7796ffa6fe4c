"""Transformer distillation losses (notebook 04): layer maps, projections, masking, MiniLM relations."""
import pytest
import torch
from torch import nn

from kdlib.losses.registry import LOSSES
from kdlib.losses.transformer import (attention_loss, embedding_loss, hidden_state_loss, layer_map,
                                      minilm_relation_loss, value_relation)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def states(n_layers, b=2, length=5, width=8, seed=0):
    g = gen(seed)
    return [torch.randn(b, length, width, generator=g) for _ in range(n_layers + 1)]


def attn(n_layers, b=2, heads=3, length=5, seed=0, mask=None):
    g = gen(seed)
    out = []
    for _ in range(n_layers):
        scores = torch.randn(b, heads, length, length, generator=g)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        out.append(scores.softmax(-1))
    return out


MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)


def test_layer_maps():
    assert layer_map(2, 6) == {1: 3, 2: 6}
    assert layer_map(3, 6) == {1: 2, 2: 4, 3: 6}
    assert layer_map(2, 6, "last") == {1: 5, 2: 6}
    assert layer_map(2, 6, {1: 1, 2: 4}) == {1: 1, 2: 4}


@pytest.mark.parametrize("mapping,words", [({1: 7}, ["1->7", "1..6"]), ({3: 2}, ["[3]", "1..2"]),
                                           ({0: 0}, ["[0]", "embedding"])])
def test_layer_map_names_missing_layers(mapping, words):
    with pytest.raises(ValueError) as err:
        layer_map(2, 6, mapping)
    assert all(w in str(err.value) for w in words)


def test_hidden_state_loss_formula_with_projection_and_mask():
    s, t = states(2, width=4, seed=1), states(6, width=8, seed=2)
    proj = nn.ModuleDict({"1": nn.Linear(4, 8), "2": nn.Linear(4, 8)})
    mapping = {1: 3, 2: 6}
    got = hidden_state_loss(s, t, mapping, proj, MASK)
    m = MASK.float()
    want = sum(((proj[str(l)](s[l]) - t[g]).pow(2).sum(-1) * m).sum() / (m.sum() * 8) for l, g in mapping.items())
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # padded positions do not count
    t2 = [x.clone() for x in t]
    t2[3][1, 3:] += 100.0
    assert hidden_state_loss(s, t2, mapping, proj, MASK).item() == pytest.approx(got.item(), rel=1e-5)
    # gradients reach the student and the projection, never the teacher
    s[1].requires_grad_(True)
    t[3].requires_grad_(True)
    hidden_state_loss(s, t, mapping, proj, MASK).backward()
    assert s[1].grad is not None and proj["1"].weight.grad is not None and t[3].grad is None


def test_hidden_state_loss_zero_for_identical_states():
    s = states(3, seed=3)
    assert hidden_state_loss(s, s, {1: 1, 2: 2, 3: 3}).item() == 0.0


def test_hidden_state_loss_errors_name_layers_and_widths():
    s, t = states(2, width=4), states(6, width=8)
    with pytest.raises(ValueError, match=r"width 4.*width 8.*nn.Linear\(4, 8\)"):
        hidden_state_loss(s, t, {1: 3})
    with pytest.raises(ValueError, match=r"teacher layer 9 does not exist.*0..6"):
        hidden_state_loss(s, t, {1: 9}, nn.Linear(4, 8))
    with pytest.raises(ValueError, match=r"student layer 5 does not exist.*0..2"):
        hidden_state_loss(s, t, {5: 3}, nn.Linear(4, 8))
    with pytest.raises(ValueError, match="after the projection"):
        hidden_state_loss(s, t, {1: 3}, nn.Linear(4, 6))


def test_embedding_loss_is_the_layer_zero_case():
    s, t = states(1, width=4, seed=4), states(1, width=8, seed=5)
    proj = nn.Linear(4, 8)
    m = MASK.float()
    want = ((proj(s[0]) - t[0]).pow(2).sum(-1) * m).sum() / (m.sum() * 8)
    assert embedding_loss(s[0], t[0], proj, MASK).item() == pytest.approx(want.item(), rel=1e-6)
    with pytest.raises(ValueError, match="embedding_loss.*width 4.*width 8"):
        embedding_loss(s[0], t[0])


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_attention_loss_zero_for_identical_and_ignores_padding(kind):
    a = attn(2, mask=MASK, seed=6)
    assert attention_loss(a, a, {1: 1, 2: 2}, MASK, kind).item() == pytest.approx(0.0, abs=1e-6)
    s, t = attn(2, mask=MASK, seed=7), attn(6, mask=MASK, seed=8)
    base = attention_loss(s, t, {1: 3, 2: 6}, MASK, kind)
    t2 = [x.clone() for x in t]
    t2[2][1, :, 3:, :] = 0.123   # padded queries of sample 1
    s2 = [x.clone() for x in s]
    s2[0][1, :, 4, :] = 0.5
    assert attention_loss(s2, t2, {1: 3, 2: 6}, MASK, kind).item() == pytest.approx(base.item(), rel=1e-5)
    assert base.item() > 0


def test_attention_loss_formulas():
    s, t = attn(1, mask=MASK, seed=9), attn(1, mask=MASK, seed=10)
    q = MASK.float()[:, None, :]                     # real queries
    k = MASK.float()[:, None, None, :]               # real keys
    mse = (((s[0] - t[0]).pow(2) * k).sum(-1) / k.sum(-1) * q).sum() / (q.sum() * 3)
    kl = ((t[0] * (t[0].clamp_min(1e-12).log() - s[0].clamp_min(1e-12).log()) * k).sum(-1) * q).sum() / (q.sum() * 3)
    assert attention_loss(s, t, {1: 1}, MASK, "mse").item() == pytest.approx(mse.item(), rel=1e-5)
    assert attention_loss(s, t, {1: 1}, MASK, "kl").item() == pytest.approx(kl.item(), rel=1e-5)


def test_attention_loss_errors():
    s, t = attn(2, heads=3), attn(6, heads=4)
    with pytest.raises(ValueError, match="number of heads"):
        attention_loss(s, t, {1: 1})
    with pytest.raises(ValueError, match=r"teacher layer 7 does not exist"):
        attention_loss(s, attn(6, heads=3), {1: 7})
    with pytest.raises(ValueError, match="'mse' or 'kl'"):
        attention_loss(s, attn(6, heads=3), {1: 1}, kind="l1")


def test_value_relation_is_a_distribution_over_real_keys():
    v = torch.randn(2, 5, 12, generator=gen(11))
    rel = value_relation(v, 3, MASK).exp()
    assert torch.allclose(rel.sum(-1), torch.ones(2, 3, 5), atol=1e-5)
    assert rel[1, :, :, 3:].abs().max() < 1e-6


def test_minilm_relation_loss_with_different_head_sizes():
    heads = 4
    t_att, s_att = attn(1, heads=heads, mask=MASK, seed=12)[0], attn(1, heads=heads, mask=MASK, seed=13)[0]
    t_val = torch.randn(2, 5, 32, generator=gen(14))          # head size 8
    s_val = torch.randn(2, 5, 16, generator=gen(15), requires_grad=True)  # head size 4
    loss = minilm_relation_loss(s_att, t_att, s_val, t_val, MASK)
    loss.backward()
    assert loss.item() > 0 and s_val.grad is not None
    # zero for a student equal to the teacher
    assert minilm_relation_loss(t_att, t_att, t_val, t_val, MASK).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same number of heads"):
        minilm_relation_loss(attn(1, heads=2)[0], t_att, s_val, t_val, MASK)


def test_losses_dict_lists_the_transformer_losses():
    expected = {"hidden_state": hidden_state_loss, "embedding": embedding_loss, "attention": attention_loss,
                "minilm_relation": minilm_relation_loss}
    for name, fn in expected.items():
        assert LOSSES[name] is fn


def test_nan_on_padding_changes_neither_the_losses_nor_their_gradients():
    """Padded positions are set to 0 before any projection, log or softmax (kdlib.losses.inputs.keep): garbage
    there, even NaN, is not multiplied by a 0 mask (which would give NaN) and reaches no gradient."""
    s, t = states(2, width=4, seed=16), states(2, width=8, seed=17)
    proj = nn.Linear(4, 8)
    a_s, a_t = attn(1, mask=MASK, seed=18), attn(1, mask=MASK, seed=19)
    v_s, v_t = torch.randn(2, 5, 6, generator=gen(20)), torch.randn(2, 5, 12, generator=gen(21))
    clean = [hidden_state_loss(s, t, {1: 1}, proj, MASK), attention_loss(a_s, a_t, {1: 1}, MASK, "kl"),
             minilm_relation_loss(a_s[0], a_t[0], v_s, v_t, MASK)]
    pad = ~MASK
    for x in (s[1], t[1], v_s, v_t):
        x[pad] = float("nan")
    for x in (a_s[0], a_t[0]):  # sample 1 pads positions 3 and 4: its padded queries and keys
        x[1, :, 3:, :], x[1, :, :, 3:] = float("nan"), float("nan")
    leaves = [s[1], a_s[0], v_s]
    for leaf in leaves:
        leaf.requires_grad_(True)
    dirty = [hidden_state_loss(s, t, {1: 1}, proj, MASK), attention_loss(a_s, a_t, {1: 1}, MASK, "kl"),
             minilm_relation_loss(a_s[0], a_t[0], v_s, v_t, MASK)]
    for before, after in zip(clean, dirty):
        assert after.item() == pytest.approx(before.item(), rel=1e-5)
    sum(dirty).backward()
    assert all(torch.isfinite(leaf.grad).all() for leaf in leaves)
    assert proj.weight.grad is not None and torch.isfinite(proj.weight.grad).all()
