"""Pairwise group disagreement, trait redundancy (how far a gold trait is a function of the others), their
manifest summary and notebook tables, and the `concise` gold trait."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from sharedrep_utils import report
from sharedrep_utils.config import TraitConfig, load_config
from sharedrep_utils.gold import SCORERS
from sharedrep_utils.groups import (
    CONSTANT_NOTE,
    disagreement,
    disagreement_matrix,
    redundancy_summary,
    trait_redundancy,
)

# profile order, not alphabetical: the matrix must keep it
WEIGHTS = {"upbeat": {"a": 1.0}, "minority": {"b": 1.0}, "balanced": {"a": 0.5, "b": 0.5}}


def table(**traits) -> pd.DataFrame:
    """A responses table: `name=(values of response 0, values of response 1)` per trait."""
    n = len(next(iter(traits.values()))[0])
    out = pd.DataFrame(
        {
            "prompt_id": [f"p{i}" for i in range(n)],
            "prompt": [f"\n\nHuman: q{i}?" for i in range(n)],
            "response_0": [f"r{i}a" for i in range(n)],
            "response_1": [f"r{i}b" for i in range(n)],
        }
    )
    for name, (first, second) in traits.items():
        out[f"{name}_0"], out[f"{name}_1"] = first, second
    return out


# --- disagreement_matrix --------------------------------------------------------------------------


def test_disagreement_matrix_matches_a_hand_count_with_ties():
    # a and b differences per pair: (+1, -1), (+1, +1), (0, 0), (0, +1); balanced = (a + b) / 2
    # signs  upbeat: + + 0 0   minority: - + 0 +   balanced: 0 + 0 +
    responses = table(a=([1, 1, 0.5, 0.2], [0, 0, 0.5, 0.2]), b=([0, 1, 0.3, 1], [1, 0, 0.3, 0]))
    m = disagreement_matrix(responses, ["a", "b"], WEIGHTS)
    assert list(m.index) == list(m.columns) == ["upbeat", "minority", "balanced"]
    expected = pd.DataFrame(
        # upbeat-minority: pairs 0 and 3; upbeat-balanced: 0 (+ vs tie) and 3 (tie vs +); minority-balanced: 0
        [[0, 2 / 4, 2 / 4], [2 / 4, 0, 1 / 4], [2 / 4, 1 / 4, 0]],
        index=m.index,
        columns=m.columns,
    )
    pd.testing.assert_frame_equal(m, expected, check_dtype=False)
    # pair 2 is a tie for every group: they agree; the any-two-differ share is pairs 0 and 3
    assert disagreement(responses, ["a", "b"], WEIGHTS) == 0.5 == m.to_numpy().max()


def test_disagreement_matrix_of_groups_that_always_agree_is_zero_and_a_weightless_group_always_ties():
    responses = table(a=([1.0, 0.0, 0.4], [0.0, 1.0, 0.9]), b=([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]))
    weights = {"one": {"a": 1.0}, "twice": {"a": 2.0}, "none": {}}
    m = disagreement_matrix(responses, ["a", "b"], weights)
    assert m.at["one", "twice"] == 0.0 and m.at["one", "none"] == 1.0 and np.all(np.diag(m) == 0)


def test_disagreement_matrix_refuses_an_unknown_trait_a_missing_column_and_no_rows():
    responses = table(a=([1], [0]), b=([0], [1]))
    with pytest.raises(ValueError, match=re.escape("Group weights name trait(s) c; the traits are a, b.")):
        disagreement_matrix(responses, ["a", "b"], {"g": {"c": 1.0}})
    with pytest.raises(ValueError, match=re.escape("lacks trait column(s) b_1; it has prompt_id")):
        disagreement_matrix(responses.drop(columns="b_1"), ["a", "b"], WEIGHTS)
    with pytest.raises(ValueError, match="has no rows"):
        disagreement_matrix(responses.iloc[:0], ["a", "b"], WEIGHTS)


# --- trait_redundancy -----------------------------------------------------------------------------


def test_redundancy_on_a_hand_table_stacks_both_responses():
    # stacked a = [1, 2, 3, 4], b = [1, 3, 2, 4]: rank differences 0, 1, 1, 0, rho = 1 - 6·2 / (4·15) = 0.8
    out = trait_redundancy(table(a=([1, 2], [3, 4]), b=([1, 3], [2, 4])), ["a", "b"])
    assert list(out.index) == ["a", "b"]
    assert list(out.columns) == ["std", "rho_a", "rho_b", "r2_from_others", "note"]
    assert out.at["a", "rho_b"] == pytest.approx(0.8) and out.at["b", "rho_a"] == pytest.approx(0.8)
    assert out.at["a", "rho_a"] == 1.0
    assert out.at["a", "std"] == pytest.approx(math.sqrt(5 / 3))  # squares 2.25 + 0.25 + 0.25 + 2.25 over 3
    # a on (1, b, |b| = b, b²): a quadratic through 4 points leaves a's cubic part. Ordered by b, a is
    # [1, 3, 2, 4]; on the cubic contrast [-1, 3, -3, 1] that is 6, residual SS 6² / 20 = 1.8 of 5: R² 0.64
    assert out.at["a", "r2_from_others"] == pytest.approx(1 - 1.8 / 5)
    assert (out["note"] == "").all()


def test_a_function_of_another_trait_has_r2_near_one_where_an_independent_one_has_r2_near_zero():
    rng = np.random.default_rng(0)
    x = [rng.uniform(-1, 1, 1000), rng.uniform(-1, 1, 1000)]
    noise = [rng.random(1000), rng.random(1000)]
    responses = table(
        upbeat=x,
        neutral=(1 - np.abs(x[0]), 1 - np.abs(x[1])),  # gold's neutral_tone from its sentiment
        squared=(3 * x[0] ** 2 + 1, 3 * x[1] ** 2 + 1),
        noise=noise,
    )
    out = trait_redundancy(responses, ["upbeat", "neutral", "squared", "noise"])
    assert out.at["neutral", "r2_from_others"] == pytest.approx(1.0, abs=1e-9)
    assert out.at["squared", "r2_from_others"] == pytest.approx(1.0, abs=1e-9)
    # 2000 points and 1 + 3·3 + 3 = 13 basis columns: chance alone gives about 12 / 2000
    assert out.at["noise", "r2_from_others"] < 0.03
    # a rank correlation misses the fold: neutral is a function of upbeat, yet their rho is near 0
    assert abs(out.at["neutral", "rho_upbeat"]) < 0.1
    assert out.at["neutral", "rho_squared"] == pytest.approx(-1.0)  # 1 - |x| falls as 3x² + 1 rises


def test_a_constant_trait_gets_nan_and_a_note_and_the_others_are_still_measured():
    rng = np.random.default_rng(1)
    x = rng.random(50), rng.random(50)
    responses = table(a=x, double=(2 * x[0], 2 * x[1]), flat=(np.full(50, 0.5), np.full(50, 0.5)))
    out = trait_redundancy(responses, ["a", "double", "flat"])
    assert out.at["flat", "std"] == 0.0 and out.at["flat", "note"] == CONSTANT_NOTE
    assert out.loc["flat", ["rho_a", "rho_double", "rho_flat", "r2_from_others"]].isna().all()
    assert math.isnan(out.at["a", "rho_flat"])  # no rank correlation with a constant
    assert out.at["a", "rho_double"] == pytest.approx(1.0) and out.at["a", "note"] == ""
    assert out.at["double", "r2_from_others"] == pytest.approx(1.0)
    summary = redundancy_summary(out, pd.DataFrame([[0.0, 0.25], [0.25, 0.0]]))
    assert summary == {
        "max_abs_rho": 1.0,
        "max_r2_from_others": 1.0,
        "min_pair_disagreement": 0.25,
        "max_pair_disagreement": 0.25,
    }


def test_trait_redundancy_refuses_missing_scores():
    with pytest.raises(ValueError, match=re.escape("Trait(s) b have missing or infinite scores")):
        trait_redundancy(table(a=([1, 2], [3, 4]), b=([1, np.nan], [2, 4])), ["a", "b"])


def test_redundancy_summary_reads_the_off_diagonal_and_gives_none_for_a_single_trait_and_group():
    redundancy = pd.DataFrame(
        {
            "rho_a": [1.0, -0.6, 0.2],
            "rho_b": [-0.6, 1.0, 0.1],
            "rho_c": [0.2, 0.1, 1.0],
            "r2_from_others": [0.4, 0.5, 0.1],
        },
        index=["a", "b", "c"],
    )
    shares = pd.DataFrame([[0, 0.1, 0.3], [0.1, 0, 0.2], [0.3, 0.2, 0]], dtype=float)
    assert redundancy_summary(redundancy, shares) == {
        "max_abs_rho": 0.6,  # not the diagonal's 1
        "max_r2_from_others": 0.5,
        "min_pair_disagreement": 0.1,  # not the diagonal's 0
        "max_pair_disagreement": 0.3,
    }
    one = pd.DataFrame({"rho_a": [1.0], "r2_from_others": [0.0]}, index=["a"])
    assert redundancy_summary(one, pd.DataFrame([[0.0]])) == {
        "max_abs_rho": None,
        "max_r2_from_others": 0.0,
        "min_pair_disagreement": None,
        "max_pair_disagreement": None,
    }


# --- what notebook 02 shows -----------------------------------------------------------------------


def test_group_weight_table_fills_a_left_out_trait_with_zero():
    weights = report.group_weight_table(WEIGHTS, ["a", "b"])
    assert weights.to_dict("index") == {
        "upbeat": {"a": 1.0, "b": 0.0},
        "minority": {"a": 0.0, "b": 1.0},
        "balanced": {"a": 0.5, "b": 0.5},
    }
    with pytest.raises(ValueError, match=r"name trait\(s\) b; the traits are a"):
        report.group_weight_table(WEIGHTS, ["a"])


def test_redundancy_note_names_the_best_predicted_trait_the_strongest_pair_and_a_constant_one():
    redundancy = pd.DataFrame(
        {
            "rho_a": [1.0, -0.7, np.nan],
            "rho_b": [-0.7, 1.0, np.nan],
            "rho_c": [np.nan] * 3,
            "r2_from_others": [0.9, 0.3, np.nan],
            "note": ["", "", CONSTANT_NOTE],
        },
        index=["a", "b", "c"],
    )
    note = report.redundancy_note(redundancy)
    assert "**a** best (R² 0.90)" in note and "a–b (|ρ| 0.70)" in note and "Constant on these responses: c." in note


# --- the concise gold trait -----------------------------------------------------------------------


def test_concise_scores_one_minus_words_over_the_cap_and_zero_when_empty():
    score = SCORERS["concise"](TraitConfig(kind="concise", max_length=4), "cpu")
    texts = ["", "   ", "Sure.", "Yes, of course.", "  two\n words ", "one two three four", "a b c d e f g"]
    expected = [0.0, 0.0, 0.75, 0.25, 0.5, 0.0, 0.0]  # 0, 0, 1, 3, 2, 4 and 7 (capped at 4) words
    np.testing.assert_allclose(score(["\n\nHuman: q?"] * len(texts), texts), expected)


def test_the_traits_profile_caps_concise_at_24_words():
    traits = load_config("traits").gold.traits
    assert traits["concise"].kind == "concise" and traits["concise"].max_length == 24
    score = SCORERS["concise"](traits["concise"], "cpu")
    assert score(["\n\nHuman: q?"] * 2, ["word " * 6, "word " * 30]).tolist() == [0.75, 0.0]
