"""Evaluation statistics: per-group mean with its spread across seeds and a bootstrap interval over
prompts, win rates against the gold policy (both tie rules), head-to-head win rates between two
methods, pooled over seeds and per seed; the paired gain of each GRPO policy over the SFT policy (did
RL climb its reward?), and the interval of a reward model's pairwise accuracy.

Inputs are the per-policy evaluation tables (`eval/<policy-id>.parquet`) with a `group_<name>`
column per group, `prompt_id` and `completion`; prompts are matched across policies by id, never by
text. A tie is an identical completion (the same text, whatever the scores say: one text scored in
two batch shapes can differ in the last digits), or, for different texts, exactly equal scores.

Uncertainty, two levels. Seeds: per-seed means, their SD and standard error (`seed_sd_*`,
`seed_sem_*`), the main uncertainty when there are two or more seeds. Prompts: percentile bootstrap
intervals from a generator seeded by the cell's name, so they repeat exactly. Every seed scores the
same held-out prompts (unless `evaluation.prompts_per_seed`), so a seed's rows are not independent of
another's: the bootstrap draws prompt ids with replacement once per replicate and takes every seed's
rows for them (a cluster bootstrap). When the seeds hold different prompt ids, it resamples prompts
within each seed instead, and the `bootstrap` column says which ("cluster" or "within-seed").
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import SPREADS  # what ± shows with seeds: seed SEM, or upstream's pooled SEM
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
    "seed_sem_gold_score",
    "win_rate_vs_gold",
    "sem_win_rate",
    "win_rate_ci_low",
    "win_rate_ci_high",
    "seed_sd_win_rate",
    "seed_sem_win_rate",
    "win_rate_vs_gold_ties_half",
    "win_rate_vs_gold_ties_lose",
    "n_matched_vs_gold",
    "tie_share_vs_gold",
    "ties",
    "bootstrap",
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
    "win_rate_vs_gold_ties_half",
    "win_rate_vs_gold_ties_lose",
    "n_matched_vs_gold",
    "tie_share_vs_gold",
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
    "win_rate_ties_half",
    "win_rate_ties_lose",
    "ci_low",
    "ci_high",
    "seed_sd_win_rate",
    "seed_sem_win_rate",
    "ties",
    "bootstrap",
]
HEAD_TO_HEAD_BY_SEED_COLUMNS = [
    "method",
    "opponent",
    "k",
    "proportion",
    "group",
    "seed",
    "n",
    "wins",
    "tie_count",
    "losses",
    "win_rate",
    "win_rate_ties_half",
    "win_rate_ties_lose",
    "ties",
]
TIE_RULES = {"half": 0.5, "lose": 0.0}  # credit for a tie
BOOTSTRAP_KINDS = ("cluster", "within-seed")


@dataclass(frozen=True)
class Options:
    """How win rates and intervals are computed (filled from `cfg.results`)."""

    ties: str = "half"
    n_bootstrap: int = 2000
    confidence: float = 0.95
    seed: int = 0
    spread: str = "seed"

    def __post_init__(self):
        if self.ties not in TIE_RULES:
            raise ValueError(f"ties {self.ties!r} is not one of {', '.join(TIE_RULES)}.")
        if self.spread not in SPREADS:
            raise ValueError(f"spread {self.spread!r} is not one of {', '.join(SPREADS)}.")


def sem(values: np.ndarray) -> float:
    """Standard error of the mean (sample std, ddof = 1); NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def spread(values: list[float]) -> float:
    """Sample standard deviation across seeds; NaN for fewer than two seeds."""
    values = [v for v in values if not np.isnan(v)]
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def seed_sem(values: list[float]) -> float:
    """Standard error of the mean of per-seed values (SD across seeds / sqrt(seeds)); NaN for one seed."""
    values = [v for v in values if not np.isnan(v)]
    return spread(values) / np.sqrt(len(values)) if len(values) > 1 else float("nan")


def _percentile(means: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


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
    return _percentile(sums / total, confidence)


def cluster_bootstrap_ci(
    samples: list[pd.Series], n_boot: int = 2000, confidence: float = 0.95, seed: int | list[int] = 0
) -> tuple[float, float, str]:
    """Percentile interval of the pooled mean over seeds, prompts resampled as clusters; and the kind.

    `samples` holds one Series per seed, values indexed by prompt id. When every seed holds the same
    prompt ids, each replicate draws prompt ids with replacement once and takes every seed's rows for
    them ("cluster"): a prompt that is hard for one seed is hard for all, and the interval counts it
    once. Otherwise prompts are resampled within each seed ("within-seed", see `bootstrap_ci`).
    """
    samples = [s for s in samples if len(s)]
    if not samples:
        return float("nan"), float("nan"), "cluster"
    ids = set(samples[0].index)
    if any(len(s.index) != len(ids) or set(s.index) != ids for s in samples[1:]):
        low, high = bootstrap_ci([s.to_numpy(dtype=float) for s in samples], n_boot, confidence, seed)
        return low, high, "within-seed"
    joined = pd.concat(samples).astype(float)
    by_id = joined.groupby(level=0, sort=True)
    clusters = np.stack([by_id.sum().to_numpy(), by_id.size().to_numpy(dtype=float)], axis=1)  # (sum, rows)
    rng = np.random.default_rng(seed)
    totals = np.zeros((n_boot, 2))
    levels, counts = np.unique(clusters, axis=0, return_counts=True)
    if len(levels) <= 16:  # credits: resample the counts per distinct cluster (same distribution, fast)
        totals = rng.multinomial(len(clusters), counts / len(clusters), size=n_boot) @ levels
    else:
        for start in range(0, n_boot, 256):
            rows = min(256, n_boot - start)
            idx = rng.integers(0, len(clusters), size=(rows, len(clusters)), dtype=np.int32)
            totals[start : start + rows] = clusters[idx].sum(axis=1)
    low, high = _percentile(totals[:, 0] / totals[:, 1], confidence)
    return low, high, "cluster"


def outcomes(ours: pd.DataFrame, reference: pd.DataFrame, column: str, ties: str = "half") -> pd.DataFrame:
    """Per shared prompt (matched by prompt_id): win, tie, and the credit (1 win, 0 loss, tie per rule).

    A tie is an identical completion text, or different texts with exactly equal scores; otherwise
    the higher score wins (strict >). Both tables need `prompt_id`, `completion` and `column`.
    """
    for name, table in (("ours", ours), ("reference", reference)):
        dup = table["prompt_id"][table["prompt_id"].duplicated()]
        if len(dup):
            raise ValueError(f"prompt_id {dup.iloc[0]!r} appears twice in the {name} table; ids must be unique.")
        if "completion" not in table:
            raise ValueError(
                f"The {name} table has no completion column; a tie is an identical completion, so win rates need it."
            )
    keep = ["prompt_id", "completion", column]
    merged = ours[keep].merge(reference[keep], on="prompt_id", suffixes=("", "_ref"))
    diff = merged[column].to_numpy(dtype=float) - merged[f"{column}_ref"].to_numpy(dtype=float)
    tie = (merged["completion"].to_numpy() == merged["completion_ref"].to_numpy()) | (diff == 0)
    win = (diff > 0) & ~tie
    credit = np.where(win, 1.0, np.where(tie, TIE_RULES[ties], 0.0))
    return pd.DataFrame({"prompt_id": merged["prompt_id"], "win": win, "tie": tie, "credit": credit})


def credits(out: pd.DataFrame, ties: str) -> pd.Series:
    """An outcome table's credits under a tie rule, indexed by prompt id."""
    values = out["win"].to_numpy(dtype=float) + TIE_RULES[ties] * out["tie"].to_numpy(dtype=float)
    return pd.Series(values, index=out["prompt_id"].to_numpy())


def win_rate(ours: pd.DataFrame, reference: pd.DataFrame, column: str, ties: str = "half") -> tuple[float, int]:
    """Share of shared prompts (by prompt_id) where ours scores higher, a tie counting `ties`; and n."""
    out = outcomes(ours, reference, column, ties)
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
    """A policy is compared with its own seed's gold policy only; one without a seed (SFT) with every seed's."""
    if seed is None:
        return sorted(gold.items(), key=lambda kv: kv[0])
    return [(seed, gold[seed])] if seed in gold else []


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _group_stats(method: str, runs, gold: dict, column: str, options: Options, key) -> tuple[dict, list[dict]]:
    scores = [pd.Series(t[column].to_numpy(dtype=float), index=t["prompt_id"].to_numpy()) for _, t in runs]
    values = np.concatenate([s.to_numpy() for s in scores])
    per_seed = [
        {"seed": seed, "n": len(s), "mean_gold_score": _mean(s.to_numpy()), "sem_gold_score": sem(s.to_numpy())}
        for (seed, _), s in zip(runs, scores)
    ]
    # one entry per comparison with a gold policy: a seed's own gold, or (SFT, no seed) every seed's gold
    comparisons: dict[str, list[pd.Series]] = {rule: [] for rule in TIE_RULES}
    n_ties = 0
    if method != "gold":
        for row, (seed, table) in zip(per_seed, runs):
            outs = [outcomes(table, ref, column) for _, ref in _references(gold, seed)]
            for rule in TIE_RULES:
                comparisons[rule] += [credits(o, rule) for o in outs]
            n_ties += sum(int(o["tie"].sum()) for o in outs)
            joined = {rule: np.concatenate([credits(o, rule).to_numpy() for o in outs] or [[]]) for rule in TIE_RULES}
            matched = len(joined[options.ties])
            row.update(
                win_rate_vs_gold=_mean(joined[options.ties]),
                win_rate_vs_gold_ties_half=_mean(joined["half"]),
                win_rate_vs_gold_ties_lose=_mean(joined["lose"]),
                n_matched=matched,
                tie_share_vs_gold=sum(int(o["tie"].sum()) for o in outs) / matched if matched else float("nan"),
            )
    primary = comparisons[options.ties]
    pooled_credits = np.concatenate([c.to_numpy() for c in primary]) if primary else np.array([])
    matched = len(pooled_credits)
    low, high, kind = cluster_bootstrap_ci(
        scores, options.n_bootstrap, options.confidence, _rng_seed(options, "score", *key)
    )
    wlow, whigh, wkind = cluster_bootstrap_ci(
        primary, options.n_bootstrap, options.confidence, _rng_seed(options, "win", *key)
    )
    seed_means = [r["mean_gold_score"] for r in per_seed]
    seed_wins = [_mean(c.to_numpy()) for c in primary]  # per comparison with a gold policy (per seed)
    pooled = {
        "n": len(values),
        "n_seeds": len({s for s, _ in runs}),
        "mean_gold_score": _mean(values),
        "sem_gold_score": sem(values),
        "ci_low_gold_score": low,
        "ci_high_gold_score": high,
        "seed_sd_gold_score": spread(seed_means),
        "seed_sem_gold_score": seed_sem(seed_means),
        "win_rate_vs_gold": _mean(pooled_credits),
        "sem_win_rate": sem(pooled_credits),
        "win_rate_ci_low": wlow,
        "win_rate_ci_high": whigh,
        "seed_sd_win_rate": spread(seed_wins),
        "seed_sem_win_rate": seed_sem(seed_wins),
        "win_rate_vs_gold_ties_half": _mean(np.concatenate([c.to_numpy() for c in comparisons["half"]] or [[]])),
        "win_rate_vs_gold_ties_lose": _mean(np.concatenate([c.to_numpy() for c in comparisons["lose"]] or [[]])),
        "n_matched_vs_gold": matched,
        "tie_share_vs_gold": n_ties / matched if matched else float("nan"),
        "ties": options.ties,
        "bootstrap": "within-seed" if "within-seed" in (kind, wkind) else "cluster",
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
    for column in ("win_rate_vs_gold", "win_rate_vs_gold_ties_half", "win_rate_vs_gold_ties_lose", "tie_share_vs_gold"):
        by_seed[column] = by_seed[column].astype(float)
    return frame, by_seed


def summarize(evals: Evals, groups: list[str], options: Options = Options()) -> pd.DataFrame:
    """One row per (method, k, proportion, group), pooled over seeds (see `summarize_all`)."""
    return summarize_all(evals, groups, options)[0]


def head_to_head(
    evals: Evals, groups: list[str], method: str = "sharedrep", opponent: str = "maxmin", options: Options = Options()
) -> pd.DataFrame:
    """Win rate of `method` (every K) against `opponent`, pooled over seeds (see `head_to_head_all`)."""
    return head_to_head_all(evals, groups, method, opponent, options)[0]


def head_to_head_all(
    evals: Evals, groups: list[str], method: str = "sharedrep", opponent: str = "maxmin", options: Options = Options()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Win rate of `method` (every K) against `opponent` on the same prompts, same seed and proportion.

    Pooled rows: one per (k, proportion, group), pooled over seeds: wins / ties / losses (a tie is an
    identical completion, or exactly equal scores), the win rate under `options.ties` with its bootstrap
    interval (cluster over prompt ids when the seeds share them) and spread across seeds, and both tie
    rules. Per-seed rows: the same counts and rates for each seed (what the seed spread is made of).
    """
    rows, seed_rows = [], []
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
                outs = [outcomes(a, b, f"group_{group}") for _, a, b in pairs]
                credit = {rule: [credits(o, rule) for o in outs] for rule in TIE_RULES}
                pooled = {rule: np.concatenate([c.to_numpy() for c in credit[rule]]) for rule in TIE_RULES}
                n = len(pooled["half"])
                wins = sum(int(o["win"].sum()) for o in outs)
                ties = sum(int(o["tie"].sum()) for o in outs)
                key = ("h2h", name, opponent, prop, group)
                low, high, kind = cluster_bootstrap_ci(
                    credit[options.ties], options.n_bootstrap, options.confidence, _rng_seed(options, *key)
                )
                per_seed = [_mean(c.to_numpy()) for c in credit[options.ties]]
                cell = {"method": method, "opponent": opponent, "k": k, "proportion": prop, "group": group}
                for (seed, _, _), o, half, lose in zip(pairs, outs, credit["half"], credit["lose"]):
                    seed_wins, seed_ties = int(o["win"].sum()), int(o["tie"].sum())
                    rates = {"half": _mean(half.to_numpy()), "lose": _mean(lose.to_numpy())}
                    seed_rows.append(
                        cell
                        | {"seed": seed, "n": len(o), "wins": seed_wins, "tie_count": seed_ties}
                        | {"losses": len(o) - seed_wins - seed_ties, "win_rate": rates[options.ties]}
                        | {"win_rate_ties_half": rates["half"], "win_rate_ties_lose": rates["lose"]}
                        | {"ties": options.ties}
                    )
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
                        "win_rate": _mean(pooled[options.ties]),
                        "win_rate_ties_half": _mean(pooled["half"]),
                        "win_rate_ties_lose": _mean(pooled["lose"]),
                        "ci_low": low,
                        "ci_high": high,
                        "seed_sd_win_rate": spread(per_seed),
                        "seed_sem_win_rate": seed_sem(per_seed),
                        "ties": options.ties,
                        "bootstrap": kind,
                    }
                )
    frame = pd.DataFrame(rows, columns=HEAD_TO_HEAD_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")
    by_seed = pd.DataFrame(seed_rows, columns=HEAD_TO_HEAD_BY_SEED_COLUMNS)
    by_seed["k"] = by_seed["k"].astype("Int64")
    by_seed["seed"] = by_seed["seed"].astype("Int64")
    return frame, by_seed


REWARD_GAIN_COLUMNS = [
    "method",
    "k",
    "seed",
    "proportion",
    "reward",
    "mean_gain_vs_sft",
    "ci_low",
    "ci_high",
    "n",
    "mean_sft",
    "mean_policy",
]


def gold_min(table: pd.DataFrame, groups: list[str]) -> pd.Series:
    """Min over groups of the gold group scores, per prompt id (the gold policy's training reward)."""
    values = table[[f"group_{g}" for g in groups]].min(axis=1)
    return pd.Series(values.to_numpy(dtype=float), index=table["prompt_id"].to_numpy())


def paired_rewards(table: pd.DataFrame, sft: pd.DataFrame | None, groups: list[str]) -> dict[str, pd.DataFrame]:
    """Per reward (`training`, `gold_min`), the SFT policy's (`sft`) and this policy's (`policy`) value on each
    prompt id both were scored on: the training reward (both completions scored by this policy's own
    reward: `sft_training_reward` / `training_reward`) and the gold min over groups."""
    out = {}
    ids = table["prompt_id"].to_numpy()
    if {"training_reward", "sft_training_reward"} <= set(table.columns):
        frame = pd.DataFrame(
            {"sft": table["sft_training_reward"].to_numpy(float), "policy": table["training_reward"].to_numpy(float)},
            index=ids,
        )
        out["training"] = frame.dropna()
    if sft is not None:
        ours = gold_min(table, groups)
        out["gold_min"] = pd.DataFrame({"sft": gold_min(sft, groups).reindex(ours.index), "policy": ours}).dropna()
    return out


def gain_row(pair: pd.DataFrame, options: Options, *key) -> dict:
    """Mean paired gain (policy − SFT) with its percentile bootstrap interval over prompts, n and both means."""
    gain = (pair["policy"] - pair["sft"]).to_numpy(dtype=float)
    low, high = bootstrap_ci([gain], options.n_bootstrap, options.confidence, _rng_seed(options, "gain", *key))
    return {
        "mean_gain_vs_sft": _mean(gain),
        "ci_low": low,
        "ci_high": high,
        "n": len(gain),
        "mean_sft": _mean(pair["sft"].to_numpy()),
        "mean_policy": _mean(pair["policy"].to_numpy()),
    }


def reward_gain(evals: Evals, groups: list[str], options: Options = Options()) -> pd.DataFrame:
    """Did RL climb? One row per GRPO policy × seed × proportion × reward (`paired_rewards`): the mean paired
    gain over the SFT policy on the same held-out prompts, its interval and n (`gain_row`). A policy whose
    evaluation lacks the SFT policy's (or the training-reward columns) has no row for that reward."""
    sft = next((t for (_, _, m), t in evals.items() if m == "sft"), None)
    rows = []
    for (seed, prop, method), table in sorted(evals.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][2])):
        if method == "sft":
            continue
        name, k = split_method(method)
        for reward, pair in paired_rewards(table, sft, groups).items():
            cell = {"method": name, "k": k, "seed": seed, "proportion": prop, "reward": reward}
            rows.append(cell | gain_row(pair, options, method, seed, prop, reward))
    frame = pd.DataFrame(rows, columns=REWARD_GAIN_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")
    return frame


COMPLETION_STATS_COLUMNS = ["method", "k", "seed", "proportion", "n", "mean_words", "empty", "repeats_trigram"]
REPEATS = 3  # a completion "repeats" when one word trigram occurs this often in it ("to be a good to be a good ...")


def repeats_trigram(text: str, times: int = REPEATS) -> bool:
    """Whether some word trigram (lower-cased \\w+ words) occurs `times` times or more in `text`."""
    words = re.findall(r"\w+", text.lower())
    counts = Counter(zip(words, words[1:], words[2:]))
    return bool(counts) and max(counts.values()) >= times


def completion_stats(evals: Evals) -> pd.DataFrame:
    """What the policies write, beside how it scores: per policy × seed × proportion, n completions, their mean
    length in words, the share that is empty and the share that repeats a word trigram (`repeats_trigram`):
    degenerate text that a lexicon-based gold score can reward, which no score column shows."""
    rows = []
    for (seed, prop, method), table in sorted(evals.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][2])):
        texts = table["completion"].fillna("").astype(str)
        name, k = split_method(method)
        rows.append(
            {"method": name, "k": k, "seed": seed, "proportion": prop, "n": len(texts),
             "mean_words": float(texts.map(lambda t: len(t.split())).mean()) if len(texts) else float("nan"),
             "empty": float(texts.str.strip().eq("").mean()) if len(texts) else float("nan"),
             "repeats_trigram": float(texts.map(repeats_trigram).mean()) if len(texts) else float("nan")}
        )  # fmt: skip
    frame = pd.DataFrame(rows, columns=COMPLETION_STATS_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")
    return frame


def accuracy_interval(accuracy: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a pairwise accuracy measured on n pairs (NaN without pairs)."""
    from scipy.stats import binomtest

    if not n or accuracy is None or np.isnan(accuracy):
        return float("nan"), float("nan")
    interval = binomtest(round(accuracy * n), n).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)
