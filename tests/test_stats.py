"""Evaluation statistics: SEM, bootstrap intervals, win rates by prompt id (ties half or lost), the
per-(method, k, proportion, group) summary pooled and per seed, and SharedRep-vs-MaxMin head to head."""

import math

import numpy as np
import pandas as pd
import pytest

from sharedrep_utils.stats import (
    HEAD_TO_HEAD_COLUMNS,
    PER_SEED_COLUMNS,
    SUMMARY_COLUMNS,
    Options,
    bootstrap_ci,
    head_to_head,
    outcomes,
    sem,
    split_method,
    summarize,
    summarize_all,
    win_rate,
)


def test_sem_on_a_hand_computed_case():
    # mean 5, squared deviations sum to 32, sample variance 32/7, SEM = sqrt(32/7 / 8) = sqrt(4/7)
    assert sem(np.array([2, 4, 4, 4, 5, 5, 7, 9])) == pytest.approx(math.sqrt(4 / 7))
    assert sem(np.array([1.0, 3.0])) == pytest.approx(1.0)  # sd sqrt(2), / sqrt(2)
    assert sem(np.array([5.0, 5.0, 5.0])) == 0.0
    assert math.isnan(sem(np.array([1.0])))
    assert math.isnan(sem(np.array([])))


def table(ids, values, group="minority", text=None):
    return pd.DataFrame({"prompt_id": ids, "prompt": text or [f"prompt {i}" for i in ids], f"group_{group}": values})


def test_win_rate_matches_prompts_by_id_and_counts_ties_by_the_rule():
    ours = table(["a", "b", "c", "d", "e"], [1.0, 2.0, 3.0, 0.5, 9.0])
    ref = table(["a", "b", "c", "d", "z"], [0.0, 2.0, 4.0, 0.1, 0.0])
    # a: win, b: tie, c: loss, d: win; e and z are unmatched
    assert win_rate(ours, ref, "group_minority") == (pytest.approx(2.5 / 4), 4)  # default: a tie is half a win
    assert win_rate(ours, ref, "group_minority", ties="lose") == (pytest.approx(0.5), 4)  # upstream's strict rule
    # shuffled rows and different prompt text do not change the result
    shuffled = ref.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["prompt"] = "completely different text"
    assert win_rate(ours.iloc[::-1], shuffled, "group_minority") == (pytest.approx(2.5 / 4), 4)


def test_same_text_different_ids_are_not_matched():
    ours = table(["a", "b"], [5.0, 5.0], text=["same prompt", "other"])
    ref = table(["x", "b"], [0.0, 9.0], text=["same prompt", "other"])
    assert win_rate(ours, ref, "group_minority") == (0.0, 1)  # only id b is shared, and it loses


def test_ties_within_tolerance_and_the_outcome_table():
    ours = table(["a", "b", "c"], [1.0 + 1e-9, 1.0, 2.0])
    ref = table(["a", "b", "c"], [1.0, 1.0 + 1e-3, 1.0])
    out = outcomes(ours, ref, "group_minority", ties="half", tolerance=1e-6)
    assert out["tie"].tolist() == [True, False, False]
    assert out["win"].tolist() == [False, False, True]
    assert out["credit"].tolist() == [0.5, 0.0, 1.0]
    strict = outcomes(ours, ref, "group_minority", ties="lose", tolerance=0.0)
    assert strict["credit"].tolist() == [1.0, 0.0, 1.0]  # without tolerance 1e-9 is a win


def test_duplicate_prompt_ids_are_refused():
    with pytest.raises(ValueError, match="'a' appears twice"):
        win_rate(table(["a", "a"], [1.0, 2.0]), table(["a"], [0.0]), "group_minority")


def test_bad_tie_rule_is_refused():
    with pytest.raises(ValueError, match="ties 'draw' is not one of half, lose"):
        Options(ties="draw")


def test_win_rate_without_shared_prompts_is_nan():
    rate, n = win_rate(table(["a"], [1.0]), table(["b"], [0.0]), "group_minority")
    assert math.isnan(rate) and n == 0


def test_split_method():
    assert split_method("sharedrep-k16") == ("sharedrep", 16)
    assert split_method("sharedrep-k2") == ("sharedrep", 2)
    assert split_method("maxmin") == ("maxmin", None)
    assert split_method("gold") == ("gold", None)


GROUPS = ["minority", "majority"]


def evaluation(ids, minority, majority):
    return pd.DataFrame({"prompt_id": ids, "group_minority": minority, "group_majority": majority})


@pytest.fixture
def evals():
    ids = ["p1", "p2", "p3", "p4"]
    gold = evaluation(ids, [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0])
    return {
        (42, None, "gold"): gold,
        (None, None, "sft"): evaluation(ids, [0.0, 0.0, 2.0, 1.0], [0.0, 3.0, 3.0, 3.0]),
        (42, 0.1, "maxmin"): evaluation(ids[::-1], [2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]),
        (42, 0.2, "maxmin"): evaluation(ids, [3.0, 3.0, 3.0, 0.5], [5.0, 5.0, 5.0, 5.0]),
        (42, 0.1, "sharedrep-k2"): evaluation(ids, [1.5, 1.5, 1.0, 0.0], [2.5, 1.0, 1.0, 1.0]),
        (42, 0.1, "sharedrep-k16"): evaluation(ids, [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]),
    }


def cell(frame, method, k, proportion, group):
    k_mask = frame["k"].isna() if k is None else frame["k"] == k
    rows = frame[(frame["method"] == method) & k_mask & (frame["proportion"] == proportion) & (frame["group"] == group)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_summarize_has_one_row_per_method_k_proportion_group(evals):
    frame = summarize(evals, GROUPS)
    assert list(frame.columns) == SUMMARY_COLUMNS
    keys = frame[["method", "k", "proportion", "group"]].astype(str).apply(tuple, axis=1)
    assert keys.is_unique
    # 0.1: gold, sft, maxmin, sharedrep k2, sharedrep k16; 0.2: gold, sft, maxmin; two groups each
    assert len(frame) == (5 + 3) * 2
    assert set(frame["proportion"]) == {0.1, 0.2}
    assert set(frame["group"]) == set(GROUPS)


def test_summarize_k_is_empty_for_methods_without_k(evals):
    frame = summarize(evals, GROUPS)
    assert str(frame["k"].dtype) == "Int64"
    for method in ("maxmin", "gold", "sft"):
        assert frame.loc[frame["method"] == method, "k"].isna().all()
    assert set(frame.loc[frame["method"] == "sharedrep", "k"].dropna()) == {2, 16}
    assert not frame.loc[frame["method"] == "sharedrep", "k"].isna().any()


def test_summarize_replicates_gold_and_sft_for_each_proportion(evals):
    frame = summarize(evals, GROUPS)
    for method, minority_mean in (("gold", 1.0), ("sft", 0.75)):
        rows = frame[(frame["method"] == method) & (frame["group"] == "minority")]
        assert sorted(rows["proportion"]) == [0.1, 0.2]
        assert (rows["mean_gold_score"] == minority_mean).all()
    gold = frame[frame["method"] == "gold"]
    assert gold["win_rate_vs_gold"].isna().all()
    assert (gold["n"] == 4).all() and (gold["n_seeds"] == 1).all()
    assert (cell(frame, "gold", None, 0.2, "minority")["sem_gold_score"]) == 0.0


def test_summarize_means_sems_and_win_rates(evals):
    frame = summarize(evals, GROUPS)
    mm = cell(frame, "maxmin", None, 0.1, "minority")
    # p4: 2.0, p3..p1: 0.0 (ids reversed in the table)
    assert mm["mean_gold_score"] == pytest.approx(0.5)
    assert mm["sem_gold_score"] == pytest.approx(sem(np.array([2.0, 0.0, 0.0, 0.0])))
    assert mm["win_rate_vs_gold"] == pytest.approx(0.25)  # only p4 beats gold's 1.0
    assert mm["n"] == 4
    assert cell(frame, "maxmin", None, 0.2, "minority")["win_rate_vs_gold"] == pytest.approx(0.75)
    assert cell(frame, "maxmin", None, 0.2, "majority")["win_rate_vs_gold"] == pytest.approx(1.0)
    k2 = cell(frame, "sharedrep", 2, 0.1, "majority")
    assert k2["mean_gold_score"] == pytest.approx(5.5 / 4)
    assert k2["win_rate_vs_gold"] == pytest.approx(0.25)
    # equal to gold everywhere: every prompt is a tie, half a win each by default
    k16 = cell(frame, "sharedrep", 16, 0.1, "minority")
    assert k16["win_rate_vs_gold"] == 0.5 and k16["tie_share_vs_gold"] == 1.0
    # sft (no seed) is compared with the gold policy too: p3 wins, p4 ties
    assert cell(frame, "sft", None, 0.1, "minority")["win_rate_vs_gold"] == pytest.approx(1.5 / 4)
    assert cell(frame, "sft", None, 0.2, "majority")["win_rate_vs_gold"] == pytest.approx(0.75)


def test_summarize_pools_seeds_and_compares_each_seed_with_its_own_gold():
    ids = ["a", "b"]
    evals = {
        (1, None, "gold"): evaluation(ids, [0.0, 0.0], [0.0, 0.0]),
        (2, None, "gold"): evaluation(ids, [10.0, 10.0], [10.0, 10.0]),
        (1, 0.1, "maxmin"): evaluation(ids, [1.0, 1.0], [1.0, 1.0]),  # beats seed 1's gold on both
        (2, 0.1, "maxmin"): evaluation(ids, [5.0, 11.0], [5.0, 5.0]),  # beats seed 2's gold on one
    }
    frame = summarize(evals, GROUPS)
    row = cell(frame, "maxmin", None, 0.1, "minority")
    assert row["n"] == 4 and row["n_seeds"] == 2
    assert row["mean_gold_score"] == pytest.approx(18.0 / 4)
    assert row["win_rate_vs_gold"] == pytest.approx(3 / 4)
    assert cell(frame, "maxmin", None, 0.1, "majority")["win_rate_vs_gold"] == pytest.approx(2 / 4)
    gold = cell(frame, "gold", None, 0.1, "minority")
    assert gold["n_seeds"] == 2 and gold["mean_gold_score"] == pytest.approx(5.0)


def test_summarize_with_the_strict_tie_rule(evals):
    frame = summarize(evals, GROUPS, Options(ties="lose"))
    assert cell(frame, "sharedrep", 16, 0.1, "minority")["win_rate_vs_gold"] == 0.0
    assert cell(frame, "sft", None, 0.1, "minority")["win_rate_vs_gold"] == pytest.approx(0.25)
    assert set(frame["ties"]) == {"lose"}


def test_bootstrap_interval_on_hand_cases():
    low, high = bootstrap_ci([np.array([3.0, 3.0, 3.0])], n_boot=200)
    assert low == high == 3.0  # no spread, no interval
    assert all(math.isnan(x) for x in bootstrap_ci([np.array([])]))
    values = [np.array([0.0, 1.0, 2.0, 3.0])]
    assert bootstrap_ci(values, 500, seed=7) == bootstrap_ci(values, 500, seed=7)  # seeded: repeats exactly
    low, high = bootstrap_ci(values, 2000, seed=1)
    assert 0.0 <= low < 1.5 < high <= 3.0


def test_bootstrap_keeps_each_seed_apart():
    # two seeds of constant values: resampling within a seed cannot move the pooled mean
    low, high = bootstrap_ci([np.zeros(5), np.ones(15)], n_boot=300)
    assert low == high == pytest.approx(0.75)


def test_bootstrap_coverage_on_a_known_distribution():
    """The 95% interval covers the true mean of N(2, 1) in about 95% of 300 samples of 40 values."""
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(300):
        low, high = bootstrap_ci([rng.normal(2.0, 1.0, 40)], n_boot=400, seed=i)
        covered += low <= 2.0 <= high
    assert 0.89 <= covered / 300 <= 0.99  # percentile intervals undercover a little at n = 40


def two_seed_evals():
    ids = ["a", "b", "c", "d"]
    return {
        (1, None, "gold"): evaluation(ids, [0.0, 0.0, 0.0, 0.0], [0.0] * 4),
        (2, None, "gold"): evaluation(ids, [1.0, 1.0, 1.0, 1.0], [0.0] * 4),
        (1, 0.1, "maxmin"): evaluation(ids, [1.0, 1.0, 1.0, 0.0], [1.0] * 4),
        (2, 0.1, "maxmin"): evaluation(ids, [2.0, 0.0, 0.0, 0.0], [1.0] * 4),
        (1, 0.1, "sharedrep-k2"): evaluation(ids[::-1], [2.0, 2.0, 0.0, 1.0], [1.0] * 4),  # ids d, c, b, a
        (2, 0.1, "sharedrep-k2"): evaluation(ids, [2.0, 0.0, 3.0, 3.0], [0.0] * 4),
    }


def test_per_seed_rows_and_their_spread():
    frame, by_seed = summarize_all(two_seed_evals(), GROUPS, Options(n_bootstrap=200))
    assert list(by_seed.columns) == PER_SEED_COLUMNS
    seeds = by_seed[(by_seed["method"] == "maxmin") & (by_seed["group"] == "minority")].set_index("seed")
    assert seeds.loc[1, "mean_gold_score"] == 0.75 and seeds.loc[2, "mean_gold_score"] == 0.5
    assert seeds.loc[1, "win_rate_vs_gold"] == 0.875  # 3 wins, 1 tie against seed 1's gold (all 0)
    assert seeds.loc[2, "win_rate_vs_gold"] == 0.25  # 1 win, 3 losses against seed 2's gold (all 1)
    row = cell(frame, "maxmin", None, 0.1, "minority")
    assert row["mean_gold_score"] == pytest.approx(5 / 8)
    assert row["seed_sd_gold_score"] == pytest.approx(np.std([0.75, 0.5], ddof=1))
    assert row["win_rate_vs_gold"] == pytest.approx((3.5 + 1) / 8)
    assert row["seed_sd_win_rate"] == pytest.approx(np.std([0.875, 0.25], ddof=1))
    assert row["ci_low_gold_score"] <= row["mean_gold_score"] <= row["ci_high_gold_score"]
    assert row["win_rate_ci_low"] <= row["win_rate_vs_gold"] <= row["win_rate_ci_high"]
    again = summarize(two_seed_evals(), GROUPS, Options(n_bootstrap=200))
    pd.testing.assert_frame_equal(frame, again)  # the seeded bootstrap repeats exactly


def test_head_to_head_sharedrep_vs_maxmin_on_the_same_prompts():
    h2h = head_to_head(two_seed_evals(), GROUPS, options=Options(n_bootstrap=200))
    assert list(h2h.columns) == HEAD_TO_HEAD_COLUMNS
    assert len(h2h) == 2  # K=2, p=0.1, two groups
    row = h2h[h2h["group"] == "minority"].iloc[0]
    # seed 1 by id: a 1 vs 1 tie, b 0 vs 1 loss, c 2 vs 1 win, d 2 vs 0 win; seed 2: a tie, b 0-0 tie, c win, d win
    assert (row["wins"], row["tie_count"], row["losses"], row["n"]) == (4, 3, 1, 8)
    assert row["win_rate"] == pytest.approx((4 + 1.5) / 8)
    assert row["k"] == 2 and row["proportion"] == 0.1 and row["n_seeds"] == 2
    majority = h2h[h2h["group"] == "majority"].iloc[0]
    assert (majority["wins"], majority["tie_count"], majority["losses"]) == (0, 4, 4)
    strict = head_to_head(two_seed_evals(), GROUPS, options=Options(ties="lose", n_bootstrap=200))
    assert strict.loc[strict["group"] == "minority", "win_rate"].iloc[0] == pytest.approx(4 / 8)


def test_head_to_head_is_empty_without_maxmin():
    evals = {k: v for k, v in two_seed_evals().items() if k[2] != "maxmin"}
    assert head_to_head(evals, GROUPS).empty
