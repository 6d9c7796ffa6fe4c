"""Token-level LM losses: KL directions, masking and the mean over unmasked tokens, JSD limits, top-k tail."""
import pytest
import torch
import torch.nn.functional as F

from kdlib.losses.registry import LOSSES
from kdlib.losses.tokens import (bucket_log_probs, completion_loss, forward_kl, generalized_jsd, reverse_kl,
                                 shift_for_next_token, topk_from_logits, topk_loss, topk_relative_error)


def logits(b=2, length=5, v=11, seed=0, scale=2.0):
    return torch.randn(b, length, v, generator=torch.Generator().manual_seed(seed)) * scale


def kl_by_hand(p_logits, q_logits, T=1.0):
    p, q = F.softmax(p_logits / T, -1), F.softmax(q_logits / T, -1)
    return (p * (p.log() - q.log())).sum(-1)


def test_forward_and_reverse_kl_directions_and_zero_at_equality():
    s, t = logits(seed=1), logits(seed=2)
    assert forward_kl(s, t).item() == pytest.approx(kl_by_hand(t, s).mean().item(), rel=1e-5)
    assert reverse_kl(s, t).item() == pytest.approx(kl_by_hand(s, t).mean().item(), rel=1e-5)
    assert abs(forward_kl(s, t) - reverse_kl(s, t)) > 1e-3
    for fn in (forward_kl, reverse_kl, generalized_jsd):
        assert fn(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)


def test_mask_averages_over_unmasked_tokens_only():
    s, t = logits(seed=3), logits(seed=4)
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])  # prompt tokens and padding are 0
    per_token = kl_by_hand(t, s)
    want = per_token[mask.bool()].mean()
    assert forward_kl(s, t, mask).item() == pytest.approx(want.item(), rel=1e-5)
    # masked positions have no influence at all, whatever their logits
    s2 = s.clone()
    s2[~mask.bool()] = 100.0
    assert forward_kl(s2, t, mask).item() == pytest.approx(want.item(), rel=1e-5)
    s.requires_grad_(True)
    forward_kl(s, t, mask).backward()
    assert s.grad[~mask.bool()].abs().max() == 0
    with pytest.raises(ValueError, match="selects no token"):
        forward_kl(s, t, torch.zeros_like(mask))


def test_temperature_and_t_squared():
    s, t, T = logits(seed=5), logits(seed=6), 3.0
    assert forward_kl(s, t, T=T).item() == pytest.approx(T * T * kl_by_hand(t, s, T).mean().item(), rel=1e-5)


def test_jsd_limits_are_forward_and_reverse_kl():
    s, t = logits(seed=7), logits(seed=8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    fwd, rev = forward_kl(s, t, mask), reverse_kl(s, t, mask)
    assert generalized_jsd(s, t, mask, beta=0.0).item() == pytest.approx(fwd.item(), rel=1e-6)
    assert generalized_jsd(s, t, mask, beta=1.0).item() == pytest.approx(rev.item(), rel=1e-6)
    # and the scaled JSD is continuous there: the end points are limits, not special cases
    assert generalized_jsd(s.double(), t.double(), mask, beta=1e-5).item() == pytest.approx(fwd.item(), rel=1e-3)
    assert generalized_jsd(s.double(), t.double(), mask, beta=1 - 1e-5).item() == pytest.approx(rev.item(), rel=1e-3)
    # unscaled: the paper's value, beta KL(p||m) + (1-beta) KL(q||m)
    beta = 0.3
    p, q = F.softmax(t, -1), F.softmax(s, -1)
    m = beta * p + (1 - beta) * q
    raw = beta * (p * (p / m).log()).sum(-1) + (1 - beta) * (q * (q / m).log()).sum(-1)
    want = raw[mask.bool()].mean()
    assert generalized_jsd(s, t, mask, beta=beta, scaled=False).item() == pytest.approx(want.item(), rel=1e-5)
    assert generalized_jsd(s, t, mask, beta=beta).item() == pytest.approx(want.item() / (beta * (1 - beta)), rel=1e-5)
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(s, t, beta=1.5)


def test_shape_mismatch_names_the_vocabularies():
    with pytest.raises(ValueError, match="vocabularies differ"):
        forward_kl(logits(v=11), logits(v=12))


def test_topk_buckets_sum_to_one_and_full_k_is_exact():
    s, t = logits(seed=9), logits(seed=10)
    cache = topk_from_logits(t, k=4)
    teacher, student = bucket_log_probs(s, cache)
    assert torch.allclose(teacher.exp().sum(-1), torch.ones(2, 5), atol=1e-5)
    assert torch.allclose(student.exp().sum(-1), torch.ones(2, 5), atol=1e-5)
    assert cache.indices.dtype == torch.int32
    # k = V - 1 leaves a one-token tail: the bucketed KL equals the full one
    assert topk_loss(s, topk_from_logits(t, k=10)).item() == pytest.approx(forward_kl(s, t).item(), rel=1e-4)
    # fewer buckets never give a larger KL (data-processing inequality)
    assert topk_loss(s, cache).item() <= forward_kl(s, t).item() + 1e-6
    assert topk_loss(s, topk_from_logits(t, 10), kind="reverse").item() == pytest.approx(reverse_kl(s, t).item(),
                                                                                          rel=1e-4)


def test_topk_error_against_full_logits_for_a_peaked_teacher():
    """An LM teacher is peaked: with a 5000-token vocabulary, k = 32 keeps the loss within 10%."""
    gen = torch.Generator().manual_seed(11)
    v = 5000
    t = torch.randn(4, 16, v, generator=gen) * 1.0
    t[..., :50] += torch.randn(4, 16, 50, generator=gen) * 2 + 6  # most mass on a few dozen tokens
    s = t + torch.randn(4, 16, v, generator=gen) * 1.0
    err32 = topk_relative_error(s, t, k=32)
    err4 = topk_relative_error(s, t, k=4)
    assert err32 < 0.1 and err32 < err4


def test_shift_for_next_token():
    x = torch.arange(10).view(2, 5)
    lg, tgt, m = shift_for_next_token(logits(), x, torch.ones(2, 5))
    assert lg.shape[1] == 4 and torch.equal(tgt, x[:, 1:]) and m.shape == (2, 4)
    assert shift_for_next_token(logits(), x)[2] is None
    assert set(LOSSES) >= {"forward_kl", "reverse_kl", "generalized_jsd"}


def test_position_zero_is_never_a_target_in_completion_loss_and_completion_logprobs():
    """One convention (kdlib.losses.tokens.shift_for_next_token): token 0 has no prediction, so a mask value at
    position 0 is dropped, in the training loss and in the sequence log-probability alike."""
    from kdlib.lm.generate import completion_logprobs
    lg = logits(b=3, length=6, v=9, seed=12)
    ids = torch.randint(0, 9, (3, 6), generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
    at_zero = mask.clone()
    at_zero[:, 0] = 1
    loss, logps = completion_loss(lg, ids, mask), completion_logprobs(lg, ids, mask)
    assert torch.equal(completion_loss(lg, ids, at_zero), loss)
    assert torch.equal(completion_logprobs(lg, ids, at_zero), logps)
    assert torch.equal(completion_logprobs(lg, ids, at_zero, reduction="mean"),
                       completion_logprobs(lg, ids, mask, reduction="mean"))
    # the two agree: the loss is minus the summed log-probs over the completion tokens, per token
    assert loss.item() == pytest.approx((-logps.sum() / mask[:, 1:].sum()).item(), rel=1e-6)
    by_hand = torch.log_softmax(lg[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert torch.allclose(logps, (by_hand * mask[:, 1:]).sum(-1))
    only_zero = torch.zeros_like(mask)
    only_zero[:, 0] = 1  # nothing but position 0: no target at all
    with pytest.raises(ValueError, match="selects no token"):
        completion_loss(lg, ids, only_zero)
    assert torch.equal(completion_logprobs(lg, ids, only_zero), torch.zeros(3))
    with pytest.raises(ValueError, match="at least one completion token"):
        completion_logprobs(lg, ids, only_zero, reduction="mean")


def test_kl_terms_keep_nan_and_agree_with_the_old_form_on_finite_inputs():
    """``_kl`` zeroes a term only where p == 0 (0 log 0 = 0): on finite logits, underflowing ones included, it is
    bit-identical to the old ``torch.where(p > 0, ...)`` and equal to the ``xlogy`` form; a NaN stays NaN."""
    from kdlib.losses.tokens import _kl
    gen = torch.Generator().manual_seed(13)
    for scale in (1.0, 30.0, 300.0):  # 300: most probabilities underflow to exactly 0
        log_p = F.log_softmax(torch.randn(4, 6, 50, generator=gen) * scale, -1)
        log_q = F.log_softmax(torch.randn(4, 6, 50, generator=gen) * scale, -1)
        p = log_p.exp()
        old = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)
        assert torch.equal(_kl(log_p, log_q), old)
        assert torch.allclose(_kl(log_p, log_q), (torch.special.xlogy(p, p) - p * log_q).sum(-1), rtol=1e-5, atol=1e-5)
    s, t = torch.randn(4, 6, 50, generator=gen) * 300, torch.randn(4, 6, 50, generator=gen) * 300
    t[0, 0, 3] = float("nan")  # a NaN logit makes its whole row of log-probs NaN ...
    s[1, 2, 4] = float("nan")
    log_p, log_q = F.log_softmax(t, -1), F.log_softmax(s, -1)
    for kl in (_kl(log_p, log_q), _kl(log_q, log_p)):  # ... so some term with p > 0 carries it, in both directions
        assert kl[0, 0].isnan() and kl[1, 2].isnan() and kl.isnan().sum() == 2
