"""The machinery of the browser tests (tests/test_browser.py): JupyterLab from the kit's venv on a free local port
with a token, and a headless Chromium driven by Selenium through the system's chromedriver.

Nothing is downloaded: Selenium is handed the driver's path, so its driver manager never runs, and the browser
resolves no host but this machine (the pages must work offline, as the kit does). JupyterLab gets its own
configuration, settings and workspace folders, so a learner's set-up changes nothing here and nothing here
touches theirs; notebooks are served from a copy, so JupyterLab's autosave never writes outputs into the repository.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

INSTALL_HINT = ("the browser tests need Chromium and its driver: on Debian or Ubuntu `apt-get install chromium "
                "chromium-driver` as root (`make test` does it when run as root), elsewhere any Chromium or Chrome "
                "with the matching chromedriver, named by KDLIB_CHROMIUM and KDLIB_CHROMEDRIVER; or set "
                "KDLIB_BROWSER=skip to skip them")
WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
# Lab settings for a test: every cell stays in the page (no windowing), the kernel starts without asking, no
# news or update pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                    "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) from KDLIB_CHROMIUM / KDLIB_CHROMEDRIVER or the PATH; None when either is missing."""
    chromium = os.environ.get("KDLIB_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = os.environ.get("KDLIB_CHROMEDRIVER") or shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def chromium(paths: tuple[str, str], width: int = 1400, height: int = 1000):
    """A headless Chromium under Selenium, offline but for this machine."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-first-run"):
        options.add_argument(arg)
    if is_root():  # Chromium refuses to start as root inside its sandbox
        options.add_argument("--no-sandbox")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=paths[1]))
    driver.set_page_load_timeout(120)
    return driver


def is_root() -> bool:
    return getattr(os, "geteuid", lambda: -1)() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """JupyterLab serving ``root`` on 127.0.0.1 with a random token; ``disable`` names front-end extensions to switch
    off (the planted fault: the widgets extension). Use as a context manager; ``url(name)`` opens a notebook."""

    def __init__(self, root: Path, state: Path, disable: tuple[str, ...] = (), env: dict | None = None):
        self.root, self.state, self.disable = Path(root), Path(state), disable
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # inline plots in the kernel
        self.env.update(env or {})
        self.proc = None

    def _write_config(self) -> None:
        config, settings = self.state / "config", self.state / "settings"
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {name: True for name in self.disable}}))
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        self.env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTERLAB_SETTINGS_DIR=str(settings),
                        JUPYTERLAB_WORKSPACES_DIR=str(self.state / "workspaces"),
                        JUPYTER_RUNTIME_DIR=str(self.state / "runtime"), IPYTHONDIR=str(self.state / "ipython"),
                        JUPYTER_DATA_DIR=str(self.state / "data"))  # no user kernel spec: the venv's python3

    def __enter__(self) -> "Lab":
        self._write_config()
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
               "jupyterlab.NeverCheckForUpdate"] + (["--allow-root"] if is_root() else [])
        self.log = open(self.state / "jupyterlab.log", "w")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout=180)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.proc.returncode}): see {self.state / 'jupyterlab.log'}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=5) as r:
                    if r.status == 200:
                        return
            time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s: see {self.state / 'jupyterlab.log'}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}&reset"

    def _api(self, method: str, path: str):
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def shutdown_kernels(self) -> None:
        """End every notebook session (and its kernel), so the next notebook does not share the CPU with it."""
        for session in self._api("GET", "sessions"):
            self._api("DELETE", f"sessions/{session['id']}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
