"""kdlib's shape: the import-linter layers contract holds (teaching > reasoning > vision | encoders | lm >
losses | data > core), no module grows past 300 lines, and each package's docstring names its modules."""
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdlib.core.paths import REPO_ROOT

KDLIB = REPO_ROOT / "kdlib"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LINES = 300
PACKAGES = sorted(p.parent for p in KDLIB.glob("*/__init__.py"))


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.is_file():
        pytest.fail(f"{LINT_IMPORTS} is missing: install import-linter in the environment")
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_layers_contract_is_kept():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_lint_imports_catches_an_upward_import(tmp_path):
    """The control: the same contract on a copy of kdlib where core imports from teaching is broken."""
    shutil.copytree(KDLIB, tmp_path / "kdlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "kdlib" / "core" / "upward.py").write_text("import kdlib.teaching.checks  # noqa: F401\n")
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert result.returncode != 0 and "0 kept, 1 broken" in result.stdout, result.stdout + result.stderr
    assert "kdlib.core.upward -> kdlib.teaching.checks" in result.stdout


def test_no_module_exceeds_300_lines():
    long = {str(p.relative_to(REPO_ROOT)): n for p in KDLIB.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (at most {MAX_LINES} lines each): {long}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_each_package_docstring_names_each_of_its_modules(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert doc, f"kdlib/{package.name}/__init__.py has no docstring"
    modules = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
    assert modules, package
    missing = [m for m in modules if f"``{m}``" not in doc]
    assert missing == [], f"kdlib/{package.name}/__init__.py's docstring does not name {missing}"
    sub = sorted(p.parent.name for p in package.glob("*/__init__.py"))
    assert [s for s in sub if f"``{s}``" not in doc] == []


def test_the_top_level_docstring_names_each_package():
    doc = ast.get_docstring(ast.parse((KDLIB / "__init__.py").read_text()))
    missing = [p.name for p in PACKAGES if not re.search(rf"\b{p.name}\b", doc)]
    assert missing == [], f"kdlib/__init__.py's docstring does not name the packages {missing}"
    assert {p.name for p in PACKAGES} == {"core", "data", "encoders", "lm", "losses", "reasoning", "teaching",
                                          "vision"}
    assert sorted(p.name for p in KDLIB.glob("*.py")) == ["__init__.py"]  # every module lives in a package
