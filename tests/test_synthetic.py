"""The synthetic linear model: planted truth, problem construction, labels, sweep shape."""

import numpy as np
import pandas as pd
import pytest
import torch

from sharedrep_utils.config import HeadConfig
from sharedrep_utils.synthetic import (
    RESULT_COLUMNS,
    SyntheticConfig,
    accuracy_table,
    cells_slices,
    make_problem,
    param_errors,
    sample_pairs,
    summarize,
    sweep,
    to_tensors,
)

PAPER_LIKE = [[1.0, 0.0], [0.3, 0.7], [0.7, 0.3]]  # minority: trait 1 only; two majority mixes


def test_planted_truth_sharedrep_beats_maxmin_on_the_minority_at_p_005():
    """Shared B* of rank K=2 < U=3 groups, d=64 > the minority's ~50 pairs: over 5 seeds, SharedRep's
    minority accuracy beats MaxMin's by a clear margin (observed ≈ 0.16), and the paired difference is
    well beyond its standard error."""
    cfg = SyntheticConfig(weights=PAPER_LIKE)
    df = sweep(cfg, [(0.05, 1000)], seeds=[0, 1, 2, 3, 4], methods=["maxmin", "sharedrep"])
    minority = df[df["role"] == "minority"].pivot(index="seed", columns="method", values="accuracy")
    diff = minority["sharedrep"] - minority["maxmin"]
    assert diff.mean() > 0.05, minority
    assert diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(len(diff)), minority
    assert (diff > 0).sum() >= 4, minority
    # the majority groups are not sacrificed for it
    majority = df[df["role"] == "majority"].groupby("method")["accuracy"].mean()
    assert majority["sharedrep"] > majority["maxmin"] - 0.02


def test_problem_shapes_and_simplex_rows():
    cfg = SyntheticConfig(d=20, k=3, n_groups=4, seed=7)
    problem = make_problem(cfg)
    assert problem.B.shape == (20, 3) and problem.W.shape == (4, 3)
    assert np.allclose(problem.B.T @ problem.B, np.eye(3))
    assert (problem.W >= 0).all() and np.allclose(problem.W.sum(axis=1), 1.0)
    assert np.allclose(problem.W[0], [1.0, 0.0, 0.0])
    assert not any(np.allclose(problem.W[0], row) for row in problem.W[1:])
    assert problem.directions.shape == (20, 4)
    assert problem.groups == ["minority", "majority1", "majority2", "majority3"]
    assert SyntheticConfig(n_groups=2).groups == ["minority", "majority"]


def test_same_seed_same_data_different_seed_different():
    def draw(seed):
        cfg = SyntheticConfig(d=16, weights=PAPER_LIKE, seed=seed)
        problem = make_problem(cfg)
        return problem, sample_pairs(problem, 200, 0.2, np.random.default_rng(seed))

    (p1, d1), (p2, d2), (p3, d3) = draw(3), draw(3), draw(4)
    assert np.array_equal(p1.B, p2.B) and all(np.array_equal(a, b) for a, b in zip(d1, d2))
    assert not np.allclose(p1.B, p3.B) and not np.allclose(d1[0], d3[0])


def test_sweep_is_reproducible():
    cfg = SyntheticConfig(d=8, n_test_pairs=100, head=HeadConfig(learning_rate=1e-2, num_epochs=2, batch_size=32))
    first = sweep(cfg, [(0.2, 100)], seeds=[1])
    pd.testing.assert_frame_equal(first, sweep(cfg, [(0.2, 100)], seeds=[1]))


def test_labels_follow_the_planted_model():
    problem = make_problem(SyntheticConfig(d=16, weights=PAPER_LIKE, beta=50.0, seed=0))
    phi_a, phi_b, groups, labels = sample_pairs(problem, 4000, 0.3, np.random.default_rng(0))
    rows = np.arange(len(groups))
    true = (problem.rewards(phi_a)[rows, groups] > problem.rewards(phi_b)[rows, groups]).astype(int)
    assert (labels == true).mean() > 0.95
    assert 0.25 < (groups == 0).mean() < 0.35 and set(np.unique(groups)) == {0, 1, 2}
    # a small beta gives noisy labels that still lean towards the truth
    noisy = make_problem(SyntheticConfig(d=16, weights=PAPER_LIKE, beta=0.5, seed=0))
    _, _, _, soft = sample_pairs(noisy, 4000, 0.3, np.random.default_rng(0))
    assert 0.55 < (soft == true).mean() < 0.9
    chosen, rejected, group_ids = to_tensors(phi_a, phi_b, groups, labels)
    assert chosen.shape == (4000, 16) and group_ids.dtype == torch.long
    assert np.allclose(chosen[labels == 1].numpy(), phi_a[labels == 1].astype(np.float32))


def test_param_errors_are_one_minus_cosine():
    true = np.array([[1.0, 0.0], [0.0, 1.0]])
    learned = np.array([[2.0, 0.0], [0.0, -3.0]])
    assert np.allclose(param_errors(learned, true), [0.0, 2.0])


def test_sweep_returns_tidy_columns_and_summary():
    cfg = SyntheticConfig(d=8, n_test_pairs=200, head=HeadConfig(learning_rate=1e-2, num_epochs=2, batch_size=32))
    cells = cells_slices([0.1, 0.3], [100, 200], at_proportion=0.1, at_n_pairs=100)
    assert cells == [(0.1, 100), (0.3, 100), (0.1, 200)]
    df = sweep(cfg, cells, seeds=[0, 1], methods=["maxmin", "sharedrep", "sharedrep-k4", "uniform"])
    assert list(df.columns) == RESULT_COLUMNS
    assert len(df) == 3 * 2 * 4 * cfg.n_groups
    assert set(df["method"]) == {"maxmin", "sharedrep", "uniform"}
    assert set(df.loc[df["method"] == "sharedrep", "k"]) == {2, 4}
    # every accuracy is a count of correctly ranked held-out pairs over the group's n_test_pairs
    correct = df["accuracy"] * cfg.n_test_pairs
    assert correct.sub(correct.round()).abs().max() < 1e-4
    # each seed and cell trains on exactly n_pairs pairs, split among the groups
    per_cell = df[df["method"] == "maxmin"].groupby(["seed", "proportion", "n_pairs"])["n_train_group"].sum()
    assert per_cell.reset_index().apply(lambda r: r["n_train_group"] == r["n_pairs"], axis=1).all()
    summary = summarize(df)
    assert {"accuracy_mean", "accuracy_sem", "param_error_mean", "param_error_sem", "n_seeds"} <= set(summary.columns)
    assert (summary["n_seeds"] == 2).all() and set(summary["role"]) == {"minority", "majority"}
    assert len(summary) == 3 * 4 * 2
    table = accuracy_table(summary, 100, [0.1, 0.3])
    assert table.shape == (4, 4) and "MaxMin" in table.index


def test_summarize_averages_a_seeds_majority_groups_then_takes_the_sem_over_seeds():
    rows, groups, roles = [], ["minority", "majority1", "majority2"], ["minority", "majority", "majority"]
    for seed, values in {0: [0.6, 0.8, 0.6], 1: [0.8, 0.9, 0.7]}.items():  # minority, majority1, majority2
        for group, role, value in zip(groups, roles, values):
            rows.append(
                {"method": "maxmin", "k": None, "proportion": 0.1, "n_pairs": 100, "seed": seed, "group": group,
                 "role": role, "n_train_group": 0, "accuracy": value, "param_error": 1 - value}
            )  # fmt: skip
    summary = summarize(pd.DataFrame(rows, columns=RESULT_COLUMNS)).set_index("role")
    # minority: seeds 0.6 and 0.8 -> mean 0.7, SD 0.2/√2, SEM 0.1
    assert summary.loc["minority", "accuracy_mean"] == pytest.approx(0.7)
    assert summary.loc["minority", "accuracy_sem"] == pytest.approx(0.1)
    # majority: per seed (0.8 + 0.6)/2 = 0.7 and (0.9 + 0.7)/2 = 0.8 -> mean 0.75, SEM 0.05 over 2 seeds (not 4 rows)
    assert summary.loc["majority", "accuracy_mean"] == pytest.approx(0.75)
    assert summary.loc["majority", "accuracy_sem"] == pytest.approx(0.05)
    assert summary.loc["majority", "param_error_mean"] == pytest.approx(0.25)
    assert (summary["n_seeds"] == 2).all()
    table = accuracy_table(summary.reset_index(), 100, [0.1])
    assert table.loc["MaxMin", (0.1, "minority")] == "0.700 ± 0.100"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"proportion": 1.0}, "outside"),
        ({"k": 0}, "between 1 and d"),
        ({"n_groups": 1}, "at least 2"),
        ({"weights": [[1.0, 0.0], [0.5, 0.6], [0.5, 0.5]]}, "simplex"),
        ({"weights": [[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]]}, "differ"),
        ({"weights": [[1.0, 0.0]]}, "shape"),
    ],
)
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_problem(SyntheticConfig(**kwargs))


def test_unknown_method_is_rejected_before_work():
    with pytest.raises(ValueError, match="Unknown method"):
        sweep(SyntheticConfig(), [(0.1, 100)], seeds=[0], methods=["maxmean"])
