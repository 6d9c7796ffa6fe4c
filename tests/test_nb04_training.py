"""Notebook 04's training signals: attention_kl (one layer of the KL attention loss the students train with), its
exercise cases, encoder_step(attention_fn=...) driven by a learner's function, and encoder_step(unlabelled=True) on
few labels plus teacher-labelled transfer rows. Tiny BERTs."""
import pytest
import torch

from kdlib.core.fit import fit
from kdlib.core.profiles import seeded
from kdlib.data.types import Split
from kdlib.encoders.cache import EncoderTeacherCache
from kdlib.encoders.train import Distillable, encoder_step
from kdlib.losses.attention import attention_exercise_cases, attention_kl, attention_loss
from kdlib.encoders.models import EncoderClassifier, random_student
from kdlib.teaching import checks
from kdlib.teaching.checks import check
from test_encoders import ids, tiny_teacher  # the same tiny BERT and padded token ids


def test_attention_kl_is_one_layer_of_the_kl_attention_loss_and_ignores_padding():
    for s, t, mask in attention_exercise_cases():
        want = attention_loss([s], [t], {1: 1}, mask, kind="kl")
        assert torch.allclose(attention_kl(s, t, mask), want)
        # by hand: per head and real query, KL over real keys; mean over heads and real queries
        m = mask.bool()
        total, count = 0.0, 0
        for b in range(s.shape[0]):
            n = int(m[b].sum())
            ts, ss = t[b, :, :n, :n], s[b, :, :n, :n]
            total += float((ts * (ts.log() - ss.log())).sum())
            count += n * s.shape[1]
        assert float(attention_kl(s, t, mask)) == pytest.approx(total / count, rel=1e-5)
        garbage = s.clone()
        garbage[~m[:, None, :, None].expand_as(s)] = 7.0  # padded query rows never count
        assert torch.allclose(attention_kl(garbage, t, mask), want)
    s, t, mask = attention_exercise_cases()[0]
    assert float(attention_kl(t, t, mask)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        attention_kl(s[:, :1], t, mask)


def test_exercise_cases_are_fixed_and_have_padding():
    a, b = attention_exercise_cases(), attention_exercise_cases()
    assert all(torch.equal(x, y) for ca, cb in zip(a, b) for x, y in zip(ca, cb))
    assert any(bool((mask == 0).any()) for _, _, mask in a)


def test_check_accepts_a_masked_kl_and_hands_back_the_reference_for_mse_or_unmasked(monkeypatch, capsys):
    monkeypatch.setitem(checks._REGISTRY, "attention_kl_test", (attention_kl, attention_exercise_cases))

    def learner(student, teacher, mask):
        m = mask.float()
        q, k = m[:, None, :, None], m[:, None, None, :]
        s = torch.where(k > 0, student, torch.ones_like(student))
        t = torch.where(k > 0, teacher, torch.ones_like(teacher))
        per_query = (t * (t.log() - s.log()) * k).sum(-1)
        return (per_query * q[..., 0]).sum() / (q.sum() * student.shape[1])

    def mse(student, teacher, mask):
        m = mask.float()
        q, k = m[:, None, :], m[:, None, None, :]
        per_query = ((student - teacher).pow(2) * k).sum(-1) / k.sum(-1)
        return (per_query * q).sum() / (q.sum() * student.shape[1])

    def unmasked(student, teacher, mask):
        return (teacher * (teacher.clamp_min(1e-12).log() - student.clamp_min(1e-12).log())).sum(-1).mean()

    assert check("attention_kl_test", learner) is learner
    assert check("attention_kl_test", mse) is attention_kl
    assert check("attention_kl_test", unmasked) is attention_kl


def test_the_attention_function_drives_training():
    """encoder_step(attention_fn=f) trains with f: the reference gives the loss of kind="kl", a function that
    returns 0 leaves only the prediction loss, and f is called once per mapped layer with 0/1 masks."""
    teacher, x = tiny_teacher(), ids(n=16)
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    cache = EncoderTeacherCache.build(teacher, x, hidden_layers=(0, 2, 4), attention_layers=(2, 4), progress=False)

    def losses(**kw):
        torch.manual_seed(0)
        student = random_student(teacher, n_layers=2, intermediate_size=16)
        history = fit(Distillable(student), Split(x, y), encoder_step(cache, {1: 2, 2: 4}, alpha=0.5, **kw),
                      epochs=1, batch_size=8, optimizer="adam", progress=False, seed=0)
        return history.loss

    reference = losses(beta_attention=1.0, attention_kind="kl")
    assert losses(beta_attention=1.0, attention_fn=attention_kl) == pytest.approx(reference, rel=1e-5)
    seen = []

    def zero(student, teacher, mask):
        seen.append((tuple(student.shape), mask.dtype, set(mask.unique().tolist()) <= {0, 1}))
        return student.sum() * 0

    assert losses(beta_attention=1.0, attention_fn=zero) == pytest.approx(losses(), rel=1e-5)
    assert len(seen) == 2 * 2 and all(dtype == torch.long and ok for _, dtype, ok in seen)
    with pytest.raises(ValueError, match="attention_fn must be a function"):
        encoder_step(cache, {1: 2}, beta_attention=1.0, attention_fn="kl")
    with pytest.raises(ValueError, match="beta_attention"):
        encoder_step(cache, {1: 2}, attention_fn=attention_kl)


def test_unlabelled_rows_train_on_the_teacher_alone():
    """encoder_step(unlabelled=True): the prediction term is low_label_step's (CE over rows with a label, KD over
    all); on fully labelled data it equals the plain step; internal signals add to it; labels only ignores -1."""
    from kdlib.encoders.train import low_label_step
    teacher, x = tiny_teacher(), ids(n=16)
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    y_pool = y.clone()
    y_pool[::2] = -1
    cache = EncoderTeacherCache.build(teacher, x, hidden_layers=(0, 2, 4), attention_layers=(2, 4), progress=False)

    def losses(step, labels, wrap=Distillable):  # the same student and dropout masks every time
        student = random_student(teacher, n_layers=2, intermediate_size=16, seed=3)
        with seeded(0):
            return fit(wrap(student), Split(x, labels), step, epochs=1, batch_size=8, optimizer="adam",
                       progress=False, seed=0).loss

    def plain(student_step, labels):  # the student trained as a bare classifier
        return losses(student_step, labels, wrap=lambda s: s)

    mixed = losses(encoder_step(cache, T=2.0, alpha=0.5, unlabelled=True), y_pool)
    assert mixed == pytest.approx(plain(low_label_step(cache, T=2.0, alpha=0.5), y_pool), rel=1e-5)
    assert losses(encoder_step(cache, T=2.0, alpha=0.5, unlabelled=True), y) == pytest.approx(
        losses(encoder_step(cache, T=2.0, alpha=0.5), y), rel=1e-5)
    internal = losses(encoder_step(cache, {1: 2, 2: 4}, alpha=0.5, beta_attention=1.0, unlabelled=True), y_pool)
    assert all(torch.isfinite(torch.tensor(internal))) and internal[0] > mixed[0]
    assert all(torch.isfinite(torch.tensor(losses(encoder_step(None, alpha=1.0, unlabelled=True), y_pool))))
    with pytest.raises(ValueError, match="alpha"):
        encoder_step(cache, alpha=1.5, unlabelled=True)
