"""Issue 19, kdlib.core: overrides checked against the sizes they replace, sizes that would shadow a profile
attribute, metrics of an empty set, seed comparisons from one seed, and the inference helpers' bad inputs."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from kdlib.core import stats
from kdlib.core.calibration import apply_temperature, fit_temperature
from kdlib.core.inference import eval_mode, predict
from kdlib.core.metrics import (accuracy, agreement, error_count, expected_calibration_error, macro_f1,
                                per_class_accuracy, reliability_bins)
from kdlib.core.profiles import Profile, get_profile
from kdlib.core.serving import call_latency, latency, serving_report

SIZES = dict(ci=dict(epochs=1, lr=1e-3, augment=True, seeds=[0], widths=(8, 8), dataset="auto", subset=None),
             laptop=dict(epochs=8, lr=3e-3, augment=True, seeds=[0, 1], widths=(16, 16), dataset="x", subset=500),
             gpu=dict(epochs=60, lr=1e-3, augment=False, seeds=[0, 1, 2], widths=(32, 32), dataset="auto",
                      subset=None))


def profile_with(monkeypatch, overrides, name="ci", sizes=SIZES):
    monkeypatch.setenv("KDLIB_OVERRIDES", overrides)
    return get_profile(**sizes, name=name)


# ---- KDLIB_OVERRIDES: parsed and checked against the type of the size each replaces
@pytest.mark.parametrize("overrides, words", [
    ("epochs=2,", ["epochs", "'2,'", "expected int", "tuple", "trailing comma", "write epochs=2"]),
    ("epochs=two", ["epochs", "'two'", "expected int", "str"]),
    ("epochs=2.5", ["epochs", "'2.5'", "expected int", "float"]),
    ("epochs=None", ["epochs", "expected int"]),
    ("lr=fast", ["lr", "'fast'", "expected float"]),
    ("lr=1e999", ["lr", "expected float", "inf"]),
    ("lr=True", ["lr", "expected float", "bool"]),
    ("augment=yes", ["augment", "'yes'", "expected bool"]),
    ("augment=1", ["augment", "expected bool", "int"]),
    ("seeds=3", ["seeds", "expected list of int", "e.g. seeds=[0]"]),
    ("seeds=[0.5, 1]", ["seeds", "expected list of int"]),
    ("widths=wide", ["widths", "expected tuple of int"]),
    ("subset=lots", ["subset", "'lots'", "expected None or int"]),  # None here, an int in laptop: an int or None
])
def test_an_override_that_does_not_fit_its_size_is_a_clear_error(monkeypatch, overrides, words):
    with pytest.raises(ValueError) as err:
        profile_with(monkeypatch, overrides)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_overrides_that_fit_are_converted_to_the_type_of_their_size(monkeypatch):
    p = profile_with(monkeypatch, "epochs=2, lr=1, augment=false, seeds=(3, 4), widths=4,4, dataset=cifar10, "
                                  "subset=100")
    assert (p.epochs, p.lr, p.augment, p.seeds, p.widths, p.dataset, p.subset) == \
        (2, 1.0, False, [3, 4], (4, 4), "cifar10", 100)
    assert type(p.lr) is float and type(p.seeds) is list and type(p.widths) is tuple
    assert p.overridden == ("augment", "dataset", "epochs", "lr", "seeds", "subset", "widths")
    assert profile_with(monkeypatch, "epochs=1e3, augment=TRUE, dataset=123, subset=None").epochs == 1000
    p = profile_with(monkeypatch, "augment=TRUE, dataset=123, subset=None", name="laptop")
    assert (p.augment, p.dataset, p.subset) == (True, "123", None)
    assert profile_with(monkeypatch, "x=anything", sizes=dict(ci=dict(x=None))).x == "anything"


def test_malformed_and_repeated_overrides_are_errors(monkeypatch):
    for text, word in [("epochs", "name=value"), ("=3", "name=value"), ("epochs=3,epochs=4", "epochs twice"),
                       ("seed=3", "profile attribute")]:
        with pytest.raises(ValueError, match=word):
            profile_with(monkeypatch, text)


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet="0123456789.,-+eE()[]'\"TrueFalsNn xy", max_size=10))
def test_an_int_size_gets_an_int_or_a_valueerror_naming_it(text):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDLIB_OVERRIDES", f"epochs={text}")
        try:
            p = get_profile(ci=dict(epochs=1), name="ci")
        except ValueError as err:
            assert "epochs" in str(err)
        else:
            assert "epochs" not in p.overridden or type(p.epochs) is int


@pytest.mark.parametrize("attribute", ["seed", "name", "device", "sizes", "overridden", "describe",
                                       "assert_claims"])
def test_a_size_named_like_a_profile_attribute_is_refused(monkeypatch, attribute):
    monkeypatch.delenv("KDLIB_OVERRIDES", raising=False)
    assert hasattr(Profile("ci", torch.device("cpu")), attribute)
    with pytest.raises(ValueError, match=f"size\\(s\\) {attribute}, which clash with the Profile attributes"):
        get_profile(ci=dict(epochs=1, **{attribute: 3}), name="ci")
    # in any profile, not only the one that runs
    with pytest.raises(ValueError, match=f"gpu names the size\\(s\\) {attribute}"):
        get_profile(ci=dict(epochs=1), gpu=dict(epochs=1, **{attribute: 3}), name="ci")


# ---- metrics of an empty set, mismatched shapes, labels out of range
LOGITS, LABELS = torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0])
PROBS = torch.softmax(LOGITS, -1)
EMPTY, NO_LABELS = torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)
METRICS = {"accuracy": accuracy, "error_count": error_count, "per_class_accuracy": per_class_accuracy,
           "macro_f1": macro_f1, "fit_temperature": fit_temperature}
ON_PROBS = {"reliability_bins": reliability_bins, "expected_calibration_error": expected_calibration_error}


@pytest.mark.parametrize("metric", [*METRICS.values(), *ON_PROBS.values()], ids=[*METRICS, *ON_PROBS])
def test_a_metric_of_an_empty_set_is_an_error_not_1_or_nan(metric):
    with pytest.raises(ValueError, match="no examples"):
        metric(EMPTY, NO_LABELS)


def test_agreement_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no examples"):
        agreement(EMPTY, EMPTY)
    with pytest.raises(ValueError, match="differ in shape"):
        agreement(LOGITS, LOGITS[:1])
    assert agreement(LOGITS, LOGITS) == 1.0


@pytest.mark.parametrize("metric", [*METRICS.values(), *ON_PROBS.values()], ids=[*METRICS, *ON_PROBS])
def test_metric_inputs_that_do_not_fit_are_clear_errors(metric):
    x = PROBS if metric in ON_PROBS.values() else LOGITS
    name = "probs" if metric in ON_PROBS.values() else "logits"
    cases = [((x, LABELS[:1]), f"expected {name} \\(N, classes\\) and labels \\(N,\\)"),
             ((x[0], LABELS[:1]), "expected"),
             ((x, torch.tensor([0, 2])), r"labels must lie in \[0, 1\]"),
             ((x, torch.tensor([0, -1])), r"labels must lie in \[0, 1\]"),
             ((x, LABELS.float()), "integer class indices"),
             ((x.clone().fill_(math.nan), LABELS), "NaN or infinite"),
             ((x.tolist(), LABELS), "must be tensors")]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            metric(*args)


def test_n_classes_and_n_bins_are_checked():
    with pytest.raises(ValueError, match="n_classes must be a whole number >= the 2 columns"):
        per_class_accuracy(LOGITS, LABELS, n_classes=1)
    with pytest.raises(ValueError, match="n_classes"):
        macro_f1(LOGITS, LABELS, n_classes=0)
    per_class = per_class_accuracy(LOGITS, LABELS, n_classes=3)  # classes 1 and 2 have no examples: NaN
    assert per_class[0] == 0.5 and per_class[1:].isnan().all()
    for bins in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_bins must be a whole number"):
            expected_calibration_error(PROBS, LABELS, n_bins=bins)
    with pytest.raises(ValueError, match="floating-point"):
        reliability_bins(torch.tensor([[1, 0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="max_iter"):
        fit_temperature(LOGITS, LABELS, max_iter=0)
    with pytest.raises(ValueError, match="T must be a finite number > 0"):
        apply_temperature(LOGITS, 0.0)


# ---- seeds: one seed says nothing about the noise
@pytest.mark.parametrize("baseline, other", [([0.8], [0.9, 0.91]), ([0.8, 0.81], [0.9]), ([0.8], [0.95])])
def test_one_seed_never_gives_a_gain_larger_than_the_noise(baseline, other):
    with pytest.raises(ValueError, match="at least 2 seeds per method are needed to estimate the seed noise"):
        stats.compare(baseline, other, "kd", "hard")
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.noise_of_difference(baseline, other)


def test_seed_scores_must_be_numbers_and_present():
    for bad, match in [([], "empty"), ([0.8, math.nan], "NaN or infinite"), ("0.8", "list of per-seed scores"),
                       ([0.8, "x"], "must hold numbers")]:
        with pytest.raises(ValueError, match=match):
            stats.compare(bad, [0.8, 0.9])
        with pytest.raises(ValueError, match=match):
            stats.mean_std(bad)
    with pytest.raises(ValueError, match="hard is empty"):
        stats.table({"hard": []})
    assert stats.mean_std([0.5]) == (0.5, 0.0)  # one value: a mean, and no spread to speak of


def test_the_threshold_is_called_2_x_the_standard_error_of_the_difference():
    result = stats.compare([0.80, 0.81, 0.79], [0.90, 0.91, 0.89], "kd", "hard")
    se = math.sqrt(0.01 ** 2 / 3 + 0.01 ** 2 / 3)
    assert result["noise"] == pytest.approx(2 * se) and result["beyond_noise"]
    assert "2 x standard error of the difference = 1.63 points, 3 seeds" in result["text"]
    assert "2 and 3 seeds" in stats.compare([0.8, 0.81], [0.8, 0.82, 0.81])["text"]
    for fn in (stats.compare, stats.noise_of_difference):
        assert "2 x standard error of the difference" in " ".join(fn.__doc__.split())
    assert "2 x standard error of the difference" in " ".join(stats.__doc__.split())
    with pytest.raises(ValueError, match="finite"):
        stats.paired_bootstrap_se(torch.tensor([1.0, math.nan]), torch.tensor([1.0, 0.0]))


# ---- inference and serving helpers
def test_inference_and_serving_refuse_empty_inputs_and_bad_counts():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="x must be a non-empty tensor"):
        predict(model, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        predict(model, torch.zeros(4, 3), batch_size=0)
    with pytest.raises(ValueError, match="eval_mode needs one or more"):
        with eval_mode():
            pass
    for repeats, warmup in [(0, 1), (2.5, 1), (2, -1)]:
        with pytest.raises(ValueError, match="repeats >= 1 and warmup >= 0"):
            call_latency(lambda i: None, repeats=repeats, warmup=warmup)
    with pytest.raises(ValueError, match="example must be a non-empty tensor"):
        serving_report({"m": model}, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="batch_sizes"):
        serving_report({"m": model}, torch.zeros(1, 3), batch_sizes=(0,))
    no_params = nn.Flatten()  # a model without parameters runs on the CPU
    assert predict(no_params, torch.zeros(5, 2, 2), batch_size=2).shape == (5, 4)
    assert latency(no_params, torch.zeros(1, 2, 2), warmup=0, repeats=1)["p50_ms"] >= 0


def test_paired_comparison_cancels_what_a_seed_shares():
    from kdlib.core.stats import compare
    base = [0.80, 0.85, 0.90]
    other = [0.81, 0.86, 0.91]  # +1 point on every seed, seeds differ by 5 points
    unpaired, paired = compare(base, other), compare(base, other, paired=True)
    assert not unpaired["beyond_noise"] and paired["beyond_noise"] and paired["noise"] < 1e-12
    other = [0.81, 0.862, 0.909]
    paired = compare(base, other, paired=True)
    assert paired["beyond_noise"] and not compare(base, other)["beyond_noise"]
    assert "paired seeds" in paired["text"] and abs(paired["gain"] - 0.0103333) < 1e-6
    errors = compare([800, 820, 830], [450, 455, 445], "distilled", "hard", paired=True, scale=1, unit="errors")
    assert "-366.67 errors" in errors["text"] and errors["beyond_noise"]
    with pytest.raises(ValueError, match="one score per seed"):
        compare(base, other[:2], paired=True)
