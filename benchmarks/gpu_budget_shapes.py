"""Models at the GPU shapes of the notebooks' sections, measured on the CPU for ``benchmarks/gpu_budget.py``:
seconds per step of the kit's ``train_step`` (foreach optimiser updates, as on CUDA) and the ``Work`` of one step
(``kdlib.core.budget.count_work``). Random weights and token ids: only the shapes matter."""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from kdlib.core import cross_entropy_step, make_optimizer, train_step, warmup_cosine
from kdlib.core.budget import Work, count_work
from kdlib.data import Split
from kdlib.vision import kd_step, mlp


def measure(model, data, step, batch_size, optimizer="adam", repeats=2) -> tuple[float, Work]:
    """(CPU seconds per step, median of ``repeats`` after one warm-up; ``Work`` of one step) for ``fit``'s
    ``train_step`` with foreach optimiser updates, as on CUDA."""
    opt = make_optimizer(list(model.parameters()), optimizer, 1e-3, 0.0, (0.9, 0.999), 0.9)
    for group in opt.param_groups:
        group["foreach"] = True
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(100))
    idx = torch.arange(batch_size)
    batch = data.batch(idx) if hasattr(data, "batch") else data[idx] if torch.is_tensor(data) else \
        Split(data.x[idx], data.y[idx])
    model.train()

    def one():
        train_step(model, step, batch, idx, opt, sched, None)
    return _timed(one, repeats)


def _timed(one, repeats: int) -> tuple[float, Work]:
    """``one()`` once to warm up, then the median of ``repeats`` timed calls, and the work one call does."""
    one()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count_work(one)


def measure_forward(model, ids, repeats=2) -> tuple[float, Work]:
    """The same for one forward pass under ``no_grad`` (a decoding step's or a cache build's work)."""
    model.eval()

    def one():
        with torch.no_grad():
            model(input_ids=ids)
    return _timed(one, repeats)


def llama(vocab, layers, hidden, heads=None, kv=None, inter=None, head_dim=None):
    from transformers import LlamaConfig, LlamaForCausalLM
    heads = heads or hidden // 64
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter or 4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv or heads,
                      head_dim=head_dim or hidden // heads, max_position_embeddings=2048, tie_word_embeddings=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return LlamaForCausalLM(cfg)


def own_teacher(vocab=16384, layers=12, hidden=768):
    """``kdlib.lm.load.train_own_teacher``'s architecture."""
    return llama(vocab, layers, hidden, hidden // 64, max(1, hidden // 192), hidden * 8 // 3, 64)


def lm_step(model, ids, idx):
    logits = model(input_ids=ids).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def tokens(rows, width, vocab):
    return torch.randint(0, vocab, (rows, width), generator=torch.Generator().manual_seed(0))


class Shapes:
    """Each shape measured once, on first use, and shared by the sections that train at it."""

    def __init__(self, repeats):
        self.repeats, self.got = repeats, {}

    def __call__(self, name, build):
        if name not in self.got:
            start = time.perf_counter()
            self.got[name] = build(self.repeats)
            print(f"  measured {name}: {self.got[name][0]:.4f} s/step on the CPU, {self.got[name][1].ops} ops, "
                  f"{self.got[name][1].flops / 1e9:.2f} GFLOP ({time.perf_counter() - start:.0f} s)", flush=True)
        return self.got[name]


def mlp_shape(sizes, batch, kd=False):
    def build(r):
        x, y = torch.rand(batch, 784), torch.randint(0, 10, (batch,))
        step = kd_step(torch.randn(batch, 10), T=20.0, alpha=0.1) if kd else cross_entropy_step
        return measure(mlp(sizes), Split(x, y), step, batch, repeats=r)
    return build


def lm_shape(model_fn, rows, width, optimizer="adamw"):
    def build(r):
        model = model_fn()
        return measure(model, tokens(rows, width, model.config.vocab_size), lm_step, rows, optimizer, r)
    return build


def decode_shape(model_fn, rows):
    def build(r):
        model = model_fn()
        return measure_forward(model, tokens(rows, 1, model.config.vocab_size), r)
    return build


def cnn_shape(make, batch, kd=False):
    def build(r):
        x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
        step = kd_step(torch.randn(batch, 10), T=2.0, alpha=0.75) if kd else cross_entropy_step
        return measure(make(), Split(x, y), step, batch, repeats=r)
    return build


def encoder_shape(layers, batch, width):
    """A MiniLM-shaped BERT (hidden 384, 12 heads, FFN 1536, vocabulary 30,522) with a 3-way classifier."""
    def build(r):
        from transformers import BertConfig, BertForSequenceClassification
        cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=layers, num_attention_heads=12,
                         intermediate_size=1536, num_labels=3)
        x, y = tokens(batch, width, 30522), torch.randint(0, 3, (batch,))
        step = lambda m, b, idx: F.cross_entropy(m(input_ids=b.x).logits, b.y)  # noqa: E731
        return measure(BertForSequenceClassification(cfg), Split(x, y), step, batch, repeats=r)
    return build


def arithmetic_widths() -> dict[str, int]:
    """Padded widths (tokens) of notebook 06's formats, from 5,000 generated problems, and the vocabulary."""
    from kdlib.lm import build_tokenizer, sft_data
    from kdlib.reasoning import arithmetic_splits, format_example, format_texts
    splits = arithmetic_splits(5000, 5000, 500, 500, seed=0)
    tok = build_tokenizer(format_texts([p for ps in splits.values() for p in ps]))
    out = {"vocab": len(tok)}
    for fmt in ("answer", "rationale", "label", "explain"):
        pairs = [format_example(p, fmt) for p in splits["unlabelled"]]
        out[fmt] = sft_data(tok, [a for a, _ in pairs], [b for _, b in pairs]).input_ids.shape[1]
    return out


def ensemble_shape(sizes, batch, members):
    """One step of ``kdlib.core.ensemble.fit_ensemble`` training ``members`` MLPs with KD at once: the work of a
    two-step run minus a one-step run (setup and copying back cancel); CPU seconds are for the whole short run."""
    def build(r):
        from kdlib.core.ensemble import fit_ensemble
        from kdlib.losses.logits import member_distillation_losses
        x, y, t = torch.rand(2 * batch, 784), torch.randint(0, 10, (2 * batch,)), torch.randn(2 * batch, 10)

        def loss(z, labels, idx):
            return member_distillation_losses(z, t[idx], labels, [20.0] * members, [0.1] * members)

        def run(steps):
            models = [mlp(sizes) for _ in range(members)]
            data = Split(x[:steps * batch], y[:steps * batch])
            return lambda: fit_ensemble(models, data, loss, seeds=list(range(members)), epochs=1, batch_size=batch)
        one, two = count_work(run(1)), count_work(run(2))
        start = time.perf_counter()
        run(2)()
        return (time.perf_counter() - start) / 2, Work(two.ops - one.ops, two.flops - one.flops)
    return build
