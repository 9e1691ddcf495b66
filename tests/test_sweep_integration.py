"""The smoke sweep, end to end through papermill, on a small configuration and the shared HH data."""

import subprocess

import pandas as pd
import pytest
from sweep_helpers import ROOT, needs_hh, sweep_command, sweep_env

pytestmark = [pytest.mark.integration, needs_hh]


def sweep(run_dir):
    """The same small sweep as the session's reference run (tests/conftest.py: SMALL, SMALL_SWEEP)."""
    return subprocess.run(
        sweep_command(run_dir), capture_output=True, text=True, env=sweep_env(), cwd=ROOT, timeout=1500
    )


@pytest.fixture(scope="module")
def finished_run(reference_run):
    """The session's one uninterrupted small sweep (tests/conftest.py: the same settings as
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
    # every learned policy's mean and win rate recomputed from the evaluation files: seed 42 against its gold
    # policy, prompts matched by id; a win is a higher score with a different completion, a tie (the same
    # completion, or equal scores) counts 1/2 (results.ties: half) or nothing (ties lose)
    gold = pd.read_parquet(run_dir / "eval" / "seed42-gold.parquet").set_index("prompt_id")
    policies = [("maxmin", "maxmin", ""), ("sharedrep-k2", "sharedrep", "2"), ("uniform", "uniform", "")]
    for prop in ("0.2", "0.4"):
        for policy, method, k in policies:
            ours = pd.read_parquet(run_dir / "eval" / f"seed42-prop{prop}-{policy}.parquet").set_index("prompt_id")
            for group in ("minority", "majority"):
                row = summary[
                    (summary["method"] == method) & (summary["k"].astype(str) == k)
                    & (summary["proportion"] == float(prop)) & (summary["group"] == group)
                ]  # fmt: skip
                assert len(row) == 1
                column = f"group_{group}"
                assert float(row["mean_gold_score"].iloc[0]) == pytest.approx(ours[column].mean())
                ref = gold.loc[ours.index]
                tie = (ours["completion"] == ref["completion"]) | (ours[column] == ref[column])
                win = ~tie & (ours[column] > ref[column])
                assert float(row["win_rate_vs_gold"].iloc[0]) == pytest.approx((win.sum() + 0.5 * tie.sum()) / 24)
                assert float(row["win_rate_vs_gold_ties_lose"].iloc[0]) == pytest.approx(win.sum() / 24)
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
