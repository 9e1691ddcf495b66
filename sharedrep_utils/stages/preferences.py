"""Stage 2b (per seed × proportion): annotator groups and chosen/rejected pairs from gold scores.
Output: seed<S>/prop<P>/preferences/preferences.parquet (chosen, rejected, group, group_id), and beside it
trait_redundancy.csv and group_disagreement.csv (groups.trait_redundancy, groups.disagreement_matrix) of the
responses the pairs come from, summarised in the manifest (`trait_group_summary`)."""

from __future__ import annotations

import pandas as pd

from ..config import Config
from ..groups import build_preferences, disagreement_matrix, redundancy_summary, trait_redundancy
from ..launcher import command_line
from ..runs import is_done, locked, preferences_dir, require, responses_dir, stage_output


def params(cfg: Config, seed: int, proportion: float) -> dict:
    return {
        "responses": require(responses_dir(cfg.run_path), "02_preference_data (responses)")["params_hash"],
        "groups": cfg.gold.groups,
        "minority_group": cfg.gold.minority_group,
        "preference_ties": cfg.gold.preference_ties,
        "seed": seed,
        "proportion": proportion,
    }


@locked("02_preference_data", lambda cfg, seed, proportion: preferences_dir(cfg.run_path, seed, proportion))
def main(cfg: Config, seed: int, proportion: float) -> pd.DataFrame:
    out, p = preferences_dir(cfg.run_path, seed, proportion), params(cfg, seed, proportion)
    if is_done(out, p):
        print(f"[preferences] already done: {out}")
        return pd.read_parquet(out / "preferences.parquet")
    source = responses_dir(cfg.run_path) / "responses.parquet"
    responses = pd.read_parquet(source)
    pairs, counts = build_preferences(
        responses, list(cfg.gold.traits), cfg.gold.groups, cfg.gold.minority_group, proportion, seed,
        ties=cfg.gold.preference_ties,
    )  # fmt: skip
    # the same for every seed and proportion (they read the shared responses), written with each so the
    # pairs' directory says what the data can tell apart
    redundancy = trait_redundancy(responses, list(cfg.gold.traits))
    disagreements = disagreement_matrix(responses, list(cfg.gold.traits), cfg.gold.groups)
    with stage_output(out, "preferences", p, seed=seed, inputs={"responses": source}) as stage:
        pairs.to_parquet(stage["path"] / "preferences.parquet", index=False)
        redundancy.to_csv(stage["path"] / "trait_redundancy.csv")
        disagreements.to_csv(stage["path"] / "group_disagreement.csv")
        stage["extra"].update(counts=counts, trait_group_summary=redundancy_summary(redundancy, disagreements))
    return pairs


if __name__ == "__main__":
    command_line(main, seed=int, proportion=float)
