"""Exercise checks: pass, diff, or 'not solved yet' with the reference handed back."""
import torch

from kdlib import losses
from kdlib.teaching.checks import check


def test_correct_solution_passes_and_is_kept(capsys):
    mine = lambda s, t, T: losses.kd_loss(s, t, T) * 1.0  # noqa: E731
    assert check("kd_loss", mine) is mine
    assert "passed all" in capsys.readouterr().out


def test_stub_gets_the_reference(capsys):
    def stub(s, t, T):
        raise NotImplementedError()
    assert check("kd_loss", stub) is losses.kd_loss
    assert "not solved yet" in capsys.readouterr().out


def test_wrong_solution_shows_a_diff_and_gets_the_reference(capsys):
    without_t2 = lambda s, t, T: losses.kd_loss(s, t, T) / T ** 2  # noqa: E731
    assert check("kd_loss", without_t2) is losses.kd_loss
    out = capsys.readouterr().out
    assert "differs from the reference" in out and "expected:" in out and "got:" in out


def test_naive_softmax_fails_the_overflow_case(capsys):
    naive = lambda z, T: torch.exp(z / T) / torch.exp(z / T).sum(-1, keepdim=True)  # noqa: E731
    check("softmax_with_temperature", naive)
    assert "case 4 differs" in capsys.readouterr().out


def test_crashing_solution_is_reported(capsys):
    check("distillation_loss", lambda *a: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


# ---- notebook 04 exercises
def test_hidden_state_mse_exercise(capsys):
    from kdlib.teaching.checks import hidden_state_mse

    def over_all_positions(s, t, proj, mask):  # forgets the mask: padding counts
        mapped = s if proj is None else proj(s)
        return (mapped - t).pow(2).mean()

    def correct(s, t, proj, mask):
        mapped = s if proj is None else proj(s)
        m = mask.float()
        return ((mapped - t).pow(2).sum(-1) * m).sum() / (m.sum() * t.shape[-1])

    assert check("hidden_state_mse", correct) is correct
    assert check("hidden_state_mse", over_all_positions) is hidden_state_mse
    assert "differs from the reference" in capsys.readouterr().out


def test_attention_mse_exercise(capsys):
    from kdlib.teaching.checks import attention_mse

    def unmasked(s, t, mask):
        return (s - t).pow(2).mean()

    def correct(s, t, mask):
        m = mask.float()
        q, k = m[:, None, :], m[:, None, None, :]
        per_query = ((s - t).pow(2) * k).sum(-1) / k.sum(-1)
        return (per_query * q).sum() / (q.sum() * s.shape[1])

    assert check("attention_mse", correct) is correct
    assert check("attention_mse", unmasked) is attention_mse
    assert "differs from the reference" in capsys.readouterr().out


# ---- notebook 06
def test_verify_answers_check_catches_taking_the_first_answer(capsys):
    import re
    from kdlib.reasoning.rationale import verify_answers

    def first_answer(texts, gold):
        found = [re.search(r"Answer:\s*(-?\d+)", t) for t in texts]
        return torch.tensor([float(m is not None and int(m.group(1)) == g) for m, g in zip(found, gold)])
    assert check("verify_answers", first_answer) is verify_answers
    assert "case 1 differs" in capsys.readouterr().out
    assert check("verify_answers", verify_answers) is verify_answers


def test_multitask_check_catches_a_loss_that_averages_over_prompt_tokens(capsys):
    from kdlib.losses.tokens import multitask_loss

    def unmasked(la, ia, ma, lr, ir, mr, lam):
        ce = lambda lg, ids: torch.nn.functional.cross_entropy(lg[:, :-1].reshape(-1, lg.shape[-1]),  # noqa: E731
                                                               ids[:, 1:].reshape(-1))
        return ce(la, ia) + lam * ce(lr, ir)
    assert check("multitask_loss", unmasked) is multitask_loss
    assert "differs from the reference" in capsys.readouterr().out
    assert check("multitask_loss", multitask_loss) is multitask_loss


# ---- notebook 07
def test_mean_instead_of_sum_of_completion_logprobs_fails(capsys):
    from kdlib.lm.generate import completion_logprobs
    mean = lambda logits, ids, mask: completion_logprobs(logits, ids, mask, reduction="mean")  # noqa: E731
    assert check("completion_logprobs", mean) is completion_logprobs
    assert "differs from the reference" in capsys.readouterr().out
    def unmasked(logits, ids, mask):  # scores the prompt tokens too
        everything = torch.ones_like(mask)
        everything[:, 0] = 0
        return completion_logprobs(logits, ids, everything)
    assert check("completion_logprobs", unmasked) is completion_logprobs
    mine = lambda logits, ids, mask: completion_logprobs(logits.double(), ids, mask).float()  # noqa: E731
    assert check("completion_logprobs", mine) is mine


def test_dpo_loss_check_catches_a_missing_beta_and_swapped_roles(capsys):
    no_beta = lambda pc, pr, rc, rr, beta: losses.dpo_loss(pc, pr, rc, rr, 1.0)  # noqa: E731
    assert check("dpo_loss", no_beta) is losses.dpo_loss
    swapped = lambda pc, pr, rc, rr, beta: losses.dpo_loss(pr, pc, rr, rc, beta)  # noqa: E731
    assert check("dpo_loss", swapped) is losses.dpo_loss
    assert capsys.readouterr().out.count("differs from the reference") == 2
    mine = lambda pc, pr, rc, rr, beta: (  # noqa: E731
        -torch.nn.functional.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean(), beta * (pc - rc), beta * (pr - rr))
    assert check("dpo_loss", mine) is mine
