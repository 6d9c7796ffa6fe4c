"""DPO and sequence log-probs (notebook 07): sum vs mean over completion tokens, beta scaling, log 2 at zero
margin, prompt and padding masking, gradient direction, pairs, the reference computed once, the DPO loop."""
import copy
import math

import pytest
import torch

from kdlib import losses
from kdlib.core.fit import fit
from kdlib.lm.generate import completion_logprobs, sequence_logprobs
from kdlib.lm.dpo import PreferencePairs, dpo_step, pair_logprobs, reference_logprobs, win_rate
from kdlib.losses.preference import dpo_loss
from kdlib.losses.registry import LOSSES

pytest.importorskip("transformers")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402


def tiny_model(seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=31, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(config).eval()


def toy_pairs():
    prompts = [[1, 5, 6, 7], [1, 8, 9], [1, 10]]
    chosen = [[11, 12, 2], [13, 2], [14, 15, 16, 2]]
    rejected = [[17, 2], [18, 19, 20, 21, 2], [22, 2]]
    return PreferencePairs.from_tokens(prompts, chosen, rejected, pad_id=0)


def test_zero_margin_gives_log_2_and_zero_rewards():
    lp = torch.tensor([-3.0, -10.0, -0.5])
    other = torch.tensor([-4.0, -1.0, -7.0])
    for beta in (0.01, 0.1, 1.0, 5.0):
        loss, r_c, r_r = dpo_loss(lp, other, lp, other, beta)  # policy == reference
        assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
        assert torch.equal(r_c, torch.zeros(3)) and torch.equal(r_r, torch.zeros(3))


def test_loss_formula_and_beta_scaling():
    pc, pr = torch.tensor([-2.0, -5.0]), torch.tensor([-3.0, -4.0])
    rc, rr = torch.tensor([-2.5, -5.5]), torch.tensor([-2.0, -4.5])
    for beta in (0.1, 0.5, 2.0):
        loss, r_c, r_r = dpo_loss(pc, pr, rc, rr, beta)
        margin = beta * ((pc - rc) - (pr - rr))
        assert loss.item() == pytest.approx(float(-torch.nn.functional.logsigmoid(margin).mean()), rel=1e-6)
        assert torch.allclose(r_c, beta * (pc - rc)) and torch.allclose(r_r, beta * (pr - rr))
    # only beta times the log-ratio difference matters: doubling beta equals doubling the margins
    loss_2, *_ = dpo_loss(pc, pr, rc, rr, 2.0)
    loss_1, *_ = dpo_loss(2 * pc, 2 * pr, 2 * rc, 2 * rr, 1.0)
    assert loss_2.item() == pytest.approx(loss_1.item(), rel=1e-6)
    # at zero margin the gradient on each log-prob is beta / 2 per pair (divided by the number of pairs)
    for beta in (0.1, 1.0, 3.0):
        pc = torch.tensor([-1.0, -2.0], requires_grad=True)
        pr = torch.tensor([-3.0, -4.0], requires_grad=True)
        dpo_loss(pc, pr, pc.detach(), pr.detach(), beta)[0].backward()
        assert torch.allclose(pc.grad, torch.full((2,), -beta / 4))
        assert torch.allclose(pr.grad, torch.full((2,), beta / 4))


def test_gradient_raises_chosen_and_lowers_rejected():
    pc = torch.tensor([-5.0, -1.0, -3.0], requires_grad=True)
    pr = torch.tensor([-2.0, -6.0, -3.0], requires_grad=True)
    loss, *_ = dpo_loss(pc, pr, torch.full((3,), -3.0), torch.full((3,), -3.0), beta=0.5)
    loss.backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # gradient descent raises pi_c and lowers pi_r
    assert LOSSES["dpo"] is dpo_loss and losses.dpo_loss is dpo_loss


def test_reference_is_a_constant():
    rc = torch.tensor([-1.0], requires_grad=True)
    loss, *_ = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), rc, torch.tensor([-2.0]), 1.0)
    assert not loss.requires_grad and rc.grad is None


def test_bad_input_is_refused_with_a_clear_message():
    z = torch.zeros(3)
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        dpo_loss(z, z, z, z, 0.0)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(z, z, z, z, -1.0)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(z, z, z, z, float("nan"))
    with pytest.raises(ValueError, match=r"share one shape .*ref_rejected_logps': \(2,\)"):
        dpo_loss(z, z, z, torch.zeros(2), 0.1)
    with pytest.raises(ValueError, match="share one shape"):
        dpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), 0.1)
    with pytest.raises(ValueError, match="ref_chosen_logps contains 1 NaN or infinite"):
        dpo_loss(z, z, torch.tensor([0.0, float("-inf"), 0.0]), z, 0.1)


def test_sum_not_mean_of_token_logprobs():
    # logits favour token 3 everywhere; row 0 has a 2-token completion, row 1 a 5-token one
    ids = torch.tensor([[1, 4, 3, 3, 0, 0, 0], [1, 4, 3, 3, 3, 3, 3]])
    comp = torch.tensor([[0, 0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1]])
    logits = torch.zeros(2, 7, 6)
    logits[..., 3] = 1.0
    per_token = torch.log_softmax(logits[0, 0], -1)[3]
    total = completion_logprobs(logits, ids, comp)
    mean = completion_logprobs(logits, ids, comp, reduction="mean")
    assert torch.allclose(total, torch.stack([2 * per_token, 5 * per_token]))
    assert torch.allclose(mean, torch.stack([per_token, per_token]))
    # the sum makes the longer completion less likely; the per-token mean calls them equal, so a DPO loss on
    # means would differ from the one on sums whenever chosen and rejected differ in length
    zero = torch.zeros(1)
    on_sums, *_ = dpo_loss(total[:1], total[1:], zero, zero, 1.0)
    on_means, *_ = dpo_loss(mean[:1], mean[1:], zero, zero, 1.0)
    assert on_means.item() == pytest.approx(math.log(2)) and on_sums.item() < math.log(2) - 0.5


def test_prompt_and_padding_are_masked():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 11, (2, 8), generator=gen)
    comp = torch.zeros_like(ids)
    comp[0, 3:6] = 1  # prompt 0..2, completion 3..5, padding 6..7
    comp[1, 5:8] = 1
    logits = torch.randn(2, 8, 11, generator=gen)
    base = completion_logprobs(logits, ids, comp)
    changed = logits.clone()
    changed[0, :2] += torch.randn(2, 11, generator=gen) * 10  # the logits that score prompt tokens 1 and 2
    changed[0, 5:] += torch.randn(3, 11, generator=gen) * 10  # after the last completion token: padding
    changed[1, :4] -= 50.0
    assert torch.allclose(completion_logprobs(changed, ids, comp), base)
    other_pad = ids.clone()
    other_pad[0, 6:] = 0
    assert torch.allclose(completion_logprobs(logits, other_pad, comp), base)
    changed[0, 2, ids[0, 3]] += 1.0  # position 2 scores the first completion token: it counts
    assert not torch.allclose(completion_logprobs(changed, ids, comp), base)
    # position 0 is never scored (no earlier token predicts it): its mask value is dropped, as in completion_loss
    ones = torch.ones_like(ids)
    after_0 = ones.clone()
    after_0[:, 0] = 0
    assert torch.equal(completion_logprobs(logits, ids, ones), completion_logprobs(logits, ids, after_0))
    with pytest.raises(ValueError, match="reduction"):
        completion_logprobs(logits, ids, comp, reduction="max")
    with pytest.raises(ValueError, match="expected logits"):
        completion_logprobs(logits[0], ids, comp)


def test_pairs_layout_and_extra_padding_changes_nothing_in_a_real_model():
    model = tiny_model()
    pairs = toy_pairs()
    assert pairs.input_ids.shape == (3, 2, 8) and len(pairs) == 3
    assert pairs.input_ids[1, 1].tolist() == [1, 8, 9, 18, 19, 20, 21, 2]
    assert pairs.input_ids[1, 0].tolist() == [1, 8, 9, 13, 2, 0, 0, 0]
    assert pairs.completion_mask[1, 0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert pairs.attention_mask[1, 0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    chosen, rejected = pair_logprobs(model, pairs, torch.arange(3))
    ids, attn, comp = pairs.batch(torch.arange(3))
    with torch.no_grad():
        direct = sequence_logprobs(model, ids, attn, comp)
        padded = sequence_logprobs(model, torch.nn.functional.pad(ids, (0, 5), value=7),
                                   torch.nn.functional.pad(attn, (0, 5)), torch.nn.functional.pad(comp, (0, 5)))
    assert torch.allclose(torch.cat([chosen, rejected]), direct, atol=1e-5)
    assert torch.allclose(padded, direct, atol=1e-5)
    with pytest.raises(ValueError, match="as many prompts"):
        PreferencePairs.from_tokens([[1]], [[2]], [], pad_id=0)


def test_dpo_training_raises_margin_and_accuracy_with_reference_computed_once():
    policy = tiny_model()
    pairs = toy_pairs()
    ref = reference_logprobs(copy.deepcopy(policy), pairs, batch_size=2)
    assert ref.shape == (3, 2) and not ref.requires_grad
    with torch.no_grad():
        c, r = pair_logprobs(policy, pairs, torch.arange(3))
    assert torch.allclose(ref, torch.stack([c, r], 1), atol=1e-5)
    history = fit(policy, pairs, dpo_step(ref, beta=0.5), steps=15, batch_size=3, optimizer="adamw", lr=1e-2,
                  betas=(0.9, 0.95), weight_decay=0.0, warmup=1, clip=1.0, progress=False)
    assert set(history.terms) >= {"reward_margin", "preference_accuracy", "chosen_reward", "rejected_reward"}
    assert len(history["loss"]) == len(history["reward_margin"]) == 15
    assert history["loss"][0] == pytest.approx(math.log(2), abs=1e-4)  # starts at the reference
    assert history["loss"][-1] < 0.3 and history["preference_accuracy"][-1] == 1.0
    assert history["reward_margin"][-1] > history["reward_margin"][0]
    with torch.no_grad():
        c2, r2 = pair_logprobs(policy, pairs, torch.arange(3))
    assert ((c2 - ref[:, 0]) - (r2 - ref[:, 1]) > 0).all()
    with pytest.raises(ValueError, match=r"ref_logps must have shape \(n_pairs, 2\).*\(3, 1\)"):
        dpo_step(ref[:, :1], beta=0.5)
    with pytest.raises(ValueError, match="beta"):
        dpo_step(ref, beta=0.0)
    # a reference for other pairs (too few rows) is refused at the first step, before any update
    before = [p.detach().clone() for p in policy.parameters()]
    with pytest.raises(IndexError, match="teacher cache of 2 samples"):
        fit(policy, pairs, dpo_step(ref[:2], beta=0.5), steps=1, batch_size=3, optimizer="adamw", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))


def test_win_rate_counts_ties_half():
    assert win_rate(torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.5)
    assert win_rate([2.0, 3.0], [1.0, 1.0]) == 1.0
    with pytest.raises(ValueError, match="same non-empty shape"):
        win_rate([1.0], [1.0, 2.0])


def test_win_rate_with_lexicographic_keys():
    a = torch.tensor([[1.0, -5.0], [0.0, -1.0], [1.0, -2.0], [0.0, -3.0]])
    b = torch.tensor([[0.0, -1.0], [1.0, -9.0], [1.0, -4.0], [0.0, -3.0]])
    assert win_rate(a, b) == pytest.approx((1 + 0 + 1 + 0.5) / 4)  # column 0 decides, column 1 breaks ties
    assert win_rate(a[:, :1], b[:, :1]) == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
