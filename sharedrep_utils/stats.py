"""Evaluation statistics: per-group mean ± SEM of gold group scores, and win rate against the gold policy.

Inputs are the per-policy evaluation tables (`eval/<policy-id>.parquet`) with a `group_<name>`
column per group and `prompt_id`; prompts are matched across policies by id, never by text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = [
    "method",
    "k",
    "proportion",
    "group",
    "n",
    "n_seeds",
    "mean_gold_score",
    "sem_gold_score",
    "win_rate_vs_gold",
]


def sem(values: np.ndarray) -> float:
    """Standard error of the mean (sample std, ddof = 1); NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def win_rate(ours: pd.DataFrame, reference: pd.DataFrame, column: str) -> tuple[float, int]:
    """Share of shared prompts (by prompt_id) where ours scores strictly higher; ties are losses."""
    merged = ours[["prompt_id", column]].merge(reference[["prompt_id", column]], on="prompt_id", suffixes=("", "_ref"))
    if merged.empty:
        return float("nan"), 0
    return float((merged[column] > merged[f"{column}_ref"]).mean()), len(merged)


def split_method(method: str) -> tuple[str, int | None]:
    """ "sharedrep-k16" -> ("sharedrep", 16); other names have no K."""
    if method.startswith("sharedrep-k"):
        return "sharedrep", int(method.removeprefix("sharedrep-k"))
    return method, None


def summarize(evals: dict[tuple[int | None, float | None, str], pd.DataFrame], groups: list[str]) -> pd.DataFrame:
    """One row per (method, k, proportion, group), pooled over seeds.

    `evals` maps (seed, proportion, method) to an evaluation table; the gold policy has
    proportion None and is reported once per proportion present (it is every proportion's reference);
    the SFT policy has seed and proportion None and is reported the same way.
    """
    proportions = sorted({p for (_, p, _) in evals if p is not None})
    cells: dict[tuple[str, float], list[tuple[int | None, pd.DataFrame]]] = {}
    for (seed, prop, method), table in evals.items():
        for p in [prop] if prop is not None else proportions:
            cells.setdefault((method, p), []).append((seed, table))
    gold = {seed: table for (seed, _, method), table in evals.items() if method == "gold"}
    rows = []
    for (method, prop), runs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        name, k = split_method(method)
        for group in groups:
            column = f"group_{group}"
            values = np.concatenate([t[column].to_numpy() for _, t in runs])
            wins, n_matched = [], 0
            if method != "gold":
                for seed, table in runs:
                    refs = [gold[seed]] if seed in gold else list(gold.values())
                    for ref in refs:
                        rate, n = win_rate(table, ref, column)
                        if n:
                            wins.append(rate * n)
                            n_matched += n
            rows.append(
                {
                    "method": name,
                    "k": k,
                    "proportion": prop,
                    "group": group,
                    "n": len(values),
                    "n_seeds": len({s for s, _ in runs}),
                    "mean_gold_score": float(values.mean()),
                    "sem_gold_score": sem(values),
                    "win_rate_vs_gold": sum(wins) / n_matched if n_matched else float("nan"),
                }
            )
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")  # empty (not 0, not NaN-as-float) for methods without K
    return frame
