"""Critique and revision of tool traces (notebook 08): the teacher flags the first call it would not write, and the
revision keeps the draft before it and lets the teacher, its ans register primed, write the rest."""
import pytest
import torch

from kdlib.lm.small import build_tokenizer, small_llama
from kdlib.reasoning.critique import critique, first_disagreement, revise
from kdlib.reasoning.tool_generation import generate_with_tools
from kdlib.reasoning.tools import execute, to_rationale

TEACHER = "Q\ncalc(2+3)=5. calc(ans*4)=20."


@pytest.fixture(scope="module")
def pair():
    tok = build_tokenizer([TEACHER, "calc(2/0)=ERROR. calc(ans*3)=15."])
    model = small_llama(tok, layers=1, hidden=32, heads=2, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = tok([TEACHER + tok.eos_token], return_tensors="pt", add_special_tokens=False)
    for _ in range(150):  # the teacher memorises one trace
        opt.zero_grad()
        model(**batch, labels=batch["input_ids"]).loss.backward()
        opt.step()
    return model.eval(), tok


def test_the_teacher_flags_the_first_call_it_would_not_write(pair):
    teacher, tok = pair
    drafts = ["calc(2+3)=5. calc(ans*3)=15.", "calc(2+3)=5. calc(ans*4)=20.", "calc(2+3)=5.", "calc(2/0)=ERROR."]
    flagged = first_disagreement(teacher, tok, ["Q\n"] * 4, drafts, batch_size=3)
    assert flagged == [1, None, 1, 0]
    assert critique(drafts[0], 1) == "call 2: calc(ans*3)=15 is not what the teacher writes"
    assert "would not stop" in critique(drafts[2], 1) and "agrees" in critique(drafts[1], None)
    revised = revise(teacher, tok, ["Q\n"] * 4, drafts, flagged, max_new_tokens=20)
    assert revised[:3] == ["calc(2+3)=5. calc(ans*4)=20."] * 3  # ans continues from the kept call: 5*4
    assert revised[3].startswith("calc(2+3)=5.")
    with pytest.raises(ValueError, match="drafts"):
        first_disagreement(teacher, tok, ["Q\n"], drafts)


def test_history_primes_the_ans_register(pair):
    teacher, tok = pair
    _, calls = generate_with_tools(teacher, tok, ["Q\ncalc(2+3)=5."], max_new_tokens=12, do_sample=False,
                                   history=[[execute("calc", "2+3")]])
    assert [c.result for c in calls[0]] == ["5", "20"]
    with pytest.raises(ValueError, match="one list of calls per prompt"):
        generate_with_tools(teacher, tok, ["Q\n"], history=[])


def test_a_trace_reads_back_as_a_rationale():
    assert to_rationale("calc(36*3)=108. calc(ans/4)=27.") == "36*3=108. 108/4=27."
    assert to_rationale("calc(12 + 5)=17.") == "12+5=17."
    for bad, why in (("calc(2/0)=ERROR.", "bad arguments"), ("Answer: 3", "no call")):
        with pytest.raises(ValueError, match=why):
            to_rationale(bad)
