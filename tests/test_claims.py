"""Every number a solution notebook's prose quotes is supported by its reference results, its code or a
citation (kdlib.teaching.claims); a planted wrong number fails."""
import json
import re

import pytest

from kdlib.teaching.claims import CITED, check_notebook, supported, unsupported
from kdlib.teaching.exercises import SOLUTIONS
from kdlib.teaching.report import REFERENCE

NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_quotes_only_supported_numbers(notebook):
    reference = REFERENCE / f"{notebook.stem}.json"
    assert reference.is_file(), f"{notebook.name} has no committed reference results"
    found = check_notebook(notebook, reference)
    assert not found, "numbers in the prose that its reference results do not support (print them from code, " \
                      "or list a citation in kdlib.teaching.claims.CITED):\n" + "\n".join(map(str, found))


def test_every_notebook_has_its_citation_list_and_nothing_else():
    assert set(CITED) <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("planted", ["we measured 12.345% here", "the student made 4,321 errors",
                                     "a gain of +9.87 points"])
def test_a_planted_wrong_number_fails(tmp_path, planted):
    source = NOTEBOOKS[1]
    nb = json.loads(source.read_text())
    first_markdown = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    first_markdown["source"] = "".join(first_markdown["source"]) + "\n" + planted
    planted_nb = tmp_path / source.name
    planted_nb.write_text(json.dumps(nb))
    assert check_notebook(source, REFERENCE / f"{source.stem}.json") == []
    found = check_notebook(planted_nb, REFERENCE / f"{source.stem}.json")
    assert [token for _, token, _ in found] == [planted.split()[-2] if "errors" in planted else
                                                 planted.split()[3] if "gain" in planted else "12.345%"]


def test_quoted_precision_percent_and_points():
    assert supported("0.4240", [0.42396]) and not supported("0.4240", [0.4236])
    assert supported("56.9%", [0.5693]) and supported("+2.6", [0.0261]) and supported("-0.7", [-0.007])
    assert not supported("57%", [0.5])


def test_section_and_question_numbers_are_not_claims(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": "## 11. Results\n**Q7. Why?** see notebook 09 and 10-11"},
                    {"cell_type": "code", "source": "x = 1"}]}
    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps(nb))
    assert unsupported(path, {}) == []
    nb["cells"][0]["source"] += "\nwe got 0.42"
    path.write_text(json.dumps(nb))
    assert [t for _, t, _ in unsupported(path, {"acc": 0.5})] == ["0.42"]


def test_results_files_name_no_folder_of_the_machine(tmp_path, monkeypatch):
    from kdlib.core import paths
    from kdlib.core.profiles import get_profile
    from kdlib.core.results import Run
    monkeypatch.setattr(paths, "results_dir", lambda: tmp_path)
    monkeypatch.setattr("kdlib.core.results.results_dir", lambda: tmp_path)
    path = Run("99_x", get_profile(ci={}, laptop={}, gpu={})).write(
        {"source": f"teacher from {paths.REPO_ROOT}/datasets/cache/minilm", "where": paths.REPO_ROOT / "results"})
    text = path.read_text()
    assert str(paths.REPO_ROOT) not in text and "from datasets/cache/minilm" in text and '"results"' in text
    for reference in REFERENCE.glob("*.json"):
        absolute = re.search(r"(?<![\w.])/(?:work|home|root|tmp|Users|opt|mnt)/\S*", reference.read_text())
        assert str(paths.REPO_ROOT) not in reference.read_text() and not absolute, (reference, absolute)
