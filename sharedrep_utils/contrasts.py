"""One declared contrast, with the seed as the unit of replication (results/contrasts.csv).

A contrast is policy minus baseline on one gold outcome (a group's score, or `min`, the min over groups of
the gold group scores) at one minority proportion. Per seed, both policies are scored on the prompt ids they
share (matched by id, as everywhere in stats.py) and each is averaged over them; the seed's difference is
policy mean − baseline mean. The estimate is the mean of the per-seed differences, the interval a t interval
across seeds at `results.confidence`, the p-value the one-sample t-test of the differences against 0.

The profile declares its primary contrast before the run (`results.primary`; default SharedRep(K) − MaxMin,
K the smallest swept, at the smallest p, on the minority group and on the min over groups). Every other
contrast (each other reward-model policy − the baseline, at every p, on every outcome) is secondary. `p_holm`
is Holm-adjusted within its family: the declared primary rows together, and all secondary rows together.
With one seed the estimate is shown and the interval and p-values are NaN: the seed is the unit, and one is
not enough; the same when every seed's difference is the same (no spread across seeds to estimate from). The
`note` column says which. Prompt-level noise within a seed is not the experiment's uncertainty and is not used
here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .config import Config
from .methods import method_label, policy_name, split_method
from .stats import Evals, gold_min

COLUMNS = [
    "contrast",
    "primary",
    "policy",
    "baseline",
    "group",
    "proportion",
    "budget",
    "calibrated",
    "estimate",
    "ci_low",
    "ci_high",
    "n_seeds",
    "p",
    "p_holm",
    "confidence",
    "note",
]
BY_SEED_COLUMNS = ["contrast", "policy", "baseline", "group", "proportion", "seed", "n", "policy_mean",
                   "baseline_mean", "difference"]  # fmt: skip
MIN_OUTCOME = "min"  # the min over groups of the gold group scores (what the gold policy maximises)
ONE_SEED_NOTE = "one seed: the seed is the unit of replication, and one is not enough for an interval or a p-value"
NO_SPREAD_NOTE = "every seed's difference is the same: no spread across seeds to give an interval or a p-value"


def primary_contrast(cfg: Config) -> dict:
    """`results.primary` with its defaults filled in: policy, baseline, proportion, groups (None when the run
    lacks what the default needs: no SharedRep, or no MaxMin)."""
    primary = cfg.results.primary
    policy = primary.policy or (
        policy_name("sharedrep", min(cfg.reward_model.ks)) if "sharedrep" in cfg.reward_model.methods else None
    )
    baseline = primary.baseline or ("maxmin" if "maxmin" in cfg.reward_model.methods else None)
    return {
        "policy": policy,
        "baseline": baseline,
        "proportion": primary.proportion if primary.proportion is not None else min(cfg.sweep.proportions),
        "groups": list(primary.groups) or [cfg.gold.minority_group, MIN_OUTCOME],
    }


def budget(cfg: Config) -> str:
    """How the reward models' optimiser budgets compare: with a grid (budgets.py), `reward_model.budget` (matched,
    tuned; default reads as below). Else "matched" when every trained method has the same learning rate, epochs,
    batch size, passes, schedule and clipping, else "unmatched" (the paper's defaults: 5e-4 vs 5e-5). MaxMin's step
    count still differs (one run per group on its own pairs)."""
    if cfg.reward_model.grid.learning_rates and cfg.reward_model.budget != "default":
        return cfg.reward_model.budget
    settings = {
        (hp.learning_rate, hp.num_epochs, hp.batch_size, hp.train_passes, hp.lr_scheduler, hp.max_grad_norm)
        for hp in (getattr(cfg.reward_model, m) for m in cfg.reward_model.methods)
    }
    return "matched" if len(settings) == 1 else "unmatched"


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m − i + 1), made non-decreasing in
    that order and capped at 1. NaN p-values (no test: one seed, or no spread) stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        out[index] = running
    return out


def no_spread(differences) -> bool:
    """Every difference the same, up to float rounding (0.7 - 0.2 and 0.9 - 0.4 differ in the last bit)."""
    d = np.asarray(differences, dtype=float)
    return len(d) > 1 and float(np.ptp(d)) <= 1e-9 * max(1.0, float(np.abs(d).max()))


def seed_interval(differences, confidence: float) -> tuple[float, float, float, float]:
    """(mean, t-interval low, high, one-sample t-test p) of per-seed differences. NaN but the mean for one seed,
    and when every seed's difference is the same (`no_spread`): with no spread across seeds there is nothing to
    estimate an interval from (the t-test would call equal non-zero differences certain, p ~ 0; a small test set
    makes equal accuracy gaps likely)."""
    d = np.asarray(differences, dtype=float)
    if len(d) == 0:
        return (float("nan"),) * 4
    mean = float(d.mean())
    if len(d) < 2 or no_spread(d):
        return mean, float("nan"), float("nan"), float("nan")
    test = scipy_stats.ttest_1samp(d, 0.0)
    interval = test.confidence_interval(confidence)
    return mean, float(interval.low), float(interval.high), float(test.pvalue)


def interval_note(differences) -> str:
    """Why a contrast has no interval: one seed, or no spread across seeds; empty when it has one."""
    if len(differences) == 1:
        return ONE_SEED_NOTE
    return NO_SPREAD_NOTE if no_spread(differences) else ""


def outcome_scores(table: pd.DataFrame, outcome: str, groups: list[str]) -> pd.Series:
    """Per prompt id: a group's gold score, or the min over groups (`min`)."""
    if outcome == MIN_OUTCOME:
        return gold_min(table, groups)
    return pd.Series(table[f"group_{outcome}"].to_numpy(dtype=float), index=table["prompt_id"].to_numpy())


def _table(evals: Evals, seed: int, proportion: float, policy: str) -> pd.DataFrame | None:
    """A policy's evaluation for this seed and proportion; gold (per seed) and SFT (once) wherever asked."""
    for key in ((seed, proportion, policy), (seed, None, policy), (None, None, policy)):
        if key in evals:
            return evals[key]
    return None


def paired_differences(
    evals: Evals, policy: str, baseline: str, proportion: float, outcome: str, groups: list[str]
) -> pd.DataFrame:
    """One row per seed that has both policies: n shared prompts, each policy's mean over them, the difference."""
    seeds = sorted({s for (s, p, m) in evals if m == policy and p in (proportion, None) and s is not None})
    rows = []
    for seed in seeds:
        ours, theirs = _table(evals, seed, proportion, policy), _table(evals, seed, proportion, baseline)
        if ours is None or theirs is None:
            continue
        a, b = outcome_scores(ours, outcome, groups), outcome_scores(theirs, outcome, groups)
        shared = a.index.intersection(b.index)
        if not len(shared):
            continue
        pm, bm = float(a[shared].mean()), float(b[shared].mean())
        rows.append({"seed": seed, "n": len(shared), "policy_mean": pm, "baseline_mean": bm, "difference": pm - bm})
    return pd.DataFrame(rows, columns=["seed", "n", "policy_mean", "baseline_mean", "difference"])


def contrast_label(policy: str, baseline: str) -> str:
    """ "sharedrep-k2", "maxmin" -> "SharedRep (K=2) − MaxMin"."""
    return f"{method_label(*split_method(policy))} − {method_label(*split_method(baseline))}"


def planned_contrasts(cfg: Config) -> list[tuple[str, str, float, str, bool]]:
    """(policy, baseline, proportion, outcome, primary) for every contrast: the declared primary ones first, then
    every other reward-model policy − the baseline at every p on every outcome (each group, then `min`)."""
    declared = primary_contrast(cfg)
    policy, baseline = declared["policy"], declared["baseline"]
    rows = []
    if policy and baseline:
        rows += [(policy, baseline, declared["proportion"], g, True) for g in declared["groups"]]
    reference = baseline or "maxmin"
    pairs = [(name, reference) for name in cfg.policy_methods() if name != reference]
    if policy and baseline and (policy, baseline) not in pairs:
        pairs.insert(0, (policy, baseline))
    outcomes = [*cfg.gold.groups, MIN_OUTCOME]
    seen = {(a, b, p, g) for a, b, p, g, _ in rows}
    for proportion in cfg.sweep.proportions:
        for a, b in pairs:
            rows += [(a, b, proportion, g, False) for g in outcomes if (a, b, proportion, g) not in seen]
    return rows


def contrast_tables(evals: Evals, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(contrasts, per-seed differences) for every planned contrast the evaluations hold."""
    groups, confidence = list(cfg.gold.groups), cfg.results.confidence
    rows, seed_rows = [], []
    for policy, baseline, proportion, outcome, primary in planned_contrasts(cfg):
        per_seed = paired_differences(evals, policy, baseline, proportion, outcome, groups)
        if per_seed.empty:
            continue
        label = contrast_label(policy, baseline)
        cell = {"contrast": label, "policy": policy, "baseline": baseline, "group": outcome, "proportion": proportion}
        seed_rows += [cell | row for row in per_seed.to_dict("records")]
        estimate, low, high, p = seed_interval(per_seed["difference"], confidence)
        rows.append(
            cell
            | {
                "primary": primary,
                "budget": budget(cfg),
                "calibrated": cfg.calibration.mode,
                "estimate": estimate,
                "ci_low": low,
                "ci_high": high,
                "n_seeds": len(per_seed),
                "p": p,
                "confidence": confidence,
                "note": interval_note(per_seed["difference"]),
            }
        )
    return adjust(pd.DataFrame(rows, columns=COLUMNS)), pd.DataFrame(seed_rows, columns=BY_SEED_COLUMNS)


def adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Holm within each family (the declared primary rows together, all secondary rows together)."""
    table = table.copy()
    table["p_holm"] = np.nan
    for flag in (True, False):
        family = table["primary"].astype(bool) == flag
        table.loc[family, "p_holm"] = holm(table.loc[family, "p"].to_numpy(dtype=float))
    return table


def variant_contrast_tables(cfg: Config, load: Callable[[Config], Evals]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`contrast_tables` for every budget × calibration variant of the run (variants.py), stacked, with Holm over
    each family as a whole: the declared contrast under every variant is one family of primary rows. `load` reads
    a config's evaluations (stages.results.load_evals)."""
    from .variants import variant_config, variant_settings

    tables, by_seed = [], []
    for budget_name, mode in variant_settings(cfg):
        vcfg = variant_config(cfg, budget_name, mode)
        table, per_seed = contrast_tables(load(vcfg), vcfg)
        tables.append(table)
        by_seed.append(per_seed.assign(budget=budget(vcfg), calibrated=mode))
    return adjust(pd.concat(tables, ignore_index=True)), pd.concat(by_seed, ignore_index=True)


def contrasts_markdown(table: pd.DataFrame) -> str:
    """The primary contrasts as a Markdown table with a line on how to read them (summary.md, notebook 06)."""
    primary = table[table["primary"].astype(bool)]
    if primary.empty:
        return "No primary contrast: the run lacks the declared policy or baseline (results.primary).\n"
    level = f"{primary['confidence'].iloc[0]:.0%}"
    lines = [
        f"| primary contrast | outcome | proportion | estimate | {level} interval | seeds | p (Holm) | budget "
        "| calibrated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in primary.itertuples():
        interval = "n/a" if np.isnan(row.ci_low) else f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
        p_holm = "n/a" if np.isnan(row.p_holm) else f"{row.p_holm:.3g}"
        lines.append(
            f"| {row.contrast} | {row.group} | {row.proportion:g} | {row.estimate:+.4f} | {interval} | {row.n_seeds} "
            f"| {p_holm} | {row.budget} | {row.calibrated} |"
        )
    notes = sorted({n for n in primary["note"] if isinstance(n, str) and n})  # an empty note reads back as NaN
    text = "\n".join(lines) + "\n\n"
    text += (
        "Estimate: the mean over seeds of each seed's paired difference in gold score (policy − baseline, "
        "each averaged over the prompts both were evaluated on); interval: t interval across seeds; p (Holm): "
        "one-sample t-test of the per-seed differences, Holm-adjusted over the primary rows (under every budget and "
        "calibration the run has). Every other "
        "contrast is secondary (results/contrasts.csv).\n"
    )
    return text + "".join(f"\nNote: {n}.\n" for n in notes)


def mean_binding_shares(cfg: Config, policy: str, proportion: float, mode: str) -> dict[str, tuple[float, float]]:
    """{group: (raw, calibrated)}: the share of reference responses on which the group's head binds in the min,
    mean over the seeds' calibrated policies of this name at this proportion (their calibration.json)."""
    from . import calibration
    from .runs import policy_dir

    fitted = [calibration.read(policy_dir(cfg.run_path, seed, proportion, policy), mode) for seed in cfg.sweep.seeds]
    return {
        g: (
            float(np.mean([f["binds_raw"][g] for f in fitted])),
            float(np.mean([f["binds_calibrated"][g] for f in fitted])),
        )
        for g in cfg.gold.groups
    }


def calibration_effect(cfg: Config, load: Callable[[Config], Evals]) -> pd.DataFrame:
    """What a calibrated min changes, per budget, policy and outcome (with `sweep.calibrations` variants): the share
    of the reference responses on which the group's head binds, raw and calibrated (`mean_binding_shares`), and the gold
    score under the raw min (the `none` variant of the same budget) and under the calibrated one, paired per seed
    (calibrated − raw, t interval across seeds; `p_holm` over the file's rows). Empty without a `none` variant and
    a calibrated one."""
    from .variants import variant_config, variant_settings

    settings, groups = variant_settings(cfg), list(cfg.gold.groups)
    rows = []
    for budget_name in dict.fromkeys(b for b, _ in settings):
        modes = [m for b, m in settings if b == budget_name]
        if "none" not in modes:
            continue
        raw = load(variant_config(cfg, budget_name, "none"))
        for mode in [m for m in modes if m != "none"]:
            vcfg = variant_config(cfg, budget_name, mode)
            calibrated = load(vcfg)
            for policy in vcfg.policy_methods():
                both = {(s, p, m): t for (s, p, m), t in calibrated.items() if m == policy}
                both |= {(s, p, "raw"): t for (s, p, m), t in raw.items() if m == policy}
                for prop in vcfg.sweep.proportions:
                    shares = mean_binding_shares(vcfg, policy, prop, mode)
                    for outcome in [*groups, MIN_OUTCOME]:
                        per_seed = paired_differences(both, policy, "raw", prop, outcome, groups)
                        estimate, low, high, p = seed_interval(per_seed["difference"], cfg.results.confidence)
                        raw_share, calibrated_share = shares.get(outcome, (np.nan, np.nan))
                        gold_raw, gold_calibrated = per_seed["baseline_mean"].mean(), per_seed["policy_mean"].mean()
                        rows.append(
                            {"budget": budget(vcfg), "calibrated": mode, "policy": policy, "proportion": prop,
                             "group": outcome, "binds_raw": raw_share, "binds_calibrated": calibrated_share,
                             "gold_raw": gold_raw, "gold_calibrated": gold_calibrated,
                             "difference": estimate, "ci_low": low, "ci_high": high, "p": p, "n_seeds": len(per_seed)}
                        )  # fmt: skip
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p"].to_numpy(dtype=float))  # secondary: one Holm family over the file
    return out
