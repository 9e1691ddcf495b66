"""Are two runs the same numbers? `sharedrep compare RUN_A RUN_B`.

For every evaluation file (`eval/*.parquet`), the sampled responses, each preference set and each results
table that either run holds: whether the two files are byte-identical, and for evaluation files the share of
prompts whose completion is the same text. A parallel sweep and a serial one give the same bytes only when each
stage run had the same number of threads (README, "Same numbers?"); this says which files agree and how far
those that do not have moved apart.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# what is compared, as globs under a run directory (variants' own files included)
ARTIFACTS = (
    "eval/*.parquet",
    "responses/responses.parquet",
    "seed*/prop*/preferences/preferences.parquet",
    "results/*.csv",
    "variants/*/eval/*.parquet",
    "variants/*/results/*.csv",
)


def artifacts(run: Path) -> set[str]:
    """Paths (relative to `run`) of the compared files this run holds."""
    return {str(p.relative_to(run)) for pattern in ARTIFACTS for p in run.glob(pattern) if p.is_file()}


def same_completions(a: Path, b: Path) -> tuple[float, int]:
    """Share of the prompts in both evaluation files whose completion is the same text (NaN with none shared), and
    how many prompts the first file holds."""
    left, right = (pd.read_parquet(p, columns=["prompt_id", "completion"]).set_index("prompt_id") for p in (a, b))
    shared = left.join(right, lsuffix="_a", rsuffix="_b", how="inner")
    share = float((shared["completion_a"] == shared["completion_b"]).mean()) if len(shared) else float("nan")
    return share, len(left)


def compare_runs(a: Path, b: Path) -> pd.DataFrame:
    """One row per compared file in either run: `artifact`, `in_a`, `in_b`, `identical` (bytes), `n_prompts` and
    `same_completions` (evaluation files only)."""
    for run in (a, b):
        if not run.is_dir():
            raise FileNotFoundError(f"run directory {run} does not exist.")
    rows = []
    for rel in sorted(artifacts(a) | artifacts(b)):
        left, right = a / rel, b / rel
        row = {"artifact": rel, "in_a": left.is_file(), "in_b": right.is_file(), "identical": False,
               "n_prompts": pd.NA, "same_completions": float("nan")}  # fmt: skip
        if row["in_a"] and row["in_b"]:
            row["identical"] = left.read_bytes() == right.read_bytes()
            if rel.endswith(".parquet") and "/eval/" in f"/{rel}":
                row["same_completions"], row["n_prompts"] = same_completions(left, right)
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"neither {a} nor {b} holds an evaluation, preference or results file.")
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame) -> str:
    """One line per kind of file: how many of those in both runs are byte-identical; and any only in one run."""
    both = table[table["in_a"] & table["in_b"]]
    lines = []
    for kind, rows in both.groupby(both["artifact"].map(_kind), sort=False):
        lines.append(f"{kind}: {int(rows['identical'].sum())} of {len(rows)} byte-identical")
    only = table[table["in_a"] != table["in_b"]]
    if len(only):
        lines.append(f"in one run only: {', '.join(only['artifact'])}")
    return "\n".join(lines)


def _kind(rel: str) -> str:
    if "/eval/" in f"/{rel}":
        return "evaluation files"
    if rel.endswith("responses.parquet"):
        return "sampled responses"
    if rel.endswith("preferences.parquet"):
        return "preference sets"
    return "results tables"
