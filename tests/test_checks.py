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


# ---- issue 19: every learner mistake is a readable verdict with the reference as fallback, never a crash
import math  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

from kdlib.teaching import checks  # noqa: E402


def verdict_of(fn, capsys, name="kd_loss"):
    out = check(name, fn)
    return out, capsys.readouterr().out


def forgot_return(s, t, T):
    losses.kd_loss(s, t, T)


@pytest.mark.parametrize("fn, words", [
    (forgot_return, ["returned None", "forget `return`"]),
    (lambda s, t, T: "0.5", ["returned a str", "expected a tensor"]),
    (lambda s, t, T: float(losses.kd_loss(s, t, T)), ["returned a float", "expected a tensor", ".backward()"]),
    (lambda s, t, T: [losses.kd_loss(s, t, T)], ["returned a list", "expected a tensor"]),
    (lambda s, t, T: losses.kd_loss(s, t, T).round().long(), ["dtype torch.int64", "floating-point"]),
    (lambda s, t, T: losses.kd_loss(s, t, T).to("meta"), ["on meta", "expected one on cpu"]),
    (lambda s, t, T: losses.kd_loss(s, t, T).expand(len(s)), ["differs from the reference", "returned shape (4,)",
                                                              "expected ()"]),
    (lambda s, t, T: losses.kd_loss(s, t, T) * math.nan, ["differs from the reference", "NaN or inf"]),
    (lambda s, t, T: losses.kd_loss(s, t, T) + math.inf, ["differs from the reference", "NaN or inf"]),
    (lambda s, t, T: {}["T"], ["raised KeyError", "'T'"]),
], ids=["none", "str", "float", "list", "dtype", "device", "shape", "nan", "inf", "exception"])
def test_each_learner_mistake_gets_a_verdict_and_the_reference(capsys, fn, words):
    out, text = verdict_of(fn, capsys)
    assert out is losses.kd_loss
    assert text.startswith("[x] kd_loss: case 0 ") and "using the reference" in text
    assert "Traceback" not in text
    for word in words:
        assert word in text, (word, text)


def test_an_exception_shows_its_type_and_message_even_when_its_message_cannot_be_printed(capsys):
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("no")

    def boom(s, t, T):
        raise Weird()
    assert check("kd_loss", boom) is losses.kd_loss
    assert "raised Weird: (a message that cannot be shown)" in capsys.readouterr().out
    assert check("kd_loss", lambda s, t, T: s @ t) is losses.kd_loss  # a torch error: type and message
    assert "raised RuntimeError: mat1 and mat2 shapes cannot be multiplied" in capsys.readouterr().out


def test_a_correct_function_that_mutates_its_inputs_does_not_pass(capsys):
    def correct_but_mutating(s, t, T):
        loss = losses.kd_loss(s, t, T)
        s.zero_()
        return loss
    out, text = verdict_of(correct_but_mutating, capsys)
    assert out is losses.kd_loss
    assert "changed its inputs in place (argument 0 (student_logits)), though its result is right" in text
    assert "work on copies" in text


def test_a_mutation_cannot_spoil_the_reference(capsys):
    """Copying the teacher into the student made kd_loss(s, t) == 0 and passed when the reference ran after the call
    on the mutated tensors; the references are now computed first on pristine inputs."""
    def copy_then_zero(s, t, T):
        s.copy_(t)
        return torch.zeros(())
    out, text = verdict_of(copy_then_zero, capsys)
    assert out is losses.kd_loss and "differs from the reference" in text
    assert "it also changed its inputs in place: argument 0 (student_logits)" in text


def test_a_correct_function_that_works_in_place_on_its_own_copies_passes(capsys):
    def careful(s, t, T):
        s, t = s.clone(), t.clone()
        s.div_(T)
        t.div_(T)
        return losses.kd_loss(s * T, t * T, T)
    assert check("kd_loss", careful) is careful
    assert "[v] kd_loss: passed all 4 checks" in capsys.readouterr().out


def test_mutating_a_module_argument_is_caught(capsys):
    from kdlib.losses.features import hint_loss

    def zeroes_the_regressor(s, t, regressor):
        loss = hint_loss(s, t, regressor)
        if regressor is not None:
            with torch.no_grad():
                regressor.weight.zero_()
        return loss
    assert check("hint_loss", zeroes_the_regressor) is hint_loss
    assert "changed its inputs in place (argument 2 (regressor))" in capsys.readouterr().out
    assert check("hint_loss", hint_loss) is hint_loss  # the regressor of the cases is untouched


def test_tuple_results_are_checked_value_by_value(capsys):
    from kdlib.teaching.checks import topk_with_tail
    float_ids = lambda z, k: tuple(v.float() for v in topk_with_tail(z, k))  # noqa: E731
    assert check("topk_with_tail", float_ids) is topk_with_tail
    assert "dtype torch.float32, expected an integer tensor" in capsys.readouterr().out
    assert check("topk_with_tail", lambda z, k: topk_with_tail(z, k)[:2]) is topk_with_tail
    assert "expected a tuple of 3 values" in capsys.readouterr().out
    assert check("topk_with_tail", lambda z, k: (*topk_with_tail(z, k)[:2], None)) is topk_with_tail
    assert "returned None (value 2 of the 3 returned)" in capsys.readouterr().out
    assert check("topk_with_tail", topk_with_tail) is topk_with_tail


def test_a_number_exercise_takes_numbers_and_one_number_tensors(capsys):
    from kdlib.core.metrics import expected_calibration_error as ece
    as_tensor = lambda p, y, b: torch.tensor(ece(p, y, b))  # noqa: E731
    assert check("expected_calibration_error", as_tensor) is as_tensor
    assert check("expected_calibration_error", lambda p, y, b: True) is ece
    assert "returned a bool" in capsys.readouterr().out
    assert check("expected_calibration_error", lambda p, y, b: math.nan) is ece
    assert "differs from the reference: returned nan" in capsys.readouterr().out


def test_not_a_function_and_a_bug_of_the_reference(capsys, monkeypatch):
    assert check("kd_loss", None) is losses.kd_loss
    assert "expected a function, got None" in capsys.readouterr().out

    def broken_reference(x):
        raise RuntimeError("kdlib bug")
    monkeypatch.setitem(checks._REGISTRY, "broken", (broken_reference, lambda: [(torch.ones(2),)]))
    with pytest.raises(RuntimeError, match="kdlib bug"):  # ours: not turned into a learner's verdict
        check("broken", lambda x: x)


def _exception(kind):
    return kind("planted")


TENSORS = st.builds(
    lambda shape, dtype, fill, seed: _random_tensor(shape, dtype, fill, seed),
    st.lists(st.integers(0, 4), max_size=3), st.sampled_from([torch.float32, torch.float64, torch.float16,
                                                              torch.bfloat16, torch.int64, torch.int32, torch.uint8,
                                                              torch.bool, torch.complex64]),
    st.sampled_from([None, math.nan, math.inf, -math.inf]), st.integers(0, 1000))


def _random_tensor(shape, dtype, fill, seed):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3
    if fill is not None and x.numel():
        x.view(-1)[0] = fill
    return x.to(dtype) if fill is None or dtype.is_floating_point or dtype.is_complex else x


RESULTS = st.one_of(
    st.none(), st.text(max_size=8), st.integers(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    TENSORS, st.lists(TENSORS, max_size=4).map(tuple), st.lists(st.floats(), max_size=3),
    st.sampled_from([ValueError, RuntimeError, KeyError, ZeroDivisionError, TypeError, AssertionError,
                     StopIteration, IndexError]).map(_exception))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["kd_loss", "topk_with_tail", "expected_calibration_error", "verify_answers"]),
       result=RESULTS)
def test_check_never_raises_on_what_a_learner_returns(name, result):
    def learner(*args):
        if isinstance(result, Exception):
            raise result
        return result
    reference = checks._reference(name)
    assert check(name, learner, verbose=False) is reference  # one constant cannot match every case


def test_pruning_and_speculation_checks_catch_their_classic_slips(capsys):
    from kdlib.lm.prune import neuron_importance
    from kdlib.lm.speculative import speedup

    def with_padding(activations, mask):  # averages over padding tokens too
        return activations.abs().mean(dim=(0, 1))

    def gamma_tokens(alpha, gamma, c):  # forgets the target's own token after the accepted run
        return (gamma if alpha == 1 else (1 - alpha ** gamma) / (1 - alpha)) / (gamma * c + 1)
    assert check("neuron_importance", with_padding) is neuron_importance
    assert check("speculative_speedup", gamma_tokens) is speedup
    assert capsys.readouterr().out.count("differs") == 2
