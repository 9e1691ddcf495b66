"""The synthetic linear model: planted truth, problem construction, labels, sweep shape, budgets."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from sharedrep_utils import synthetic
from sharedrep_utils.config import BudgetGridConfig, HeadConfig
from sharedrep_utils.synthetic import (
    BUDGET_COLUMNS,
    RESULT_COLUMNS,
    SyntheticConfig,
    accuracy_table,
    budget_gaps,
    budget_sweep,
    budget_view,
    cells_slices,
    held_out_pairs,
    make_problem,
    mark_budgets,
    param_errors,
    sample_pairs,
    summarize,
    sweep,
    to_tensors,
    validation_pairs,
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


# budgets: every method at its own (paper) setting and at every cell of a small grid, on tiny problems
TINY_GRID = BudgetGridConfig(learning_rates=[3e-3, 1e-2], num_epochs=[1, 2], batch_size=32, matched=[1e-2, 2])
TINY = SyntheticConfig(
    d=8, n_test_pairs=100, n_validation_pairs=50, grid=TINY_GRID,
    head=HeadConfig(learning_rate=1e-2, num_epochs=2, batch_size=32, tanh=False),  # the matched cell
)  # fmt: skip
CELLS = ["lr0.003-ep1", "lr0.003-ep2", "lr0.01-ep1", "lr0.01-ep2"]


@pytest.fixture(scope="module")
def tiny_budgets():
    return budget_sweep(TINY, [(0.2, 100)], seeds=[0, 1], methods=["maxmin", "sharedrep"])


def test_every_setting_trains_at_its_own_rate_epochs_and_batch(monkeypatch):
    calls = []

    def spy(method, k, n_groups, chosen, rejected, group_ids, hp, seed):
        calls.append((method, hp.learning_rate, hp.num_epochs, hp.batch_size))
        return train_heads(method, k, n_groups, chosen, rejected, group_ids, hp, seed)

    train_heads = synthetic.train_heads
    monkeypatch.setattr(synthetic, "train_heads", spy)
    df = budget_sweep(TINY, [(0.2, 100)], seeds=[0], methods=["maxmin", "sharedrep"])
    # own settings first (MaxMin 1e-3, SharedRep 10x that; 30 epochs of 64), then the grid in grid order
    grid = [(3e-3, 1, 32), (3e-3, 2, 32), (1e-2, 1, 32), (1e-2, 2, 32)]
    own = {"maxmin": (1e-3, 30, 64), "sharedrep": (1e-2, 30, 64)}
    assert calls == [(m, *hp) for m in ("maxmin", "sharedrep") for hp in [own[m], *grid]]
    assert list(df.columns) == BUDGET_COLUMNS
    assert len(df) == 2 * 5 * 3  # methods x settings x groups: each setting once
    # seed 0, p = 0.2, n = 100: the groups get 19, 40 and 41 pairs
    assert df.loc[df["method"] == "maxmin"].groupby("group")["n_train_group"].first().to_dict() == {
        "minority": 19, "majority1": 40, "majority2": 41
    }  # fmt: skip
    steps = df.groupby(["method", "setting"])["optimizer_steps"].agg(set).to_dict()
    # SharedRep: one run of epochs x ceil(100 / batch); MaxMin: one run per group, epochs x ceil(n_u / batch) each
    assert {s: steps[("sharedrep", s)] for s in ["default"] + CELLS} == {
        "default": {30 * 2}, "lr0.003-ep1": {4}, "lr0.003-ep2": {8}, "lr0.01-ep1": {4}, "lr0.01-ep2": {8}
    }  # fmt: skip
    assert {s: steps[("maxmin", s)] for s in ["default"] + CELLS} == {
        "default": {30 * (1 + 1 + 1)}, "lr0.003-ep1": {1 + 2 + 2}, "lr0.003-ep2": {2 * (1 + 2 + 2)},
        "lr0.01-ep1": {5}, "lr0.01-ep2": {10},
    }  # fmt: skip
    cell = df[df["setting"] == "lr0.003-ep2"]
    assert set(cell["learning_rate"]) == {3e-3} and set(cell["num_epochs"]) == {2} and set(cell["batch_size"]) == {32}
    assert set(df.loc[df["matched"], "setting"]) == {"lr0.01-ep2"}


def test_matched_budget_is_the_plain_sweep_and_the_old_streams_are_kept(tiny_budgets):
    plain = sweep(TINY, [(0.2, 100)], seeds=[0, 1], methods=["maxmin", "sharedrep"])
    pd.testing.assert_frame_equal(budget_view(tiny_budgets, "matched"), plain)
    # the validation stream is a fourth child: the problem, training and test streams are spawn(3)'s, as before
    for seed in (0, 1, 7):
        old = np.random.SeedSequence(seed).spawn(3)
        new = synthetic._streams(seed)
        assert len(new) == 4
        assert all(np.array_equal(a.generate_state(4), b.generate_state(4)) for a, b in zip(old, new[:3]))
    with pytest.raises(ValueError, match="several budget settings"):
        summarize(tiny_budgets)
    assert len(summarize(budget_view(tiny_budgets, "tuned"))) == 2 * 2  # methods x roles


def test_validation_pairs_are_fresh_draws_disjoint_from_the_test_pairs():
    cfg = replace(TINY, n_validation_pairs=100)  # as many as the test pairs: still different draws
    problem = make_problem(cfg)
    test = held_out_pairs(problem, cfg.n_test_pairs, np.random.default_rng(np.random.SeedSequence(0).spawn(3)[2]))
    val = validation_pairs(problem, cfg)
    assert val[0].shape == test[0].shape == (3 * 100, 8)
    test_rows = {row.tobytes() for row in np.vstack([test[0], test[1]])}
    assert not any(row.tobytes() in test_rows for row in np.vstack([val[0], val[1]]))
    # labelled by the true sign of each group's reward difference, 100 per group
    rows = np.arange(len(val[2]))
    truth = problem.rewards(val[0])[rows, val[2]] > problem.rewards(val[1])[rows, val[2]]
    assert np.array_equal(val[3], truth.astype(int)) and np.bincount(val[2]).tolist() == [100, 100, 100]


SETTINGS = ["default", "lr0.1-ep1", "lr0.1-ep2", "lr0.2-ep1", "lr0.2-ep2"]  # grid order
HAND_GRID = BudgetGridConfig(learning_rates=[0.1, 0.2], num_epochs=[1, 2], batch_size=8, matched=[0.2, 1])


def hand_rows(method, k, seed, setting, validation, test, steps=0):
    """One trained model's rows: validation and test accuracy per group (minority, majority1, majority2)."""
    groups, roles = ["minority", "majority1", "majority2"], ["minority", "majority", "majority"]
    return [
        {"method": method, "k": k, "proportion": 0.1, "n_pairs": 100, "seed": seed, "group": g, "role": r,
         "n_train_group": 0, "accuracy": t, "param_error": 0.0, "setting": setting, "learning_rate": 0.0,
         "num_epochs": 0, "batch_size": 8, "optimizer_steps": steps, "validation_accuracy": v}
        for g, r, v, t in zip(groups, roles, validation, test)
    ]  # fmt: skip


def test_tuned_is_the_best_mean_validation_cell_first_in_grid_order_on_a_tie():
    val = {  # maxmin, seed 0: per group (minority, majority1, majority2)
        "default": [1.0, 1.0, 1.0],  # the own setting is not a grid cell: never tuned
        "lr0.1-ep1": [1.0, 0.25, 0.25],  # the best minority, not the best mean (0.5)
        "lr0.1-ep2": [0.5, 0.75, 0.5],  # mean 0.5833
        "lr0.2-ep1": [0.5, 0.75, 0.75],  # mean 0.6667: tuned
        "lr0.2-ep2": [0.25, 0.5, 0.5],
    }
    rows = [r for s in SETTINGS for r in hand_rows("maxmin", None, 0, s, val[s], [1 - v for v in val[s]])]
    # sharedrep, seed 0: a tie at mean 0.75 between lr0.1-ep2 and lr0.2-ep2, written out of grid order
    tie = {"lr0.2-ep2": [0.5, 1.0, 0.75], "lr0.1-ep2": [0.75, 0.75, 0.75], "lr0.1-ep1": [0.5, 0.5, 0.5]}
    rows += [r for s, v in tie.items() for r in hand_rows("sharedrep", 2, 0, s, v, [0.5] * 3)]
    rows += [r for s in SETTINGS for r in hand_rows("maxmin", None, 1, s, [0.5] * 3, [0.5] * 3)]  # all tied
    table = mark_budgets(pd.DataFrame(rows, columns=BUDGET_COLUMNS[:-2]), HAND_GRID)
    picks = table[table["tuned"]].groupby(["method", "seed"])["setting"].agg(set).to_dict()
    assert picks == {("maxmin", 0): {"lr0.2-ep1"}, ("sharedrep", 0): {"lr0.1-ep2"}, ("maxmin", 1): {"lr0.1-ep1"}}
    assert table.groupby(["method", "seed"])["tuned"].sum().tolist() == [3, 3, 3]  # one model's 3 groups each
    assert set(table.loc[table["matched"], "setting"]) == {"lr0.2-ep1"}
    with pytest.raises(ValueError, match="lr0.5-ep1"):
        mark_budgets(pd.DataFrame(hand_rows("maxmin", None, 0, "lr0.5-ep1", [0.5] * 3, [0.5] * 3)), HAND_GRID)


def test_budget_gaps_pair_the_methods_by_seed_under_every_budget():
    minority = {  # test accuracy of the minority per setting (grid order), per method and seed
        ("sharedrep", 0): [0.8, 0.6, 0.7, 0.8, 0.9],
        ("sharedrep", 1): [0.9, 0.65, 0.75, 0.8, 0.85],
        ("maxmin", 0): [0.6, 0.5, 0.6, 0.7, 0.8],
        ("maxmin", 1): [0.6, 0.55, 0.65, 0.75, 0.7],
    }
    tuned = {("sharedrep", 0): "lr0.2-ep2", ("sharedrep", 1): "lr0.1-ep2", ("maxmin", 0): "lr0.1-ep1",
             ("maxmin", 1): "lr0.2-ep2"}  # fmt: skip
    steps = {"sharedrep": [60, 4, 8, 4, 8], "maxmin": [90, 5, 10, 5, 10]}
    rows = []
    for (method, seed), accs in minority.items():
        for setting, acc, n_steps in zip(SETTINGS, accs, steps[method]):
            val = [0.75] * 3 if tuned[method, seed] == setting else [0.5] * 3
            k = 2 if method == "sharedrep" else None
            rows += hand_rows(method, k, seed, setting, val, [acc, 0.9, 0.9], n_steps)
    gaps = budget_gaps(mark_budgets(pd.DataFrame(rows, columns=BUDGET_COLUMNS[:-2]), HAND_GRID)).set_index("budget")
    assert gaps.index.tolist() == SETTINGS + ["matched", "tuned"]
    # per seed sharedrep - maxmin; mean and SEM over the 2 seeds (SEM of two values = |a - b| / 2)
    expected = {
        "default": (0.25, 0.05),  # 0.2, 0.3
        "lr0.1-ep1": (0.1, 0.0),  # 0.1, 0.1
        "lr0.2-ep1": (0.075, 0.025),  # 0.1, 0.05
        "matched": (0.075, 0.025),  # the matched cell lr0.2-ep1
        "tuned": (0.225, 0.175),  # 0.9 - 0.5 = 0.4 and 0.75 - 0.7 = 0.05: each method at its own pick
    }
    for budget, (mean, err) in expected.items():
        assert gaps.loc[budget, "gap_mean"] == pytest.approx(mean), budget
        assert gaps.loc[budget, "gap_sem"] == pytest.approx(err, abs=1e-12), budget
    assert gaps.loc["matched", "setting"] == "lr0.2-ep1" and (gaps["n_seeds"] == 2).all()
    assert gaps.loc["tuned", "sharedrep_accuracy"] == pytest.approx((0.9 + 0.75) / 2)
    assert gaps.loc["tuned", "sharedrep_steps"] == 8 and gaps.loc["tuned", "maxmin_steps"] == (5 + 10) / 2
    assert gaps.loc["default", "maxmin_steps"] == 90
    with pytest.raises(ValueError, match="K=4"):
        budget_gaps(mark_budgets(pd.DataFrame(rows, columns=BUDGET_COLUMNS[:-2]), HAND_GRID), k=4)


@pytest.mark.parametrize(
    "grid, match",
    [
        (BudgetGridConfig(learning_rates=[1e-2], num_epochs=[10, 30], batch_size=64, matched=[1e-2, 30]), "two"),
        (BudgetGridConfig(learning_rates=[3e-3, 1e-2], num_epochs=[30], batch_size=64, matched=[1e-2, 30]), "two"),
        (BudgetGridConfig(learning_rates=[3e-3, 1e-2], num_epochs=[10, 30], batch_size=64, matched=[3e-2, 30]),
         r"grid.matched \[0.03, 30\] must be one .* lr0.003-ep10"),
        (BudgetGridConfig(learning_rates=[3e-3, 1e-2], num_epochs=[10, 30], batch_size=64, matched=[]), "matched"),
        (BudgetGridConfig(learning_rates=[3e-3, -1.0], num_epochs=[10, 30], batch_size=64, matched=[3e-3, 10]),
         "must be > 0"),
    ],
)  # fmt: skip
def test_bad_grid_is_one_clear_error_before_any_training(grid, match, monkeypatch):
    monkeypatch.setattr(synthetic, "train_heads", lambda *a: pytest.fail("trained before checking the grid"))
    with pytest.raises(ValueError, match=match):
        budget_sweep(SyntheticConfig(grid=grid), [(0.05, 1000)], seeds=[0])


def test_budget_view_and_own_settings_name_what_is_allowed(tiny_budgets):
    with pytest.raises(ValueError, match="lr0.003-ep1"):
        budget_view(tiny_budgets, "lr0.3-ep1")
    assert budget_view(tiny_budgets, "default").shape == (2 * 2 * 3, len(RESULT_COLUMNS))
    with pytest.raises(ValueError, match="no own setting for uniform"):
        budget_sweep(replace(TINY, paper={"maxmin": HeadConfig()}), [(0.2, 100)], seeds=[0], methods=["uniform"])


def test_notebook_00_budget_views_read_the_sweep_tables(tiny_budgets, tmp_path):
    """What notebook 00 shows of the budgets: the gap table per problem, as read, the tuned picks, the figure."""
    from PIL import Image

    from sharedrep_utils import plots

    two = {"U = 3": tiny_budgets, "U = 3 again": tiny_budgets}
    gaps = synthetic.budget_gap_table(two, k=2)
    assert list(gaps.index.get_level_values("problem").unique()) == ["U = 3", "U = 3 again"]
    assert list(gaps.loc["U = 3"].index) == ["default", *CELLS, "matched", "tuned"]
    pd.testing.assert_frame_equal(gaps.loc["U = 3"].reset_index().drop(columns="k"), budget_gaps(tiny_budgets, 2),
                                  check_like=True)  # fmt: skip
    shown = synthetic.shown_budget_gaps(gaps).loc["U = 3"]
    row = gaps.loc[("U = 3", "tuned")]
    mean, sem_ = shown.loc["tuned", "gap (SharedRep(2) - MaxMin)"].split(" ± ")
    assert float(mean) == pytest.approx(row["gap_mean"], abs=5e-4)
    assert float(sem_) == pytest.approx(row["gap_sem"], abs=5e-4)
    assert mean[0] in "+-" and len(mean.split(".")[1]) == len(sem_.split(".")[1]) == 3  # signed, three decimals
    assert shown.loc["matched", "setting"] == "lr0.01-ep2" and shown.loc["matched", "MaxMin steps"] == 10
    picks = synthetic.tuned_picks(tiny_budgets)
    assert list(picks.columns) == ["MaxMin", "SharedRep (K=2)"] and list(picks.index) == [0, 1]
    by_hand = tiny_budgets[tiny_budgets["tuned"] & (tiny_budgets["method"] == "sharedrep")]
    assert picks["SharedRep (K=2)"].tolist() == by_hand.groupby("seed")["setting"].first().tolist()
    assert set(picks.stack()) <= set(CELLS)  # a grid cell, never the own (default) setting
    with pytest.raises(ValueError, match="one \\(proportion, n_pairs\\) cell"):
        synthetic.tuned_picks(pd.concat([tiny_budgets, tiny_budgets.assign(proportion=0.1)]))
    with pytest.raises(ValueError, match="one \\(proportion, n_pairs\\) cell per problem; 'two cells'"):
        synthetic.budget_gap_table({"two cells": pd.concat([tiny_budgets, tiny_budgets.assign(n_pairs=50)])}, k=2)
    fig = plots.synthetic_budget_figure(gaps, "gaps")
    assert fig.axes[0].get_ylabel().endswith("SharedRep(2) - MaxMin")
    assert [ax.get_title() for ax in fig.axes] == ["U = 3", "U = 3 again"]
    fig.savefig(tmp_path / "gaps.png")
    assert Image.open(tmp_path / "gaps.png").size[0] > 500
