"""Annotator groups and group-specific preferences from gold scores.

Each row gets the minority group with probability p, else one of the other groups (equal shares);
its chosen response is the one with the higher score for that group. Draws use one uniform per row
from the run's seed, so for a seed the minority at p = 0.05 is a subset of the minority at p = 0.1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .gold import group_scores


def assign_groups(n: int, proportion: float, groups: list[str], minority: str, seed: int) -> np.ndarray:
    """Group name per row: `minority` with probability `proportion`, the others share the rest."""
    if not 0 < proportion < 1:
        raise ValueError(f"Minority proportion {proportion} is outside (0, 1).")
    others = [g for g in groups if g != minority]
    u = np.random.default_rng(seed).random(n)
    out = np.empty(n, dtype=object)
    out[u < proportion] = minority
    rest = u >= proportion
    # split (p, 1] evenly among the other groups
    slot = np.minimum(((u[rest] - proportion) / (1 - proportion) * len(others)).astype(int), len(others) - 1)
    out[rest] = np.asarray(others, dtype=object)[slot]
    return out


def build_preferences(
    responses: pd.DataFrame,
    trait_names: list[str],
    group_weights: dict[str, dict[str, float]],
    minority: str,
    proportion: float,
    seed: int,
    ties: str = "drop",
) -> tuple[pd.DataFrame, dict]:
    """chosen / rejected / group_id per prompt, and counts for the manifest.

    `responses` has prompt_id, prompt, response_0, response_1 and `<trait>_0`, `<trait>_1` columns.
    ties="drop": pairs whose two responses tie for their group, or are the same text, are dropped and counted.
    ties="first": every pair is kept and a tie goes to response 0, as upstream (`score_0 >= score_1`).
    """
    if ties not in ("drop", "first"):
        raise ValueError(f"Preference ties {ties!r} is not one of drop, first.")
    names = list(group_weights)
    group = assign_groups(len(responses), proportion, names, minority, seed)
    scores = [group_scores({t: responses[f"{t}_{i}"].to_numpy() for t in trait_names}, group_weights) for i in (0, 1)]
    rows_idx = np.arange(len(responses))
    s0 = np.array([scores[0][g][i] for i, g in zip(rows_idx, group)])
    s1 = np.array([scores[1][g][i] for i, g in zip(rows_idx, group)])
    same_text = (responses["response_0"] == responses["response_1"]).to_numpy()
    keep = (s0 != s1) & ~same_text if ties == "drop" else np.ones(len(responses), dtype=bool)
    first_wins = s0 >= s1  # only a kept tie reaches the equality: response 0 is chosen
    out = pd.DataFrame(
        {
            "prompt_id": responses["prompt_id"],
            "prompt": responses["prompt"],
            "chosen": np.where(first_wins, responses["response_0"], responses["response_1"]),
            "rejected": np.where(first_wins, responses["response_1"], responses["response_0"]),
            "group": group,
            "group_id": [names.index(g) for g in group],
            "chosen_score": np.maximum(s0, s1),
            "rejected_score": np.minimum(s0, s1),
        }
    )[keep].reset_index(drop=True)
    counts = {
        "rows": int(len(responses)),
        "pairs": int(len(out)),
        "dropped_ties": int((~keep & ~same_text).sum()),
        "dropped_identical": int((~keep & same_text).sum()),
        "kept_ties": int((keep & (s0 == s1)).sum()),
        "pairs_per_group": {g: int((out["group"] == g).sum()) for g in names},
    }
    empty = [g for g, n in counts["pairs_per_group"].items() if n == 0]
    if empty:
        raise ValueError(
            f"Group(s) {', '.join(empty)} got no preference pairs at proportion {proportion} from "
            f"{len(responses)} prompts; raise data.n_preference_prompts or the proportion."
        )
    return out, counts


def disagreement(responses: pd.DataFrame, trait_names: list[str], group_weights: dict[str, dict[str, float]]) -> float:
    """Share of response pairs on which the groups do not all prefer the same response."""
    diffs = group_scores(
        {t: responses[f"{t}_0"].to_numpy() - responses[f"{t}_1"].to_numpy() for t in trait_names}, group_weights
    )
    signs = np.stack([np.sign(d) for d in diffs.values()])
    return float(np.mean((signs != signs[0]).any(axis=0)))


def split_pairs(pairs: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/test split of preference pairs, stratified by group so every group is tested."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(pairs), dtype=bool)
    for _, idx in pairs.groupby("group_id").indices.items():
        n_test = int(round(len(idx) * test_fraction))
        if len(idx) > 1:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test[rng.permutation(idx)[:n_test]] = True
    return pairs[~test].reset_index(drop=True), pairs[test].reset_index(drop=True)
