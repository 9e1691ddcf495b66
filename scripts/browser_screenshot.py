"""A screenshot of the completion browser (notebooks/07_browse_completions.ipynb) open in JupyterLab on a run.

    .venv/bin/python scripts/browser_screenshot.py runs/small docs/browser_small.png --profile small

Runs notebook 07 (a copy in a temporary folder, its parameters set to this run) in JupyterLab in headless
Chromium (sharedrep_utils/lab_driver.py, as tests/test_browser_lab.py does) and saves the window, scrolled to the
browser, as a PNG. Needs Debian's chromium and chromium-driver (scripts/install_browser.sh) and the dev extra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sharedrep_utils import lab_driver
from sharedrep_utils.browser import DISAGREEMENT

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_browse_completions.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--profile", default="smoke", help="the profile the run was made with (default: smoke)")
    parser.add_argument("--seed", type=int, default=None, help="default: the run's first seed")
    parser.add_argument("--proportion", type=float, default=None, help="default: the run's first proportion")
    parser.add_argument("--prompt", default=DISAGREEMENT, help=f"a prompt id or a pick (default: {DISAGREEMENT})")
    parser.add_argument("--size", default="1500x1100", help="window width x height in pixels (default: 1500x1100)")
    args = parser.parse_args(argv)
    reason = lab_driver.missing()
    if reason:
        print(f"browser_screenshot: {reason}.", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    params = {
        "profile": args.profile,
        "overrides": {"run_dir": str(args.run_dir.resolve())},
        "seed": args.seed,
        "proportion": args.proportion,
        "prompt": args.prompt,
    }
    with tempfile.TemporaryDirectory(prefix="browser-screenshot-") as tmp:
        work = Path(tmp)
        (work / "notebooks").mkdir()
        notebook = lab_driver.set_parameters(NOTEBOOK, work / "notebooks" / NOTEBOOK.name, params)
        with lab_driver.jupyterlab(work / "notebooks", work) as lab, lab_driver.chromium(
            work / "chrome", width, height
        ) as driver:
            lab_driver.open_notebook(driver, lab, notebook)
            lab_driver.collapse_sidebars(driver)
            try:
                lab_driver.run_all(driver)
            except RuntimeError as error:  # e.g. a run that is not ready: the notebook's one line
                print(f"browser_screenshot: {error}", file=sys.stderr)
                return 1
            lab_driver.wait_for(driver, "const e = document.querySelector('.sharedrep-card'); return !!e;", 60,
                                "the browser's view")
            lab_driver.screenshot(driver, args.out, ".sharedrep-seed")
    print(f"browser_screenshot: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
