"""Seed-level uncertainty wherever two or more seeds are shown (issue 22): per-seed head-to-head rates,
the ± of tables, overview and figures, upstream's pooled ± only when asked (and labelled), captions at
`results.confidence`, the cluster bootstrap against intervals derived by hand, and what 06_results
writes beside its tables (the group disagreement, a caption without a machine path)."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from fake_run import N_PROMPTS, SEEDS, fake_config, write_fake_run
from PIL import Image

from sharedrep_utils import plots, report, tables
from sharedrep_utils.config import ConfigError, load_config
from sharedrep_utils.runs import responses_dir, results_dir, sft_dir, stage_output
from sharedrep_utils.stages import results
from sharedrep_utils.stats import HEAD_TO_HEAD_BY_SEED_COLUMNS, Options, cluster_bootstrap_ci, head_to_head_all

GROUPS = ["minority", "majority"]


def evaluation(ids, minority, majority):
    completions = [f"reply {a!r}/{b!r}" for a, b in zip(minority, majority)]
    return pd.DataFrame(
        {"prompt_id": ids, "completion": completions, "group_minority": minority, "group_majority": majority}
    )


def two_seeds():
    ids = ["a", "b", "c", "d"]
    return {
        (1, 0.1, "maxmin"): evaluation(ids, [1.0, 1.0, 1.0, 0.0], [1.0] * 4),
        (2, 0.1, "maxmin"): evaluation(ids, [2.0, 0.0, 0.0, 0.0], [1.0] * 4),
        (1, 0.1, "sharedrep-k2"): evaluation(ids[::-1], [2.0, 2.0, 0.0, 1.0], [1.0] * 4),  # ids d, c, b, a
        (2, 0.1, "sharedrep-k2"): evaluation(ids, [2.0, 0.0, 3.0, 3.0], [0.0] * 4),
    }


# --- head to head per seed ---------------------------------------------------------------------


def test_head_to_head_per_seed_rows_are_counted_by_hand():
    pooled, by_seed = head_to_head_all(two_seeds(), GROUPS, options=Options(n_bootstrap=200))
    assert list(by_seed.columns) == HEAD_TO_HEAD_BY_SEED_COLUMNS
    minority = by_seed[by_seed["group"] == "minority"].set_index("seed")
    # seed 1 by id: a 1 vs 1 tie, b 0 vs 1 loss, c 2 vs 1 win, d 2 vs 0 win
    assert minority.loc[1, ["wins", "tie_count", "losses", "n"]].tolist() == [2, 1, 1, 4]
    assert minority.loc[1, "win_rate"] == 2.5 / 4 and minority.loc[1, "win_rate_ties_lose"] == 2 / 4
    # seed 2: a 2 vs 2 tie, b 0 vs 0 tie, c 3 vs 0 win, d 3 vs 0 win
    assert minority.loc[2, ["wins", "tie_count", "losses", "n"]].tolist() == [2, 2, 0, 4]
    assert minority.loc[2, "win_rate"] == 3 / 4 and minority.loc[2, "win_rate_ties_half"] == 3 / 4
    majority = by_seed[by_seed["group"] == "majority"].set_index("seed")
    assert majority["wins"].tolist() == [0, 0] and majority.loc[2, "losses"] == 4  # 0 vs 1 on every prompt
    # the pooled row's seed SEM is made of exactly these per-seed rates: |0.75 − 0.625| / √2 / √2 = 0.0625
    row = pooled[pooled["group"] == "minority"].iloc[0]
    assert row["seed_sem_win_rate"] == pytest.approx(0.0625)


# --- the cluster bootstrap against intervals derived by hand ------------------------------------


def test_cluster_bootstrap_on_two_prompts_shared_by_two_seeds():
    """Prompt a scores 0 and prompt b 1 in both seeds. Drawing prompt ids jointly: the pooled mean is 0, ½ or
    1 with probabilities ¼, ½, ¼, so the 80% interval (quantiles 0.1 and 0.9) is [0, 1]. Resampling each
    seed apart would give 0, ¼, ½, ¾, 1 with 1/16, 4/16, 6/16, 4/16, 1/16: [0.25, 0.75]."""
    seeds = [pd.Series([0.0, 1.0], index=["a", "b"]), pd.Series([1.0, 0.0], index=["b", "a"])]
    assert cluster_bootstrap_ci(seeds, 4000, 0.8, seed=0) == (0.0, 1.0, "cluster")
    apart = [pd.Series([0.0, 1.0], index=["a", "b"]), pd.Series([0.0, 1.0], index=["c", "d"])]  # no shared ids
    assert cluster_bootstrap_ci(apart, 4000, 0.8, seed=0) == (0.25, 0.75, "within-seed")


def test_cluster_bootstrap_matches_the_enumerated_distribution_of_a_tiny_case():
    """Three prompts, two seeds: every one of the 27 equally likely draws of 3 prompt ids enumerated gives
    the exact distribution of the pooled mean; the bootstrap's percentile interval is its quantiles."""
    rows = {"a": (0.0, 0.0), "b": (1.0, 2.0), "c": (2.0, 3.0)}  # per prompt: seed 1's and seed 2's value
    seeds = [pd.Series({p: v[i] for p, v in rows.items()}) for i in (0, 1)]
    means = sorted(sum(sum(rows[p]) for p in draw) / 6 for draw in itertools.product(rows, repeat=3))
    cdf = np.arange(1, 28) / 27

    def exact_quantile(q: float) -> float:  # q sits well inside a step of the CDF, away from its jumps
        return means[int(np.searchsorted(cdf, q))]

    low, high, kind = cluster_bootstrap_ci(seeds, 20000, 0.9, seed=2)
    assert kind == "cluster"
    # quantile 0.05: 1/27 = 0.037 of the mass is at mean 0 (a, a, a), the next 3/27 at 3/6 (a, a, b) -> 0.5
    assert exact_quantile(0.05) == pytest.approx(0.5) and low == pytest.approx(0.5)
    # quantile 0.95: the top 1/27 is 15/6 (c, c, c), the 3/27 below it 13/6 (b, c, c) -> 13/6
    assert exact_quantile(0.95) == pytest.approx(13 / 6) and high == pytest.approx(13 / 6)


# --- tables, overview and figures: seed-level by default, pooled only when asked ----------------


def summary_two_seeds() -> pd.DataFrame:
    return pd.DataFrame(
        {"method": ["maxmin", "uniform"], "k": pd.array([None, None], dtype="Int64"), "proportion": [0.05, 0.05],
         "group": ["minority"] * 2, "n": [400, 400], "n_seeds": [2, 2], "mean_gold_score": [0.6, 0.45],
         "sem_gold_score": [0.011, 0.009], "seed_sem_gold_score": [0.067, 0.153], "ci_low_gold_score": [0.58, 0.44],
         "ci_high_gold_score": [0.62, 0.46], "win_rate_vs_gold": [0.6, 0.25], "sem_win_rate": [0.02, 0.018],
         "seed_sem_win_rate": [0.06, 0.24], "win_rate_ci_low": [0.55, 0.22], "win_rate_ci_high": [0.65, 0.28],
         "win_rate_vs_gold_ties_half": [0.6, 0.25], "win_rate_vs_gold_ties_lose": [0.6, 0.25],
         "bootstrap": ["cluster"] * 2, "ties": ["half"] * 2}
    )  # fmt: skip


def test_the_table_shows_the_seed_sem_and_upstreams_pooled_sem_only_when_asked():
    table = tables.paper_table(summary_two_seeds(), None)
    seed = tables.to_markdown(table, None, "c", confidence=0.9)
    assert "0.450 ± 0.153 [0.440, 0.460]" in seed and "0.009" not in seed
    assert "± is the standard error across seeds (2 seeds)" in seed and "the 90% cluster-bootstrap" in seed
    pooled = tables.to_markdown(table, None, "c", spread="pooled")
    assert "0.450 ± 0.009 [0.440, 0.460]" in pooled and "0.153" not in pooled
    assert "(± pooled SEM over prompt × seed rows, as upstream)" in pooled.splitlines()[0]
    assert "pooled standard error over all prompt × seed rows (upstream's ±" in pooled
    assert "pooled SEM over prompt" in tables.to_latex(table, None, "c", spread="pooled")


def test_head_to_head_markdown_shows_the_seed_sem_at_the_configured_level():
    h2h, _ = head_to_head_all(two_seeds(), GROUPS, options=Options(n_bootstrap=200))
    text = tables.head_to_head_markdown(h2h, confidence=0.8)
    assert "win rate ± seed SEM [CI]" in text and "0.69 ± 0.06 [" in text  # (2.5 + 3) / 8, SEM 0.0625
    assert "the 80% bootstrap interval" in text and "2 per-seed win rates" in text


def test_figure_error_bars_are_seed_level_with_two_seeds_and_prompt_level_with_one(tmp_path):
    summary = summary_two_seeds()
    data, low, high = plots.error_columns(summary, "mean_gold_score")
    assert (data[high] - data["mean_gold_score"]).tolist() == pytest.approx([0.067, 0.153])
    assert (data["mean_gold_score"] - data[low]).tolist() == pytest.approx([0.067, 0.153])
    # results.spread pooled: ± upstream's pooled SEM, as the tables show it, and the caption says so
    pooled, low, high = plots.error_columns(summary, "mean_gold_score", "pooled")
    assert (pooled[high] - pooled["mean_gold_score"]).tolist() == pytest.approx(summary["sem_gold_score"].tolist())
    assert (pooled[high] - pooled["mean_gold_score"]).tolist() != pytest.approx([0.067, 0.153])
    plots.gold_score_figure(summary, tmp_path, "c.", spread="pooled")
    caption = Image.open(tmp_path / "gold_score_vs_proportion.png").text["Description"]
    assert "pooled standard error over all of a policy's prompt × seed rows" in caption
    one = summary.assign(n_seeds=1)
    assert plots.error_columns(one, "win_rate_vs_gold")[1:] == ("win_rate_ci_low", "win_rate_ci_high")
    assert plots.error_columns(one, "win_rate_vs_gold", "pooled")[1:] == ("win_rate_ci_low", "win_rate_ci_high")
    plots.win_rate_figure(one, tmp_path, "c.", confidence=0.8)
    caption = Image.open(tmp_path / "win_rate_vs_proportion.png").text["Description"]
    assert "cluster-bootstrap 80% CI over prompts" in caption and "95" not in caption


def test_a_policy_run_once_gets_no_bar_on_the_seed_level_gold_figure(tmp_path, monkeypatch):
    """With two seeds the bars are the seed SEM; SFT, trained once, has none, and gets no prompt-level bar instead."""
    summary = summary_two_seeds()
    sft = summary.iloc[[0]].assign(method="sft", seed_sem_gold_score=float("nan"), sem_gold_score=0.004)
    bars = {}

    def record(ax, data, y, yerr, order, colours):
        for policy in data["policy"].unique():
            errors = yerr(data[data["policy"] == policy])
            if isinstance(errors, pd.Series):  # symmetric bars
                errors = [errors, errors]
            bars[policy] = None if errors is None else [float(e.iloc[0]) for e in errors]

    monkeypatch.setattr(plots, "_dodged_lines", record)
    plots.gold_score_figure(pd.concat([summary, sft], ignore_index=True), tmp_path, "c.")
    assert bars["SFT"] is None  # no bar, not the prompt-level SEM (0.004)
    assert bars["Uniform"] == pytest.approx([0.153, 0.153])


def test_results_spread_setting_is_checked(tmp_path):
    assert load_config("smoke", {"results.spread": "pooled"}).results.spread == "pooled"
    with pytest.raises(ConfigError, match="results.spread 'prompts' is not one of seed, pooled"):
        load_config("smoke", {"results.spread": "prompts"})
    assert load_config("paper-upstream").results.spread == "pooled"


# --- what 06_results writes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run = tmp_path_factory.mktemp("fake") / "run"
    cfg = write_fake_run(run, with_rm=False, with_grpo=False)
    with stage_output(sft_dir(cfg.run_path), "sft", {"fake": True}) as stage:  # a local data directory
        stage["extra"].update(data_source="local:/home/someone/data/hh-rlhf")
    with stage_output(responses_dir(cfg.run_path), "responses", {"fake": True}) as stage:
        stage["extra"].update(n_prompts=N_PROMPTS, group_disagreement=0.64, identical_pairs=3)
    cfg = fake_config(cfg.run_path, **{"results.confidence": 0.9})
    results.main(cfg)
    return cfg, results_dir(cfg.run_path)


def test_head_to_head_by_seed_file_adds_up_to_the_pooled_file(built):
    _, out = built
    pooled = pd.read_csv(out / "head_to_head.csv")
    by_seed = pd.read_csv(out / "head_to_head_by_seed.csv")
    assert len(by_seed) == len(pooled) * len(SEEDS) and (by_seed["n"] == N_PROMPTS).all()
    keys = ["k", "proportion", "group"]
    sums = by_seed.groupby(keys)[["wins", "tie_count", "losses", "n"]].sum()
    assert sums.equals(pooled.set_index(keys)[["wins", "tie_count", "losses", "n"]].sort_index())
    for row in pooled.itertuples():
        rates = by_seed[(by_seed["k"] == row.k) & (by_seed["proportion"] == row.proportion)]
        rates = rates[rates["group"] == row.group]
        credit = (rates["wins"] + 0.5 * rates["tie_count"]) / rates["n"]  # ties ½ (results.ties)
        assert rates["win_rate"].tolist() == pytest.approx(credit.tolist())
        assert row.seed_sem_win_rate == pytest.approx(np.std(credit, ddof=1) / math.sqrt(len(SEEDS)))


def test_group_disagreement_is_written_with_the_results(built):
    _, out = built
    frame = pd.read_csv(out / "preference_data.csv")
    assert frame.to_dict("records") == [{"n_prompts": N_PROMPTS, "group_disagreement": 0.64, "identical_pairs": 3}]


def test_captions_hold_no_machine_path_and_follow_the_confidence(built):
    _, out = built
    text = (out / "table_k2.md").read_text()
    assert "data local:hh-rlhf." in text and "/home/someone" not in text
    assert "the 90% cluster-bootstrap interval" in text and "95%" not in text
    for png in out.glob("*.png"):
        caption = Image.open(png).text["Description"]
        assert "/home/someone" not in caption and "95%" not in caption, png.name


def test_completion_stats_are_written_with_one_row_per_evaluated_policy(built):
    cfg, out = built
    frame = pd.read_csv(out / "completion_stats.csv")
    evaluated = sorted((cfg.run_path / "eval").glob("*.parquet"))
    assert len(frame) == len(evaluated)
    assert sorted(frame["n"]) == sorted(len(pd.read_parquet(p)) for p in evaluated)


def test_one_rule_says_which_spread_tables_overviews_and_figures_show():
    summary = summary_two_seeds()
    assert tables.spread_shown(summary) == "seed" and tables.spread_shown(summary, "pooled") == "pooled"
    one = summary.assign(n_seeds=1)
    assert tables.spread_shown(one, "pooled") == "prompts"  # one seed: pooled over prompts is the same number
    assert tables.spread_shown(summary.drop(columns="n_seeds")) == "prompts"
    # and each reader follows it: the overview's column names, the table note, the figure's bars
    assert any("pooled" in c for c in report.results_overview(summary, "pooled").columns)
    assert "pooled standard error" in tables.uncertainty_note(summary, spread="pooled")
    assert plots.error_text(one, spread="pooled") == plots.error_text(one)
