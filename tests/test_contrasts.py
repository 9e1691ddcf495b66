"""results/contrasts.csv: the declared primary contrast with the seed as the unit, secondary contrasts with
Holm-adjusted p-values; expected values computed by hand (closed forms of the t distribution at 1 and 2 df)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sharedrep_utils import contrasts
from sharedrep_utils.config import ConfigError, load_config


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(contrasts.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(contrasts.holm([0.5, 0.6]), [1.0, 1.0])  # 0.5 x 2 = 1, capped; then kept monotone
    out = contrasts.holm([np.nan, 0.02, 0.04])  # NaN is no test: m = 2
    assert np.isnan(out[0]) and out[1:].tolist() == pytest.approx([0.04, 0.04])


def test_seed_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3); with 2 df, t quantile (2u-1)/sqrt(2u(1-u)) at u = 0.975
    # and two-sided p = 1 - t/sqrt(2 + t^2) at t = 2 sqrt(3)
    t_975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    half = t_975 / math.sqrt(3)
    mean, low, high, p = contrasts.seed_interval([1.0, 2.0, 3.0], 0.95)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert p == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14))
    one = contrasts.seed_interval([0.7], 0.95)
    assert one[0] == 0.7 and all(np.isnan(v) for v in one[1:])
    # every seed the same gap (e.g. one minority pair each way on a tiny test set): no spread, no interval, no p
    for same in ([0.5, 0.5, 0.5], [0.0, 0.0], [0.7 - 0.2, 0.9 - 0.4, 0.5]):  # the last: equal up to float rounding
        equal = contrasts.seed_interval(same, 0.95)
        assert equal[0] == pytest.approx(0.5 if same[0] else 0.0) and all(np.isnan(v) for v in equal[1:])
        assert contrasts.interval_note(same) == contrasts.NO_SPREAD_NOTE
    assert contrasts.interval_note([0.7]) == contrasts.ONE_SEED_NOTE and contrasts.interval_note([0.1, 0.2]) == ""


def table(ids, minority, majority):
    return pd.DataFrame(
        {
            "prompt_id": ids,
            "completion": [f"c{i}" for i in range(len(ids))],
            "group_minority": minority,
            "group_majority": majority,
        }
    )


def hand_evals(seeds=(1, 2)):
    """Two seeds at p 0.1; each file in its own prompt order, SharedRep with a prompt MaxMin lacks (ignored)."""
    values = {  # seed -> policy -> minority scores on p0, p1
        1: {"sharedrep-k2": [1.0, 0.5], "maxmin": [0.5, 0.0], "uniform": [0.5, 0.5]},
        2: {"sharedrep-k2": [0.2, 0.4], "maxmin": [0.1, 0.1], "uniform": [0.3, 0.1]},
    }
    evals = {}
    for seed in seeds:
        for policy, (a, b) in values[seed].items():
            if policy == "sharedrep-k2":
                evals[(seed, 0.1, policy)] = table(["p1", "px", "p0"], [b, 9.0, a], [0.6, 9.0, 0.6])
            else:
                evals[(seed, 0.1, policy)] = table(["p0", "p1"], [a, b], [0.6, 0.6])
        evals[(seed, None, "gold")] = table(["p0", "p1"], [1.0, 1.0], [1.0, 1.0])
    return evals


def config(seeds=(1, 2), **extra):
    return load_config(
        "smoke", {"sweep.seeds": list(seeds), "sweep.proportions": [0.1], "reward_model.ks": [2], **extra}
    )


def test_the_primary_contrast_is_the_mean_of_paired_per_seed_differences():
    frame, by_seed = contrasts.contrast_tables(hand_evals(), config())
    primary = frame[frame["primary"]]
    assert primary["contrast"].tolist() == ["SharedRep (K=2) − MaxMin"] * 2
    assert primary["group"].tolist() == ["minority", "min"]
    # minority: seed 1 0.75 - 0.25 = 0.5, seed 2 0.3 - 0.1 = 0.2 (prompt px, which MaxMin lacks, left out)
    minority = primary.iloc[0]
    assert minority["estimate"] == pytest.approx(0.35) and minority["n_seeds"] == 2
    # 1 df: the t quantile is tan(pi (u - 1/2)), the two-sided p is 1 - (2/pi) atan(|t|); se = 0.15
    half = math.tan(math.pi * 0.475) * 0.15
    assert (minority["ci_low"], minority["ci_high"]) == pytest.approx((0.35 - half, 0.35 + half))
    p_minority = 1 - 2 / math.pi * math.atan(0.35 / 0.15)
    assert minority["p"] == pytest.approx(p_minority)
    # min over groups (majority 0.6 everywhere): seed 1 mean(0.6, 0.5) - 0.25 = 0.3, seed 2 0.3 - 0.1 = 0.2
    low = primary.iloc[1]
    assert low["estimate"] == pytest.approx(0.25)
    p_min = 1 - 2 / math.pi * math.atan(0.25 / 0.05)
    # Holm over the two primary rows: the smaller times 2, the larger times 1, kept monotone
    assert primary["p_holm"].tolist() == pytest.approx(sorted([max(p_minority, 2 * p_min), 2 * p_min])[::-1])
    assert set(primary["budget"]) == {"matched"} and set(primary["calibrated"]) == {"none"}
    seed_rows = by_seed[(by_seed["group"] == "minority") & (by_seed["policy"] == "sharedrep-k2")]
    assert seed_rows["difference"].tolist() == pytest.approx([0.5, 0.2]) and seed_rows["n"].tolist() == [2, 2]


def test_every_other_contrast_is_secondary_with_holm_over_its_family():
    frame, _ = contrasts.contrast_tables(hand_evals(), config())
    secondary = frame[~frame["primary"]]
    assert set(zip(secondary["policy"], secondary["group"])) == {
        ("sharedrep-k2", "majority"),
        ("uniform", "minority"),
        ("uniform", "majority"),
        ("uniform", "min"),
    }
    # uniform - maxmin, minority: seed 1 0.5 - 0.25 = 0.25, seed 2 0.2 - 0.1 = 0.1; majority: 0 and 0 (no test)
    uniform = secondary.set_index(["policy", "group"]).loc[("uniform", "minority")]
    assert uniform["estimate"] == pytest.approx(0.175)
    tested = secondary["p"].notna()
    np.testing.assert_allclose(secondary.loc[tested, "p_holm"], contrasts.holm(secondary.loc[tested, "p"]))
    assert set(frame.columns) >= {"contrast", "primary", "group", "proportion", "budget", "calibrated", "estimate",
                                  "ci_low", "ci_high", "n_seeds", "p_holm"}  # fmt: skip


def test_one_seed_shows_the_estimate_and_says_it_is_not_enough():
    frame, _ = contrasts.contrast_tables(hand_evals(seeds=(1,)), config(seeds=(1,)))
    primary = frame[frame["primary"]].iloc[0]
    assert primary["estimate"] == pytest.approx(0.5) and primary["n_seeds"] == 1
    assert np.isnan(primary["ci_low"]) and np.isnan(primary["p"]) and np.isnan(primary["p_holm"])
    assert "one is not enough" in primary["note"]
    assert "one is not enough" in contrasts.contrasts_markdown(frame)


def test_the_declared_contrast_defaults_and_settings():
    cfg = load_config("smoke", {"reward_model.ks": [16, 4], "sweep.proportions": [0.2, 0.05]})
    assert contrasts.primary_contrast(cfg) == {
        "policy": "sharedrep-k4",  # the smallest K
        "baseline": "maxmin",
        "proportion": 0.05,  # the smallest p
        "groups": ["minority", "min"],
    }
    cfg = load_config(
        "smoke",
        {
            "results.primary": {"policy": "uniform", "proportion": 0.1, "groups": ["majority"]},
            "sweep.proportions": [0.1],
        },
    )
    assert contrasts.primary_contrast(cfg)["policy"] == "uniform"
    assert contrasts.planned_contrasts(cfg)[0] == ("uniform", "maxmin", 0.1, "majority", True)
    assert contrasts.budget(load_config("paper")) == "unmatched"  # SharedRep 5e-4, MaxMin 5e-5


@pytest.mark.parametrize(
    "override, message",
    [
        ({"results.primary.policy": "sharedrep-k3"}, "results.primary.policy 'sharedrep-k3' is not a policy"),
        ({"results.primary.proportion": 0.3}, "results.primary.proportion 0.3 is not swept"),
        ({"results.primary.groups": ["minorty"]}, "results.primary.groups names 'minorty'"),
    ],
)
def test_a_bad_declaration_is_refused_before_any_work(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", override)


def test_the_results_stage_writes_contrasts_csv(tmp_path):
    from fake_run import write_fake_run

    from sharedrep_utils.runs import eval_file, policy_id, results_dir
    from sharedrep_utils.stages import results

    cfg = write_fake_run(tmp_path / "run")
    results.main(cfg)
    frame = pd.read_csv(results_dir(cfg.run_path) / "contrasts.csv")
    primary = frame[frame["primary"]]
    # smoke's default: SharedRep(K=2) - MaxMin at the smallest p (0.1), minority and min over groups; 2 seeds
    assert primary[["contrast", "group", "proportion", "n_seeds"]].values.tolist() == [
        ["SharedRep (K=2) − MaxMin", "minority", 0.1, 2],
        ["SharedRep (K=2) − MaxMin", "min", 0.1, 2],
    ]
    by_seed = pd.read_csv(results_dir(cfg.run_path) / "contrasts_by_seed.csv")
    cell = by_seed[(by_seed["policy"] == "sharedrep-k2") & (by_seed["group"] == "minority")]
    cell = cell[cell["proportion"] == 0.1]
    assert primary["estimate"].iloc[0] == pytest.approx(cell["difference"].mean())
    # recomputed from the evaluation files: per seed, each policy's mean minority score on the shared prompts
    differences = []
    for seed in sorted(cell["seed"]):
        ours = pd.read_parquet(eval_file(cfg.run_path, policy_id(seed, 0.1, "sharedrep-k2"))).set_index("prompt_id")
        theirs = pd.read_parquet(eval_file(cfg.run_path, policy_id(seed, 0.1, "maxmin"))).set_index("prompt_id")
        shared = ours.index.intersection(theirs.index)
        differences.append(ours.loc[shared, "group_minority"].mean() - theirs.loc[shared, "group_minority"].mean())
    assert len(differences) == 2 and primary["estimate"].iloc[0] == pytest.approx(sum(differences) / 2)
    assert "SharedRep (K=2) − MaxMin" in (results_dir(cfg.run_path) / "summary.md").read_text()
