"""06_results on a small fake run directory: every figure (PNG + PDF, with its caption), every table
and CSV from the saved files alone, quickly; skipped when the run lacks optional inputs."""

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from fake_run import N_PROMPTS, PROPORTIONS, SEEDS, TIED, fake_config, overrides, write_fake_run
from PIL import Image

from sharedrep_utils import report
from sharedrep_utils.runs import read_manifest, results_dir
from sharedrep_utils.stages import results

FIGURES = [
    "gold_score_vs_proportion",
    "win_rate_vs_proportion",
    "k_ablation",
    "rm_accuracy_vs_proportion",
    "grpo_training_curves",
    "gold_score_distribution",
]
CONTRACT = ["method", "k", "proportion", "group", "n", "mean_gold_score", "sem_gold_score", "win_rate_vs_gold"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run = tmp_path_factory.mktemp("fake") / "run"
    cfg = write_fake_run(run)
    start = time.time()
    summary = results.main(cfg)
    return cfg, summary, time.time() - start


def test_results_from_saved_files_in_seconds(built):
    cfg, summary, seconds = built
    assert seconds < 60, f"06_results took {seconds:.0f}s on a tiny run"
    out = results_dir(cfg.run_path)
    names = {p.name for p in out.iterdir()}
    for figure in FIGURES:
        assert {f"{figure}.png", f"{figure}.pdf"} <= names, figure
        assert (out / f"{figure}.pdf").read_bytes().startswith(b"%PDF")
    expected = ["summary.csv", "summary_by_seed.csv", "head_to_head.csv", "rm_accuracy.csv", "summary.md"]
    expected += ["reward_gain.csv", "head_to_head_by_seed.csv", "preference_data.csv"]
    expected += [f"table_k{k}.{ext}" for k in (2, 16) for ext in ("md", "tex", "csv")]
    assert set(expected) <= names
    assert read_manifest(out)["files"] == sorted(names - {"manifest.json"})


def test_every_figure_caption_names_profile_seeds_and_n(built):
    cfg, _, _ = built
    for figure in FIGURES:
        caption = Image.open(results_dir(cfg.run_path) / f"{figure}.png").text["Description"]
        assert "Profile smoke" in caption, figure
        assert "seeds 1, 2" in caption and f"n = {N_PROMPTS} held-out prompts" in caption, caption
    for figure in ("gold_score_vs_proportion", "win_rate_vs_proportion", "k_ablation"):  # two seeds: seed-level bars
        caption = Image.open(results_dir(cfg.run_path) / f"{figure}.png").text["Description"]
        assert "Error bars: ± standard error across the 2 per-seed values" in caption, figure
        assert "CI" not in caption, figure


def test_summary_keeps_the_pipeline_contract(built):
    cfg, summary, _ = built
    saved = pd.read_csv(results_dir(cfg.run_path) / "summary.csv", keep_default_na=False)
    assert CONTRACT == [c for c in saved.columns if c in CONTRACT]
    assert not saved.duplicated(["method", "k", "proportion", "group"]).any()
    assert (saved.loc[saved["method"] != "sharedrep", "k"] == "").all()
    assert set(saved.loc[saved["method"] == "sharedrep", "k"].astype(int)) == {2, 16}
    assert (summary["n"] == N_PROMPTS * len(SEEDS)).where(summary["method"] != "sft", True).all()
    assert (summary.loc[summary["method"] == "sft", "n"] == N_PROMPTS).all()
    uniform = summary[(summary["method"] == "uniform") & (summary["group"] == "minority")]
    # the fake run's Uniform repeats gold's completion on TIED prompts (scores 1e-7 apart): ties, by text
    assert (uniform["tie_share_vs_gold"] == TIED / N_PROMPTS).all()
    gap = uniform["win_rate_vs_gold_ties_half"] - uniform["win_rate_vs_gold_ties_lose"]
    assert gap.tolist() == pytest.approx([TIED / N_PROMPTS / 2] * len(uniform))
    others = summary[~summary["method"].isin(["uniform", "gold"])]
    assert (others["tie_share_vs_gold"] == 0).all()  # different texts: no ties, however close the scores
    assert (saved["win_rate_vs_gold"] == saved["win_rate_vs_gold_ties_half"]).all()  # results.ties = half
    assert set(saved["bootstrap"]) == {"cluster"}  # every seed scored the same prompts
    learned = summary[summary["method"] != "sft"]
    assert learned["seed_sem_gold_score"].notna().all()  # two seeds: a spread across seeds


def test_table_caption_names_n_the_seed_spread_and_the_cluster_interval(built):
    cfg, _, _ = built
    text = (results_dir(cfg.run_path) / "table_k2.md").read_text()
    assert f"n = {N_PROMPTS} held-out prompts per policy and seed (the same prompts for every seed" in text
    assert "± is the standard error across seeds (2 seeds)" in text
    assert "[brackets] the 95% cluster-bootstrap interval over prompts" in text
    assert "win rate vs gold, ties ½" in text and "win rate vs gold, ties lose" in text
    assert "asked for" not in text  # no shortfall in this run


def test_a_prompt_shortfall_reaches_the_caption(tmp_path):
    cfg = write_fake_run(tmp_path / "run", with_rm=False, with_grpo=False, asked=2000)
    results.main(cfg)
    text = (results_dir(cfg.run_path) / "table_k2.md").read_text()
    assert f"n = {N_PROMPTS} held-out prompts per policy and seed" in text
    assert f"data.n_eval_prompts asked for 2000 held-out prompts, but the data holds only {N_PROMPTS}." in text


def test_head_to_head_file(built):
    cfg, _, _ = built
    h2h = pd.read_csv(results_dir(cfg.run_path) / "head_to_head.csv")
    assert len(h2h) == 2 * len(PROPORTIONS) * 2  # K × p × group
    assert set(h2h["k"]) == {2, 16} and (h2h["n"] == N_PROMPTS * len(SEEDS)).all()
    assert (h2h["wins"] + h2h["tie_count"] + h2h["losses"] == h2h["n"]).all()
    assert ((h2h["ci_low"] <= h2h["win_rate"]) & (h2h["win_rate"] <= h2h["ci_high"])).all()


def test_rm_accuracy_file_reads_metrics_json(built):
    cfg, _, _ = built
    rm = pd.read_csv(results_dir(cfg.run_path) / "rm_accuracy.csv")
    row = rm[(rm["seed"] == 2) & (rm["proportion"] == 0.3) & (rm["method"] == "maxmin")]
    row = row[(row["split"] == "test") & (row["group"] == "minority")]
    assert row["accuracy"].tolist() == [pytest.approx(0.82)]


def test_reward_gain_file_has_a_gold_min_row_per_grpo_policy_and_seed(built):
    cfg, _, _ = built
    gain = pd.read_csv(results_dir(cfg.run_path) / "reward_gain.csv")
    assert len(gain) == len(SEEDS) * (1 + 4 * len(PROPORTIONS))  # gold + 4 learned policies per proportion
    assert set(gain["reward"]) == {"gold_min"}  # the fake evaluations hold no training-reward columns
    assert (gain["n"] == N_PROMPTS).all()
    assert ((gain["ci_low"] <= gain["mean_gain_vs_sft"]) & (gain["mean_gain_vs_sft"] <= gain["ci_high"])).all()

    # each gain recomputed from the evaluation files: the min over groups per prompt, matched by prompt id
    def gold_min(pid: str) -> pd.Series:
        table = pd.read_parquet(cfg.run_path / "eval" / f"{pid}.parquet").set_index("prompt_id")
        return table[["group_minority", "group_majority"]].min(axis=1)

    sft = gold_min("sft")
    for row in gain.itertuples():
        method = row.method if pd.isna(row.k) else f"{row.method}-k{int(row.k)}"
        pid = f"seed{row.seed}-gold" if row.method == "gold" else f"seed{row.seed}-prop{row.proportion:g}-{method}"
        policy = gold_min(pid)
        assert row.mean_gain_vs_sft == pytest.approx((policy - sft.reindex(policy.index)).mean()), pid
        assert (row.mean_sft, row.mean_policy) == (pytest.approx(sft.mean()), pytest.approx(policy.mean()))


def test_rm_accuracy_rows_carry_a_wilson_interval(built):
    cfg, _, _ = built
    rm = pd.read_csv(results_dir(cfg.run_path) / "rm_accuracy.csv")
    assert ((rm["ci_low"] < rm["accuracy"]) & (rm["accuracy"] < rm["ci_high"])).all()


def test_rerun_is_skipped_and_a_new_tie_rule_rebuilds(built, capsys):
    cfg, summary, _ = built
    out = results_dir(cfg.run_path)
    before = (out / "manifest.json").stat().st_mtime_ns
    results.main(cfg)
    assert "already done" in capsys.readouterr().out
    assert (out / "manifest.json").stat().st_mtime_ns == before
    strict = results.main(fake_config(cfg.run_path, **{"results.ties": "lose"}))
    assert set(strict["ties"]) == {"lose"}
    merged = summary.merge(strict, on=["method", "k", "proportion", "group"], suffixes=("", "_strict"))
    tied = merged["tie_share_vs_gold"] > 0
    assert (merged.loc[tied, "win_rate_vs_gold_strict"] < merged.loc[tied, "win_rate_vs_gold"]).all()
    assert "± and [brackets] are given for ties lose (results.ties)" in (out / "table_k2.md").read_text()
    assert strict["win_rate_vs_gold_ties_half"].equals(summary["win_rate_vs_gold_ties_half"])  # both rules kept


def test_optional_inputs_missing_skip_their_figures(tmp_path, capsys):
    cfg = write_fake_run(tmp_path / "run", with_rm=False, with_grpo=False)
    results.main(cfg)
    names = {p.name for p in results_dir(cfg.run_path).iterdir()}
    assert "rm_accuracy_vs_proportion.png" not in names and "grpo_training_curves.png" not in names
    assert "gold_score_vs_proportion.png" in names
    assert "no GRPO training logs found" in capsys.readouterr().out


def test_missing_evaluation_names_the_stage_to_run(tmp_path):
    cfg = write_fake_run(tmp_path / "run", with_rm=False, with_grpo=False)
    (cfg.run_path / "eval" / "seed2-prop0.3-uniform.manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="run 05_evaluate for seed2-prop0.3-uniform"):
        results.main(cfg)


def test_figure_paths_lists_the_built_figures(built):
    cfg, _, _ = built
    assert {p.stem for p in report.figure_paths(results_dir(cfg.run_path))} == set(FIGURES)


def test_06_results_notebook_runs_on_the_saved_files(tmp_path):
    """The notebook itself, through papermill, on a fresh fake run (a kernel start plus seconds of work)."""
    pm = pytest.importorskip("papermill")
    cfg = write_fake_run(tmp_path / "run")
    executed = tmp_path / "06_results.ipynb"
    notebooks = str(Path(__file__).resolve().parents[1] / "notebooks")
    pm.execute_notebook(
        f"{notebooks}/06_results.ipynb",
        str(executed),
        parameters={"profile": "smoke", "overrides": overrides(cfg.run_path)},
        kernel_name="python3",
        progress_bar=False,
        cwd=notebooks,
    )
    outputs = json.dumps([c.get("outputs", []) for c in json.loads(executed.read_text())["cells"]])
    assert "SharedRep K = 16" in outputs and "`grpo_training_curves.png`" in outputs and "image/png" in outputs
    assert (results_dir(cfg.run_path) / "summary.csv").is_file()
