"""The kit as its users see it: JupyterLab in a headless Chromium (tests/browser_lab.py) runs the exercise copy
of each notebook with a widget, moves the widget and checks that its plot and values change, that no cell shows an
error and no widget shows "Error displaying widget" or its plain-text fallback (tests/browser_page.py); nbconvert's
HTML pages of a few notebooks at ci sizes are opened in the same browser and every plot must load. Planted faults
(the widgets front-end extension switched off, a slider's callback that ignores the slider, a page with a broken
image and a traceback) must be reported, naming the widget or page.

Screenshots of each checked state go to build/browser/shots/. ``make test-browser`` runs this file alone.
KDLIB_BROWSER_PAGES=<folder> checks every HTML page in that folder instead of building ci pages (``make run``'s).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from browser_lab import INSTALL_HINT, WIDGETS_EXTENSION, Lab, browser_paths, chromium
from browser_page import WidgetCheck, cell_problems, exercise_widget, open_notebook, page_problems, run_all
from kdlib.core.paths import REPO_ROOT

# One line per notebook widget to exercise in JupyterLab: 00's mock interview reveals an answer on a click; 09's
# calculator is moved by its price: at ci sizes the cascade never pays off, so requests/day changes its plot but not its values.
WIDGETS = [
    WidgetCheck("00_interview_playbook", "show answer", kind="button", changes=("text",)),
    WidgetCheck("01_soft_targets_and_temperature", "T"),
    WidgetCheck("05_llm_token_sequence_kd", "beta"),
    WidgetCheck("09_capacity_cascades_scorecards", "price/hour"),
]
# Solution notebooks executed at ci sizes into HTML pages whose plots must load.
PAGES = ["01_soft_targets_and_temperature", "03_conv_features_calibration"]
BUILD = REPO_ROOT / "build" / "browser"
RUN_TIMEOUT = 600

# A small notebook around kdlib's own T/alpha explorer: healthy, or with its callback broken after the first draw.
SETUP = ("import torch\nfrom kdlib.teaching import temperature_explorer\n"
         "teacher, student = torch.tensor([4.0, 2.5, 0.5, -1.0]), torch.tensor([2.0, 1.0, 1.5, 0.0])")
EXPLORER = 'temperature_explorer(teacher, student, label=0, class_names=["a", "b", "c", "d"]);'
DRILL = ("import ipywidgets as widgets\nanswer, button = widgets.Output(), widgets.Button(description='show answer')\n"
         "button.on_click(lambda _: answer.append_stdout('the teacher is the target'))\ndisplay(button, answer)")
BREAK_CALLBACK = ("import kdlib.teaching.widgets as w\ndraw = w.draw_losses\n"
                  "w.draw_losses = lambda t, s, y, names, T, alpha: draw(t, s, y, names)  # ignores the sliders")
PLANTED = WidgetCheck("planted_explorer", "T")


@pytest.fixture(scope="module")
def paths():
    found = browser_paths()
    if found is None:
        if os.environ.get("KDLIB_BROWSER") == "skip":
            pytest.skip(INSTALL_HINT)
        pytest.fail(INSTALL_HINT)
    return found


@pytest.fixture(scope="module")
def driver(paths):
    browser = chromium(paths)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def shots():
    folder = BUILD / "shots"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def served():
    """The exercise copies of WIDGETS' notebooks and the small explorer notebooks, in a folder for JupyterLab."""
    folder = BUILD / "lab" / "notebooks"
    shutil.rmtree(folder.parent, ignore_errors=True)
    folder.mkdir(parents=True)
    for check in WIDGETS:
        shutil.copy(REPO_ROOT / "notebooks" / f"{check.notebook}.ipynb", folder)
    write_notebook(folder / "healthy_explorer.ipynb", SETUP, EXPLORER, DRILL)
    write_notebook(folder / f"{PLANTED.notebook}.ipynb", SETUP, EXPLORER, BREAK_CALLBACK)
    return folder


@pytest.fixture(scope="module")
def lab(served):
    with Lab(served, BUILD / "lab" / "state", env={"KDLIB_PROFILE": "ci"}) as server:
        yield server


def check_in_lab(lab, driver, shots, *checks: WidgetCheck, tag: str = "") -> list[str]:
    """Open the checks' notebook, run all its cells, then exercise each widget; the problems found (empty: all well).
    Screenshots: build/browser/shots/<tag><notebook>-<widget>-{before,after}.png and <tag><notebook>-page.png."""
    path = lab.root / f"{checks[0].notebook}.ipynb"
    try:
        open_notebook(driver, lab.url(path.name), len(nbformat.read(path, as_version=4).cells))
        problems = cell_problems(checks[0].notebook, run_all(driver, RUN_TIMEOUT))
        for check in checks:
            problems += exercise_widget(driver, check, shots / f"{tag}{check.name}")
    finally:
        driver.save_screenshot(str(shots / f"{tag}{checks[0].notebook}-page.png"))
        lab.shutdown_kernels()
    return problems


@pytest.mark.parametrize("check", WIDGETS, ids=lambda c: c.name)
def test_widget_renders_and_updates_in_jupyterlab(lab, driver, shots, check):
    problems = check_in_lab(lab, driver, shots, check)
    assert problems == [], "\n".join(problems)


def test_the_small_explorer_notebook_passes(lab, driver, shots):
    """The control for the planted faults below: the same small notebook, unbroken, passes the check; its button
    (a drill's "show answer") exercises the button kind that 00's drills will use."""
    problems = check_in_lab(lab, driver, shots, WidgetCheck("healthy_explorer", "T"),
                            WidgetCheck("healthy_explorer", "show answer", kind="button", changes=("text",)))
    assert problems == [], "\n".join(problems)


def test_a_slider_whose_callback_ignores_it_is_reported(lab, driver, shots):
    """The planted notebook's plot is redrawn at T=4 (its bytes may differ from the first frame's, which is drawn
    before the slider snaps 4.0 to its grid), but the loss values stay those of T=4."""
    problems = check_in_lab(lab, driver, shots, PLANTED)
    assert f"notebook {PLANTED.notebook}: slider 'T' did not update its printed values (3.98 -> 6.31)" in problems, \
        problems


def test_without_the_widgets_extension_the_slider_is_reported(served, driver, shots):
    with Lab(served, BUILD / "lab" / "state-no-widgets", disable=(WIDGETS_EXTENSION,),
             env={"KDLIB_PROFILE": "ci"}) as bare:
        problems = check_in_lab(bare, driver, shots, WidgetCheck("healthy_explorer", "T"), tag="no_widgets-")
    assert "notebook healthy_explorer: slider 'T' did not render (no such control in the page)" in problems, problems
    assert any("shows a widget as text" in p and "interactive(children=" in p for p in problems), problems


def build_pages(names: list[str]) -> list[Path]:
    """nbconvert --execute of solution notebooks at ci sizes into build/browser/html/."""
    out = BUILD / "html"
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | {"KDLIB_PROFILE": "ci"}
    for name in names:
        done = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--execute", "--output-dir", str(out),
                               f"--ExecutePreprocessor.timeout={RUN_TIMEOUT}",
                               str(REPO_ROOT / "solutions" / f"{name}.ipynb")],
                              env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert done.returncode == 0, f"nbconvert --execute of {name} at ci sizes failed:\n{done.stderr[-3000:]}"
    return [out / f"{name}.html" for name in names]


def test_html_pages_show_their_plots_and_no_error(driver):
    folder = os.environ.get("KDLIB_BROWSER_PAGES")
    pages = sorted(Path(folder).glob("*.html")) if folder else build_pages(PAGES)
    assert pages, f"no HTML page in {folder}"
    problems = [p for page in pages for p in page_problems(driver, page)]
    assert problems == [], "\n".join(problems)


def test_a_page_with_a_broken_plot_and_a_traceback_is_reported(driver, tmp_path):
    page = tmp_path / "planted.html"
    page.write_text('<html><body><img src="data:image/png;base64,broken"><pre>Traceback (most recent call last):'
                    '\nValueError: planted</pre></body></html>')
    problems = page_problems(driver, page)
    assert problems == ["planted.html: image 'data:image/png;base64,broken'... did not load",
                        "planted.html shows 'Traceback (most recent call last)'"], problems
