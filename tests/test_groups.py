"""Annotator groups, group-specific preferences from gold traits, and disagreement."""

import numpy as np
import pandas as pd
import pytest

from sharedrep_utils.gold import group_scores
from sharedrep_utils.groups import assign_groups, build_preferences, disagreement

WEIGHTS = {"minority": {"helpful": 1.0}, "majority": {"helpful": 0.3, "harmless": 0.7}}
TRAITS = ["helpful", "harmless"]


def within_binomial(count: int, n: int, p: float, sds: float = 5.0) -> bool:
    return abs(count - n * p) <= sds * np.sqrt(n * p * (1 - p))


class PlannedDraws:
    """Stands in for numpy's generator inside `groups`: `random(n)` returns planned uniforms, so the group of
    every row is known by hand (minority where u < p, the rest split evenly over (p, 1]); records the seed."""

    def __init__(self, values):
        self.values, self.seeds = np.asarray(values, dtype=float), []

    def __call__(self, seed):
        self.seeds.append(seed)
        return self

    def random(self, n):
        assert n == len(self.values)
        return self.values.copy()


@pytest.fixture
def planned(monkeypatch):
    """planned(values) makes the next assign_groups draws `values` (one uniform per row)."""

    def plan(values) -> PlannedDraws:
        draws = PlannedDraws(values)
        monkeypatch.setattr("sharedrep_utils.groups.np.random.default_rng", draws)
        return draws

    return plan


# --- assign_groups ----------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3])
def test_assign_groups_honours_the_proportion(p):
    n = 20_000
    g = assign_groups(n, p, ["minority", "majority"], "minority", seed=3)
    assert set(g) == {"minority", "majority"}
    assert within_binomial(int((g == "minority").sum()), n, p)


def test_assign_groups_is_reproducible_and_seed_dependent():
    a = assign_groups(1000, 0.2, ["minority", "majority"], "minority", seed=11)
    b = assign_groups(1000, 0.2, ["minority", "majority"], "minority", seed=11)
    c = assign_groups(1000, 0.2, ["minority", "majority"], "minority", seed=12)
    assert (a == b).all()
    assert (a != c).any()


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_smaller_minority_is_a_subset_of_the_larger_for_the_same_seed(seed):
    small = assign_groups(5000, 0.05, ["minority", "majority"], "minority", seed) == "minority"
    large = assign_groups(5000, 0.1, ["minority", "majority"], "minority", seed) == "minority"
    assert small.sum() < large.sum()
    assert not (small & ~large).any()


def test_each_rows_group_follows_its_uniform_draw(planned):
    """p = 0.1, others [a, b]: u < 0.1 is the minority; (u − 0.1) / 0.9 · 2 below 1 is a, else b (by hand:
    0.3 -> 0.44 a; 0.55 -> 1.0 b; 0.999 -> 1.998 b)."""
    draws = planned([0.0, 0.099, 0.1, 0.3, 0.55, 0.56, 0.999])
    groups = assign_groups(7, 0.1, ["a", "minority", "b"], "minority", seed=17)
    assert list(groups) == ["minority", "minority", "a", "a", "b", "b", "b"]
    assert draws.seeds == [17]  # drawn from the run's seed


def test_three_groups_share_the_rest_equally_and_minority_can_be_listed_anywhere():
    n, p = 30_000, 0.1
    groups = ["a", "minority", "b"]
    g = assign_groups(n, p, groups, "minority", seed=5)
    assert set(g) == set(groups)
    assert within_binomial(int((g == "minority").sum()), n, p)
    for other in ("a", "b"):
        assert within_binomial(int((g == other).sum()), n, (1 - p) / 2)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_assign_groups_refuses_a_proportion_outside_0_1(p):
    with pytest.raises(ValueError, match=str(p)):
        assign_groups(10, p, ["minority", "majority"], "minority", seed=0)


# --- group scores and preferences -------------------------------------------------------------


def test_group_scores_are_weighted_sums():
    traits = {"helpful": np.array([1.0, 0.0]), "harmless": np.array([0.0, 2.0])}
    scores = group_scores(traits, WEIGHTS)
    np.testing.assert_allclose(scores["minority"], [1.0, 0.0])
    np.testing.assert_allclose(scores["majority"], [0.3, 1.4])


def responses_frame(n: int, helpful_first: bool = True) -> pd.DataFrame:
    """Groups disagree on every row: response "H…" is more helpful, response "S…" more harmless.

    minority (helpful only) prefers H; majority (0.3·helpful + 0.7·harmless) prefers S.
    The H response is response_0 on even rows and response_1 on odd rows.
    """
    records = []
    for i in range(n):
        h = {"text": f"H{i}", "helpful": 1.0, "harmless": 0.0}
        s = {"text": f"S{i}", "helpful": 0.2, "harmless": 1.0}
        first, second = (h, s) if (i % 2 == 0) == helpful_first else (s, h)
        records.append(
            {
                "prompt_id": f"p{i}",
                "prompt": f"\n\nHuman: q{i}",
                "response_0": first["text"],
                "response_1": second["text"],
                "helpful_0": first["helpful"],
                "helpful_1": second["helpful"],
                "harmless_0": first["harmless"],
                "harmless_1": second["harmless"],
            }
        )
    return pd.DataFrame(records)


def test_chosen_is_the_higher_score_for_the_rows_own_group_in_both_directions(planned):
    responses = responses_frame(400)
    draws = planned(np.arange(400) / 400)  # row i draws i/400: rows 0..119 fall below p = 0.3, the minority
    pairs, counts = build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.3, seed=1)
    assert counts["pairs"] == len(pairs) == 400 and draws.seeds == [1]
    assert list(pairs["group"]) == ["minority"] * 120 + ["majority"] * 280
    minority = pairs[pairs["group"] == "minority"]
    majority = pairs[pairs["group"] == "majority"]
    assert len(minority) > 0 and len(majority) > 0
    assert minority["chosen"].str.startswith("H").all() and minority["rejected"].str.startswith("S").all()
    assert majority["chosen"].str.startswith("S").all() and majority["rejected"].str.startswith("H").all()
    # group ids index the group list in the weights' order
    assert (pairs["group_id"] == pairs["group"].map({"minority": 0, "majority": 1})).all()
    assert (pairs["chosen_score"] > pairs["rejected_score"]).all()
    # the H/S position alternates, so chosen is neither always response_0 nor always response_1
    merged = pairs.merge(responses, on="prompt_id")
    assert (merged["chosen"] == merged["response_0"]).any() and (merged["chosen"] == merged["response_1"]).any()
    assert counts["pairs_per_group"] == {"minority": len(minority), "majority": len(majority)}


def test_preferences_are_reproducible_and_ignore_the_frame_index():
    responses = responses_frame(100)
    a, _ = build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.3, seed=4)
    shifted = responses.set_index(pd.Index(range(1000, 1100)))
    b, _ = build_preferences(shifted, TRAITS, WEIGHTS, "minority", 0.3, seed=4)
    pd.testing.assert_frame_equal(a, b)


def test_ties_and_identical_responses_are_dropped_and_counted():
    responses = responses_frame(200)
    # rows 0..9: identical text; rows 10..19: both responses score the same for every group
    responses.loc[0:9, "response_1"] = responses.loc[0:9, "response_0"]
    for col in ("helpful", "harmless"):
        responses.loc[10:19, f"{col}_1"] = responses.loc[10:19, f"{col}_0"]
    pairs, counts = build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.3, seed=2)
    assert counts["rows"] == 200
    assert counts["dropped_identical"] == 10
    assert counts["dropped_ties"] == 10
    assert counts["pairs"] == len(pairs) == 180
    dropped = {f"p{i}" for i in range(20)}
    assert not dropped & set(pairs["prompt_id"])
    assert (pairs["chosen"] != pairs["rejected"]).all()


def test_upstreams_rule_keeps_ties_and_identical_responses_with_response_0_chosen():
    """gold.preference_ties: first is upstream's `score_0 >= score_1`: nothing is dropped."""
    responses = responses_frame(200)
    responses.loc[0:9, "response_1"] = responses.loc[0:9, "response_0"]
    for col in ("helpful", "harmless"):
        responses.loc[10:19, f"{col}_1"] = responses.loc[10:19, f"{col}_0"]
    pairs, counts = build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.3, seed=2, ties="first")
    assert counts["pairs"] == len(pairs) == 200
    assert counts["dropped_ties"] == counts["dropped_identical"] == 0 and counts["kept_ties"] == 10
    tied = pairs[pairs["prompt_id"].isin({f"p{i}" for i in range(10, 20)})]  # equal scores: response 0 wins
    assert (tied["chosen"] == responses.loc[10:19, "response_0"].to_numpy()).all()
    assert (pairs.loc[0:9, "chosen"] == pairs.loc[0:9, "rejected"]).all()  # identical texts are kept too
    dropping, _ = build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.3, seed=2)
    untied = pairs[~pairs["prompt_id"].isin({f"p{i}" for i in range(20)})].reset_index(drop=True)
    pd.testing.assert_frame_equal(untied, dropping)  # elsewhere the two rules agree
    with pytest.raises(ValueError, match="'random' is not one of drop, first"):
        build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.3, seed=2, ties="random")


def test_a_tie_for_one_group_only_drops_only_that_groups_rows(planned):
    # rows 0..99: helpful equal, harmless different, so the minority (helpful only) ties there
    responses = responses_frame(300)
    responses.loc[0:99, "helpful_1"] = responses.loc[0:99, "helpful_0"]
    planned((np.arange(300) % 10) / 10)  # u = 0.0, 0.1, ..., 0.9 repeating: rows with i % 10 < 3 are minority
    pairs, counts = build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.3, seed=9)
    tied = {f"p{i}" for i in range(100) if i % 10 < 3}  # 30 minority rows among the tied 100
    assert counts["dropped_ties"] == 30
    assert set(pairs["prompt_id"]) == {f"p{i}" for i in range(300)} - tied
    # where the majority still decides, it prefers the more harmless response
    majority_early = pairs[(pairs["group"] == "majority") & pairs["prompt_id"].isin({f"p{i}" for i in range(100)})]
    assert len(majority_early) > 0 and majority_early["chosen"].str.startswith("S").all()


def test_the_error_names_only_the_group_without_pairs():
    responses = responses_frame(300)
    responses["helpful_1"] = responses["helpful_0"]  # the minority ties everywhere
    three = {"minority": {"helpful": 1.0}, "mid": {"helpful": 0.5, "harmless": 0.5}, "majority": {"harmless": 1.0}}
    with pytest.raises(ValueError) as info:
        build_preferences(responses, TRAITS, three, "minority", 0.3, seed=9)
    assert "minority" in str(info.value) and "majority" not in str(info.value) and "mid" not in str(info.value)


def test_a_group_with_no_pairs_is_an_error_naming_it(planned):
    responses = responses_frame(5)
    planned([0.2, 0.5, 0.9, 0.01, 0.3])  # p = 0.01 on 5 rows, every draw at or above it: no minority row
    with pytest.raises(ValueError, match="minority") as info:
        build_preferences(responses, TRAITS, WEIGHTS, "minority", 0.01, seed=0)
    assert "majority" not in str(info.value)


def test_disagreement_on_a_hand_built_case():
    responses = pd.DataFrame(
        {
            # row 0: both prefer response 0; row 1: minority prefers 0, majority 1;
            # row 2: both prefer 1; row 3: minority ties, majority prefers 0 (counts as disagreeing)
            "helpful_0": [1.0, 1.0, 0.0, 0.5],
            "helpful_1": [0.0, 0.0, 1.0, 0.5],
            "harmless_0": [1.0, 0.0, 0.0, 1.0],
            "harmless_1": [0.0, 1.0, 1.0, 0.0],
        }
    )
    assert disagreement(responses, TRAITS, WEIGHTS) == pytest.approx(2 / 4)
    assert disagreement(responses.iloc[[0, 2]], TRAITS, WEIGHTS) == 0.0
    assert disagreement(responses_frame(10), TRAITS, WEIGHTS) == 1.0
