"""What the browser tests look at (tests/test_browser.py): a notebook open in JupyterLab, run cell by cell as a
learner runs it, its errors, one widget moved and its output compared before and after; a static HTML page's
images and errors. Each check returns a list of problems, each naming the notebook and the widget, so a failure
says what did not render or update.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

TRACEBACK = "Traceback (most recent call last)"
WIDGET_ERROR = "Error displaying widget"
# A widget's plain-text fallback, shown when the front end cannot render it: "interactive(children=(FloatLogSlider(..."
FALLBACK = re.compile(r"\b(interactive|[A-Z]\w*(Slider|Box|Button|Checkbox|Dropdown|Output|Text|HTML))"
                      r"\((children|value|description|layout)=")


@dataclass(frozen=True)
class WidgetCheck:
    """One widget to exercise: the notebook (its file name without .ipynb), the control's description, its kind
    (``slider``: arrow keys on the handle; ``button`` and ``checkbox``: a click) and what its output must change
    (``image``: a plot; ``text``: printed values)."""
    notebook: str
    widget: str
    kind: str = "slider"
    presses: int = 4
    changes: tuple[str, ...] = ("image", "text")

    @property
    def name(self) -> str:
        return f"{self.notebook}-{re.sub(r'[^A-Za-z0-9]+', '_', self.widget).strip('_')}"


CELLS_JS = """
return [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map((c, i) => ({
  index: i, code: c.classList.contains('jp-CodeCell'),
  prompt: (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  source: ((c.querySelector('.cm-content') || {}).textContent || '').trim(),
  output: (c.querySelector('.jp-Cell-outputArea') || {}).innerText || ''}));
"""
STATUS_JS = "const e = document.querySelector('.jp-Notebook-ExecutionIndicator'); return e && e.dataset.status;"
KERNEL_JS = "return [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent).join(' ');"
CONTROL_JS = """
const [kind, label] = arguments;
const selector = {slider: '.widget-slider', button: '.widget-button', checkbox: '.widget-checkbox'}[kind];
for (const el of document.querySelectorAll('.jp-Notebook ' + selector)) {
  const name = kind === 'button' ? el.textContent : (el.querySelector('.widget-label') || {}).textContent;
  if ((name || '').trim() === label) return el;
}
return null;
"""
SNAPSHOT_JS = """
const control = arguments[0];
const root = control.closest('.widget-interact') || control.closest('.jp-Cell').querySelector('.jp-Cell-outputArea');
const images = [...root.querySelectorAll('.jp-OutputArea-output img')];
return {images: images.map(i => [i.src, i.complete ? i.naturalWidth : 0]),
        texts: [...root.querySelectorAll('.jp-RenderedText')].map(t => t.textContent.trim()),
        readout: (control.querySelector('.widget-readout') || {}).textContent || ''};
"""
PAINTED_JS = """
const done = arguments[arguments.length - 1];
Promise.all([...arguments[0].querySelectorAll('img')].map(i => i.decode().catch(() => null)))
  .then(() => requestAnimationFrame(() => requestAnimationFrame(() => done(true))));
"""
IMAGES_JS = """
return [...document.images].map(i => [i.getAttribute('src').slice(0, 60), i.complete ? i.naturalWidth : 0]);
"""


def wait(predicate, timeout: float, every: float = 0.5, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def open_notebook(driver, url: str, n_cells: int, timeout: float = 120) -> None:
    """Load a notebook in JupyterLab and wait until all its cells are in the page and its kernel is idle."""
    driver.get(url)
    wait(lambda: len(driver.execute_script(CELLS_JS)) == n_cells and driver.execute_script(STATUS_JS) == "idle"
         and "| Idle" in driver.execute_script(KERNEL_JS), timeout,
         what=f"the notebook's {n_cells} cells and its kernel")


def run_all(driver, timeout: float, tries: int = 3) -> list[dict]:
    """Run > Run All Cells (again if no cell started: a click while the kernel connects can be lost), then wait
    until no cell is running or queued; returns the cells (``CELLS_JS``)."""
    from selenium.webdriver.common.by import By

    def started():
        return any(c["code"] and c["prompt"].strip() not in ("[ ]:", "") for c in driver.execute_script(CELLS_JS))
    for attempt in range(tries):
        driver.find_element(By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='Run']").click()
        driver.find_element(By.CSS_SELECTOR, "li[data-command='runmenu:run-all']").click()
        try:
            wait(started, 20, what="the first cell to start")
            break
        except TimeoutError:
            if attempt == tries - 1:
                raise

    def finished():
        cells = driver.execute_script(CELLS_JS)
        busy = any("*" in c["prompt"] for c in cells) or driver.execute_script(STATUS_JS) != "idle"
        return None if busy else cells
    time.sleep(1)
    return wait(finished, timeout, every=1, what="every cell to finish")


def cell_problems(notebook: str, cells: list[dict]) -> list[str]:
    """Errors, widget errors and widget fallback text in any cell, and code cells that never ran."""
    problems = []
    for c in cells:
        where = f"notebook {notebook}, cell {c['index']} ({c['source'][:40]!r})"
        if TRACEBACK in c["output"]:
            problems.append(f"{where} shows an error: {c['output'].strip().splitlines()[-1][:200]}")
        if WIDGET_ERROR in c["output"]:
            problems.append(f"{where} shows '{WIDGET_ERROR}'")
        if m := FALLBACK.search(c["output"]):
            problems.append(f"{where} shows a widget as text (no widget front end?): {c['output'][m.start():][:80]!r}")
        if c["code"] and c["source"] and not re.fullmatch(r"\[\d+\]:", c["prompt"].strip()):
            problems.append(f"{where} did not run (prompt {c['prompt'].strip()!r})")
    return problems


def _fingerprint(snap: dict) -> dict:
    return {"images": [hashlib.sha1(src.encode()).hexdigest()[:12] for src, _ in snap["images"]],
            "texts": snap["texts"], "readout": snap["readout"]}


def settle(driver, control, check: WidgetCheck, timeout: float, complete: bool = True) -> tuple[dict, str]:
    """The widget's output (fingerprinted) once it is the same twice a second apart, the kernel is idle, every plot
    has loaded and (if ``complete``) what ``check.changes`` names is there, with ""; after ``timeout`` s the last
    one, with what was still wrong. Before a click nothing need be there (a drill's answer is hidden until then)."""
    last, deadline = None, time.monotonic() + timeout
    while True:
        snap = driver.execute_script(SNAPSHOT_JS, control)
        now = _fingerprint(snap)
        wrong = [why for why, bad in (
            ("no plot", complete and "image" in check.changes and not snap["images"]),
            ("no printed values", complete and "text" in check.changes and not snap["texts"]),
            ("a plot that did not load", not all(width for _, width in snap["images"])),
            ("a busy kernel", driver.execute_script(STATUS_JS) != "idle"),
            ("an output still changing", now != last)) if bad]
        if not wrong:
            return now, ""
        if time.monotonic() > deadline:
            return now, ", ".join(wrong)
        last = now
        time.sleep(1)


def screenshot(driver, element, path: str, tries: int = 10) -> None:
    """A picture of ``element`` once its images are decoded and two pictures a second apart agree (a busy machine
    can take seconds to paint a plot that has loaded)."""
    driver.execute_async_script(PAINTED_JS, element)
    last = None
    for _ in range(tries):
        png = element.screenshot_as_png
        if png == last:
            break
        last = png
        time.sleep(1)
    Path(path).write_bytes(png)


def exercise_widget(driver, check: WidgetCheck, shot: Path | str, timeout: float = 120) -> list[str]:
    """Find the widget, wait for its output, screenshot it (at ``shot`` + ``-before.png``), move or click it, wait
    for its output to settle again, screenshot it (``-after.png``) and compare."""
    from selenium.webdriver.common.keys import Keys

    label = f"notebook {check.notebook}: {check.kind} {check.widget!r}"
    control = driver.execute_script(CONTROL_JS, check.kind, check.widget)
    if control is None:
        return [f"{label} did not render (no such control in the page)"]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", control)
    root = driver.execute_script("return arguments[0].closest('.widget-interact') || arguments[0].closest('.jp-Cell')",
                                 control)
    before, wrong = settle(driver, control, check, timeout, complete=check.kind == "slider")
    screenshot(driver, root, f"{shot}-before.png")
    problems = [f"{label}: before moving it, still {wrong} after {timeout:.0f} s"] if wrong else []
    if check.kind == "slider":
        handle = control.find_element("css selector", ".noUi-handle")
        driver.execute_script("arguments[0].focus()", handle)
        for _ in range(check.presses):
            handle.send_keys(Keys.ARROW_RIGHT)
            time.sleep(0.2)
    else:
        (control.find_element("css selector", "input") if check.kind == "checkbox" else control).click()
    time.sleep(1)
    after, wrong = settle(driver, control, check, timeout)
    screenshot(driver, root, f"{shot}-after.png")
    moved = f" ({before['readout'] or 'before'} -> {after['readout'] or 'after'})"
    if check.kind == "slider" and before["readout"] == after["readout"]:
        problems.append(f"{label} did not move (readout stayed {after['readout']!r})")
    if errors := [t for t in after["texts"] if TRACEBACK in t]:
        problems.append(f"{label} shows an error after moving it: {errors[0].splitlines()[-1][:200]}")
    if "image" in check.changes and (not after["images"] or after["images"] == before["images"]):
        problems.append(f"{label} did not update its plot{moved}")
    if "text" in check.changes and (not after["texts"] or after["texts"] == before["texts"]):
        problems.append(f"{label} did not update its printed values{moved}")
    if wrong:
        problems.append(f"{label}: after moving it, still {wrong} after {timeout:.0f} s")
    return problems


def page_problems(driver, page: Path) -> list[str]:
    """A static HTML page (nbconvert's): it has plots, each one loads, and no error shows."""
    driver.get(page.resolve().as_uri())
    wait(lambda: driver.execute_script("return document.readyState") == "complete", 60, what=f"{page.name} to load")
    images = driver.execute_script(IMAGES_JS)
    text = driver.execute_script("return document.body.innerText")
    problems = [f"{page.name}: image {src!r}... did not load" for src, width in images if not width]
    if not images:
        problems.append(f"{page.name}: no plot at all")
    problems += [f"{page.name} shows {marker!r}" for marker in (TRACEBACK, WIDGET_ERROR) if marker in text]
    return problems
