"""kdlib.core.fit: batches by epochs and by steps, the history, NaN detection at logging points, argument
checks, value checks on the first step only, eval mode at the end, seeded input-only augmentation, and the
old loops' numerics (cached teachers stay valid)."""
import math

import pytest
import torch
import torch.nn.functional as F

from kdlib.core.fit import History, cross_entropy_step, fit, index_batches, warmup_cosine
from kdlib.core.inference import predict
from kdlib.core.metrics import accuracy
from kdlib.core.validate import values_checked
from kdlib.data.types import Split
from kdlib.vision.mlp import mlp
from kdlib.vision.steps import kd_step


def toy(n=10, d=6, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, d, generator=gen), torch.randint(0, classes, (n,), generator=gen))


def model(d=6, classes=3, seed=0):
    torch.manual_seed(seed)
    return mlp([d, 8, classes])


class Spy:
    """A step that records what the loop hands it and returns a loss whose value is known: the mean of the
    batch's sample indices (plus a zero term through the model, so there is something to optimise)."""

    def __init__(self, terms=False):
        self.batches, self.idx, self.checked, self.training, self.terms = [], [], [], [], terms

    def __call__(self, m, batch, idx):
        self.batches.append(batch)
        self.idx.append(idx.clone())
        self.checked.append(values_checked())
        self.training.append(m.training)
        x = batch.x if isinstance(batch, Split) else batch.float()
        loss = m(x).sum() * 0 + idx.float().mean()
        if self.terms:
            return loss, {"double": 2 * idx.float().mean(), "size": torch.tensor(float(len(idx)))}
        return loss


def test_epochs_cover_a_fresh_permutation_each_with_a_smaller_last_batch():
    data, spy = toy(n=10), Spy()
    history = fit(model(), data, spy, epochs=3, batch_size=4, progress=False)
    assert [len(i) for i in spy.idx] == [4, 4, 2] * 3
    epochs = [torch.cat(spy.idx[k:k + 3]) for k in (0, 3, 6)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(10))  # each epoch sees every sample once
    assert len({tuple(order.tolist()) for order in epochs}) == 3  # reshuffled every epoch
    assert not torch.equal(epochs[0], torch.arange(10))
    for batch, idx in zip(spy.batches, spy.idx):
        assert torch.equal(batch.x, data.x[idx]) and torch.equal(batch.y, data.y[idx])
    assert history.epoch == [1, 2, 3] and history.samples == 30 and history.tokens == 0
    assert len(history.loss) == 9 and len(history.epoch_seconds) == 3
    # the same seed gives the same order, another seed another
    again, other = Spy(), Spy()
    fit(model(), data, again, epochs=3, batch_size=4, progress=False)
    fit(model(), data, other, epochs=3, batch_size=4, seed=1, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(spy.idx, again.idx))
    assert not all(torch.equal(a, b) for a, b in zip(spy.idx, other.idx))


def test_epochs_with_a_batch_larger_than_the_data_is_one_batch_per_epoch():
    spy = Spy()
    history = fit(model(), toy(n=10), spy, epochs=2, batch_size=64, progress=False)
    assert [len(i) for i in spy.idx] == [10, 10] and history.epoch == [1, 2]


def test_steps_draw_full_batches_and_renew_the_permutation_when_exhausted():
    data, spy = torch.randn(10, 6), Spy()
    history = fit(model(), data, spy, steps=5, batch_size=4, seed=3, progress=False)
    gen = torch.Generator().manual_seed(3)  # what the loop draws: a permutation, renewed when < 4 samples remain
    first, second, third = (torch.randperm(10, generator=gen) for _ in range(3))
    want = [first[:4], first[4:8], second[:4], second[4:8], third[:4]]
    assert all(len(i) == 4 for i in spy.idx)
    assert all(torch.equal(got, w) for got, w in zip(spy.idx, want))
    assert not set(spy.idx[0].tolist()) & set(spy.idx[1].tolist())  # no repeats within a permutation
    for batch, idx in zip(spy.batches, spy.idx):
        assert torch.equal(batch, data[idx])  # a tensor's rows
    assert history.epoch == [1, 2, 3]  # a pass ends where the permutation is renewed, and at the last step
    assert history.samples == 20 and history.tokens == 5 * 4 * 6
    assert list(index_batches(10, 4, torch.Generator().manual_seed(3), steps=5))[-1][:2] == (3, True)
    assert [last for _, last, _ in index_batches(10, 4, torch.Generator().manual_seed(3), steps=5)] == [
        False, True, False, True, True]


def test_index_batches_by_epochs_marks_the_last_batch_of_each_epoch():
    out = list(index_batches(10, 4, torch.Generator().manual_seed(0), epochs=2))
    assert [(e, last, len(i)) for e, last, i in out] == [(1, False, 4), (1, False, 4), (1, True, 2),
                                                          (2, False, 4), (2, False, 4), (2, True, 2)]


def test_history_records_each_step_its_named_terms_and_the_epoch_means():
    data, spy = toy(n=10), Spy(terms=True)
    history = fit(model(), data, spy, epochs=2, batch_size=4, log_every=2, progress=False)
    means = [i.float().mean().item() for i in spy.idx]
    assert isinstance(history, History)
    assert history.loss == pytest.approx(means) and history["loss"] is history.loss
    assert history.terms["double"] == pytest.approx([2 * m for m in means])
    assert history["size"] == [4.0, 4.0, 2.0, 4.0, 4.0, 2.0] and history["double"] is history.terms["double"]
    assert history.train_loss == pytest.approx([sum(means[:3]) / 3, sum(means[3:]) / 3])
    assert history["samples"] == 20 and history["seconds"] == history.seconds > 0
    assert history.epoch_seconds == sorted(history.epoch_seconds) and history.epoch_seconds[-1] <= history.seconds
    with pytest.raises(KeyError, match="double, size"):
        history["accuracy"]
    assert history.val == [] and history.val_accuracy == []


def test_val_as_a_split_gives_accuracy_after_every_epoch():
    data, val = toy(n=40, seed=0), toy(n=25, seed=1)
    student = model()
    history = fit(student, data, cross_entropy_step, epochs=3, batch_size=8, lr=1e-2, val=val, progress=False)
    assert len(history.val) == 3 and set(history.val[0]) == {"accuracy"}
    assert history.val_accuracy == [v["accuracy"] for v in history.val]
    assert history.val_accuracy[-1] == accuracy(predict(student, val.x), val.y)  # measured on the final model
    assert all(a * 25 == pytest.approx(round(a * 25)) for a in history.val_accuracy)


def test_val_as_a_callable_is_called_once_per_epoch_with_the_model():
    calls, spy = [], Spy()
    student = model()

    def val(m):
        calls.append((m is student, m.training, len(spy.idx)))
        return {"score": float(len(calls)), "steps": len(spy.idx)}

    history = fit(student, toy(n=10), spy, epochs=2, batch_size=4, val=val, progress=False)
    assert [c[0] for c in calls] == [True, True] and [c[2] for c in calls] == [3, 6]
    assert history.val == [{"score": 1.0, "steps": 3}, {"score": 2.0, "steps": 6}]
    assert all(spy.training)  # training resumes in train mode after each validation


def _bad_at(k, bad=float("nan")):
    calls = []

    def step(m, batch, idx):
        calls.append(idx)
        return m(batch.x).sum() * 0 + (bad if len(calls) - 1 == k else 1.0)
    step.calls = calls
    return step


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_loss_that_becomes_nan_raises_naming_the_step_at_the_next_logging_point(bad):
    student, step = model(), _bad_at(4, bad)
    with pytest.raises(ValueError, match=r"train: the training loss became -?(nan|inf) at step 4 \(checked at "
                                         r"steps 3-5\).*learning rate"):
        fit(student, toy(n=40), step, steps=10, batch_size=4, log_every=3, progress=False)
    assert len(step.calls) == 6  # found at the logging point after step 5, mid-run, not at the end
    assert not student.training


def test_a_nan_in_the_last_batch_of_an_epoch_is_found_at_the_epoch_end():
    step = _bad_at(2)
    with pytest.raises(ValueError, match="my run: the training loss became nan at step 2"):
        fit(model(), toy(n=10), step, epochs=5, batch_size=4, log_every=100, desc="my run", progress=False)
    assert len(step.calls) == 3  # the end of the first epoch is a logging point


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=1, steps=1), "exactly one of epochs .* or steps"),
    (dict(), "exactly one of epochs .* or steps"),
    (dict(epochs=0), "epochs must be a whole number >= 1"),
    (dict(epochs=1.5), "epochs must be a whole number"),
    (dict(steps=0), "steps must be a whole number >= 1"),
    (dict(steps=True), "steps must be a whole number"),
    (dict(epochs=1, batch_size=0), "batch_size must be a whole number >= 1"),
    (dict(epochs=1, log_every=0), "log_every must be a whole number >= 1"),
    (dict(epochs=1, lr=0.0), "lr must be a finite number > 0"),
    (dict(epochs=1, lr=-1e-3), "lr must be a finite number > 0"),
    (dict(epochs=1, lr=float("nan")), "lr must be a finite number"),
    (dict(epochs=1, clip=0.0), "clip must be a finite number > 0"),
    (dict(epochs=1, optimizer="rmsprop"), "optimizer must be one of adam, adamw, sgd, got 'rmsprop'"),
    (dict(steps=1, batch_size=11), "batch_size 11 is larger than the 10 samples"),
])
def test_bad_arguments_are_refused_naming_the_argument_before_any_step(kwargs, match):
    spy, student = Spy(), model()
    before = [p.detach().clone() for p in student.parameters()]
    with pytest.raises(ValueError, match=match):
        fit(student, toy(n=10), spy, progress=False, **kwargs)
    assert spy.idx == [] and all(torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_inputs_and_labels_of_different_lengths_are_refused():
    data = toy(n=10)
    with pytest.raises(ValueError, match="10 inputs but 9 labels"):
        fit(model(), Split(data.x, data.y[:9]), cross_entropy_step, epochs=1, progress=False)


def test_every_optimizer_trains():
    data = toy(n=64, seed=4)
    for name in ("adam", "adamw", "sgd"):
        student = model()
        history = fit(student, data, cross_entropy_step, epochs=20, batch_size=16, lr=3e-2, optimizer=name,
                      progress=False)
        assert history.train_loss[-1] < history.train_loss[0], name


def test_only_the_first_step_runs_with_value_checks_on():
    spy = Spy()
    fit(model(), toy(n=10), spy, steps=4, batch_size=4, progress=False)
    assert spy.checked == [True, False, False, False]
    assert values_checked()  # and they are on again after the loop


def test_labels_out_of_range_are_a_clear_error_at_step_0():
    data = toy(n=12, classes=3)
    bad = Split(data.x, data.y.clone())
    bad.y[5] = 3  # the model has 3 classes
    teacher_logits = torch.randn(12, 3)
    student, seen = model(), []
    inner = kd_step(teacher_logits, T=2.0, alpha=0.5)

    def step(m, batch, idx):
        seen.append(idx)
        return inner(m, batch, idx)

    before = [p.detach().clone() for p in student.parameters()]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] for 3 classes, got values from \d to 3"):
        fit(student, bad, step, epochs=1, batch_size=12, progress=False)
    assert len(seen) == 1  # raised in the first step, before any update
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters())) and not student.training
    nan_teacher = teacher_logits.clone()
    nan_teacher[3, 1] = float("nan")
    with pytest.raises(ValueError, match="teacher_logits contains 1 NaN"):
        fit(model(), data, kd_step(nan_teacher, T=2.0, alpha=0.5), epochs=1, batch_size=12, progress=False)


def test_the_model_ends_in_eval_mode_even_when_a_step_raises():
    student = model()
    fit(student, toy(n=10), cross_entropy_step, epochs=1, batch_size=4, progress=False)
    assert not student.training

    def boom(m, batch, idx):
        if not values_checked():  # the second step
            raise RuntimeError("boom")
        return cross_entropy_step(m, batch, idx)

    student.train()
    with pytest.raises(RuntimeError, match="boom"):
        fit(student, toy(n=10), boom, epochs=1, batch_size=4, progress=False)
    assert not student.training


def shift(x, generator):
    return x + torch.randn(x.shape, generator=generator, device=x.device)


def test_augment_changes_inputs_only_and_is_seeded():
    data = toy(n=10)
    x_before, y_before = data.x.clone(), data.y.clone()
    plain, a, b, other = Spy(), Spy(), Spy(), Spy()
    fit(model(), data, plain, epochs=2, batch_size=4, progress=False)
    fit(model(), data, a, epochs=2, batch_size=4, augment=shift, progress=False)
    fit(model(), data, b, epochs=2, batch_size=4, augment=shift, progress=False)
    fit(model(), data, other, epochs=2, batch_size=4, augment=shift, seed=1, progress=False)
    assert torch.equal(data.x, x_before) and torch.equal(data.y, y_before)  # the data set is untouched
    for p, s, t in zip(plain.idx, a.idx, b.idx):
        assert torch.equal(p, s) and torch.equal(s, t)  # augmentation does not change the shuffling
    for batch, idx in zip(a.batches, a.idx):
        assert torch.equal(batch.y, data.y[idx])  # labels untouched
        assert not torch.allclose(batch.x, data.x[idx]) and batch.x.shape == data.x[idx].shape
    assert all(torch.equal(s.x, t.x) for s, t in zip(a.batches, b.batches))  # seeded: same seed, same inputs
    noise = [batch.x - data.x[idx] for batch, idx in zip(a.batches, a.idx)]
    other_noise = [batch.x - data.x[idx] for batch, idx in zip(other.batches, other.idx)]
    assert not torch.allclose(noise[0], other_noise[0])  # another seed, other noise
    assert not torch.allclose(noise[0], noise[3][:4])  # fresh noise for every batch


def test_warmup_cosine_factor():
    f = warmup_cosine(100, warmup=10)
    assert f(0) == pytest.approx(0.1 * 0.5 * (1 + math.cos(0)))
    assert f(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 100)))
    assert f(50) == pytest.approx(0.5) and f(100) == pytest.approx(0.0) and f(150) == pytest.approx(0.0)
    assert warmup_cosine(10)(0) == 1.0


# ---- the old loops, in substance, so that fit's numerics are pinned: a cached teacher trained by them is
# ---- reproduced bit for bit (prepare_teacher keys on the recipe, not on the code)
def old_train(m, data, step, epochs, batch_size, lr, weight_decay=0.0, optimizer="adam", seed=0):
    """kdlib.train.train before fit(): Adam or Nesterov SGD, cosine decay to zero, no clipping."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr, weight_decay=weight_decay) if optimizer == "adam" else
           torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True))
    total = epochs * -(-len(data.x) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    for _ in range(epochs):
        m.train()
        for idx in torch.randperm(len(data.x), generator=gen).split(batch_size):
            loss = step(m, data.x[idx], data.y[idx], idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    m.eval()


def old_train_lm(m, blocks, step, steps, batch_size, lr, warmup=10, weight_decay=0.01, seed=0):
    """kdlib.lm_train.train_lm before fit(): AdamW (0.9, 0.95), warm-up and cosine decay, clipping at 1."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay,
                            betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    m.train()
    order, pos = torch.randperm(len(blocks), generator=gen), 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(blocks), generator=gen), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        loss = step(m, blocks[idx], idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        sched.step()
    m.eval()


@pytest.mark.parametrize("optimizer,weight_decay", [("adam", 0.0), ("adam", 1e-3), ("sgd", 1e-4)])
def test_fit_by_epochs_reproduces_the_old_train_loop_bit_for_bit(optimizer, weight_decay):
    data = toy(n=50, d=6, seed=2)
    torch.manual_seed(0)
    old, new = mlp([6, 16, 3], dropout=0.3), mlp([6, 16, 3], dropout=0.3)
    new.load_state_dict(old.state_dict())
    torch.manual_seed(1)
    old_train(old, data, lambda m, x, y, idx: F.cross_entropy(m(x), y), epochs=3, batch_size=16, lr=1e-2,
              weight_decay=weight_decay, optimizer=optimizer, seed=5)
    torch.manual_seed(1)
    fit(new, data, cross_entropy_step, epochs=3, batch_size=16, optimizer=optimizer, lr=1e-2,
        weight_decay=weight_decay, seed=5, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))


def test_fit_by_steps_reproduces_the_old_train_lm_loop_bit_for_bit():
    blocks = torch.randn(11, 6, generator=torch.Generator().manual_seed(3))

    def step(m, xb, idx):
        return (m(xb) - xb[:, :3]).pow(2).mean()

    torch.manual_seed(0)
    old, new = mlp([6, 16, 3], dropout=0.3), mlp([6, 16, 3], dropout=0.3)
    new.load_state_dict(old.state_dict())
    torch.manual_seed(1)
    old_train_lm(old, blocks, step, steps=9, batch_size=4, lr=1e-2, seed=2)
    torch.manual_seed(1)
    fit(new, blocks, step, steps=9, batch_size=4, optimizer="adamw", lr=1e-2, betas=(0.9, 0.95), weight_decay=0.01,
        warmup=10, clip=1.0, seed=2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))


def test_bf16_autocast_runs_forward_in_bf16_and_losses_in_float32():
    """precision="bf16" (the gpu profiles of the transformer notebooks) on the CPU: the model's matmuls run in
    bfloat16, the KD loss and MiniLM's value relation (a matmul and a log-softmax inside the loss) in float32,
    weights and optimiser stay float32, training still learns."""
    from kdlib.losses import distillation_loss
    from kdlib.losses.attention import value_relation
    torch.manual_seed(0)
    x, y = torch.randn(256, 20), torch.randint(0, 3, (256,))
    teacher_logits = torch.randn(256, 3)
    seen = {}

    def step(model, batch, idx):
        logits = model(batch.x)
        loss = distillation_loss(logits, teacher_logits[idx], batch.y, T=2.0, alpha=0.5)
        relation = value_relation(logits.unsqueeze(1).expand(-1, 2, -1).contiguous(), n_heads=1)
        seen.update(logits=logits.dtype, loss=loss.dtype, relation=relation.dtype)
        return loss

    model = mlp([20, 32, 3])
    history = fit(model, Split(x, y), step, epochs=3, batch_size=32, lr=1e-2, progress=False, precision="bf16")
    assert seen == {"logits": torch.bfloat16, "loss": torch.float32, "relation": torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(math.isfinite(v) for v in history.loss) and history.train_loss[-1] < history.train_loss[0]
    with pytest.raises(ValueError, match="precision"):
        fit(mlp([20, 3]), Split(x, y), step, epochs=1, progress=False, precision="fp16")


def test_bf16_losses_follow_fp32_losses():
    """The same run in bf16 and fp32 (same init, same batches): per-step losses agree to bf16's precision."""
    x, y = torch.randn(256, 20, generator=torch.Generator().manual_seed(1)), torch.arange(256) % 3
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        runs[precision] = fit(mlp([20, 32, 3]), Split(x, y), cross_entropy_step, epochs=2, batch_size=64,
                              progress=False, precision=precision).loss
    assert torch.allclose(torch.tensor(runs["bf16"]), torch.tensor(runs["fp32"]), atol=3e-2, rtol=0)
    assert runs["bf16"] != runs["fp32"]  # autocast was on: bf16 rounding changes the numbers


def test_fused_adam_only_when_parameters_are_on_cuda(monkeypatch):
    """fit asks make_optimizer for the fused Adam/AdamW kernel only when every parameter is on CUDA."""
    import sys
    fit_module = sys.modules["kdlib.core.fit"]  # the module (kdlib.core.fit is also the name of the function)
    asked = []
    real = fit_module.make_optimizer

    def spy(*args, **kwargs):
        asked.append(kwargs.get("fused"))
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "make_optimizer", spy)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    for optimizer in ("adam", "adamw", "sgd"):
        fit(mlp([4, 2]), Split(x, y), cross_entropy_step, epochs=1, optimizer=optimizer, progress=False)
    assert asked == [False, False, False]
    for optimizer in ("adam", "adamw"):
        opt = real([torch.nn.Parameter(torch.zeros(2))], optimizer, 1e-3, 0.0, (0.9, 0.999), 0.9, fused=True)
        assert opt.defaults["fused"] is True
    assert real([torch.nn.Parameter(torch.zeros(2))], "adam", 1e-3, 0.0, (0.9, 0.999), 0.9).defaults["fused"] is None
