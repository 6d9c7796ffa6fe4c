"""The hot path reads no tensor value on the host: every training step of the kit, run by
``kdlib.core.fit.train_step`` with value checks off (as ``fit`` runs every step after the first), makes no
``.item()``, ``bool(t)``, ``int(t)``, ``float(t)``, ``.tolist()``, ``.cpu()``, ``.numpy()`` or printing of a
tensor; and a whole ``fit`` run reads the same number of values for 3 steps as for 12 when nothing is logged
in between. On a GPU each such read waits for every queued kernel.

Reads made inside ``torch.optim`` (the optimisers' step counters are CPU tensors by design) and inside
``kdlib.core.fit.select`` (batches are cut on the CPU, like a DataLoader's collate) are not counted.
"""
import inspect
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from kdlib.core.fit import cross_entropy_step, fit, make_optimizer, select, train_step, warmup_cosine
from kdlib.core.teacher_cache import TeacherCache
from kdlib.core.validate import value_checks
from kdlib.data.types import Split
from kdlib.vision.cnn import DeepCNN, LightCNN
from kdlib.vision.features import WithRegressor, conv_regressor, cosine_step, hint_step, pool_features
from kdlib.vision.mlp import mlp
from kdlib.vision.steps import kd_step

HOST_READS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "cpu", "numpy", "__format__",
              "__repr__", "nonzero", "argwhere", "masked_select"}  # the last three have a data-dependent shape
FIT_PY = str(Path(sys.modules["kdlib.core.fit"].__file__).resolve())
OPTIM = str(Path(torch.optim.__file__).resolve().parent)


def _allowed(frame) -> bool:
    """True when the read happens inside torch.optim or inside kdlib.core.fit.select (the data side)."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(OPTIM) or (frame.f_code.co_name == "select" and name == FIT_PY):
            return True
        frame = frame.f_back
    return False


class HostReads(TorchFunctionMode):
    """Counts reads of tensor contents on the host while active; ``reads`` lists (name, where) per read."""

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        boolean_index = name in ("__getitem__", "__setitem__") and len(args) > 1 and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for i in (args[1] if isinstance(args[1], tuple) else (args[1],)))
        if (name in HOST_READS or boolean_index) and not _allowed(sys._getframe(1)):
            caller = next((f for f in inspect.stack()[1:6] if "torch/overrides" not in f.filename), None)
            self.reads.append((name, f"{caller.filename}:{caller.lineno}" if caller else "?"))
        return func(*args, **(kwargs or {}))

    def __len__(self):
        return len(self.reads)


def steady_state_reads(model, data, step, batch_size=4, calls=3, optimizer="adamw", clip=1.0):
    """Host reads during ``calls`` training steps after one warm-up step (which moves caches to the device and
    creates the optimiser's state), with value checks off as inside ``fit``."""
    gen = torch.Generator().manual_seed(0)
    n = len(data.y) if isinstance(data, Split) else len(data)
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], optimizer, 1e-3, 0.01, (0.9, 0.95),
                         0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(calls + 1, 2))
    model.train()
    counter = HostReads()
    with value_checks(False):
        for i in range(calls + 1):
            idx = torch.randperm(n, generator=gen)[:batch_size]
            if i == 0:
                train_step(model, step, select(data, idx), idx, opt, sched, clip)
                continue
            with counter:
                loss, terms = train_step(model, step, select(data, idx), idx, opt, sched, clip)
    model.eval()
    assert torch.isfinite(loss)  # checked outside the counter
    return counter.reads


# ---------------------------------------------------------------- the counter counts (negative controls)
@pytest.mark.parametrize("read", [
    lambda t: t.item(), lambda t: float(t), lambda t: bool(t > 0), lambda t: int(t), lambda t: t.tolist(),
    lambda t: t.cpu(), lambda t: t.detach().numpy(), lambda t: [0, 1][(t > 0).long()], lambda t: f"{t:.3f}",
    lambda t: (t.reshape(1) > 0).nonzero()])
def test_the_counter_counts_a_step_that_reads_a_value(read):
    data = Split(torch.randn(16, 5), torch.randint(0, 3, (16,)))

    def reading_step(model, batch, idx):
        loss = cross_entropy_step(model, batch, idx)
        read(loss.detach())
        return loss

    assert len(steady_state_reads(mlp([5, 8, 3]), data, reading_step, calls=3)) == 3
    assert steady_state_reads(mlp([5, 8, 3]), data, cross_entropy_step, calls=3) == []


def test_the_counter_counts_a_boolean_mask_index():
    data = Split(torch.randn(16, 5), torch.randint(0, 3, (16,)))

    def masked_step(model, batch, idx):
        logits = model(batch.x)
        return F.cross_entropy(logits[batch.y >= 0], batch.y[batch.y >= 0])

    assert len(steady_state_reads(mlp([5, 8, 3]), data, masked_step, calls=2)) == 4


def test_reads_in_the_optimiser_and_in_batch_selection_are_not_counted_but_elsewhere_are():
    data = Split(torch.randn(16, 5), torch.randint(0, 3, (16,)))
    with HostReads() as counter:
        torch.tensor(3.0).item()  # a read here counts
        select(type("Rows", (), {"batch": lambda self, idx: int(idx.max())})(), torch.arange(4))  # data side
    assert [name for name, _ in counter.reads] == ["item"]
    # Adam reads its CPU step counter (inside torch.optim: not counted); SGD has no counter: both are clean
    for optimizer in ("adam", "adamw", "sgd"):
        assert steady_state_reads(mlp([5, 8, 3]), data, cross_entropy_step, optimizer=optimizer) == []


def test_the_optimiser_exemption_is_what_hides_adams_step_counter(monkeypatch):
    data = Split(torch.randn(16, 5), torch.randint(0, 3, (16,)))
    monkeypatch.setattr(sys.modules[__name__], "OPTIM", "/no/such/folder")
    reads = steady_state_reads(mlp([5, 8, 3]), data, cross_entropy_step, optimizer="adam")
    assert reads and all(name == "item" and "torch/optim" in where for name, where in reads)
    assert steady_state_reads(mlp([5, 8, 3]), data, cross_entropy_step, optimizer="sgd") == []


# ---------------------------------------------------------------- image classifiers (notebooks 02-03)
def images(n=24, shape=(1, 8, 8), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen))


def test_cross_entropy_step_reads_nothing():
    data = Split(torch.randn(24, 20), torch.randint(0, 5, (24,)))
    assert steady_state_reads(mlp([20, 16, 5]), data, cross_entropy_step, optimizer="adam", clip=None) == []


@pytest.mark.parametrize("as_cache", [True, False], ids=["TeacherCache", "tensor"])
def test_kd_step_reads_nothing(as_cache):
    torch.manual_seed(0)
    data = Split(torch.randn(24, 20), torch.randint(0, 5, (24,)))
    teacher = mlp([20, 32, 5])
    outputs = TeacherCache.build(teacher, data.x) if as_cache else teacher(data.x).detach()
    step = kd_step(outputs, T=4.0, alpha=0.3)
    assert steady_state_reads(mlp([20, 16, 5]), data, step, optimizer="adam", clip=None) == []


def test_feature_steps_read_nothing():
    torch.manual_seed(0)
    data = images()
    teacher = DeepCNN((1, 8, 8), widths=(4, 4, 4, 6), hidden=8).eval()
    feats = TeacherCache.build(teacher, data.x, outputs="features")
    student = LightCNN((1, 8, 8))
    model = WithRegressor(student, conv_regressor(student.map_shape[0], teacher.map_shape[0]))
    assert steady_state_reads(model, data, hint_step(feats, teacher.map_shape)) == []
    pooled = feats.map(lambda f: pool_features(f, student.features(data.x[:1]).shape[1]))
    assert steady_state_reads(LightCNN((1, 8, 8)), data, cosine_step(pooled)) == []


# ---------------------------------------------------------------- encoders (notebook 04)
def tiny_bert(seed=0):
    transformers = pytest.importorskip("transformers")
    from kdlib.encoders.models import EncoderClassifier
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                     intermediate_size=64, num_labels=3, max_position_embeddings=32)
    config._attn_implementation = "eager"
    return EncoderClassifier(transformers.BertForSequenceClassification(config).eval(), pad_id=0)


def token_ids(n=16, length=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 40, (n, length), generator=gen)
    lengths = torch.randint(3, length + 1, (n,), generator=gen)
    x[torch.arange(length)[None, :] >= lengths[:, None]] = 0
    return x


@pytest.fixture(scope="module")
def encoder_setup():
    teacher = tiny_bert()
    from kdlib.encoders.cache import EncoderTeacherCache
    x = token_ids()
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    cache = EncoderTeacherCache.build(teacher, x, hidden_layers=(0, 2, 4), attention_layers=(2, 4),
                                      value_layers=(4,), progress=False)
    return teacher, Split(x, y), cache


# Encoders read nothing when trained on a TokenSplit: its batches are cut to their longest sequence on the data
# side (TokenSplit.batch, called by select), the model runs with trim=False, and the padding mask reaches
# transformers as a 4D additive mask, used as is (kdlib.encoders.models.attention_bias; a 2D mask would make
# transformers read padding_mask.all() on the host). On a plain Split the model cuts each batch itself and reads
# the longest length on the host (EncoderClassifier.trim): that read is the control showing that the counter sees
# the encoder path, and it is the only one (none in transformers).
TRIM_SITES = ("kdlib/encoders/models.py",)


def unknown(reads, sites):
    """The reads that happen at none of ``sites`` (path fragments)."""
    return [r for r in reads if not any(site in r[1] for site in sites)]


ENCODER_SIGNALS = [dict(alpha=1.0), dict(alpha=0.5), dict(alpha=0.5, beta_hidden=1.0),
                   dict(alpha=0.5, beta_attention=1.0), dict(alpha=0.5, beta_relation=1.0)]
SIGNAL_IDS = ["-".join(f"{k}={v}" for k, v in s.items()) for s in ENCODER_SIGNALS]


def token_split(data):
    from kdlib.encoders.batches import TokenSplit
    return TokenSplit(data.x, data.y, pad_id=0)


def encoder_reads(encoder_setup, signals, cut_on_data_side=True):
    from kdlib.encoders.models import narrow_student
    from kdlib.encoders.train import Distillable, encoder_step
    teacher, data, cache = encoder_setup
    student = narrow_student(teacher, n_layers=2, hidden_size=16)
    model = Distillable(student, nn.ModuleDict({k: nn.Linear(16, 32) for k in ("0", "1", "2")}))
    data = token_split(data) if cut_on_data_side else data
    return steady_state_reads(model, data, encoder_step(cache, {1: 2, 2: 4}, **signals), optimizer="adam")


@pytest.mark.parametrize("signals", ENCODER_SIGNALS, ids=SIGNAL_IDS)
def test_encoder_step_reads_nothing(encoder_setup, signals):
    assert encoder_reads(encoder_setup, signals) == []


@pytest.mark.parametrize("signals", ENCODER_SIGNALS, ids=SIGNAL_IDS)
def test_encoder_step_on_a_plain_split_reads_only_where_the_model_cuts_the_batch(encoder_setup, signals):
    reads = encoder_reads(encoder_setup, signals, cut_on_data_side=False)
    assert reads and unknown(reads, TRIM_SITES) == []


def low_label_reads(encoder_setup, cut_on_data_side=True):
    from kdlib.encoders.models import narrow_student
    from kdlib.encoders.train import low_label_step
    teacher, data, cache = encoder_setup
    y = data.y.clone()
    y[::2] = -1  # unlabelled rows
    data = Split(data.x, y)
    step = low_label_step(cache, T=2.0, alpha=0.5)
    return steady_state_reads(narrow_student(teacher, n_layers=2, hidden_size=16),
                              token_split(data) if cut_on_data_side else data, step)


def test_low_label_step_reads_nothing(encoder_setup):
    assert low_label_reads(encoder_setup) == []


def test_low_label_step_on_a_plain_split_reads_only_where_the_model_cuts_the_batch(encoder_setup):
    reads = low_label_reads(encoder_setup, cut_on_data_side=False)
    assert reads and unknown(reads, TRIM_SITES) == []


def test_low_label_step_on_a_plain_classifier_reads_nothing():
    from kdlib.encoders.train import low_label_step
    data = Split(torch.randn(24, 20), torch.randint(-1, 5, (24,), generator=torch.Generator().manual_seed(2)))
    step = low_label_step(torch.randn(24, 5), T=2.0, alpha=0.5)
    assert steady_state_reads(mlp([20, 16, 5]), data, step, optimizer="adam") == []


# ---------------------------------------------------------------- causal LMs (notebooks 05-07)
@pytest.fixture(scope="module")
def lm_setup():
    pytest.importorskip("transformers")
    from kdlib.lm.small import build_tokenizer
    from kdlib.reasoning.arithmetic import arithmetic_splits
    from kdlib.reasoning.rationale import format_texts
    splits = arithmetic_splits(16, 8, 8, 8, seed=0)
    tok = build_tokenizer(format_texts([p for v in splits.values() for p in v]))
    return splits, tok


def llama(tok, seed=0, layers=1):
    from kdlib.lm.small import small_llama
    return small_llama(tok, layers=layers, hidden=32, heads=2, seed=seed)


def blocks_of(splits, tok, block=16):
    from kdlib.lm.blocks import token_blocks
    from kdlib.reasoning.rationale import format_example
    return token_blocks(tok, ["".join(format_example(p, "rationale")) for p in splits["pool"]], block)


def test_lm_step_and_topk_kd_step_read_nothing(lm_setup):
    from kdlib.lm.blocks import cache_topk
    from kdlib.lm.steps import lm_step, topk_kd_step
    splits, tok = lm_setup
    blocks = blocks_of(splits, tok)
    assert len(blocks) >= 8
    assert steady_state_reads(llama(tok), blocks, lm_step) == []
    cache, _ = cache_topk(llama(tok, seed=1, layers=2).eval(), blocks, k=4, progress=False)
    for kind, alpha in (("forward", 0.0), ("reverse", 0.5), ("jsd", 0.0)):
        assert steady_state_reads(llama(tok), blocks, topk_kd_step(cache, kind=kind, alpha=alpha)) == [], kind


def sequence_kd_reads(lm_setup):
    from kdlib.lm.generate import generate, pack_right
    from kdlib.lm.steps import sequence_kd_step
    from kdlib.reasoning.rationale import format_prompt
    splits, tok = lm_setup
    prompts = [format_prompt(p.question, "rationale") for p in splits["pool"][:8]]
    samples = generate(llama(tok, seed=1), tok, prompts, max_new_tokens=6, seed=0)
    packed = pack_right(samples)
    return steady_state_reads(llama(tok), packed.input_ids, sequence_kd_step(packed))


def test_sequence_kd_step_reads_nothing(lm_setup):
    assert sequence_kd_reads(lm_setup) == []


def sft_rows(splits, tok, fmt, n=8):
    from kdlib.lm.sft import sft_data
    from kdlib.reasoning.rationale import format_example
    prompts, completions = zip(*[format_example(p, fmt) for p in splits["pool"][:n]])
    return sft_data(tok, list(prompts), list(completions))


def test_sft_and_multitask_steps_read_nothing(lm_setup):
    from kdlib.lm.sft import MultitaskData, multitask_step, sft_step
    splits, tok = lm_setup
    assert steady_state_reads(llama(tok), sft_rows(splits, tok, "rationale"), sft_step) == []
    data = MultitaskData(sft_rows(splits, tok, "label"), sft_rows(splits, tok, "explain"))
    assert steady_state_reads(llama(tok), data, multitask_step(0.5)) == []


def preference_pairs(splits, tok, n=6):
    from kdlib.lm.dpo import PreferencePairs
    from kdlib.reasoning.rationale import format_example
    encode = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    rows = [format_example(p, "rationale") for p in splits["pool"][:n]]
    prompts = [encode(prompt) for prompt, _ in rows]
    chosen = [encode(completion) + [tok.eos_token_id] for _, completion in rows]
    rejected = [encode(f"Answer: {p.answer + 1}") + [tok.eos_token_id] for p in splits["pool"][:n]]
    return PreferencePairs.from_tokens(prompts, chosen, rejected, pad_id=tok.pad_token_id)


def test_dpo_step_reads_nothing(lm_setup):
    from kdlib.lm.dpo import dpo_step, reference_logprobs
    splits, tok = lm_setup
    pairs = preference_pairs(splits, tok)
    ref = reference_logprobs(llama(tok), pairs)
    assert steady_state_reads(llama(tok), pairs, dpo_step(ref, beta=0.1)) == []


# ---------------------------------------------------------------- every step of the kit is covered above
COVERED = {"kdlib.core.fit": {"cross_entropy_step"},
           "kdlib.vision.steps": {"kd_step"},
           "kdlib.vision.features": {"hint_step", "cosine_step"},
           "kdlib.encoders.train": {"encoder_step", "low_label_step"},
           "kdlib.lm.steps": {"lm_step", "topk_kd_step", "sequence_kd_step"},
           "kdlib.lm.sft": {"sft_step", "multitask_step"},
           "kdlib.lm.dpo": {"dpo_step"}}
EXEMPT = {"kdlib.core.fit": {"train_step"},  # the loop's own optimiser step, run by every test above
          # the student generates its own samples every step: reads are inherent and documented in its docstring
          "kdlib.lm.steps": {"on_policy_kd_step"}}


@pytest.mark.parametrize("module", sorted(COVERED))
def test_every_step_of_the_kit_is_checked_here(module):
    pytest.importorskip("transformers")
    mod = __import__(module, fromlist=["_"])
    steps = {name for name, fn in inspect.getmembers(mod, inspect.isfunction)
             if name.endswith("_step") and fn.__module__ == module}
    missing = steps - COVERED[module] - EXEMPT.get(module, set())
    assert not missing, f"add a host-read test for {module}: {sorted(missing)}"
    assert COVERED[module] <= steps  # nothing listed here that no longer exists


def test_the_on_policy_step_documents_its_host_reads():
    pytest.importorskip("transformers")
    from kdlib.lm.steps import on_policy_kd_step
    assert "Host syncs" in on_policy_kd_step.__doc__


# ---------------------------------------------------------------- the loop itself: reads only at logging points
def run_reads(steps=None, epochs=None, n=48, log_every=1000, step=cross_entropy_step, data=None):
    data = data or Split(torch.randn(n, 10, generator=torch.Generator().manual_seed(0)),
                         torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(1)))
    torch.manual_seed(0)
    model = mlp([10, 8, 4])
    with HostReads() as counter:
        history = fit(model, data, step, steps=steps, epochs=epochs, batch_size=4, log_every=log_every, clip=1.0,
                      warmup=2, progress=False)
    return counter.reads, history


def test_a_fit_run_reads_as_often_for_3_steps_as_for_12():
    few, h_few = run_reads(steps=3)
    many, h_many = run_reads(steps=12)  # 48 samples in batches of 4: one permutation, one logging point at the end
    assert len(h_few.loss) == 3 and len(h_many.loss) == 12 and h_many.epoch == [1]
    assert len(many) == len(few), many
    assert len(few) > 0  # the one logging point reads (the counter sees the loop)


def test_a_fit_run_of_one_epoch_reads_as_often_for_3_batches_as_for_12():
    few, _ = run_reads(epochs=1, n=12)
    many, _ = run_reads(epochs=1, n=48)
    assert len(many) == len(few), many


def test_a_kd_fit_run_reads_as_often_for_3_steps_as_for_12():
    data = Split(torch.randn(48, 10), torch.randint(0, 4, (48,)))
    cache = TeacherCache.build(mlp([10, 16, 4]), data.x)
    few, _ = run_reads(steps=3, step=kd_step(cache, T=2.0, alpha=0.5), data=data)
    many, _ = run_reads(steps=12, step=kd_step(cache, T=2.0, alpha=0.5), data=data)
    assert len(many) == len(few), many


def test_logging_every_step_reads_every_step():
    """The control for the tests above: the counter sees the loop's own reads at its logging points."""
    few, _ = run_reads(steps=3, log_every=1)
    many, _ = run_reads(steps=12, log_every=1)
    assert len(many) - len(few) >= 9
