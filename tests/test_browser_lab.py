"""The notebooks in a real browser: JupyterLab on a free local port, driven in headless Chromium by Selenium
(sharedrep_utils/lab_driver.py). Runs the completion browser (07) and a stage notebook (06) on a small finished
run, changes the browser's widgets and checks that the view follows, saves screenshots (under the test's tmp
directory, and copied to $SHAREDREP_TEST_ARTIFACTS when set), and checks that opening and closing a notebook
without running it leaves the committed file byte-identical. Skips, saying why, without chromium,
chromedriver, jupyterlab or selenium (scripts/install_browser.sh and the dev extra install them).

Every notebook is opened from a copy in a temporary folder: a notebook that JupyterLab did rewrite would not
touch the checkout.
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from fake_run import overrides, write_fake_run
from sweep_helpers import ROOT

from sharedrep_utils import lab_driver

pytestmark = pytest.mark.skipif(lab_driver.missing() is not None, reason=str(lab_driver.missing()))

ARTIFACTS_ENV = "SHAREDREP_TEST_ARTIFACTS"
VIEW = "const e = document.querySelector('.sharedrep-view'); return e ? e.innerText : '';"


def keep(path: Path) -> Path:
    """A screenshot is a test artifact: also copied to $SHAREDREP_TEST_ARTIFACTS when set."""
    if os.environ.get(ARTIFACTS_ENV):
        target = Path(os.environ[ARTIFACTS_ENV])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab and one Chromium for the module (starting them is most of the time), and the folders."""
    work = tmp_path_factory.mktemp("lab")
    (work / "notebooks").mkdir()
    write_fake_run(work / "run")
    with lab_driver.jupyterlab(work / "notebooks", work) as server, lab_driver.chromium(work / "chrome") as driver:
        yield server, driver, work


def view_text(driver, timeout=30, *, contains="", lacks=None) -> str:
    """The browser's view once it contains `contains` (and not `lacks`)."""
    deadline = time.monotonic() + timeout
    while True:
        text = driver.execute_script(VIEW)
        if text and contains in text and (lacks is None or lacks not in text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the view never showed {contains!r} without {lacks!r}; it shows: {text[:400]!r}")
        time.sleep(0.2)


def test_the_completion_browser_runs_in_jupyterlab_and_follows_its_widgets(lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    server, driver, work = lab
    notebook = lab_driver.set_parameters(
        ROOT / "notebooks" / "07_browse_completions.ipynb",
        work / "notebooks" / "07_browse_completions.ipynb",
        {"overrides": {"run_dir": str(work / "run")}},
    )
    lab_driver.open_notebook(driver, server, notebook)
    lab_driver.collapse_sidebars(driver)
    state = lab_driver.run_all(driver)
    code_cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    assert "injected-parameters" in code_cells[1]["metadata"]["tags"]  # papermill's cell, after the parameters
    assert state["counts"] == list(range(1, len(code_cells) + 1)) and not state["errors"]  # every cell, in order
    before = view_text(driver, contains="(largest disagreement between methods)")
    for policy in ("SFT (reference)", "Gold", "MaxMin", "SharedRep K=2", "SharedRep K=16", "Uniform"):
        assert policy in before
    shot = keep(lab_driver.screenshot(driver, work / "browser-07.png", ".sharedrep-seed"))
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one

    Select(driver.find_element(By.CSS_SELECTOR, ".sharedrep-pick select")).select_by_visible_text(
        "worst for the minority"
    )
    after = view_text(driver, contains="(worst for the minority)")
    assert after.splitlines()[0] != before.splitlines()[0]
    driver.find_element(By.CSS_SELECTOR, ".sharedrep-filter-16 input").click()
    filtered = view_text(driver, contains="SharedRep K=2", lacks="SharedRep K=16")
    assert "MaxMin" in filtered and "SFT (reference)" in filtered
    keep(lab_driver.screenshot(driver, work / "browser-07-filtered.png", ".sharedrep-seed"))
    lab_driver.close_all(driver)


def test_a_stage_notebook_runs_top_to_bottom_in_jupyterlab(lab):
    server, driver, work = lab
    results = work / "run" / "results"
    assert not results.exists()
    notebook = lab_driver.set_parameters(
        ROOT / "notebooks" / "06_results.ipynb",
        work / "notebooks" / "06_results.ipynb",
        {"overrides": overrides(work / "run")},
    )
    lab_driver.open_notebook(driver, server, notebook)
    state = lab_driver.run_all(driver, timeout=240)
    assert not state["errors"] and None not in state["counts"]
    assert (results / "summary.csv").is_file()  # it ran the stage on this run
    keep(lab_driver.screenshot(driver, work / "stage-06.png"))
    lab_driver.close_all(driver)


@pytest.mark.parametrize("name", ["07_browse_completions", "05_evaluate"])
def test_opening_and_closing_a_notebook_leaves_the_file_byte_identical(lab, name):
    """JupyterLab writes a notebook back when opening it changed it (e.g. the kernel's language_info differs
    from the committed one); autosave is every second here, so a few seconds open would show it."""
    server, driver, work = lab
    committed = (ROOT / "notebooks" / f"{name}.ipynb").read_bytes()
    path = work / "notebooks" / "clean" / f"{name}.ipynb"  # under the server's root, away from the run copies
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(committed)
    lab_driver.open_notebook(driver, server, path)
    time.sleep(3)  # three autosave intervals
    assert lab_driver.notebook_state(driver)["dirty"] is False
    lab_driver.close_all(driver)
    time.sleep(0.5)
    assert path.read_bytes() == committed
