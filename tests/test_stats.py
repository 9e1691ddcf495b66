"""Evaluation statistics: SEM, win rate by prompt id, and the per-(method, k, proportion, group) summary."""

import math

import numpy as np
import pandas as pd
import pytest

from sharedrep_utils.stats import SUMMARY_COLUMNS, sem, split_method, summarize, win_rate


def test_sem_on_a_hand_computed_case():
    # mean 5, squared deviations sum to 32, sample variance 32/7, SEM = sqrt(32/7 / 8) = sqrt(4/7)
    assert sem(np.array([2, 4, 4, 4, 5, 5, 7, 9])) == pytest.approx(math.sqrt(4 / 7))
    assert sem(np.array([1.0, 3.0])) == pytest.approx(1.0)  # sd sqrt(2), / sqrt(2)
    assert sem(np.array([5.0, 5.0, 5.0])) == 0.0
    assert math.isnan(sem(np.array([1.0])))
    assert math.isnan(sem(np.array([])))


def table(ids, values, group="minority", text=None):
    return pd.DataFrame({"prompt_id": ids, "prompt": text or [f"prompt {i}" for i in ids], f"group_{group}": values})


def test_win_rate_matches_prompts_by_id_and_counts_ties_as_losses():
    ours = table(["a", "b", "c", "d", "e"], [1.0, 2.0, 3.0, 0.5, 9.0])
    ref = table(["a", "b", "c", "d", "z"], [0.0, 2.0, 4.0, 0.1, 0.0])
    # a: win, b: tie (loss), c: loss, d: win; e and z are unmatched
    assert win_rate(ours, ref, "group_minority") == (pytest.approx(0.5), 4)
    # shuffled rows and different prompt text do not change the result
    shuffled = ref.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["prompt"] = "completely different text"
    assert win_rate(ours.iloc[::-1], shuffled, "group_minority") == (pytest.approx(0.5), 4)


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
    # equal to gold everywhere: every prompt is a tie, and ties are losses
    assert cell(frame, "sharedrep", 16, 0.1, "minority")["win_rate_vs_gold"] == 0.0
    # sft (no seed) is compared with the gold policy too
    assert cell(frame, "sft", None, 0.1, "minority")["win_rate_vs_gold"] == pytest.approx(0.25)
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
