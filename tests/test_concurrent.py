"""kdlib.core.concurrent: jobs in threads give the results they give one after the other (notebook 06)."""
import threading

import pytest
import torch

from kdlib.core import concurrently, cross_entropy_step, fit, seeded
from kdlib.data import Split


def _train(seed):
    with seeded(seed):
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    g = torch.Generator().manual_seed(100 + seed)
    data = Split(torch.randn(96, 8, generator=g), torch.randint(0, 3, (96,), generator=g))
    fit(model, data, cross_entropy_step, steps=20, batch_size=16, seed=seed, progress=False)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_results_in_order_and_equal_to_one_after_the_other():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = [_train(seed) for seed in range(4)]
    finally:
        torch.set_num_threads(threads)
    together = concurrently([lambda s=seed: _train(s) for seed in range(4)], workers=2)
    assert torch.get_num_threads() == threads
    for a, b in zip(alone, together):
        assert torch.equal(a, b)
    assert not torch.equal(together[0], together[1])


def test_jobs_really_share_the_pool():
    names = concurrently([lambda: threading.current_thread().name for _ in range(2)], workers=2)
    assert all(name != threading.main_thread().name for name in names)
    assert concurrently([lambda: threading.current_thread().name], workers=2) == [threading.main_thread().name]
    assert concurrently([lambda: 1, lambda: 2], device="meta") == [1, 2]


def test_errors_are_raised_and_threads_restored():
    threads = torch.get_num_threads()

    def bad():
        raise RuntimeError("job failed")
    with pytest.raises(RuntimeError, match="job failed"):
        concurrently([lambda: 1, bad], workers=2)
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="functions of no arguments"):
        concurrently([1, 2])
    with pytest.raises(ValueError, match="workers"):
        concurrently([lambda: 1], workers=0)
    assert concurrently([]) == []


def test_models_generate_in_threads_with_one_tokenizer():
    """Generation leaves the tokenizer alone (it pads the prompts itself): with it flipped to left padding and
    back, two threads generating at once got right-padded prompts (notebook 06's first laptop run); asking the
    backend to pad per call raced the same way (06's gpu smoke run)."""
    from kdlib.lm.generate import generate
    from kdlib.lm.small import build_tokenizer, small_llama

    class Guard:
        def __init__(self, tokenizer):
            object.__setattr__(self, "tokenizer", tokenizer)

        def __getattr__(self, name):
            return getattr(self.tokenizer, name)

        def __setattr__(self, name, value):
            raise AssertionError(f"generate changed the shared tokenizer's {name}")

        def __call__(self, *args, **kwargs):  # a fast tokenizer's padding is state of its shared backend: asking
            # for it while another thread encodes gave ragged rows (the gpu check of notebook 06 at ci sizes)
            assert not kwargs.get("padding") and not kwargs.get("truncation"), "generate asked the tokenizer to pad"
            return self.tokenizer(*args, **kwargs)

    prompts = ["Ann has 5 apples.", "Ben has 12 pens. Ben buys 3 more. How many", "Cal"]
    tok = Guard(build_tokenizer(prompts))
    models = [small_llama(tok.tokenizer, layers=1, hidden=32, heads=2, seed=s) for s in range(4)]

    def run(m):
        return generate(m, tok, prompts, max_new_tokens=6, do_sample=False, batch_size=3).texts
    alone = [run(m) for m in models]
    together = concurrently([lambda m=m: run(m) for m in models], workers=2)
    assert together == alone and tok.padding_side == "right"


def test_pad_rows_pads_on_either_side():
    from kdlib.lm.generate import pad_rows
    left = pad_rows([[5, 6], [7]], pad=0)
    assert left["input_ids"].tolist() == [[5, 6], [0, 7]] and left["attention_mask"].tolist() == [[1, 1], [0, 1]]
    right = pad_rows([[5, 6], [7]], pad=0, side="right")
    assert right["input_ids"].tolist() == [[5, 6], [7, 0]] and right["attention_mask"].tolist() == [[1, 1], [1, 0]]
    with pytest.raises(ValueError, match="side"):
        pad_rows([[1]], pad=0, side="middle")
