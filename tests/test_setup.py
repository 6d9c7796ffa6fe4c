"""The set-up a new user trusts: same pins in pyproject and environment.yml, CI calls the README's command,
and the README's results table is the one made from the committed reference results."""
import re
import tomllib

from kdlib.core.paths import REPO_ROOT
from kdlib.teaching.report import REFERENCE, table


def pyproject_pins():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | {p for extra in project["optional-dependencies"].values() for p in extra}


def environment_pins():
    text = (REPO_ROOT / "environment.yml").read_text()
    return set(re.findall(r"^\s+- ([A-Za-z0-9_.-]+==[^\s#]+)\s*$", text, flags=re.M))


def test_environment_yml_has_the_same_pins_as_pyproject():
    assert environment_pins() == pyproject_pins()
    assert all("==" in pin for pin in pyproject_pins())


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert re.search(r"^make test$", (REPO_ROOT / ".ci" / "run").read_text(), flags=re.M)
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "KDLIB_PROFILE=ci" in makefile and "datasets/fetch.py" in makefile


def test_readme_results_come_from_the_reference_results_files():
    assert list(REFERENCE.glob("*.json")), "no committed reference results"
    assert table() in (REPO_ROOT / "README.md").read_text(), \
        "README results table is stale: python -m kdlib.teaching.report"
