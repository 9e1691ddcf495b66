"""Evaluation statistics: SEM, bootstrap intervals (cluster over prompt ids shared by the seeds, else
within each seed), win rates by prompt id (a tie is an identical completion; ties half or lost, both
reported), the per-(method, k, proportion, group) summary pooled and per seed with the spread across
seeds, and SharedRep-vs-MaxMin head to head."""

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
    cluster_bootstrap_ci,
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


def table(ids, values, group="minority", text=None, completions=None):
    """An evaluation table; by default a completion's text follows its score (equal scores, same text)."""
    return pd.DataFrame(
        {
            "prompt_id": ids,
            "prompt": text or [f"prompt {i}" for i in ids],
            "completion": completions or [f"reply scored {v!r}" for v in values],
            f"group_{group}": values,
        }
    )


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


def test_a_tie_is_an_identical_completion_not_a_small_score_difference():
    ids = ["same-text-noise", "other-text-close", "same-text-far", "other-text-equal", "other-text-lower"]
    ours = table(ids, [1.0 + 1e-7, 1.0 + 1e-9, 2.0, 0.5, 0.1], completions=["A", "B", "C", "D", "E"])
    ref = table(ids, [1.0, 1.0, 1.0, 0.5, 0.2], completions=["A", "b", "C", "d", "e"])
    out = outcomes(ours, ref, "group_minority", ties="half")
    # the same text scored in two batch shapes is a tie whatever the digits say (even a big gap);
    # different texts 1e-9 apart are decided by the scores; exactly equal scores are a tie
    assert out["tie"].tolist() == [True, False, True, True, False]
    assert out["win"].tolist() == [False, True, False, False, False]
    assert out["credit"].tolist() == [0.5, 1.0, 0.5, 0.5, 0.0]
    strict = outcomes(ours, ref, "group_minority", ties="lose")
    assert strict["credit"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]  # the upstream's strict >: ties lose


def test_win_rates_need_the_completion_text():
    bare = table(["a"], [1.0]).drop(columns="completion")
    with pytest.raises(ValueError, match="reference table has no completion column; a tie is an identical"):
        outcomes(table(["a"], [2.0]), bare, "group_minority")


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
    """A policy's evaluation table; the completion text follows the scores (equal scores, same text)."""
    completions = [f"reply {a!r}/{b!r}" for a, b in zip(minority, majority)]
    return pd.DataFrame(
        {"prompt_id": ids, "completion": completions, "group_minority": minority, "group_majority": majority}
    )


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


@pytest.mark.parametrize("rule", ["half", "lose"])
def test_both_tie_rules_are_columns_whichever_rule_is_configured(evals, rule):
    frame = summarize(evals, GROUPS, Options(ties=rule, n_bootstrap=200))
    k16 = cell(frame, "sharedrep", 16, 0.1, "minority")  # identical to gold on every prompt
    assert (k16["win_rate_vs_gold_ties_half"], k16["win_rate_vs_gold_ties_lose"]) == (0.5, 0.0)
    sft = cell(frame, "sft", None, 0.1, "minority")  # p3 wins, p4 ties, two losses
    assert sft["win_rate_vs_gold_ties_half"] == pytest.approx(1.5 / 4)
    assert sft["win_rate_vs_gold_ties_lose"] == pytest.approx(1 / 4)
    assert sft["win_rate_vs_gold"] == sft[f"win_rate_vs_gold_ties_{rule}"]  # the configured rule
    learned = frame[frame["method"] != "gold"]
    gap = learned["win_rate_vs_gold_ties_half"] - learned["win_rate_vs_gold_ties_lose"]
    assert np.allclose(gap, learned["tie_share_vs_gold"] / 2)  # the rules differ by half the ties, no more


def test_bootstrap_interval_on_hand_cases():
    low, high = bootstrap_ci([np.array([3.0, 3.0, 3.0])], n_boot=200)
    assert low == high == 3.0  # no spread, no interval
    assert all(math.isnan(x) for x in bootstrap_ci([np.array([])]))
    values = [np.array([0.0, 1.0, 2.0, 3.0])]
    assert bootstrap_ci(values, 500, seed=7) == bootstrap_ci(values, 500, seed=7)  # seeded: repeats exactly
    low, high = bootstrap_ci(values, 2000, seed=1)
    assert 0.0 <= low < 1.5 < high <= 3.0


def test_cluster_bootstrap_is_wider_when_seeds_share_hard_prompts():
    """Two seeds on the same 200 prompts, scores driven by the prompt: resampling each seed's rows
    on its own treats 400 rows as independent and is too narrow; drawing prompt ids jointly is not."""
    rng = np.random.default_rng(0)
    ids = [f"p{i:03d}" for i in range(200)]
    prompt_effect = rng.normal(0.0, 1.0, 200)
    seeds = [pd.Series(prompt_effect + rng.normal(0.0, 0.1, 200), index=ids) for _ in range(2)]
    low, high, kind = cluster_bootstrap_ci(seeds, 2000, seed=1)
    ind_low, ind_high = bootstrap_ci([s.to_numpy() for s in seeds], 2000, seed=1)
    assert kind == "cluster"
    assert (high - low) > 1.25 * (ind_high - ind_low)  # about sqrt(2): 200 clusters, not 400 rows
    # negatively correlated seeds cancel prompt by prompt: the cluster interval is the narrower one
    opposite = [seeds[0], pd.Series(-prompt_effect + rng.normal(0.0, 0.1, 200), index=ids)]
    low, high, _ = cluster_bootstrap_ci(opposite, 2000, seed=1)
    ind_low, ind_high = bootstrap_ci([s.to_numpy() for s in opposite], 2000, seed=1)
    assert (high - low) < 0.5 * (ind_high - ind_low)


def test_cluster_bootstrap_matches_prompts_by_id_and_counts_a_repeated_seed_once():
    values = pd.Series(np.linspace(0.0, 3.0, 40), index=[f"p{i}" for i in range(40)])
    single = cluster_bootstrap_ci([values], 500, seed=3)
    # the same seed twice is one seed's information: the same interval, draw for draw
    assert cluster_bootstrap_ci([values, values], 500, seed=3) == single
    # row order does not matter, only prompt ids do
    assert cluster_bootstrap_ci([values, values.sample(frac=1.0, random_state=0)], 500, seed=3) == single
    # win/tie/loss credits take the fast path and still cover the pooled mean
    credits_ = [
        pd.Series([1.0, 0.5, 0.0, 1.0], index=list("abcd")),
        pd.Series([0.0, 0.5, 1.0, 1.0], index=list("dcba")),
    ]
    low, high, kind = cluster_bootstrap_ci(credits_, 500)
    assert kind == "cluster" and low <= 5 / 8 <= high


def test_cluster_bootstrap_falls_back_within_seed_when_seeds_hold_different_prompts():
    a = pd.Series([0.0, 1.0, 2.0, 3.0], index=["a", "b", "c", "d"])
    b = pd.Series([1.0, 2.0, 3.0, 4.0], index=["a", "b", "c", "z"])
    low, high, kind = cluster_bootstrap_ci([a, b], 500, seed=5)
    assert kind == "within-seed"
    assert (low, high) == bootstrap_ci([a.to_numpy(), b.to_numpy()], 500, seed=5)
    assert all(math.isnan(x) for x in cluster_bootstrap_ci([pd.Series(dtype=float)])[:2])


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
    assert seeds.loc[1, "win_rate_vs_gold_ties_lose"] == 0.75 and seeds.loc[1, "tie_share_vs_gold"] == 0.25
    row = cell(frame, "maxmin", None, 0.1, "minority")
    assert row["mean_gold_score"] == pytest.approx(5 / 8)
    assert row["seed_sd_gold_score"] == pytest.approx(np.std([0.75, 0.5], ddof=1))
    assert row["seed_sem_gold_score"] == pytest.approx(np.std([0.75, 0.5], ddof=1) / math.sqrt(2))
    assert row["win_rate_vs_gold"] == pytest.approx((3.5 + 1) / 8)
    assert row["seed_sd_win_rate"] == pytest.approx(np.std([0.875, 0.25], ddof=1))
    assert row["seed_sem_win_rate"] == pytest.approx(np.std([0.875, 0.25], ddof=1) / math.sqrt(2))
    assert row["bootstrap"] == "cluster"  # both seeds hold prompts a-d
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
    # both rules whichever is configured, the seed spread, and the cluster bootstrap (same prompts a-d)
    assert (row["win_rate_ties_half"], row["win_rate_ties_lose"]) == (pytest.approx(5.5 / 8), pytest.approx(4 / 8))
    assert row["seed_sem_win_rate"] == pytest.approx(np.std([2.5 / 4, 3 / 4], ddof=1) / math.sqrt(2))
    assert row["bootstrap"] == "cluster" and row["ci_low"] <= row["win_rate"] <= row["ci_high"]


def test_seeds_on_different_prompts_match_by_id_and_resample_within_seed():
    """evaluation.prompts_per_seed: each seed's policies on their own draw; SFT (no seed) on fixed ids,
    compared with each seed's gold on the ids both hold."""
    evals = {
        (1, None, "gold"): evaluation(["a", "b", "c"], [0.0, 0.0, 0.0], [0.0] * 3),
        (2, None, "gold"): evaluation(["c", "d", "e"], [1.0, 1.0, 1.0], [0.0] * 3),
        (1, 0.1, "maxmin"): evaluation(["a", "b", "c"], [1.0, 1.0, 1.0], [1.0] * 3),
        (2, 0.1, "maxmin"): evaluation(["c", "d", "e"], [0.0, 2.0, 2.0], [1.0] * 3),
        (None, None, "sft"): evaluation(["a", "b", "c"], [1.0, 1.0, 2.0], [1.0] * 3),
    }
    frame, by_seed = summarize_all(evals, GROUPS, Options(n_bootstrap=200))
    mm = cell(frame, "maxmin", None, 0.1, "minority")
    assert mm["bootstrap"] == "within-seed" and mm["n_matched_vs_gold"] == 6
    assert mm["win_rate_vs_gold"] == pytest.approx(5 / 6)  # seed 1: 3 wins; seed 2: c loses, d and e win
    sft = cell(frame, "sft", None, 0.1, "minority")
    # seed 1's gold shares a, b, c (3 wins); seed 2's shares only c (2.0 beats 1.0)
    assert sft["n_matched_vs_gold"] == 4 and sft["win_rate_vs_gold"] == 1.0
    assert sft["bootstrap"] == "within-seed"
    sft_seed = by_seed[(by_seed["method"] == "sft") & (by_seed["group"] == "minority")].iloc[0]
    assert sft_seed["n"] == 3 and sft_seed["n_matched_vs_gold"] == 4


def test_a_policy_is_never_compared_with_another_seeds_gold_policy():
    evals = {
        (1, None, "gold"): evaluation(["a", "b"], [0.0, 0.0], [0.0, 0.0]),
        (1, 0.1, "maxmin"): evaluation(["a", "b"], [1.0, 1.0], [1.0, 1.0]),
        (2, 0.1, "maxmin"): evaluation(["a", "b"], [5.0, 5.0], [5.0, 5.0]),  # seed 2 has no gold policy
    }
    seeds = summarize_all(evals, GROUPS, Options(n_bootstrap=200))[1].set_index(["method", "group", "seed"])
    assert seeds.loc[("maxmin", "minority", 1), "n_matched_vs_gold"] == 2
    assert seeds.loc[("maxmin", "minority", 2), "n_matched_vs_gold"] == 0


def test_head_to_head_is_empty_without_maxmin():
    evals = {k: v for k, v in two_seed_evals().items() if k[2] != "maxmin"}
    assert head_to_head(evals, GROUPS).empty
