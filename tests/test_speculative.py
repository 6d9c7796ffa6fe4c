"""Speculative decoding (notebook 11): the speed-up formula at its limits, the break-even acceptance rate, and a
greedy draft-and-verify loop whose output is the target's own greedy output whatever the draft."""
import pytest
import torch

from kdlib.lm.small import build_tokenizer, small_llama
from kdlib.lm.speculative import (assisted_generate, break_even_acceptance, expected_acceptance, speculative_greedy,
                                  speedup, tokens_per_target_forward)


def test_the_speedup_formula_at_its_limits():
    assert tokens_per_target_forward(0.0, 4) == 1.0 and tokens_per_target_forward(1.0, 4) == 5.0
    assert tokens_per_target_forward(0.5, 2) == pytest.approx(1.75)  # 1 + 0.5 + 0.25
    assert speedup(1.0, 4, 0.0) == 5.0 and speedup(0.0, 4, 0.1) == pytest.approx(1 / 1.4)
    alpha = break_even_acceptance(4, 0.1)
    assert speedup(alpha, 4, 0.1) == pytest.approx(1.0, abs=1e-4) and 0 < alpha < 1
    assert break_even_acceptance(4, 0.2) > alpha  # a costlier draft must be accepted more often
    assert break_even_acceptance(3, 1.0) == 1.0  # a draft as slow as the target never pays
    for bad in (dict(alpha=1.5, gamma=4, c=0.1), dict(alpha=0.5, gamma=0, c=0.1), dict(alpha=0.5, gamma=4, c=-1)):
        with pytest.raises(ValueError):
            speedup(**bad)


@pytest.fixture(scope="module")
def models():
    tok = build_tokenizer(["a b c d e f g h"])
    target = small_llama(tok, 2, 32, 2, seed=0)
    ids = torch.tensor([tok(" ".join("abcdefgh" * 4), add_special_tokens=False)["input_ids"]])
    opt = torch.optim.Adam(target.parameters(), lr=1e-2)
    for _ in range(60):  # the target learns the cycle a b c ... h a b ...; the draft stays random
        opt.zero_grad()
        target(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    return tok, target.eval(), small_llama(tok, 1, 16, 2, seed=1).eval()


def test_greedy_speculation_reproduces_the_target(models):
    tok, target, draft = models
    ids = torch.tensor([tok("a b c", add_special_tokens=False)["input_ids"]])
    want = target.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)[0, 3:].tolist()
    same = speculative_greedy(target, target, ids, gamma=3, max_new_tokens=12)
    assert same["tokens"] == want and same["acceptance_rate"] == 1.0 and same["tokens_per_target_forward"] == 4.0
    other = speculative_greedy(target, draft, ids, gamma=3, max_new_tokens=12)
    assert other["tokens"] == want and other["acceptance_rate"] < 1.0 and other["target_forwards"] > 3
    assert other["accepted"] <= other["tested"] <= other["proposed"]
    assert other["acceptance_rate"] == other["accepted"] / other["tested"]  # alpha: only judged tokens count
    stop = tok.convert_tokens_to_ids(" e")
    assert want[:2] == tok.convert_tokens_to_ids([" d", " e"])  # the cycle goes on after "a b c"
    ended = speculative_greedy(target, draft, ids, gamma=3, max_new_tokens=12, eos_token_id=stop)
    assert ended["tokens"] == want[:2]  # stops after the end token, even inside an accepted run


def test_speculation_refuses_mismatched_inputs(models):
    tok, target, _ = models
    other_vocab = small_llama(build_tokenizer(["x y"]), 1, 16, 2, seed=0)
    ids = torch.tensor([[4, 5]])
    with pytest.raises(ValueError, match="same tokenizer"):
        speculative_greedy(target, other_vocab, ids)
    with pytest.raises(ValueError, match="one prompt"):
        speculative_greedy(target, target, torch.tensor([[4, 5], [4, 5]]))


def test_transformers_assisted_generation_writes_what_the_loop_writes(models):
    tok, target, draft = models  # transformers' speculative decoding (assistant_model=): what notebook 11 times
    ids = torch.tensor([tok("a b c", add_special_tokens=False)["input_ids"]])
    assisted = target.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id,
                               assistant_model=draft)[0, 3:].tolist()
    assert assisted == speculative_greedy(target, draft, ids, gamma=3, max_new_tokens=12)["tokens"]


def test_expected_acceptance_and_assisted_generation(models):
    tok, target, draft = models
    blocks = torch.tensor([tok(" ".join("abcdefgh" * 2), add_special_tokens=False)["input_ids"]])
    same = expected_acceptance(target, target, blocks)
    assert same["greedy"] == 1.0 and same["sampling"] == pytest.approx(1.0, abs=1e-5)
    other = expected_acceptance(target, draft, blocks)
    assert 0 <= other["sampling"] < 1 and 0 <= other["greedy"] <= 1
    alone = assisted_generate(target, tok, ["a b c", "e f"], max_new_tokens=6)
    helped = assisted_generate(target, tok, ["a b c", "e f"], max_new_tokens=6, draft=draft, gamma=3)
    assert helped["tokens"] == alone["tokens"] and all(len(t) == 6 for t in alone["tokens"])  # greedy: the target's own
    sampled = [assisted_generate(target, tok, ["a b"], 6, draft=draft, do_sample=True, seed=3)["tokens"] for _ in "ab"]
    assert sampled[0] == sampled[1]  # seeded
    other_tok = build_tokenizer(["x y z w"])
    with pytest.raises(ValueError, match="tokenizer"):
        assisted_generate(target, tok, ["a b"], 4, draft=draft, draft_tokenizer=other_tok)
    wide = small_llama(build_tokenizer(["a b c d e f g h i j k l m n o p q"]), 1, 16, 2, seed=1)
    with pytest.raises(ValueError, match="vocabulary"):
        expected_acceptance(target, wide, blocks)
