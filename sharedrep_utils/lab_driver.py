"""JupyterLab in headless Chromium, driven by Selenium: what tests/test_browser_lab.py and
scripts/browser_screenshot.py share.

JupyterLab runs on a free local port with a token, its settings, workspaces, runtime and data directories in a
temporary folder (nothing in the checkout or the home directory changes), autosave every second (so a notebook
that opening alone had modified would be written at once), and the app exposed to the page
(`window.jupyterapp`), so notebooks are run and closed with JupyterLab's own commands. Chromium and chromedriver
are Debian's (`scripts/install_browser.sh`); Selenium is given the driver's path, so its manager never
downloads one. Selenium is imported only when a browser is started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("SHAREDREP_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("SHAREDREP_CHROMEDRIVER", "/usr/bin/chromedriver"))
# what works as root in a container: no sandbox, no GPU, and nothing that calls out to the network
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
# user settings of the temporary JupyterLab: autosave at once, no news or update checks (no network)
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": True, "autosaveInterval": 1},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def missing() -> str | None:
    """Why JupyterLab cannot be driven here (a sentence), or None when chromium, chromedriver, jupyterlab and
    selenium are all present."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    absent += [name for name in ("jupyterlab", "selenium") if importlib.util.find_spec(name) is None]
    if absent:
        return (
            f"{', '.join(absent)} not installed (scripts/install_browser.sh installs Debian's chromium and "
            "chromium-driver; `pip install -e .[dev]` jupyterlab and selenium)"
        )
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str  # http://127.0.0.1:<port>
    token: str
    root: Path
    log: Path

    def tree_url(self, path: Path) -> str:
        """The page that opens `path` (a file under root) in JupyterLab."""
        relative = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        return f"{self.url}/lab/tree/{relative}?token={self.token}"


@contextlib.contextmanager
def jupyterlab(root: Path, workdir: Path, timeout: float = 90) -> Iterator[Lab]:
    """A JupyterLab server serving `root`, with everything it writes besides notebooks kept under `workdir`."""
    token, port = secrets.token_hex(16), free_port()
    settings = workdir / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(workdir / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "IPYTHONDIR": str(workdir / "ipython"),
    }
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses root unless told; containers and CI machines often are
    log = workdir / "jupyterlab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    lab = Lab(f"http://127.0.0.1:{port}", token, Path(root), log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}; its log: {log}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab did not answer on port {port} within {timeout:g}s; its log: {log}")
            time.sleep(0.3)
        yield lab
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def chromium(profile_dir: Path, width: int = 1500, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium under Selenium, with a fresh profile in `profile_dir`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER))  # a path given: Selenium Manager is skipped
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)


def wait_for(driver, script: str, timeout: float, what: str, *args) -> Any:
    """Poll a JavaScript expression (`return ...`) until it is truthy; its value, or TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.25)


# The notebook panel of the current tab and its state, read through JupyterLab's own model
_PANEL = "const app = window.jupyterapp; const panel = app && app.shell.currentWidget;"
_STATE = (
    _PANEL
    + """
if (!panel || !panel.content || !panel.sessionContext) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = panel.content.widgets.filter(c => c.model.type === 'code');
return {
  path: panel.context.path,
  dirty: panel.context.model.dirty,
  kernel: kernel ? kernel.status : null,
  counts: cells.map(c => c.model.executionCount),
  errors: cells.flatMap(c => c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                                         .map(o => o.ename + ': ' + o.evalue)),
};
"""
)


def notebook_state(driver) -> dict | None:
    """The current tab's notebook: path, dirty, kernel status, execution counts of its code cells, errors."""
    return driver.execute_script(_STATE)


def wait_state(driver, done: Callable[[dict], bool], timeout: float, what: str) -> dict:
    """Poll the current notebook's state until `done(state)`; that state, or TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        state = notebook_state(driver)
        if state and done(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g}s waiting for {what} (last state: {state})")
        time.sleep(0.25)


def open_notebook(driver, lab: Lab, path: Path, timeout: float = 90) -> dict:
    """Open `path` in JupyterLab and wait until its kernel is idle; its state (notebook_state)."""
    driver.get(lab.tree_url(path))
    name = Path(path).name
    return wait_state(
        driver, lambda s: s["path"].endswith(name) and s["kernel"] == "idle", timeout, f"{name} to open, kernel idle"
    )


def run_all(driver, timeout: float = 180) -> dict:
    """Run every cell of the current notebook (JupyterLab's "Run All Cells") and wait until each has run;
    its state. Raises RuntimeError with the notebook's errors if a cell failed (run all stops there)."""
    driver.execute_script(_PANEL + "app.commands.execute('notebook:run-all-cells');")
    state = wait_state(
        driver,
        lambda s: bool(s["errors"]) or (s["kernel"] == "idle" and None not in s["counts"]),
        timeout,
        "every cell to run",
    )
    if state["errors"]:
        raise RuntimeError(f"{state['path']}: {'; '.join(state['errors'])}")
    return state


def close_all(driver) -> None:
    """Close every tab without saving (a modified notebook would ask; none should be)."""
    driver.execute_script(_PANEL + "app.shell.widgets('main').forEach(w => w.dispose());")


def collapse_sidebars(driver) -> None:
    driver.execute_script(_PANEL + "app.shell.collapseLeft(); app.shell.collapseRight();")


def screenshot(driver, out: Path, selector: str | None = None) -> Path:
    """Save the window as a PNG, scrolled so that `selector`'s element (if given) is in view."""
    if selector:
        driver.execute_script(
            "const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView({block: 'start'});", selector
        )
        time.sleep(0.5)  # JupyterLab renders the cells it scrolls to lazily
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    return out


def set_parameters(notebook: Path, out: Path, values: dict[str, Any]) -> Path:
    """A copy of `notebook` at `out` with papermill's injected-parameters cell after its parameters cell: what
    `papermill -p` would run, for a person (or a test) to run in JupyterLab instead."""
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(notebook))
    if not any("parameters" in cell.metadata.tags for cell in nb.cells):  # papermill would put them first, warning
        raise ValueError(f"{notebook} has no cell tagged parameters to follow.")
    write_ipynb(parameterize_notebook(nb, values), str(out))
    return out
