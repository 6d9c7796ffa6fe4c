"""The served cascade, the request stream, the tweet topics, the shared teacher recipes and the scorecard and
break-even figures of notebook 09, on hand-made cases."""
import math

import matplotlib
import pytest
import torch
from torch import nn

from kdlib.core.cascade import Cascade, cascade_logits, route_to_teacher
from kdlib.core.serving import serve_stream
from kdlib.core.teacher_cache import recipe_key
from kdlib.data.tweets import topic_mask
from kdlib.encoders import tweet_teacher_recipe
from kdlib.teaching import draw_break_even, scorecard_plot
from kdlib.vision import mnist_teacher_recipe

matplotlib.use("Agg")


class Fixed(nn.Module):
    """Returns row i of ``table`` for an input whose first entry is i; counts the rows it answered."""

    def __init__(self, table):
        super().__init__()
        self.table, self.rows = table, 0

    def forward(self, x):
        self.rows += len(x)
        return self.table[x[:, 0].long()]


def _pair():
    student = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]]))
    teacher = torch.log(torch.tensor([[0.4, 0.6], [0.1, 0.9], [0.3, 0.7], [0.9, 0.1]]))
    return Fixed(student), Fixed(teacher), torch.arange(4.0)[:, None]


def test_route_to_teacher_is_max_prob_below_threshold():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]]))
    assert route_to_teacher(logits, 0.7).tolist() == [False, True, True]
    assert route_to_teacher(logits, 0.0).tolist() == [False] * 3 and route_to_teacher(logits, 1.01).all()
    assert route_to_teacher(logits, 0.7, T=0.1).tolist() == [False, False, True]  # a low T sharpens


def test_cascade_calls_the_teacher_only_for_unsure_rows_and_counts_them():
    student, teacher, x = _pair()
    cascade = Cascade(student, teacher, threshold=0.7)
    out = cascade(x)
    want = cascade_logits(student.table, teacher.table, torch.tensor([False, False, True, True]))
    assert torch.allclose(out, want)
    assert teacher.rows == 2 and cascade.requests == 4 and cascade.teacher_requests == 2
    cascade.reset()
    assert cascade.requests == cascade.teacher_requests == 0
    assert teacher.rows == 2 and torch.equal(Cascade(student, teacher, 0.0)(x), student.table)  # no teacher call
    with pytest.raises(ValueError, match="kind"):
        Cascade(student, teacher, 0.5, kind="entropy")
    with pytest.raises(ValueError, match="T must be"):
        Cascade(student, teacher, 0.5, T=-1)


def test_serve_stream_serves_every_request_in_order_and_counts_only_timed_calls():
    student, teacher, x = _pair()
    cascade = Cascade(student, teacher, threshold=0.7)
    stream = torch.cat([x, x])  # 8 requests
    one = serve_stream(cascade, stream, batch=1, warmup=3)
    assert one["requests"] == 8 and one["batch"] == 1 and cascade.requests == 8 and cascade.teacher_requests == 4
    assert torch.allclose(one["logits"], torch.cat([cascade(x), cascade(x)]))
    assert one["p50_ms"] <= one["p95_ms"] <= one["p99_ms"] and one["requests_per_s"] > 0
    three = serve_stream(student, stream, batch=3, warmup=0)  # 2 full calls; the last 2 requests are left out
    assert three["requests"] == 6 and torch.equal(three["logits"], student.table[stream[:6, 0].long()])
    with pytest.raises(ValueError, match="at least batch=9"):
        serve_stream(student, stream, batch=9)
    with pytest.raises(ValueError, match="batch must be a whole number"):
        serve_stream(student, stream, batch=0)


def test_topic_mask():
    texts = ["@united lost my bag", "Self-driving cars are here", "I love my iPhone", "pineapple pie"]
    assert topic_mask(texts, "airlines") == [True, False, False, False]
    assert topic_mask(texts, "driverless cars") == [False, True, False, False]
    assert topic_mask(texts, "apple") == [False, False, True, False]  # not "pineapple"
    with pytest.raises(ValueError, match="unknown topic"):
        topic_mask(texts, "football")


def test_shared_teacher_recipes_keep_the_cache_keys_of_notebooks_02_and_04():
    # the keys the laptop teachers were cached under before the recipes moved into the library
    assert recipe_key(dict(tweet_teacher_recipe(9600, 64, 1, 32, 1e-4, "laptop"), rng="seeded-fine-tune")) \
        == "73831386df51"
    assert recipe_key(mnist_teacher_recipe(20, None)) == "65e34ca2a703"


def test_break_even_frame_and_scorecard_plot():
    # 10 s of labelling and 20 s of training; the teacher costs 3 ms a request, the student 1 ms
    frame = draw_break_even(10.0, 20.0, 0.003, 0.001, requests_per_day=1000.0, price_per_hour=3600.0)
    assert frame["break_even_requests"] == pytest.approx(30 / 0.002)
    assert frame["break_even_days"] == pytest.approx(15.0)
    pricier = draw_break_even(10.0, 20.0, 0.003, 0.001, requests_per_day=1000.0, price_per_hour=3600.0,
                              teacher_price_factor=10.0, teacher_fraction=0.5)
    # labelling costs 100, training 20; per request the teacher costs 0.03, the cascade 0.001 + 0.5*0.003*9
    assert pricier["break_even_requests"] == pytest.approx(120 / (0.03 - 0.0145))
    never = draw_break_even(10.0, 20.0, 0.001, 0.002, requests_per_day=1000.0)
    assert math.isinf(never["break_even_requests"])
    cards = {"teacher": {"accuracy": 0.8, "macro_f1": 0.7, "cost_per_1k": 2.0, "teacher_fraction": 1.0},
             "student": {"accuracy": 0.7, "teacher_agreement": 0.9, "cost_per_1k": 0.5}}
    axes = scorecard_plot(cards)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["accuracy", "macro-F1", "agrees with teacher"]
    assert len(axes[1].collections) == 2
