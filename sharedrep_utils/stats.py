"""Evaluation statistics: per-group mean ± SEM with bootstrap intervals, win rates against the gold
policy, head-to-head win rates between two methods, pooled over seeds and per seed.

Inputs are the per-policy evaluation tables (`eval/<policy-id>.parquet`) with a `group_<name>`
column per group and `prompt_id`; prompts are matched across policies by id, never by text.
Bootstrap intervals are percentile intervals that resample prompts within each seed (a seed's
prompts stay a seed's), from a generator seeded by the cell's name, so they repeat exactly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .methods import split_method

SUMMARY_COLUMNS = [
    "method",
    "k",
    "proportion",
    "group",
    "n",
    "n_seeds",
    "mean_gold_score",
    "sem_gold_score",
    "ci_low_gold_score",
    "ci_high_gold_score",
    "seed_sd_gold_score",
    "win_rate_vs_gold",
    "win_rate_ci_low",
    "win_rate_ci_high",
    "seed_sd_win_rate",
    "n_matched_vs_gold",
    "tie_share_vs_gold",
    "ties",
]
PER_SEED_COLUMNS = [
    "method",
    "k",
    "proportion",
    "group",
    "seed",
    "n",
    "mean_gold_score",
    "sem_gold_score",
    "win_rate_vs_gold",
    "n_matched_vs_gold",
]
HEAD_TO_HEAD_COLUMNS = [
    "method",
    "opponent",
    "k",
    "proportion",
    "group",
    "n",
    "n_seeds",
    "wins",
    "tie_count",
    "losses",
    "win_rate",
    "ci_low",
    "ci_high",
    "seed_sd_win_rate",
    "ties",
]
TIE_RULES = {"half": 0.5, "lose": 0.0}  # credit for a tie


@dataclass(frozen=True)
class Options:
    """How win rates and intervals are computed (filled from `cfg.results`)."""

    ties: str = "half"
    tie_tolerance: float = 0.0
    n_bootstrap: int = 2000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if self.ties not in TIE_RULES:
            raise ValueError(f"ties {self.ties!r} is not one of {', '.join(TIE_RULES)}.")


def sem(values: np.ndarray) -> float:
    """Standard error of the mean (sample std, ddof = 1); NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def spread(values: list[float]) -> float:
    """Sample standard deviation across seeds; NaN for fewer than two seeds."""
    values = [v for v in values if not np.isnan(v)]
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def bootstrap_ci(
    samples: list[np.ndarray], n_boot: int = 2000, confidence: float = 0.95, seed: int | list[int] = 0
) -> tuple[float, float]:
    """Percentile interval of the pooled mean, resampling values within each sample (seed) separately."""
    samples = [np.asarray(s, dtype=float) for s in samples if len(s)]
    total = sum(len(s) for s in samples)
    if total == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sums = np.zeros(n_boot)
    for values in samples:
        levels, counts = np.unique(values, return_counts=True)
        if len(levels) <= 16:  # win/tie/loss credits: resample the counts per level (same distribution, fast)
            sums += rng.multinomial(len(values), counts / len(values), size=n_boot) @ levels
        else:
            for start in range(0, n_boot, 256):  # in blocks that stay in cache
                rows = min(256, n_boot - start)
                idx = rng.integers(0, len(values), size=(rows, len(values)), dtype=np.int32)
                sums[start : start + rows] += values[idx].sum(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(sums / total, [alpha, 1 - alpha])
    return float(low), float(high)


def outcomes(
    ours: pd.DataFrame, reference: pd.DataFrame, column: str, ties: str = "half", tolerance: float = 0.0
) -> pd.DataFrame:
    """Per shared prompt (matched by prompt_id): win, tie, and the credit (1 win, 0 loss, tie per rule)."""
    for name, table in (("ours", ours), ("reference", reference)):
        dup = table["prompt_id"][table["prompt_id"].duplicated()]
        if len(dup):
            raise ValueError(f"prompt_id {dup.iloc[0]!r} appears twice in the {name} table; ids must be unique.")
    merged = ours[["prompt_id", column]].merge(reference[["prompt_id", column]], on="prompt_id", suffixes=("", "_ref"))
    diff = merged[column].to_numpy(dtype=float) - merged[f"{column}_ref"].to_numpy(dtype=float)
    tie = np.abs(diff) <= tolerance
    win = (diff > 0) & ~tie
    credit = np.where(win, 1.0, np.where(tie, TIE_RULES[ties], 0.0))
    return pd.DataFrame({"prompt_id": merged["prompt_id"], "win": win, "tie": tie, "credit": credit})


def win_rate(
    ours: pd.DataFrame, reference: pd.DataFrame, column: str, ties: str = "half", tolerance: float = 0.0
) -> tuple[float, int]:
    """Share of shared prompts (by prompt_id) where ours scores higher, a tie counting `ties`; and n."""
    out = outcomes(ours, reference, column, ties, tolerance)
    return (float(out["credit"].mean()), len(out)) if len(out) else (float("nan"), 0)


def _rng_seed(options: Options, *key) -> list[int]:
    """A generator seed per cell, from its name: intervals do not depend on the order cells are visited."""
    return [options.seed, zlib.crc32(repr(key).encode())]


Evals = dict[tuple[int | None, float | None, str], pd.DataFrame]


def _cells(evals: Evals) -> tuple[list[float], dict[tuple[str, float], list[tuple[int | None, pd.DataFrame]]]]:
    """(method, proportion) -> [(seed, table)]; gold and SFT (no proportion) go into every proportion."""
    proportions = sorted({p for (_, p, _) in evals if p is not None})
    cells: dict[tuple[str, float], list[tuple[int | None, pd.DataFrame]]] = {}
    for (seed, prop, method), table in evals.items():
        for p in [prop] if prop is not None else proportions:
            cells.setdefault((method, p), []).append((seed, table))
    return proportions, cells


def _references(gold: dict, seed: int | None) -> list[tuple[int, pd.DataFrame]]:
    """A policy is compared with its own seed's gold policy; one without a seed (SFT) with every seed's."""
    return [(seed, gold[seed])] if seed in gold else sorted(gold.items(), key=lambda kv: kv[0])


def _group_stats(method: str, runs, gold: dict, column: str, options: Options, key) -> tuple[dict, list[dict]]:
    scores = [t[column].to_numpy(dtype=float) for _, t in runs]
    values = np.concatenate(scores)
    per_seed = [
        {"seed": seed, "n": len(s), "mean_gold_score": float(s.mean()), "sem_gold_score": sem(s)}
        for (seed, _), s in zip(runs, scores)
    ]
    credits: list[np.ndarray] = []
    n_ties = 0
    if method != "gold":
        for row, (seed, table) in zip(per_seed, runs):
            seed_credits = []
            for _, ref in _references(gold, seed):
                out = outcomes(table, ref, column, options.ties, options.tie_tolerance)
                seed_credits.append(out["credit"].to_numpy())
                n_ties += int(out["tie"].sum())
            joined = np.concatenate(seed_credits) if seed_credits else np.array([])
            credits.append(joined)
            row.update(win_rate_vs_gold=float(joined.mean()) if len(joined) else float("nan"), n_matched=len(joined))
    matched = sum(len(c) for c in credits)
    ci = bootstrap_ci(scores, options.n_bootstrap, options.confidence, _rng_seed(options, "score", *key))
    wci = bootstrap_ci(credits, options.n_bootstrap, options.confidence, _rng_seed(options, "win", *key))
    pooled = {
        "n": len(values),
        "n_seeds": len({s for s, _ in runs}),
        "mean_gold_score": float(values.mean()),
        "sem_gold_score": sem(values),
        "ci_low_gold_score": ci[0],
        "ci_high_gold_score": ci[1],
        "seed_sd_gold_score": spread([r["mean_gold_score"] for r in per_seed]),
        "win_rate_vs_gold": float(np.concatenate(credits).mean()) if matched else float("nan"),
        "win_rate_ci_low": wci[0],
        "win_rate_ci_high": wci[1],
        "seed_sd_win_rate": spread([r.get("win_rate_vs_gold", float("nan")) for r in per_seed]),
        "n_matched_vs_gold": matched,
        "tie_share_vs_gold": n_ties / matched if matched else float("nan"),
        "ties": options.ties,
    }
    return pooled, per_seed


def summarize_all(evals: Evals, groups: list[str], options: Options = Options()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pooled rows (one per method, k, proportion, group) and per-seed rows, in one pass.

    `evals` maps (seed, proportion, method) to an evaluation table; the gold policy has proportion
    None and is reported once per proportion present (it is every proportion's reference); the SFT
    policy has seed and proportion None and is reported the same way, compared with each seed's gold.
    """
    _, cells = _cells(evals)
    gold = {seed: table for (seed, _, method), table in evals.items() if method == "gold"}
    rows, seed_rows, cache = [], [], {}
    for (method, prop), runs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        name, k = split_method(method)
        shared = any(p is None for (s, p, m) in evals if m == method)  # gold / SFT: same numbers per proportion
        for group in groups:
            key = (method, None if shared else prop, group)
            if key not in cache:
                cache[key] = _group_stats(method, runs, gold, f"group_{group}", options, key)
            pooled, per_seed = cache[key]
            ids = {"method": name, "k": k, "proportion": prop, "group": group}
            rows.append({**ids, **pooled})
            for r in per_seed:
                seed_rows.append({**ids, **r, "n_matched_vs_gold": r.get("n_matched", 0)})
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")  # empty (not 0, not NaN-as-float) for methods without K
    by_seed = pd.DataFrame(seed_rows, columns=PER_SEED_COLUMNS)
    by_seed["k"] = by_seed["k"].astype("Int64")
    by_seed["seed"] = by_seed["seed"].astype("Int64")
    by_seed["win_rate_vs_gold"] = by_seed["win_rate_vs_gold"].astype(float)
    return frame, by_seed


def summarize(evals: Evals, groups: list[str], options: Options = Options()) -> pd.DataFrame:
    """One row per (method, k, proportion, group), pooled over seeds (see `summarize_all`)."""
    return summarize_all(evals, groups, options)[0]


def head_to_head(
    evals: Evals, groups: list[str], method: str = "sharedrep", opponent: str = "maxmin", options: Options = Options()
) -> pd.DataFrame:
    """Win rate of `method` (every K) against `opponent` on the same prompts, same seed and proportion.

    One row per (k, proportion, group), pooled over seeds, with a bootstrap interval and the
    per-seed spread; a tie counts by `options.ties`.
    """
    rows = []
    names = sorted({m for (_, _, m) in evals if split_method(m)[0] == method}, key=lambda m: split_method(m)[1] or 0)
    props = sorted({p for (_, p, m) in evals if p is not None and m == opponent})
    for name in names:
        k = split_method(name)[1]
        for prop in props:
            pairs = [
                (seed, table, evals[(seed, prop, opponent)])
                for (seed, p, m), table in sorted(evals.items(), key=lambda kv: str(kv[0][0]))
                if m == name and p == prop and (seed, prop, opponent) in evals
            ]
            if not pairs:
                continue
            for group in groups:
                column = f"group_{group}"
                outs = [outcomes(a, b, column, options.ties, options.tie_tolerance) for _, a, b in pairs]
                credit = [o["credit"].to_numpy() for o in outs]
                n = sum(len(c) for c in credit)
                wins = sum(int(o["win"].sum()) for o in outs)
                ties = sum(int(o["tie"].sum()) for o in outs)
                key = ("h2h", name, opponent, prop, group)
                low, high = bootstrap_ci(credit, options.n_bootstrap, options.confidence, _rng_seed(options, *key))
                rows.append(
                    {
                        "method": method,
                        "opponent": opponent,
                        "k": k,
                        "proportion": prop,
                        "group": group,
                        "n": n,
                        "n_seeds": len(pairs),
                        "wins": wins,
                        "tie_count": ties,
                        "losses": n - wins - ties,
                        "win_rate": float(np.concatenate(credit).mean()) if n else float("nan"),
                        "ci_low": low,
                        "ci_high": high,
                        "seed_sd_win_rate": spread([float(c.mean()) if len(c) else float("nan") for c in credit]),
                        "ties": options.ties,
                    }
                )
    frame = pd.DataFrame(rows, columns=HEAD_TO_HEAD_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")
    return frame
