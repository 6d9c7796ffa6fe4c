"""Exercise checks: pass, diff, or 'not solved yet' with the reference handed back."""
import torch

from kdlib import losses
from kdlib.checks import check


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
    from kdlib.checks import hidden_state_mse

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
    from kdlib.checks import attention_mse

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
