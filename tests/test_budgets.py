"""Reward-model budgets (budgets.py): the grid's settings, the tuned pick on the validation split, the gaps
across seeds and the pooled accuracies; hand-made tables, expected values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sharedrep_utils import budgets, report
from sharedrep_utils.config import BudgetGridConfig, ConfigError, HeadConfig, load_config

GRID = BudgetGridConfig(learning_rates=[1e-3, 3e-3], num_epochs=[2, 5], batch_size=8, matched=[3e-3, 2])


def test_settings_default_first_then_every_cell_in_grid_order_keeping_the_loss():
    own = HeadConfig(learning_rate=5e-4, num_epochs=3, batch_size=16, tanh=True, train_passes=2)
    out = budgets.settings(own, GRID)
    assert list(out) == ["default", "lr0.001-ep2", "lr0.001-ep5", "lr0.003-ep2", "lr0.003-ep5"]
    assert out["default"] is own
    cell = out["lr0.003-ep5"]
    assert (cell.learning_rate, cell.num_epochs, cell.batch_size) == (3e-3, 5, 8)
    assert cell.tanh and cell.train_passes == 2  # the budget changes the optimiser's, not the loss
    assert budgets.matched_cell(GRID) == "lr0.003-ep2"


def rows(policy, setting, split, accuracies, seed=1, steps=10):
    return [
        {
            "policy": policy,
            "setting": setting,
            "split": split,
            "group": g,
            "accuracy": a,
            "n": 10,
            "seed": seed,
            "optimizer_steps": steps,
        }  # fmt: skip
        for g, a in accuracies.items()
    ]


def test_tuned_is_the_best_mean_over_groups_on_validation_first_on_a_tie():
    table = pd.DataFrame(
        rows("a", "default", "validation", {"overall": 0.99, "min": 0.99, "maj": 0.99})  # default: never a candidate
        + rows("a", "c1", "validation", {"overall": 0.9, "min": 0.4, "maj": 0.9})  # mean 0.65; overall ignored
        + rows("a", "c2", "validation", {"overall": 0.7, "min": 0.6, "maj": 0.8})  # mean 0.70
        + rows("a", "c3", "validation", {"overall": 0.7, "min": 0.8, "maj": 0.6})  # mean 0.70: a tie, c2 first
        + rows("a", "c4", "test", {"overall": 1.0, "min": 1.0, "maj": 1.0})  # the test split never picks
    )
    assert budgets.tuned_cell(table, "a") == "c2"


def grid_table():
    """Two seeds; maxmin and sharedrep-k2 at the default and two cells, validation and test."""
    out = []
    test_min = {  # (policy, setting) -> minority test accuracy for seeds 1, 2
        ("maxmin", "default"): (0.5, 0.6), ("maxmin", "lr0.001-ep2"): (0.4, 0.5), ("maxmin", "lr0.003-ep2"): (0.7, 0.5),
        ("sharedrep-k2", "default"): (0.8, 0.7), ("sharedrep-k2", "lr0.001-ep2"): (0.6, 0.9),
        ("sharedrep-k2", "lr0.003-ep2"): (0.7, 0.6),
    }  # fmt: skip
    validation = {("maxmin", 1): "lr0.001-ep2", ("maxmin", 2): "lr0.003-ep2", ("sharedrep-k2", 1): "lr0.003-ep2",
                  ("sharedrep-k2", 2): "lr0.003-ep2"}  # fmt: skip
    for (policy, setting), values in test_min.items():
        for seed, value in zip((1, 2), values, strict=True):
            best = validation[(policy, seed)] == setting
            out += rows(policy, setting, "validation", {"minority": 0.9 if best else 0.1, "majority": 0.5}, seed)
            out += rows(
                policy,
                setting,
                "test",
                {"minority": value, "majority": 0.7},
                seed,
                steps=4 if policy == "maxmin" else 2,
            )
    table = pd.DataFrame(out)
    table["method"], table["k"] = table["policy"].str.split("-").str[0], None
    table["learning_rate"], table["num_epochs"], table["batch_size"] = 1e-3, 2, 8
    marked = [budgets.mark_choices(part, GRID).assign(seed=seed) for seed, part in table.groupby("seed")]
    return pd.concat(marked, ignore_index=True)  # as results.budgets_frame stacks each seed's budgets.csv


def test_gaps_are_paired_per_seed_under_every_budget():
    table = grid_table()
    gaps = budgets.gaps(table, "minority").set_index(["budget", "group"])
    t_975_1df = math.tan(math.pi * (0.975 - 0.5))  # t quantile with 1 df (Cauchy)
    # default: seed differences 0.3, 0.1 -> mean 0.2, sd 0.1414, se 0.1
    row = gaps.loc[("default", "minority")]
    assert row["estimate"] == pytest.approx(0.2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.2 - t_975_1df * 0.1, 0.2 + t_975_1df * 0.1))
    # matched (lr0.003-ep2 in both seeds): 0.0, 0.1
    assert gaps.loc[("matched", "minority"), "estimate"] == pytest.approx(0.05)
    # tuned: each seed's own validation pick; seed 1: sharedrep lr0.003 0.7 - maxmin lr0.001 0.4 = 0.3;
    # seed 2: sharedrep lr0.003 0.6 - maxmin lr0.003 0.5 = 0.1
    assert gaps.loc[("tuned", "minority"), "estimate"] == pytest.approx(0.2)
    # mean over groups (majority 0.7 for both): half the minority gap
    assert gaps.loc[("default", "mean over groups"), "estimate"] == pytest.approx(0.1)
    assert gaps.loc[("default", "minority"), "policy_steps"] == 2
    assert gaps.loc[("default", "minority"), "baseline_steps"] == 4
    assert set(gaps.index.get_level_values("budget")) == {"default", "lr0.001-ep2", "lr0.003-ep2", "matched", "tuned"}


def test_pooled_sums_pairs_over_seeds_with_a_wilson_interval():
    table = grid_table()
    table.loc[:, "n"] = 10
    pooled = budgets.pooled(table)
    row = pooled[(pooled["policy"] == "maxmin") & (pooled["setting"] == "default") & (pooled["split"] == "test")
                 & (pooled["group"] == "minority")].iloc[0]  # fmt: skip
    assert row["n"] == 20 and row["accuracy"] == pytest.approx(11 / 20)
    z, p, n = 1.959964, 11 / 20, 20  # Wilson by hand
    centre, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)),
    )
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((centre - half, centre + half), abs=1e-5)


def test_train_budgets_trains_every_setting_on_the_fit_pairs_only_with_its_steps():
    gen = torch.Generator().manual_seed(0)
    n_fit, dim = 20, 6
    fit = (torch.randn(n_fit, dim, generator=gen), torch.randn(n_fit, dim, generator=gen), torch.tensor([0, 1] * 10))
    other = (torch.randn(8, dim, generator=gen), torch.randn(8, dim, generator=gen), torch.tensor([0, 1] * 4))
    own = HeadConfig(learning_rate=1e-2, num_epochs=1, batch_size=4, tanh=False)
    trained, table = budgets.train_budgets("maxmin", "maxmin", None, own, GRID, ["a", "b"], fit, other, other, 0)
    assert list(trained) == list(budgets.settings(own, GRID))
    steps = table.drop_duplicates("setting").set_index("setting")["optimizer_steps"]
    # MaxMin: one run per group of 10 pairs; default batch 4 -> 3 steps per epoch; the grid's batch 8 -> 2
    assert steps["default"] == 2 * 3 * 1
    assert steps["lr0.001-ep5"] == 2 * 2 * 5
    assert set(table["split"]) == {"validation", "test"}
    assert table[(table["group"] == "overall")]["n"].eq(8).all()
    # every setting is a different model: the default (1 epoch) and 5 epochs at 3e-3 do not score alike
    a, b = trained["default"][0], trained["lr0.003-ep5"][0]
    assert not torch.allclose(a(other[0]), b(other[0]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reward_model.budget": "best"}, "reward_model.budget 'best' is not one of default, matched, tuned"),
        ({"reward_model.budget": "tuned"}, "need a grid"),
        (
            {
                "reward_model.grid.learning_rates": [1e-3, 3e-3],
                "reward_model.grid.num_epochs": [2, 4],
                "reward_model.grid.matched": [3e-3, 3],
            },
            "must be one [learning rate, epochs] cell",
        ),
        (
            {
                "reward_model.grid.learning_rates": [1e-3],
                "reward_model.grid.num_epochs": [2, 4],
                "reward_model.grid.matched": [1e-3, 2],
            },
            "at least two distinct values of each",
        ),  # fmt: skip
        ({"reward_model.grid.learning_rates": [1e-3]}, "give both, or neither"),
        (
            {
                "reward_model.grid.learning_rates": [1e-2, 0.0100000001],
                "reward_model.grid.num_epochs": [2, 4],
                "reward_model.grid.matched": [1e-2, 2],
            },
            "reward_model.grid repeats a cell",  # the same name lr0.01: the settings would overwrite each other
        ),  # fmt: skip
        (
            {
                "sweep.budgets": ["tuned", "default"],
                "reward_model.grid.learning_rates": [1e-3, 3e-3],
                "reward_model.grid.num_epochs": [2, 4],
                "reward_model.grid.matched": [1e-3, 2],
            },
            "must start with",
        ),  # fmt: skip
        ({"sweep.calibrations": ["none", "on"]}, "sweep.calibrations 'on' is not one of"),
        ({"calibration.mode": "center", "sweep.calibrations": ["center", "standardize"]}, "has no none"),
    ],
)
def test_bad_budget_settings_fail_early_naming_the_value(overrides, message):
    with pytest.raises(ConfigError, match=None) as error:
        load_config("smoke", overrides)
    assert message in str(error.value)


def test_traits_profile_declares_its_grid_and_variants():
    cfg = load_config("traits")
    assert len(cfg.reward_model.grid.learning_rates) >= 2 and len(cfg.reward_model.grid.num_epochs) >= 2
    assert cfg.sweep.budgets == ["matched", "tuned"] and cfg.sweep.calibrations == ["none", "center"]
    assert len(cfg.gold.groups) >= 4 and len(cfg.gold.traits) >= 2
    assert min(cfg.reward_model.ks) == len(cfg.gold.traits) < len(cfg.gold.groups) <= max(cfg.reward_model.ks)
    # the default budget is the paper's unmatched one: SharedRep at 10x MaxMin's learning rate
    assert cfg.reward_model.sharedrep.learning_rate == pytest.approx(10 * cfg.reward_model.maxmin.learning_rate)
    np.testing.assert_allclose([sum(w.values()) for w in cfg.gold.groups.values()], 1.0)


def test_a_profile_without_a_grid_keeps_its_reward_model_hash(monkeypatch):
    """The budget settings enter stage 03's parameters only with a grid: runs made before them stay done."""
    from sharedrep_utils.stages import reward_models

    monkeypatch.setattr(reward_models, "require", lambda path, made_by: {"params_hash": "prefs"})
    small = reward_models.params(load_config("small"), 42, 0.05)["reward_model"]
    assert "budget" not in small and "grid" not in small
    traits = reward_models.params(load_config("traits"), 42, 0.05)["reward_model"]
    assert traits["budget"] == "matched" and traits["grid"]["learning_rates"] == [1e-3, 3e-3]


@pytest.mark.parametrize("budget", ["matched", "tuned"])
def test_stage_03_trains_the_grid_on_train_minus_validation_and_saves_the_budgets_heads(tmp_path, budget):
    import json

    from test_determinism import fake_run

    from sharedrep_utils.runs import read_manifest, rm_dir
    from sharedrep_utils.stages import preferences, reward_models

    fake_run(tmp_path, n=120)
    grid = {"learning_rates": [1e-3, 1e-2], "num_epochs": [1, 3], "matched": [1e-2, 1]}
    overrides = {f"reward_model.grid.{key}": value for key, value in grid.items()}
    cfg = load_config(
        "smoke", {"run_dir": str(tmp_path), "reward_model.ks": [2], "reward_model.budget": budget, **overrides}
    )
    preferences.main(cfg, 42, 0.3)
    reward_models.main(cfg, 42, 0.3)
    out = rm_dir(tmp_path, 42, 0.3)
    manifest = read_manifest(out)
    assert manifest["n_train_pairs"] + manifest["n_validation_pairs"] + manifest["n_test_pairs"] == len(
        pd.read_parquet(tmp_path / "seed42" / "prop0.3" / "preferences" / "preferences.parquet")
    )
    table = pd.read_csv(out / "budgets.csv")
    settings = ["default", "lr0.001-ep1", "lr0.001-ep3", "lr0.01-ep1", "lr0.01-ep3"]
    for policy in cfg.policy_methods():
        rows = table[(table["policy"] == policy) & (table["group"] == "overall")]
        assert list(dict.fromkeys(rows["setting"])) == settings
        assert rows[rows["split"] == "validation"]["n"].eq(manifest["n_validation_pairs"]).all()
        metrics = json.loads((out / policy / "metrics.json").read_text())
        chosen = budgets.chosen_setting(budget, table, policy, cfg.reward_model.grid)
        assert metrics["setting"] == chosen and metrics["budget"] == budget
        validation = table[
            (table["policy"] == policy) & (table["split"] == "validation") & (table["group"] != "overall")
        ]
        by_hand = validation[validation["setting"] != "default"].groupby("setting")["accuracy"].mean()
        best = [c for c in settings[1:] if by_hand[c] == by_hand.max()][0]  # the first best cell in grid order
        assert chosen == ("lr0.01-ep1" if budget == "matched" else best)
        picked = rows[(rows["setting"] == chosen) & (rows["split"] == "test")].iloc[0]
        assert metrics["test"]["overall"]["accuracy"] == pytest.approx(
            picked["accuracy"]
        )  # the saved heads are the pick
        assert metrics["hyperparameters"]["learning_rate"] == picked["learning_rate"]
    # notebook 03's tables of this stage: the minority's test accuracy per setting and policy, and the picks
    shown = report.rm_budget_tables(out, "minority")
    minority = table[(table["split"] == "test") & (table["group"] == "minority")]
    expected = minority[minority["policy"] == "maxmin"].set_index("setting")["accuracy"].round(3)
    assert shown["minority: test accuracy"]["maxmin"].to_dict() == expected.to_dict()
    picked = shown["picked (test accuracy, all groups)"]
    assert picked[picked[budget]].set_index("policy")["setting"].to_dict() == {
        p: budgets.chosen_setting(budget, table, p, cfg.reward_model.grid) for p in cfg.policy_methods()
    }
    # steps per setting: SharedRep trains once on the training pairs, ceil(n / batch) steps an epoch
    shared = table[(table["policy"] == "sharedrep-k2") & (table["setting"] == "lr0.01-ep3")].iloc[0]
    assert shared["optimizer_steps"] == 3 * -(-manifest["n_train_pairs"] // cfg.reward_model.grid.batch_size)
