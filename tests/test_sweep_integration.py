"""The smoke sweep, end to end through papermill, on a small configuration and the shared HH data."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
HH_DIR = os.environ.get("SHAREDREP_HH_DIR") or str(ROOT.parent / "shared" / "data" / "hh-rlhf")

# Small but real: every stage, all four methods, two proportions; minutes on 2 cores.
SMALL = [
    "data.n_sft=96",
    "data.n_preference_prompts=160",
    "data.n_grpo_prompts=8",
    "data.n_eval_prompts=24",
    "policy.tiny.hidden_size=32",
    "policy.tiny.intermediate_size=64",
    "policy.tiny.num_hidden_layers=1",
    "policy.tiny.vocab_size=512",
    "sft.num_train_epochs=1",
    "generation.max_new_tokens=12",
    "grpo.max_steps=2",
    "grpo.max_completion_length=8",
    "evaluation.max_new_tokens=12",
    "reward_model.maxmin.num_epochs=3",
    "reward_model.sharedrep.num_epochs=3",
    "reward_model.uniform.num_epochs=3",
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(HH_DIR).is_dir(), reason=f"no HH data at {HH_DIR} (set SHAREDREP_HH_DIR)"),
]


def sweep(run_dir: Path) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "sharedrep_utils",
        "run",
        "--profile",
        "smoke",
        "--seeds",
        "42",
        "--proportions",
        "0.2",
        "0.4",
        "--ks",
        "2",
        "--run-dir",
        str(run_dir),
    ]
    for item in SMALL:
        args += ["--set", item]
    env = {**os.environ, "SHAREDREP_HH_DIR": HH_DIR, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500)


@pytest.fixture(scope="module")
def finished_run(reference_run):
    """The session's one uninterrupted small sweep (tests/conftest.py: the same SMALL settings as
    `sweep` here), shared with the crash-resume and safety tests: one sweep fewer per test run."""
    return reference_run


def test_summary_contract(finished_run):
    run_dir, _ = finished_run
    summary = pd.read_csv(run_dir / "results" / "summary.csv", keep_default_na=False)
    for column in ["method", "k", "proportion", "group", "n", "mean_gold_score", "sem_gold_score", "win_rate_vs_gold"]:
        assert column in summary.columns
    assert set(summary["method"]) == {"gold", "sft", "maxmin", "sharedrep", "uniform"}
    assert set(summary["group"]) == {"minority", "majority"}
    assert sorted(set(summary["proportion"])) == [0.2, 0.4]
    # one row per (method, k, proportion, group); k empty exactly for methods without K
    assert not summary.duplicated(["method", "k", "proportion", "group"]).any()
    assert (summary.loc[summary["method"] == "sharedrep", "k"].astype(str) == "2").all()
    assert (summary.loc[summary["method"] != "sharedrep", "k"] == "").all()
    assert (summary["n"] == 24).all()
    learned = summary[~summary["method"].isin(["gold"])]
    assert learned["win_rate_vs_gold"].astype(float).between(0, 1).all()
    figures = {p.name for p in (run_dir / "results").glob("*.png")}
    assert {"gold_score_vs_proportion.png", "win_rate_vs_proportion.png"} <= figures


def test_every_stage_has_an_executed_notebook_and_manifest(finished_run):
    run_dir, _ = finished_run
    names = {p.stem for p in (run_dir / "notebooks").glob("*.ipynb")}
    assert "01_sft" in names and "06_results" in names
    assert {
        f"04_grpo-seed42-prop{p}-{m}" for p in ("0.2", "0.4") for m in ("maxmin", "sharedrep-k2", "uniform")
    } <= names
    assert "04_grpo-seed42-gold" in names and "05_evaluate-sft" in names
    for stage_dir in [
        run_dir / "sft",
        run_dir / "responses",
        run_dir / "seed42/prop0.2/preferences",
        run_dir / "seed42/prop0.2/rm",
        run_dir / "seed42/gold/policy",
        run_dir / "results",
    ]:
        assert (stage_dir / "manifest.json").is_file(), stage_dir
    assert (run_dir / "eval" / "seed42-prop0.4-sharedrep-k2.parquet").is_file()
    assert not list(run_dir.rglob(".*.partial-*")), "a partial stage directory was left behind"


def test_rerun_skips_every_stage(finished_run):
    run_dir, _ = finished_run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("manifest.json")}
    result = sweep(run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0 stage(s) ran" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("manifest.json")} == before
