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


def preference_signs(
    responses: pd.DataFrame, trait_names: list[str], group_weights: dict[str, dict[str, float]]
) -> np.ndarray:
    """Groups × pairs: the sign of each group's score difference, response 0 − response 1 (0: a tie)."""
    diffs = group_scores(
        {t: responses[f"{t}_0"].to_numpy(dtype=float) - responses[f"{t}_1"].to_numpy(dtype=float) for t in trait_names},
        group_weights,
    )
    # a group with no weights scores 0 everywhere: broadcast it to one sign per pair
    return np.stack([np.sign(np.broadcast_to(diffs[g], len(responses))) for g in group_weights])


def disagreement(responses: pd.DataFrame, trait_names: list[str], group_weights: dict[str, dict[str, float]]) -> float:
    """Share of response pairs on which the groups do not all prefer the same response."""
    signs = preference_signs(responses, trait_names, group_weights)
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


def _check_columns(responses: pd.DataFrame, trait_names: list[str]) -> None:
    if len(responses) == 0:
        raise ValueError("Responses table has no rows; shares and correlations need at least one response pair.")
    missing = [f"{t}_{i}" for t in trait_names for i in (0, 1) if f"{t}_{i}" not in responses.columns]
    if missing:
        raise ValueError(
            f"Responses table lacks trait column(s) {', '.join(missing)}; it has {', '.join(map(str, responses))}."
        )


def check_group_traits(group_weights: dict[str, dict[str, float]], trait_names: list[str]) -> None:
    """Every trait a group weighs is one of `trait_names`."""
    unknown = sorted({t for w in group_weights.values() for t in w} - set(trait_names))
    if unknown:
        raise ValueError(f"Group weights name trait(s) {', '.join(unknown)}; the traits are {', '.join(trait_names)}.")


def disagreement_matrix(
    responses: pd.DataFrame, trait_names: list[str], group_weights: dict[str, dict[str, float]]
) -> pd.DataFrame:
    """U × U share of response pairs on which group u and group v prefer different responses.

    Each group's preference on a pair is the sign of its score difference (response 0 − response 1), as in
    `disagreement`: two groups agree when the signs are equal, so a tie agrees only with a tie (a tie for one
    group and a strict preference for the other is a disagreement, as `build_preferences` drops the first
    pair and keeps the second). Symmetric, diagonal 0; index and columns are the groups in profile order.
    The largest entry is at most `disagreement` (the share on which any two groups differ).
    """
    _check_columns(responses, trait_names)
    check_group_traits(group_weights, trait_names)
    names = list(group_weights)
    signs = preference_signs(responses, trait_names, group_weights)  # U × pairs
    share = (signs[:, None, :] != signs[None, :, :]).mean(axis=2)  # every (u, v) at once
    return pd.DataFrame(share, index=pd.Index(names, name="group"), columns=names)


CONSTANT_NOTE = "constant on these responses: no correlation or R^2"


def trait_redundancy(responses: pd.DataFrame, trait_names: list[str]) -> pd.DataFrame:
    """How far each gold trait is a function of the others, on every sampled response (response_0 and
    response_1 stacked): one row per trait with its std (ddof 1), its Spearman rho with each trait (`rho_<t>`,
    1 on the diagonal), and `r2_from_others`: the R^2 of a least-squares fit of the trait on an intercept,
    the other traits, their absolute values, squares and pairwise products, so a trait that is a near-function
    of the others shows R^2 near 1 where a rank correlation can be near 0 (neutral = 1 − |upbeat|: R^2 1,
    rho about 0 for a symmetric upbeat). The basis has 1 + 3m + m(m−1)/2 columns for m other traits; with
    few responses the R^2 is optimistic.
    A trait that is constant gets NaN for its correlations and R^2, and `note` says why.
    """
    _check_columns(responses, trait_names)
    if len(set(trait_names)) != len(trait_names):
        raise ValueError(f"Trait names {trait_names} repeat a name.")
    values = pd.DataFrame(
        {t: np.concatenate([responses[f"{t}_0"].to_numpy(dtype=float), responses[f"{t}_1"].to_numpy(dtype=float)])
         for t in trait_names}
    )  # fmt: skip
    bad = [t for t in trait_names if not np.isfinite(values[t]).all()]
    if bad:
        raise ValueError(f"Trait(s) {', '.join(bad)} have missing or infinite scores; every score must be finite.")
    constant = {t: bool(values[t].min() == values[t].max()) for t in trait_names}
    rho = values.corr(method="spearman")  # a constant trait's row and column come out NaN
    rows = []
    for t in trait_names:
        row = {"std": float(values[t].std())}
        row.update({f"rho_{o}": float(rho.at[t, o]) for o in trait_names})
        row["r2_from_others"] = np.nan if constant[t] else _r2_from(values[t].to_numpy(), values.drop(columns=t))
        row["note"] = CONSTANT_NOTE if constant[t] else ""
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(trait_names, name="trait"))


def _r2_from(y: np.ndarray, others: pd.DataFrame) -> float:
    """R^2 of least squares of y on [1, x_i, |x_i|, x_i^2, x_i x_j] of the columns of `others`."""
    x = [others[c].to_numpy() for c in others]
    products = [x[i] * x[j] for i in range(len(x)) for j in range(i + 1, len(x))]
    # |x|: a kink at 0, which signed traits (VADER's compound) make; a square only bends smoothly (R^2 0.91-0.94)
    basis = [np.ones_like(y), *x, *(np.abs(a) for a in x), *(a * a for a in x), *products]
    design = np.column_stack(basis)
    # rank-deficient bases are fine (a constant other trait, |x| = x for a non-negative one)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return float(1.0 - residual @ residual / ((y - y.mean()) @ (y - y.mean())))


def redundancy_summary(redundancy: pd.DataFrame, disagreements: pd.DataFrame) -> dict:
    """For a manifest: the largest off-diagonal |rho| and r2_from_others of `trait_redundancy`, and the smallest
    and largest off-diagonal share of `disagreement_matrix`; None where there is none (one trait or group, or
    every value NaN), so the manifest stays strict JSON."""
    rho = redundancy[[f"rho_{t}" for t in redundancy.index]].to_numpy(dtype=float)
    off_rho = np.abs(rho[~np.eye(len(rho), dtype=bool)])
    share = disagreements.to_numpy(dtype=float)
    off_share = share[~np.eye(len(share), dtype=bool)]

    def finite(values: np.ndarray, pick) -> float | None:
        values = values[np.isfinite(values)]
        return round(float(pick(values)), 6) if len(values) else None

    return {
        "max_abs_rho": finite(off_rho, np.max),
        "max_r2_from_others": finite(redundancy["r2_from_others"].to_numpy(dtype=float), np.max),
        "min_pair_disagreement": finite(off_share, np.min),
        "max_pair_disagreement": finite(off_share, np.max),
    }
