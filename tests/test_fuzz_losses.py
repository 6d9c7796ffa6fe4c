"""Every public loss of kdlib.losses under bad input (issue 19): random shapes (empty and mismatched), dtypes
(float32/64/16, int), masks (bool, 0/1 float or long, 0.5, all masked out, the wrong shape), NaN and inf (where a
position counts and where it is masked out) and out-of-range hyperparameters. Each call returns a finite scalar
or raises ValueError naming the offending argument: never another exception, never NaN, never a silent 0.0 from
non-finite input. Without value checks (``value_checks(False)``, ``fit``'s later steps) NaN propagates and a
fully masked batch gives 0.

Each loss is described once (``SPECS``: how to build valid inputs, which tensors count, which mask covers them);
every fault is planted in every loss once with a fixed seed, then hypothesis draws further combinations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

import kdlib.losses as losses
from kdlib.core.validate import value_checks
from kdlib.losses import LOSSES

# public names of kdlib.losses that are not losses (helpers with their own tests in test_*_losses.py)
NOT_LOSSES = {"TopK", "LOSSES", "register", "layer_map", "shift_for_next_token"}
# public tensor functions that are not in the registry but are fuzzed like the losses
EXTRA = {"topk_relative_error", "topk_from_logits", "bucket_log_probs", "value_relation"}


# ---------------------------------------------------------------- how each loss is called
@dataclass
class Spec:
    fn: Callable
    build: Callable            # build(g, d) -> kwargs, with d the sizes; float tensors in float32
    floats: dict               # display name -> (path, layout, mask argument or None); tensors that count
    masks: dict = field(default_factory=dict)      # mask argument -> the float tensor whose positions it covers
    hyper: list = field(default_factory=list)      # (argument, bad value, word the message must hold)
    ids: dict = field(default_factory=dict)        # integer argument -> its upper bound (a size name in d)
    mismatch: Callable | None = None               # kwargs, d -> kwargs with one shape that does not fit
    scalar: bool = True                            # a loss (a scalar); else a tensor function (finite output)


def rnd(g, *shape, scale=2.0):
    return torch.randn(*shape, generator=g) * scale


def attn(g, b, h, length):
    return torch.randn(b, h, length, length, generator=g).softmax(-1)


def get(kwargs, path):
    obj = kwargs[path[0]]
    for key in path[1:]:
        obj = getattr(obj, key) if isinstance(key, str) else obj[key]
    return obj


def put(kwargs, path, value):
    """kwargs with the tensor at ``path`` replaced (lists and TopK copied, never changed in place)."""
    kwargs = dict(kwargs)
    if len(path) == 1:
        kwargs[path[0]] = value
        return kwargs
    head, key = kwargs[path[0]], path[1]
    if isinstance(head, losses.TopK):
        parts = {"log_probs": head.log_probs, "indices": head.indices, "tail": head.tail, key: value}
        kwargs[path[0]] = losses.TopK(parts["log_probs"], parts["indices"], parts["tail"], head.T)
    else:
        items = list(head)
        items[key] = value
        kwargs[path[0]] = items
    return kwargs


def logits_pair(g, d):
    return dict(student_logits=rnd(g, d["B"], d["V"]), teacher_logits=rnd(g, d["B"], d["V"]))


def token_pair(g, d):
    return dict(student_logits=rnd(g, d["B"], d["L"], d["V"]), teacher_logits=rnd(g, d["B"], d["L"], d["V"]))


def with_topk(g, d):
    teacher = rnd(g, max(d["B"], 1), d["L"], d["V"])
    return dict(student_logits=rnd(g, d["B"], d["L"], d["V"]),
                topk=losses.topk_from_logits(teacher, d["k"])[:d["B"]])


def states(g, d):
    return dict(student_states=[rnd(g, d["B"], d["L"], d["H"]) for _ in range(3)],
                teacher_states=[rnd(g, d["B"], d["L"], 2 * d["H"]) for _ in range(4)],
                mapping={1: 3, 2: 1}, projections=nn.Linear(d["H"], 2 * d["H"]))


def attentions(g, d):
    return dict(student_attentions=[attn(g, d["B"], 2, d["L"]) for _ in range(2)],
                teacher_attentions=[attn(g, d["B"], 2, d["L"]) for _ in range(3)], mapping={1: 3, 2: 1},
                kind="kl" if d["L"] % 2 else "mse")


def minilm(g, d):
    return dict(student_attention=attn(g, d["B"], 2, d["L"]), teacher_attention=attn(g, d["B"], 2, d["L"]),
                student_values=rnd(g, d["B"], d["L"], 4), teacher_values=rnd(g, d["B"], d["L"], 8))


def completion(g, d, prefix=""):
    names = ("logits", "input_ids") if not prefix else (f"{prefix}_logits", f"{prefix}_ids")
    return {names[0]: rnd(g, d["B"], d["L"], d["V"]), names[1]: torch.randint(0, d["V"], (d["B"], d["L"]), generator=g)}


def dpo(g, d):
    names = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
    return {n: -torch.rand(d["B"], generator=g) * 20 for n in names} | {"beta": 0.1}


def grow(path, dim=-1, by=1):
    """A mismatch: the tensor at ``path`` gets ``by`` more entries along ``dim``; returns the kwargs and the new
    shape, which the message must give (or its positions, the shape without the vocabulary)."""
    def change(kwargs, d):
        x = get(kwargs, path)
        shape = list(x.shape)
        shape[dim] += by
        return put(kwargs, path, torch.zeros(shape, dtype=x.dtype)), tuple(shape)
    return change


TEMP = [("T", 0.0, "T must be"), ("T", -1.0, "T must be"), ("T", math.nan, "T must be"), ("T", math.inf, "T must be"),
        ("T", "2", "T must be")]
BL = "BL"
SPECS = {
    "kd": Spec(losses.kd_loss, lambda g, d: logits_pair(g, d) | {"T": 2.0},
               {"student_logits": (("student_logits",), None, None), "teacher_logits": (("teacher_logits",), None, None)},
               hyper=TEMP, mismatch=grow(("teacher_logits",))),
    "soft_cross_entropy": Spec(losses.soft_cross_entropy, lambda g, d: logits_pair(g, d) | {"T": 2.0},
                               {"student_logits": (("student_logits",), None, None),
                                "teacher_logits": (("teacher_logits",), None, None)},
                               hyper=TEMP, mismatch=grow(("student_logits",), 0)),
    "distillation": Spec(losses.distillation_loss,
                         lambda g, d: logits_pair(g, d) | {"labels": torch.randint(0, d["V"], (d["B"],), generator=g),
                                                           "T": 2.0, "alpha": 0.3},
                         {"student_logits": (("student_logits",), None, None),
                          "teacher_logits": (("teacher_logits",), None, None)},
                         hyper=TEMP + [("alpha", -0.1, "alpha"), ("alpha", 1.5, "alpha"), ("alpha", math.nan, "alpha")],
                         ids={"labels": "V"}, mismatch=grow(("labels",), 0)),
    "hint": Spec(losses.hint_loss,
                 lambda g, d: dict(student_features=rnd(g, d["B"], 3, d["L"], d["L"]),
                                   teacher_features=rnd(g, d["B"], 3, d["L"], d["L"])),
                 {"student_features": (("student_features",), None, None),
                  "teacher_features": (("teacher_features",), None, None)},
                 hyper=[("regressor", nn.Conv2d(5, 3, 1), "regressor")], mismatch=grow(("teacher_features",), 1)),
    "cosine_feature": Spec(losses.cosine_feature_loss,
                           lambda g, d: dict(student_features=rnd(g, d["B"], d["H"]),
                                             teacher_features=rnd(g, d["B"], d["H"])),
                           {"student_features": (("student_features",), None, None),
                            "teacher_features": (("teacher_features",), None, None)},
                           hyper=[("eps", 0.0, "eps"), ("eps", -1.0, "eps"), ("eps", math.nan, "eps")],
                           mismatch=grow(("student_features",))),
    "hidden_state": Spec(losses.hidden_state_loss, states,
                         {"student_states[1]": (("student_states", 1), BL, "mask"),
                          "teacher_states[3]": (("teacher_states", 3), BL, "mask"),
                          "student_states[2]": (("student_states", 2), BL, "mask")},
                         masks={"mask": "student_states[1]"},
                         hyper=[("mapping", {}, "layer map is empty"), ("mapping", {1: 9}, "teacher layer 9"),
                                ("mapping", {"1": 2}, "mapping"), ("mapping", [1, 2], "mapping"),
                                ("projections", {2: nn.Identity()}, "projections"),
                                ("projections", nn.Linear(3, 4), "projection")],
                         mismatch=grow(("teacher_states", 3), 1)),
    "embedding": Spec(losses.embedding_loss,
                      lambda g, d: dict(student_embeddings=rnd(g, d["B"], d["L"], d["H"]),
                                        teacher_embeddings=rnd(g, d["B"], d["L"], d["H"])),
                      {"student_embeddings": (("student_embeddings",), BL, "mask"),
                       "teacher_embeddings": (("teacher_embeddings",), BL, "mask")},
                      masks={"mask": "student_embeddings"}, hyper=[("projection", "linear", "projection")],
                      mismatch=grow(("teacher_embeddings",))),
    "attention": Spec(losses.attention_loss, attentions,
                      {"student_attentions[0]": (("student_attentions", 0), "BHLL", "mask"),
                       "teacher_attentions[2]": (("teacher_attentions", 2), "BHLL", "mask")},
                      masks={"mask": "student_attentions[0]"},
                      hyper=[("kind", "l1", "kind"), ("mapping", {}, "layer map is empty"),
                             ("mapping", {3: 1}, "student layer 3")],
                      mismatch=grow(("teacher_attentions", 2), 1)),
    "minilm_relation": Spec(losses.minilm_relation_loss, minilm,
                            {"student_attention": (("student_attention",), "BHLL", "mask"),
                             "teacher_attention": (("teacher_attention",), "BHLL", "mask"),
                             "student_values": (("student_values",), BL, "mask"),
                             "teacher_values": (("teacher_values",), BL, "mask")},
                            masks={"mask": "student_values"}, mismatch=grow(("teacher_values",), 1)),
    "value_relation": Spec(losses.value_relation, lambda g, d: dict(values=rnd(g, d["B"], d["L"], 4), n_heads=2),
                           {"values": (("values",), BL, "mask")}, masks={"mask": "values"},
                           hyper=[("n_heads", 0, "n_heads"), ("n_heads", 3, "heads"), ("n_heads", 1.5, "n_heads")],
                           scalar=False),
    "forward_kl": Spec(losses.forward_kl, token_pair,
                       {"student_logits": (("student_logits",), BL, "mask"),
                        "teacher_logits": (("teacher_logits",), BL, "mask")},
                       masks={"mask": "student_logits"}, hyper=TEMP, mismatch=grow(("teacher_logits",))),
    "uld": Spec(losses.uld_loss, token_pair,
                {"student_logits": (("student_logits",), BL, "mask"),
                 "teacher_logits": (("teacher_logits",), BL, "mask")},
                masks={"mask": "student_logits"}, hyper=TEMP, mismatch=grow(("teacher_logits",), 1)),
    "reverse_kl": Spec(losses.reverse_kl, token_pair,
                       {"student_logits": (("student_logits",), BL, "mask"),
                        "teacher_logits": (("teacher_logits",), BL, "mask")},
                       masks={"mask": "student_logits"}, hyper=TEMP, mismatch=grow(("student_logits",), 1)),
    "generalized_jsd": Spec(losses.generalized_jsd, lambda g, d: token_pair(g, d) | {"beta": d["beta"]},
                            {"student_logits": (("student_logits",), BL, "mask"),
                             "teacher_logits": (("teacher_logits",), BL, "mask")},
                            masks={"mask": "student_logits"},
                            hyper=TEMP + [("beta", -0.1, "beta"), ("beta", 1.5, "beta"), ("beta", math.nan, "beta"),
                                          ("scaled", "yes", "scaled")],
                            mismatch=grow(("teacher_logits",))),
    "topk": Spec(losses.topk_loss, lambda g, d: with_topk(g, d) | {"kind": d["kind"]},
                 {"student_logits": (("student_logits",), BL, "mask"),
                  "topk.log_probs": (("topk", "log_probs"), BL, "mask"), "topk.tail": (("topk", "tail"), BL, "mask")},
                 masks={"mask": "student_logits"},
                 hyper=[("kind", "sideways", "kind"), ("beta", 2.0, "beta"), ("topk", "cache", "topk")],
                 ids={"topk.indices": "V"}, mismatch=grow(("student_logits",), 1)),
    "topk_relative_error": Spec(losses.topk_relative_error, lambda g, d: token_pair(g, d) | {"k": d["k"]},
                                {"student_logits": (("student_logits",), BL, "mask"),
                                 "teacher_logits": (("teacher_logits",), BL, "mask")},
                                masks={"mask": "student_logits"},
                                hyper=[("k", 0, "k must"), ("k", 99, "k must"), ("k", 1.5, "k must"),
                                       ("k", True, "k must"), ("kind", "x", "kind"), ("T", 0.0, "T must")],
                                mismatch=grow(("teacher_logits",))),
    "topk_from_logits": Spec(losses.topk_from_logits,
                             lambda g, d: dict(teacher_logits=rnd(g, d["B"], d["L"], d["V"]), k=d["k"]),
                             {"teacher_logits": (("teacher_logits",), None, None)},
                             hyper=[("k", 0, "k must"), ("k", 99, "k must"), ("T", -2.0, "T must")], scalar=False),
    "bucket_log_probs": Spec(losses.bucket_log_probs, with_topk,
                             {"student_logits": (("student_logits",), None, None)},
                             hyper=[("topk", "cache", "topk")], mismatch=grow(("student_logits",), 1), scalar=False),
    "completion": Spec(losses.completion_loss, completion,
                       {"logits": (("logits",), "shift", "completion_mask")},
                       masks={"completion_mask": "logits"}, ids={"input_ids": "V"}, mismatch=grow(("input_ids",), 1)),
    "multitask": Spec(losses.multitask_loss,
                      lambda g, d: completion(g, d, "label") | completion(g, d, "rationale") | {"lam": 0.5},
                      {"label_logits": (("label_logits",), "shift", "label_mask"),
                       "rationale_logits": (("rationale_logits",), "shift", "rationale_mask")},
                      masks={"label_mask": "label_logits", "rationale_mask": "rationale_logits"},
                      hyper=[("lam", -1.0, "lam"), ("lam", math.nan, "lam"), ("lam", math.inf, "lam")],
                      ids={"label_ids": "V", "rationale_ids": "V"}, mismatch=grow(("rationale_ids",), 1)),
    "dpo": Spec(losses.dpo_loss, dpo, {n: ((n,), None, None) for n in (
                "policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")},
                hyper=[("beta", 0.0, "beta"), ("beta", -1.0, "beta"), ("beta", math.nan, "beta")],
                mismatch=grow(("ref_rejected_logps",), 0)),
}


# ---------------------------------------------------------------- masks and where a position counts
def counted(x: torch.Tensor, layout, m: torch.Tensor | None) -> torch.Tensor:
    """Bool like ``x``: True where an entry takes part in the loss under the bool mask ``m`` (B, L)."""
    if layout is None:
        return torch.ones_like(x, dtype=torch.bool)
    b, length = x.shape[0], (x.shape[2] if layout == "BHLL" else x.shape[1])
    m = torch.ones(b, length, dtype=torch.bool) if m is None else m
    if layout == "BHLL":
        keep = m[:, None, :, None] & m[:, None, None, :]
    elif layout == "shift":  # completion_mask[:, 1:] covers logits[:, :-1]; the last logits never count
        keep = torch.zeros(b, length, dtype=torch.bool)
        keep[:, :-1] = m[:, 1:]
    else:
        keep = m
    return keep.reshape(keep.shape + (1,) * (x.dim() - keep.dim())).expand_as(x)


def draw_mask(g, b: int, length: int, shifted: bool) -> torch.Tensor:
    """A random bool (B, L) mask with at least one counted and (when L allows) one masked-out position."""
    m = torch.rand(b, length, generator=g) > 0.4
    if b == 0:
        return m
    first = 1 if shifted else 0
    m[0, first] = True
    m[-1, -1] = False if length - first > 1 or b > 1 else m[-1, -1]
    return m


def as_form(m: torch.Tensor, form: str):
    return {"bool": m, "float": m.float(), "long": m.long(), "half": m.half()}[form]


SIZES = st.fixed_dictionaries({"B": st.integers(1, 3), "L": st.integers(2, 5), "V": st.integers(3, 7),
                               "H": st.sampled_from([2, 4]), "k": st.integers(1, 2),
                               "beta": st.sampled_from([0.0, 0.3, 1.0]), "kind": st.sampled_from(["forward", "reverse", "jsd"])})


def make(name: str, seed: int, d: dict, dtype=torch.float32, form: str | None = "bool"):
    """Valid kwargs for ``name`` and the bool masks used (None for a loss without a mask or ``form=None``)."""
    spec = SPECS[name]
    g = torch.Generator().manual_seed(seed)
    kwargs = spec.build(g, d)
    for path, _, _ in spec.floats.values():
        kwargs = put(kwargs, path, get(kwargs, path).to(dtype))
    kwargs = {k: v.to(dtype) if isinstance(v, nn.Module) else v for k, v in kwargs.items()}
    bool_masks = {}
    for mask_name, covered in spec.masks.items():
        needed = mask_name.endswith("completion_mask") or mask_name in ("label_mask", "rationale_mask")
        if form is None and not needed:
            continue
        x = get(kwargs, spec.floats[covered][0])
        layout = spec.floats[covered][1]
        b, length = x.shape[0], (x.shape[2] if layout == "BHLL" else x.shape[1])
        bool_masks[mask_name] = draw_mask(g, b, length, layout == "shift")
        kwargs[mask_name] = as_form(bool_masks[mask_name], form or "bool")
    return kwargs, bool_masks


def call(name: str, kwargs: dict):
    return SPECS[name].fn(**kwargs)


def parts(name: str, out) -> list[torch.Tensor]:
    """The values a call returned: the loss (a scalar), or every tensor of a tensor function's result."""
    if SPECS[name].scalar:
        return [torch.as_tensor(out[0] if isinstance(out, tuple) else out)]  # dpo_loss: (loss, rewards, rewards)
    if isinstance(out, losses.TopK):
        return [out.log_probs, out.tail]
    return list(out) if isinstance(out, tuple) else [out]


def assert_finite_result(name: str, out):
    values = parts(name, out)
    if SPECS[name].scalar:
        assert values[0].dim() == 0 and values[0].is_floating_point(), (name, values[0])
    assert all(bool(torch.isfinite(v).all()) for v in values), (name, out)


def expect_error(name: str, kwargs: dict, *words: str):
    """The call raises ValueError whose message holds every word (the offending argument first)."""
    with pytest.raises(ValueError) as err:
        call(name, kwargs)
    message = str(err.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"{name}: the message does not name {missing}: {message}"
    return message


def plant(kwargs, spec, masks, target: str, value: float, where: str, g) -> dict:
    """``value`` at one counted entry of the tensor ``target`` (``where="counted"``), or at every masked-out entry
    of every float tensor (``where="masked"``)."""
    for tname, (path, layout, mask_name) in spec.floats.items():
        if where == "counted" and tname != target:
            continue
        x = get(kwargs, path).clone()
        keep = counted(x, layout, masks.get(mask_name) if mask_name else None)
        if where == "counted":
            spots = keep.flatten().nonzero().flatten()
            spot = spots[torch.randint(len(spots), (1,), generator=g)]
            x.view(-1)[spot] = value
        else:
            x = x.masked_fill(~keep, value)
        kwargs = put(kwargs, path, x)
    return kwargs


FAULTS = ["valid", "nan", "inf", "-inf", "int", "empty", "mismatch", "hyper", "nan_masked", "mask_half", "mask_all",
          "mask_shape", "ids_range", "ids_float", "float64", "float16", "no_checks_nan", "no_checks_all_masked"]


def applicable(name: str, fault: str) -> bool:
    spec = SPECS[name]
    if fault.startswith("mask") or fault in ("nan_masked", "no_checks_all_masked"):
        return bool(spec.masks)
    if fault.startswith("ids"):
        return bool(spec.ids)
    return {"hyper": bool(spec.hyper), "mismatch": spec.mismatch is not None}.get(fault, True)


def check(name: str, fault: str, seed: int, d: dict, pick: int = 0, form: str = "bool") -> None:
    """Plant ``fault`` in a valid call of ``name`` and assert the outcome the module docstring promises."""
    spec = SPECS[name]
    g = torch.Generator().manual_seed(seed + 1)
    dtype = {"float64": torch.float64, "float16": torch.float16}.get(fault, torch.float32)
    kwargs, masks = make(name, seed, d, dtype, form)
    target = list(spec.floats)[pick % len(spec.floats)]
    if fault in ("valid", "float64", "float16"):
        assert_finite_result(name, call(name, kwargs))
    elif fault in ("nan", "inf", "-inf"):
        expect_error(name, plant(kwargs, spec, masks, target, float(fault), "counted", g), target, "NaN or infinite")
    elif fault == "int":
        x = get(kwargs, spec.floats[target][0])
        expect_error(name, put(kwargs, spec.floats[target][0], x.round().long()), target, "floating point")
    elif fault == "empty":
        kwargs, _ = make(name, seed, d | {"B": 0}, dtype, None)
        message = expect_error(name, kwargs, "empty batch")
        assert any(t.split("[")[0].split(".")[0] in message for t in spec.floats), message
    elif fault == "mismatch":
        kwargs, shape = spec.mismatch(kwargs, d)
        with pytest.raises(ValueError) as err:
            call(name, kwargs)
        assert str(shape) in str(err.value) or str(shape[:-1]) in str(err.value), str(err.value)
    elif fault == "hyper":
        arg, bad, word = spec.hyper[pick % len(spec.hyper)]
        if bad == "linear":
            bad = nn.Linear(d["H"] + 1, d["H"])
        expect_error(name, kwargs | {arg: bad}, word)
    elif fault == "nan_masked":
        kwargs = plant(kwargs, spec, masks, target, math.nan, "masked", g)
        leaves = [get(kwargs, p) for p, _, _ in spec.floats.values()]
        for leaf in leaves:
            leaf.requires_grad_(True)
        out = call(name, kwargs)
        assert_finite_result(name, out)
        graded = [v.sum() for v in parts(name, out) if v.requires_grad]  # topk_relative_error returns a float
        if graded:
            sum(graded).backward()
        assert all(leaf.grad is None or bool(torch.isfinite(leaf.grad).all()) for leaf in leaves), name
    elif fault in ("mask_half", "mask_all", "mask_shape"):
        mask_name = list(spec.masks)[pick % len(spec.masks)]
        m = masks[mask_name]
        if fault == "mask_half":
            bad, words = m.float().masked_fill(m, 0.5), (mask_name, "0 and 1")
        elif fault == "mask_all":
            bad, words = as_form(torch.zeros_like(m), form), ("every position is masked out", mask_name)
        else:
            bad, words = as_form(torch.ones(m.shape[0], m.shape[1] + 1, dtype=torch.bool), form), (mask_name,)
        expect_error(name, kwargs | {mask_name: bad}, *words)
    elif fault in ("ids_range", "ids_float"):
        arg = list(spec.ids)[pick % len(spec.ids)]
        path = ("topk", "indices") if arg == "topk.indices" else (arg,)
        x = get(kwargs, path)
        bad = x.float() if fault == "ids_float" else x + d[spec.ids[arg]]
        expect_error(name, put(kwargs, path, bad), arg)
    elif fault == "no_checks_nan":
        kwargs = plant(kwargs, spec, masks, target, math.nan, "counted", g)
        with value_checks(False):
            out = call(name, kwargs)
        assert any(bool(v.isnan().any()) for v in parts(name, out)), f"{name} dropped a NaN in {target}: {out}"
    elif fault == "no_checks_all_masked":  # every mask of the call selects nothing: 0, documented
        kwargs = kwargs | {m: as_form(torch.zeros_like(masks[m]), form) for m in spec.masks}
        with value_checks(False):
            out = call(name, kwargs)
        if spec.scalar:
            assert parts(name, out)[0].item() == 0.0, (name, out)
        else:
            assert_finite_result(name, out)


# ---------------------------------------------------------------- the list of losses is complete
def covered():
    return {fn.__name__ for fn in (spec.fn for spec in SPECS.values())}


def test_every_public_loss_is_fuzzed():
    assert {fn.__name__ for fn in LOSSES.values()} <= covered()
    assert set(losses.__all__) == covered() | NOT_LOSSES, "classify each new public name: fuzz it or list it"
    assert {n for n in EXTRA} <= covered() and not (EXTRA & {fn.__name__ for fn in LOSSES.values()})


CASES = [(name, fault) for name in SPECS for fault in FAULTS if applicable(name, fault)]
BASE = {"B": 2, "L": 4, "V": 6, "H": 4, "k": 2, "beta": 0.3, "kind": "jsd"}


@pytest.mark.parametrize("name,fault", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_each_fault_in_each_loss(name, fault):
    """Every fault class planted once in every loss it applies to, with fixed sizes and seed; each hyperparameter,
    argument and mask of a loss in turn."""
    spec = SPECS[name]
    n = {"hyper": len(spec.hyper), "ids_range": len(spec.ids), "ids_float": len(spec.ids)}.get(
        fault, len(spec.floats) if fault in ("nan", "inf", "-inf", "int", "no_checks_nan") else len(spec.masks) or 1)
    for pick in range(n):
        check(name, fault, 0, BASE, pick)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SPECS)), fault=st.sampled_from(FAULTS), seed=st.integers(0, 2 ** 16), d=SIZES,
       pick=st.integers(0, 7), form=st.sampled_from(["bool", "float", "long"]))
def test_random_faults(name, fault, seed, d, pick, form):
    if not applicable(name, fault):
        fault = "valid"
    check(name, fault, seed, d, pick, form)


# ---------------------------------------------------------------- the cases of issue 19, spelled out
def test_token_losses_no_longer_drop_nan():
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    t[0, 1, 2] = math.nan
    for fn in (losses.forward_kl, losses.reverse_kl, losses.generalized_jsd):
        with pytest.raises(ValueError, match="teacher_logits contains 1 NaN"):
            fn(s, t)
        with value_checks(False):
            assert torch.isnan(fn(s, t)), fn.__name__
            assert torch.isnan(fn(t, s)), fn.__name__
    with value_checks(False):
        assert torch.isnan(losses.generalized_jsd(s, t, beta=0.0, scaled=False))


def test_nan_at_a_masked_position_changes_neither_the_loss_nor_the_gradients():
    s, t = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    clean = losses.forward_kl(s, t, mask)
    s2, t2 = s.clone(), t.clone()
    s2[~mask], t2[~mask] = math.nan, math.inf
    s2.requires_grad_(True)
    loss = losses.forward_kl(s2, t2, mask)
    loss.backward()
    assert loss.item() == pytest.approx(clean.item(), rel=1e-6)
    assert torch.isfinite(s2.grad).all() and (s2.grad[~mask] == 0).all()


@pytest.mark.parametrize("make_mask", [lambda m: m, lambda m: m.float(), lambda m: m.long()],
                         ids=["bool", "float", "long"])
def test_all_masked_is_one_rule_for_token_and_transformer_losses(make_mask):
    none = make_mask(torch.zeros(2, 3, dtype=torch.bool))
    s, h = torch.randn(2, 3, 5), torch.randn(2, 3, 4)
    calls = [lambda m: losses.forward_kl(s, s + 1, m), lambda m: losses.embedding_loss(h, h + 1, mask=m),
             lambda m: losses.attention_loss([attn(torch.Generator(), 2, 2, 3)] * 2, [attn(torch.Generator(), 2, 2, 3)],
                                             {1: 1}, m)]
    for fn in calls:
        with pytest.raises(ValueError, match="every position is masked out"):
            fn(none)
        with value_checks(False):
            assert fn(none).item() == 0.0


def test_a_mask_of_weights_is_refused_and_empty_batches_are_named():
    s = torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match=r"mask must be bool or hold only 0 and 1.*0\.5"):
        losses.reverse_kl(s, s, torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=r"empty batch: student_logits has shape \(0, 10\)"):
        losses.kd_loss(torch.randn(0, 10), torch.randn(0, 10), 2.0)
    with pytest.raises(ValueError, match=r"empty batch: student_features"):
        losses.hint_loss(torch.randn(0, 3, 4, 4), torch.randn(0, 3, 4, 4))
    with pytest.raises(ValueError, match=r"student_logits has dtype torch.int64.*floating point"):
        losses.distillation_loss(torch.ones(2, 3, dtype=torch.long), torch.randn(2, 3), torch.zeros(2).long(), 1.0, 0.5)
