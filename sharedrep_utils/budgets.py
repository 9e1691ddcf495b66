"""Reward-model budgets: how much of a SharedRep–MaxMin gap is optimisation (`reward_model.budget`, `.grid`).

Three budgets, each a head setting per method:
- default: each method's own settings (`reward_model.maxmin`, `.sharedrep`, ...), the paper's, unmatched
  (upstream trains SharedRep at 10× MaxMin's learning rate);
- matched: one grid cell (`grid.matched`: learning rate, epochs, at `grid.batch_size`) for every method;
- tuned: each method's grid cell with the best validation accuracy, the mean over groups of each group's accuracy
  (so a small minority counts as much as a large majority); the first such cell in grid order on a tie.

Every method trains at every grid cell, so the reader sees the comparison across the whole grid, not one cell
that might pick the winner. What a cell changes is the optimiser budget only: the learning rate, the epochs and
the batch size; each method keeps its loss and architecture (tanh, passes, schedule, mixing). Optimiser steps
are recorded per cell: MaxMin trains one run per group on that group's pairs, so its steps still differ.

With a grid, each group's training pairs are split once more (`groups.split_pairs`, the run's seed): the
validation share picks `tuned`, and every budget trains on the rest, so the three see the same pairs and the
test pairs stay untouched by any choice.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from .config import BudgetGridConfig, HeadConfig, cell_name
from .reward_models import GroupHeads, pair_metrics, train_heads
from .stats import accuracy_interval

DEFAULT = "default"
COLUMNS = ["policy", "method", "k", "setting", "learning_rate", "num_epochs", "batch_size", "optimizer_steps",
           "split", "group", "n", "accuracy", "matched", "tuned"]  # fmt: skip

GAP_COLUMNS = ["proportion", "policy", "baseline", "budget", "group", "estimate", "ci_low", "ci_high", "p", "n_seeds",
               "policy_steps", "baseline_steps"]  # fmt: skip
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # chosen features, rejected features, group ids


def settings(own: HeadConfig, grid: BudgetGridConfig) -> dict[str, HeadConfig]:
    """{setting name: head config}: the method's own (default), then every grid cell in grid order."""
    out = {DEFAULT: own}
    for lr in grid.learning_rates:
        for epochs in grid.num_epochs:
            cell = replace(own, learning_rate=lr, num_epochs=int(epochs), batch_size=grid.batch_size)
            out[cell_name(lr, epochs)] = cell
    return out


def matched_cell(grid: BudgetGridConfig) -> str:
    return cell_name(grid.matched[0], int(grid.matched[1]))


def tuned_cell(table: pd.DataFrame, policy: str) -> str:
    """A policy's grid cell with the best mean-over-groups validation accuracy (the first in grid order on a tie)."""
    rows = table[(table["policy"] == policy) & (table["split"] == "validation") & (table["setting"] != DEFAULT)]
    rows = rows[rows["group"] != "overall"]
    order = list(dict.fromkeys(rows["setting"]))  # grid order, as the table was written
    means = rows.groupby("setting", sort=False)["accuracy"].mean().reindex(order)
    if means.isna().all():
        raise ValueError(f"No validation accuracy for {policy!r}: every group's validation split is empty.")
    return str(means.idxmax())


def chosen_setting(budget: str, table: pd.DataFrame, policy: str, grid: BudgetGridConfig) -> str:
    if budget == DEFAULT:
        return DEFAULT
    return matched_cell(grid) if budget == "matched" else tuned_cell(table, policy)


def metric_rows(policy: str, method: str, k: int | None, setting: str, hp: HeadConfig, steps: int, split: str,
                metrics: dict) -> list[dict]:  # fmt: skip
    return [
        {
            "policy": policy,
            "method": method,
            "k": k,
            "setting": setting,
            "learning_rate": hp.learning_rate,
            "num_epochs": hp.num_epochs,
            "batch_size": hp.batch_size,
            "optimizer_steps": steps,
            "split": split,
            "group": group,
            "n": m["n"],
            "accuracy": m["accuracy"],
        }  # fmt: skip
        for group, m in metrics.items()
    ]


def train_budgets(
    policy: str,
    method: str,
    k: int | None,
    own: HeadConfig,
    grid: BudgetGridConfig,
    groups: list[str],
    fit: Pairs,
    validation: Pairs,
    test: Pairs,
    seed: int,
) -> tuple[dict[str, tuple[GroupHeads, list[float]]], pd.DataFrame]:
    """Every setting of one policy trained on `fit`: ({setting: (heads, loss per epoch)}, its accuracy rows on
    the validation and test pairs, per group and overall). Each setting starts from the same seed."""
    trained, rows = {}, []
    for name, hp in settings(own, grid).items():
        heads, losses = train_heads(method, k, len(groups), *fit, hp, seed)
        steps = sum(run["optimizer_steps"] for run in heads.runs)
        trained[name] = (heads, losses)
        for split, pairs in (("validation", validation), ("test", test)):
            rows += metric_rows(policy, method, k, name, hp, steps, split, pair_metrics(heads, *pairs, groups))
    return trained, pd.DataFrame(rows)


def mark_choices(table: pd.DataFrame, grid: BudgetGridConfig) -> pd.DataFrame:
    """The table with `matched` and `tuned` flags on the rows of the setting each budget picks."""
    table = table.copy()
    table["matched"] = table["setting"] == matched_cell(grid)
    tuned = {policy: tuned_cell(table, policy) for policy in table["policy"].unique()}
    table["tuned"] = [tuned[p] == s for p, s in zip(table["policy"], table["setting"], strict=True)]
    return table[COLUMNS]


def comparison(table: pd.DataFrame, group: str, split: str = "test") -> pd.DataFrame:
    """One group's accuracy per setting (rows, grid order, default first) and policy (columns): the comparison
    across the whole grid, with the default, matched and tuned settings named in the index."""
    rows = table[(table["group"] == group) & (table["split"] == split)]
    wide = rows.pivot_table(index="setting", columns="policy", values="accuracy", sort=False)
    return wide.reindex(list(dict.fromkeys(rows["setting"])))


def _keys(table: pd.DataFrame, keys: list[str]) -> list[str]:
    """`keys`, with the proportion first when the table has one (results stack every seed × p)."""
    return ["proportion", *keys] if "proportion" in table.columns else keys


def _wilson(grouped: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """accuracy = correct / n and its Wilson interval at `confidence` (`stats.accuracy_interval`), NaN where n is 0."""
    out = grouped.copy()
    out["accuracy"] = out["correct"] / out["n"].where(out["n"] > 0)
    intervals = [accuracy_interval(a, n, confidence) for a, n in zip(out["accuracy"], out["n"], strict=True)]
    out["ci_low"], out["ci_high"] = [lo for lo, _ in intervals], [hi for _, hi in intervals]
    return out.drop(columns="correct")


def _with_correct(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(correct=(table["accuracy"].fillna(0) * table["n"]).round().astype(int))


def pooled(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy pooled over seeds per policy, setting, split and group: pairs n, accuracy, Wilson interval,
    mean optimiser steps, and in how many seeds `tuned` picked the setting."""
    keys = _keys(
        table, ["policy", "method", "k", "setting", "learning_rate", "num_epochs", "batch_size", "split", "group"]
    )
    out = (
        _with_correct(table)
        .groupby(keys, sort=False, dropna=False)
        .agg(
            n=("n", "sum"),
            correct=("correct", "sum"),
            optimizer_steps=("optimizer_steps", "mean"),
            tuned_seeds=("tuned", "sum"),
            seeds=("seed", "nunique"),
        )  # fmt: skip
        .reset_index()
    )
    return _wilson(out, confidence)


def budget_accuracy(table: pd.DataFrame, split: str = "test", confidence: float = 0.95) -> pd.DataFrame:
    """Each policy's accuracy per group under the three budgets, pooled over seeds (each seed's own pick for
    `tuned`): pairs n, accuracy, Wilson interval, and the settings the seeds used."""
    rows = table[table["split"] == split]
    parts = []
    for budget in (DEFAULT, "matched", "tuned"):
        chosen = _with_correct(chosen_rows(rows, budget))
        keys = _keys(chosen, ["policy", "group"])
        grouped = chosen.groupby(keys, sort=False).agg(
            n=("n", "sum"), correct=("correct", "sum"), seeds=("seed", "nunique"),
            settings=("setting", lambda x: " ".join(sorted(set(x)))),
        )  # fmt: skip
        parts.append(_wilson(grouped.reset_index(), confidence).assign(budget=budget))
    out = pd.concat(parts, ignore_index=True)
    return out[["budget", *[c for c in out.columns if c != "budget"]]]


def chosen_rows(table: pd.DataFrame, budget: str) -> pd.DataFrame:
    """The rows of one budget: a setting by name, or `matched` / `tuned` (each seed's own pick)."""
    if budget in ("matched", "tuned"):
        return table[table[budget].astype(bool)]
    return table[table["setting"] == budget]


def gaps(table: pd.DataFrame, minority: str, confidence: float = 0.95, baseline: str = "maxmin") -> pd.DataFrame:
    """Every other policy − `baseline` in test accuracy, on the minority group and on the mean over groups, under
    each budget: default, every grid cell, matched and tuned. Paired per seed; mean and t interval across seeds."""
    from .contrasts import holm, seed_interval

    test = table[(table["split"] == "test") & (table["group"] != "overall")]
    if "proportion" in test.columns and test["proportion"].nunique() > 1:  # one proportion at a time
        parts = [gaps(part, minority, confidence, baseline) for _, part in test.groupby("proportion", sort=True)]
        out = pd.concat(parts, ignore_index=True)
        return out.assign(p_holm=holm(out["p"].to_numpy(dtype=float))) if len(out) else out
    settings_ = [*dict.fromkeys(test["setting"]), "matched", "tuned"]
    proportion = test["proportion"].iloc[0] if "proportion" in test.columns and len(test) else None
    rows = []
    for policy in [p for p in dict.fromkeys(test["policy"]) if p != baseline]:
        for budget in settings_:
            ours, theirs = (
                chosen_rows(test[test["policy"] == policy], budget),
                chosen_rows(test[test["policy"] == baseline], budget),
            )
            for outcome in (minority, "mean over groups"):
                pick = (lambda t: t[t["group"] == minority]) if outcome == minority else (lambda t: t)
                a = pick(ours).groupby("seed")["accuracy"].mean()
                b = pick(theirs).groupby("seed")["accuracy"].mean()
                shared = a.index.intersection(b.index)
                if not len(shared):
                    continue
                estimate, low, high, p = seed_interval((a[shared] - b[shared]).to_numpy(), confidence)
                rows.append({"proportion": proportion, "policy": policy, "baseline": baseline, "budget": budget,
                             "group": outcome, "estimate": estimate, "ci_low": low, "ci_high": high, "p": p,
                             "n_seeds": len(shared), "policy_steps": ours["optimizer_steps"].mean(),
                             "baseline_steps": theirs["optimizer_steps"].mean()})  # fmt: skip
    out = pd.DataFrame(rows, columns=GAP_COLUMNS)
    out["p_holm"] = holm(out["p"].to_numpy(dtype=float))  # every gap of the file is secondary: one Holm family
    return out
