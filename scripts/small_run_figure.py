"""Redraw docs/small_gold_score.png from the small run's saved tables (docs/small-run/summary.csv).

The README's figure is 06_results' `gold_score_vs_proportion` for that run; the run directory itself is not
kept, so the caption is rebuilt from the `small` profile's settings, the prompts per seed in summary.csv and
the data source the run recorded (a local directory, shown by its name only).

    .venv/bin/python scripts/small_run_figure.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from sharedrep_utils import plots
from sharedrep_utils.config import load_config
from sharedrep_utils.stages.results import caption_line

DOCS = Path(__file__).resolve().parents[1] / "docs"
DATA_SOURCE = "local:/work/shared/data/hh-rlhf"  # as the run's SFT manifest recorded it


def main() -> Path:
    summary = pd.read_csv(DOCS / "small-run" / "summary.csv")
    cfg = load_config("small")
    per_seed = sorted({int(n) for n in (summary["n"] / summary["n_seeds"]).round()})
    caption = caption_line(cfg, per_seed, DATA_SOURCE)
    with tempfile.TemporaryDirectory() as tmp:
        plots.gold_score_figure(summary, Path(tmp), caption, cfg.results.confidence)
        target = DOCS / "small_gold_score.png"
        shutil.copyfile(Path(tmp) / "gold_score_vs_proportion.png", target)
    return target


if __name__ == "__main__":
    print(main())
