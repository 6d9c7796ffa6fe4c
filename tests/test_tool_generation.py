"""The batched tool runtime of notebook 08: results are forced into the text as the batch generates, and a
model's malformed call becomes a recorded failure, never an exception."""
import torch

from kdlib.lm.small import build_tokenizer, small_llama
from kdlib.reasoning.teacher import teacher_samples
from kdlib.reasoning.tool_generation import ToolRuntime, generate_with_tools

TEXTS = ["Q\ncalc(2+3)=7. Answer: 7", "R\ncalc(9/0)=1. Answer: 1", "ERROR"]


def _tokenizer():
    return build_tokenizer(TEXTS)


def test_runtime_forces_the_result_after_a_call_then_lets_the_model_write():
    tok = _tokenizer()
    calls = {}
    runtime = ToolRuntime(tok, prompt_length=2, first_row=10, calls=calls)
    ids = torch.tensor([tok("Q\ncalc(2+3)=", add_special_tokens=False)["input_ids"]])
    scores = torch.zeros(1, len(tok))
    out = runtime(ids, scores.clone())
    assert tok.decode([int(out[0].argmax())]) == "5" and torch.isinf(out[0]).sum() == len(tok) - 1
    ids = torch.cat([ids, out.argmax(-1, keepdim=True)], 1)
    out = runtime(ids, scores.clone())
    assert tok.decode([int(out[0].argmax())]) == "."
    ids = torch.cat([ids, out.argmax(-1, keepdim=True)], 1)
    assert torch.equal(runtime(ids, scores.clone()), scores)  # free again
    assert [(c.name, c.args, c.result) for c in calls[10]] == [("calc", "2+3", "5")]


def _memorised(tok):
    model = small_llama(tok, layers=1, hidden=32, heads=2, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = tok([t + tok.eos_token for t in TEXTS[:2]], return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for _ in range(150):  # memorise both texts, wrong results included
        opt.zero_grad()
        model(**batch, labels=labels).loss.backward()
        opt.step()
    return model.eval()


def test_a_model_that_memorised_wrong_results_gets_the_tools_results(tmp_path, monkeypatch):
    tok = _tokenizer()
    model = _memorised(tok)
    samples, calls = generate_with_tools(model, tok, ["Q\n", "R\n"], max_new_tokens=20, do_sample=False)
    assert samples.texts[0].startswith("calc(2+3)=5.")  # the tool's result, not the memorised 7
    assert [c.result for c in calls[0]] == ["5"]
    assert samples.texts[1].startswith("calc(9/0)=ERROR.")  # division by zero: a failed call, no exception
    assert calls[1][0].reason == "bad arguments"
    # the teacher's samples through the runtime are cached apart from plain samples of the same prompts
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path))
    logs = []
    with_tools = teacher_samples(model, tok, ["Q\n"], k=2, max_new_tokens=20, temperature=0.05, with_tools=True,
                                 log=logs.append)
    assert all(text.startswith("calc(2+3)=5.") for text in with_tools[0])
    plain = teacher_samples(model, tok, ["Q\n"], k=2, max_new_tokens=20, temperature=0.05, log=logs.append)
    assert all(text.startswith("calc(2+3)=7.") for text in plain[0])  # the memorised, wrong result
    assert teacher_samples(model, tok, ["Q\n"], k=2, max_new_tokens=20, temperature=0.05, with_tools=True,
                           log=logs.append) == with_tools and "loaded" in logs[-1]
    assert len(list((tmp_path / "teacher_samples").glob("*.json"))) == 2


def test_runtime_fills_the_ans_register():
    tok = build_tokenizer(["Q\ncalc(2+3)=5. calc(ans*4)=20.", "ERROR"])
    calls = {}
    runtime = ToolRuntime(tok, prompt_length=2, first_row=0, calls=calls)
    ids = torch.tensor([tok("Q\ncalc(2+3)=", add_special_tokens=False)["input_ids"]])
    for _ in range(2):  # "5", "."
        ids = torch.cat([ids, runtime(ids, torch.zeros(1, len(tok))).argmax(-1, keepdim=True)], 1)
    ids = torch.cat([ids, torch.tensor([tok(" calc(ans*4)=", add_special_tokens=False)["input_ids"]])], 1)
    forced = runtime(ids, torch.zeros(1, len(tok))).argmax(-1)
    assert tok.decode(forced) == "2" and [c.result for c in calls[0]] == ["5", "20"]
