"""Budget × calibration variants of a run (variants.py): their configs, the graph's stage runs and waits, the
shared stages as symlinks, and the contrasts of every variant in one table with Holm over all of them."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from fake_run import PROPORTIONS, SEEDS, fake_config, write_fake_run

from sharedrep_utils import contrasts, report, variants
from sharedrep_utils.config import load_config
from sharedrep_utils.graph import build_graph
from sharedrep_utils.runs import eval_file, policy_dir, policy_id, rm_dir, sft_dir
from sharedrep_utils.stages import results

GRID = {
    "reward_model.grid.learning_rates": [1e-3, 3e-3],
    "reward_model.grid.num_epochs": [1, 2],
    "reward_model.grid.matched": [1e-3, 1],
    "reward_model.budget": "matched",
    "sweep.budgets": ["matched", "tuned"],
    "sweep.calibrations": ["none", "center"],
}
TINY = {"sweep.seeds": [1], "sweep.proportions": [0.1], "reward_model.methods": ["maxmin"], "reward_model.ks": [2]}


def test_variants_are_budgets_times_modes_the_run_first(tmp_path):
    cfg = load_config("smoke", {**TINY, **GRID, "run_dir": str(tmp_path)})
    assert variants.variant_settings(cfg) == [
        ("matched", "none"), ("matched", "center"), ("tuned", "none"), ("tuned", "center")
    ]  # fmt: skip
    assert variants.variant_config(cfg, "matched", "none") is cfg
    other = variants.variant_config(cfg, "tuned", "center")
    assert (other.reward_model.budget, other.calibration.mode) == ("tuned", "center")
    assert other.run_path == tmp_path.resolve() / "variants" / "tuned-center"
    assert other.sweep.budgets == [] and cfg.sweep.budgets == ["matched", "tuned"]  # the run's own config untouched
    # a calibrated variant reads the reward models of its budget's first variant
    assert variants.rm_source(cfg, "tuned") == ("tuned", "none")
    assert variants.rm_source(cfg, "matched") == ("matched", "none")
    assert variants.describe(load_config("smoke", {**TINY, "run_dir": str(tmp_path)})) is None


def test_the_graph_holds_every_variant_with_its_waits(tmp_path):
    cfg = load_config("smoke", {**TINY, **GRID, "run_dir": str(tmp_path)})
    nodes = build_graph(cfg, {"profile": "smoke", "overrides": {}})
    needs = {n.label: n.needs for n in nodes}
    tag = "seed1-prop0.1"
    # reward models: the run's own, and the tuned budget's (its first variant); calibrated variants train none
    assert [x for x in needs if x.startswith("03_")] == [
        f"03_reward_models-{tag}",
        f"03_reward_models-{tag}.tuned-none",
    ]
    assert needs[f"03_reward_models-{tag}.tuned-none"] == (f"03_reward_models-{tag}",)  # the feature cache first
    assert needs[f"04_grpo-{tag}-maxmin.matched-center"] == (f"03_reward_models-{tag}",)
    assert needs[f"04_grpo-{tag}-maxmin.tuned-center"] == (f"03_reward_models-{tag}.tuned-none",)
    assert needs[f"05_evaluate-{tag}-maxmin.tuned-center"] == (f"04_grpo-{tag}-maxmin.tuned-center", "05_evaluate-sft")
    # no variant trains SFT, samples responses or trains a gold policy again: one maxmin policy per variant
    assert sum(x.startswith("04_grpo") for x in needs) == 4 + 1  # + the gold policy, once
    assert not any(x.startswith(("01_", "02_")) and x.endswith(("-none", "-center")) for x in needs)
    # the run's results wait for every variant's evaluations; each variant's results for its own and the gold's
    for key in ("matched-center", "tuned-none", "tuned-center"):
        assert f"05_evaluate-{tag}-maxmin.{key}" in needs["06_results"]
        assert f"05_evaluate-{tag}-maxmin.{key}" in needs[f"06_results.{key}"]
        assert "05_evaluate-seed1-gold" in needs[f"06_results.{key}"]
    # the variant's notebooks get its settings on top of the run's
    node = next(n for n in nodes if n.label == f"04_grpo-{tag}-maxmin.tuned-center")
    assert node.run.parameters["overrides"]["calibration.mode"] == "center"
    assert node.run.parameters["overrides"]["run_dir"] == str(tmp_path.resolve() / "variants" / "tuned-center")


def test_links_are_relative_resolve_once_the_run_writes_and_leave_real_paths_alone(tmp_path):
    cfg = load_config("smoke", {**TINY, **GRID, "run_dir": str(tmp_path / "run")})
    made = variants.link(cfg)
    run = cfg.run_path.resolve()
    center = variants.variant_dir(run, "tuned", "center")
    sft_link = sft_dir(center)
    assert sft_link in made and not os.path.isabs(os.readlink(sft_link))
    assert not sft_link.exists()  # dangling until SFT runs
    sft_dir(run).mkdir(parents=True)
    (sft_dir(run) / "manifest.json").write_text("{}")
    assert (sft_link / "manifest.json").read_text() == "{}"
    # tuned-center reads tuned-none's reward models, matched-center the run's own
    assert rm_dir(center, 1, 0.1).resolve() == rm_dir(variants.variant_dir(run, "tuned", "none"), 1, 0.1)
    assert rm_dir(variants.variant_dir(run, "matched", "center"), 1, 0.1).resolve() == rm_dir(run, 1, 0.1)
    assert not rm_dir(variants.variant_dir(run, "tuned", "none"), 1, 0.1).is_symlink()  # it trains its own
    assert eval_file(center, "sft").resolve() == eval_file(run, "sft")
    assert variants.link(cfg) == []  # a second call makes nothing new


def test_contrasts_cover_every_variant_with_holm_over_all_primary_rows(tmp_path):
    base = write_fake_run(tmp_path / "run")
    cfg = fake_config(tmp_path / "run", **{**GRID, "sweep.calibrations": ["none"]})
    variants.link(cfg)
    delta = 0.25  # the tuned variant's SharedRep(K=2) is better on the minority by exactly this, on every prompt
    write_variant_evals(base, variants.variant_config(cfg, "tuned", "none"), minority_shift={"sharedrep-k2": delta})
    table, by_seed = contrasts.variant_contrast_tables(cfg, results.load_evals)
    primary = table[table["primary"]].set_index(["budget", "group"])
    assert set(primary.index) == {("matched", "minority"), ("matched", "min"), ("tuned", "minority"), ("tuned", "min")}
    assert primary.loc[("tuned", "minority"), "estimate"] == pytest.approx(
        primary.loc[("matched", "minority"), "estimate"] + delta
    )
    assert set(table["calibrated"]) == {"none"}
    # Holm over the four primary rows together, not within each variant
    np.testing.assert_allclose(
        table.loc[table["primary"], "p_holm"],
        contrasts.holm(table.loc[table["primary"], "p"].to_numpy()),
        equal_nan=True,
    )
    assert set(by_seed["budget"]) == {"matched", "tuned"}
    # results.params names every variant's evaluations, so the run's results redo when a variant changes
    assert set(results.params(cfg)["variants"]) == {"tuned-none"}


def test_a_run_without_variants_has_one_budget_and_its_contrasts_by_hand(tmp_path):
    cfg = write_fake_run(tmp_path / "run")
    table, _ = contrasts.variant_contrast_tables(cfg, results.load_evals)
    assert set(table["budget"]) == {contrasts.budget(cfg)} and set(table["calibrated"]) == {"none"}
    # the declared contrast by hand: per seed, SharedRep(K=2)'s minority mean minus MaxMin's on the shared prompts
    differences = []
    for seed in SEEDS:
        ours, theirs = (
            pd.read_parquet(eval_file(cfg.run_path, policy_id(seed, 0.1, m))).set_index("prompt_id")["group_minority"]
            for m in ("sharedrep-k2", "maxmin")
        )
        differences.append(ours.mean() - theirs.loc[ours.index].mean())
    row = table[table["primary"] & (table["group"] == "minority")].iloc[0]
    assert row["estimate"] == pytest.approx(np.mean(differences))
    assert row["n_seeds"] == 2
    for flag in (True, False):  # Holm within the primary rows, and within the secondary ones
        family = table[table["primary"] == flag]
        np.testing.assert_allclose(family["p_holm"], contrasts.holm(family["p"].to_numpy()), equal_nan=True)
    assert "variants" not in results.params(cfg)


def test_calibration_effect_pairs_raw_and_calibrated_policies_per_seed(tmp_path):
    base = write_fake_run(tmp_path / "run")
    cfg = fake_config(tmp_path / "run", **{"sweep.calibrations": ["none", "center"]})
    variants.link(cfg)
    write_variant_evals(base, variants.variant_config(cfg, "default", "center"), majority_per_seed=0.1)
    effect = contrasts.calibration_effect(cfg, results.load_evals).set_index(["policy", "proportion", "group"])
    row = effect.loc[("maxmin", 0.1, "majority")]
    assert row["difference"] == pytest.approx(0.15)  # seeds 1 and 2: +0.1 and +0.2
    assert (
        row["n_seeds"] == 2 and row["calibrated"] == "center" and row["budget"] == "matched"
    )  # smoke trains every method alike
    assert row["gold_calibrated"] - row["gold_raw"] == pytest.approx(0.15)
    assert row["binds_raw"] == pytest.approx(1 - 0.2 * 1.5) and row["binds_calibrated"] == 0.5
    assert effect.loc[("maxmin", 0.1, "minority"), "difference"] == pytest.approx(0.0)
    assert np.isnan(effect.loc[("maxmin", 0.1, "min"), "binds_raw"])  # the min over groups is no head
    assert set(effect.index.get_level_values("policy")) == set(base.policy_methods())


def write_variant_evals(base, vcfg, minority_shift: dict | None = None, majority_per_seed: float = 0.0) -> None:
    """A variant's evaluation files: the run's own, with a policy's minority scores shifted by `minority_shift` and
    every majority score by `majority_per_seed` x seed; a calibrated variant's policies get a calibration.json whose
    minority head binds on 0.2 x seed of the reference set raw and on half of it calibrated."""
    for seed in SEEDS:
        for prop in PROPORTIONS:
            for method in base.policy_methods():
                pid = policy_id(seed, prop, method)
                table = pd.read_parquet(eval_file(base.run_path, pid))
                table["group_minority"] += (minority_shift or {}).get(method, 0.0)
                table["group_majority"] += majority_per_seed * seed
                eval_file(vcfg.run_path, pid).parent.mkdir(parents=True, exist_ok=True)
                table.to_parquet(eval_file(vcfg.run_path, pid), index=False)
                manifest = f"{pid}.manifest.json"
                shutil.copy(
                    eval_file(base.run_path, pid).with_name(manifest), eval_file(vcfg.run_path, pid).with_name(manifest)
                )
                if vcfg.calibration.mode != "none":
                    folder = policy_dir(vcfg.run_path, seed, prop, method)
                    folder.mkdir(parents=True)
                    raw = {"minority": 0.2 * seed, "majority": 1 - 0.2 * seed}
                    half = {"minority": 0.5, "majority": 0.5}
                    (folder / "calibration.json").write_text(
                        json.dumps({"mode": vcfg.calibration.mode, "binds_raw": raw, "binds_calibrated": half})
                    )


def write_budgets(cfg) -> None:
    """Each seed x p reward-model stage's budgets.csv, by hand: maxmin and sharedrep-k2 at the default and two grid
    cells; minority test accuracy 0.5 + 0.1 x seed for sharedrep-k2 at the matched cell, 0.5 elsewhere, 10 pairs."""
    rows = []
    for policy in ("maxmin", "sharedrep-k2"):
        for setting, lr in (("default", 3e-3), ("lr0.001-ep1", 1e-3), ("lr0.003-ep1", 3e-3)):
            for split in ("validation", "test"):
                for group in ("overall", "minority", "majority"):
                    rows.append({"policy": policy, "method": policy.split("-")[0], "k": 2 if "-" in policy else None,
                                 "setting": setting, "learning_rate": lr, "num_epochs": 1, "batch_size": 16,
                                 "optimizer_steps": 4, "split": split, "group": group, "n": 10, "accuracy": 0.5,
                                 "matched": setting == "lr0.001-ep1", "tuned": setting == "lr0.003-ep1"})  # fmt: skip
    for seed in SEEDS:
        for prop in PROPORTIONS:
            table = pd.DataFrame(rows)
            lift = (
                (table["policy"] == "sharedrep-k2")
                & (table["setting"] == "lr0.001-ep1")
                & (table["group"] == "minority")
            )
            table.loc[lift, "accuracy"] = 0.5 + 0.1 * seed
            table.to_csv(rm_dir(cfg.run_path, seed, prop) / "budgets.csv", index=False)


def test_results_of_a_run_with_a_grid_and_variants_write_every_table_and_figure(tmp_path, monkeypatch):
    base = write_fake_run(tmp_path / "run")
    cfg = fake_config(tmp_path / "run", **{**GRID, "reward_model.grid.learning_rates": [1e-3, 3e-3],
                                           "reward_model.grid.num_epochs": [1, 2]})  # fmt: skip
    variants.link(cfg)
    for _, mode, vcfg in variants.others(cfg):
        write_variant_evals(base, vcfg, minority_shift={"sharedrep-k2": 0.1 if mode == "center" else 0.0})
    write_budgets(cfg)
    out = tmp_path / "results"
    out.mkdir()
    reads, load_evals = [], results.load_evals
    monkeypatch.setattr(results, "load_evals", lambda c: reads.append(c.run_path) or load_evals(c))
    results.build(cfg, out)
    assert sorted(map(str, reads)) == sorted({str(v.run_path) for v in [cfg, *(c for *_, c in variants.others(cfg))]})
    assert len(reads) == 4  # each variant's evaluations read once, for the contrasts and the calibration effect
    written = ["contrasts.csv", "calibration_effect.csv", "budgets.csv", "budgets_pooled.csv",
               "rm_accuracy_by_budget.csv", "budget_gaps.csv", "primary_contrast.png", "budget_gaps.png"]  # fmt: skip
    for name in written:
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "contrasts.csv")
    assert len(table[table["primary"]]) == 2 * 4  # the declared contrast on 2 outcomes under 4 variants
    accuracy = pd.read_csv(out / "rm_accuracy_by_budget.csv").set_index(["budget", "proportion", "policy", "group"])
    # matched, sharedrep-k2, minority: seeds 1 and 2 at 0.6 and 0.7 on 10 pairs each -> 13 of 20
    row = accuracy.loc[("matched", 0.1, "sharedrep-k2", "minority")]
    assert (row["n"], row["accuracy"]) == (20, pytest.approx(0.65))
    assert accuracy.loc[("tuned", 0.1, "sharedrep-k2", "minority"), "accuracy"] == pytest.approx(0.5)
    shown = report.budget_overview(out)  # notebook 06's budget tables
    assert len(shown["accuracy"]) == len(accuracy) and len(shown["gaps"]) == len(pd.read_csv(out / "budget_gaps.csv"))
    gaps = pd.read_csv(out / "budget_gaps.csv").set_index(["proportion", "budget", "group"])
    assert gaps.loc[(0.3, "matched", "minority"), "estimate"] == pytest.approx(0.15)  # 0.1 and 0.2 over MaxMin
