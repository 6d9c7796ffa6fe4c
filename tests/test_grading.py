"""Course mode of check(), the hidden tests and their bug names (kdlib.teaching.bugs, kdlib.teaching.grading)."""
import re

import pytest
import torch

from kdlib import losses
from kdlib.losses.attention import attention_exercise_cases
from kdlib.losses.uld import uld_exercise_cases
from kdlib.teaching import grading
from kdlib.teaching.bugs import BUGS
from kdlib.teaching.exercises import SOLUTIONS
from kdlib.teaching.checks import COURSE, _REGISTRY, _reference, check, register

register("attention_kl", "kdlib.losses.attention:attention_kl", attention_exercise_cases)  # notebook 04 does this
register("uld_loss", "kdlib.losses.uld:uld_loss", uld_exercise_cases)  # and 05b this


def without_t2(s, t, T):
    return losses.kd_loss(s, t, T) / T ** 2


def stub(s, t, T):
    raise NotImplementedError()


def test_self_study_falls_back_and_course_mode_keeps_the_learners_function(capsys, monkeypatch):
    monkeypatch.delenv(COURSE, raising=False)
    assert check("kd_loss", without_t2) is losses.kd_loss and check("kd_loss", stub) is losses.kd_loss
    assert "using the reference" in capsys.readouterr().out
    monkeypatch.setenv(COURSE, "1")
    assert check("kd_loss", without_t2) is without_t2 and check("kd_loss", stub) is stub
    assert check("kd_loss", "not a function") == "not a function"
    out = capsys.readouterr().out
    assert "differs from the reference" in out and "course mode" in out and "using the reference" not in out
    monkeypatch.setenv(COURSE, "0")
    assert check("kd_loss", without_t2) is losses.kd_loss


@pytest.mark.parametrize("name", sorted(BUGS))
def test_every_listed_bug_fails_the_hidden_cases_and_is_named(name):
    assert grading.first_failure(name, _reference(name)) is None
    for label, buggy in BUGS[name]:
        why = grading.first_failure(name, buggy)
        assert why and f"looks like {label}" in why, (label, why)


def test_every_notebook_exercise_but_three_has_named_bugs():
    used = {m for path in SOLUTIONS.glob("*.ipynb") for m in re.findall(r'check\(\\"(\w+)\\"', path.read_text())}
    assert len(used) >= 15
    # 05b's alignment and 08's two exercises fail with the checker's verdict, not a bug's name
    assert used - {"align_tokens", "run_trace", "jaccard_duplicates"} <= set(BUGS), used - set(BUGS)


def test_a_wrong_answer_that_is_no_known_bug_gets_the_verdict():
    why = grading.first_failure("kd_loss", lambda s, t, T: losses.kd_loss(s, t, T) + 1.0)
    assert "hidden case 0 fails" in why and "differs from the reference" in why and "looks like" not in why


def test_a_function_that_imports_or_calls_the_reference_is_flagged():
    import kdlib.losses.logits as logits_module

    def wrapper(s, t, T):
        return logits_module.kd_loss(s, t, T)

    def importer(s, t, T):
        from kdlib.losses import kd_loss
        return kd_loss(s, t, T)

    for fn, words in [(losses.kd_loss, "reference itself"), (wrapper, "calls kdlib"), (importer, "imports kdlib"),
                      (_reference("softmax_with_temperature"), "reference itself")]:
        name = "softmax_with_temperature" if fn is _reference("softmax_with_temperature") else "kd_loss"
        with pytest.raises(AssertionError, match=words):
            grading.hidden(name, fn)
    with pytest.raises(AssertionError, match="comes from kdlib"):
        grading.examples("kd_loss", losses.soft_cross_entropy)


def test_own_code_passes_and_a_stub_is_not_solved():
    def mine(s, t, T):
        log_p_s, log_p_t = torch.log_softmax(s / T, -1), torch.log_softmax(t / T, -1)
        return T * T * (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()

    assert grading.written_here("kd_loss", mine) is None
    grading.examples("kd_loss", mine)
    grading.hidden("kd_loss", mine)
    with pytest.raises(AssertionError, match="not solved yet"):
        grading.hidden("kd_loss", stub)


def test_predictions_are_graded_for_completion():
    grading.predicted(slope=-1.0, answer="it falls")
    for blank in (None, ..., "  "):
        with pytest.raises(AssertionError, match="no prediction written for slope"):
            grading.predicted(slope=blank)
