"""Stage 6 (once): summary table and figures from the saved evaluation files alone.
Output: results/summary.csv, results/summary.md, figures (PNG + PDF)."""

from __future__ import annotations

import pandas as pd

from .. import plots
from ..config import Config
from ..runs import eval_file, is_done, policy_id, read_manifest, require, results_dir, sft_dir, stage_output
from ..stats import summarize
from . import command_line


def planned_policies(cfg: Config) -> list[tuple[int | None, float | None, str]]:
    """(seed, proportion, method) of every policy the sweep evaluates, in a stable order."""
    out: list[tuple[int | None, float | None, str]] = [(None, None, "sft")] if cfg.sweep.evaluate_sft else []
    for seed in cfg.sweep.seeds:
        out.append((seed, None, "gold"))
        for proportion in cfg.sweep.proportions:
            out += [(seed, proportion, m) for m in cfg.policy_methods()]
    return out


def params(cfg: Config) -> dict:
    evals = {}
    for seed, prop, method in planned_policies(cfg):
        pid = policy_id(seed, prop, method)
        evals[pid] = require(eval_file(cfg.run_path, pid), f"05_evaluate for {pid}")["params_hash"]
    return {"evals": evals, "groups": list(cfg.gold.groups)}


def caption(cfg: Config, summary: pd.DataFrame) -> str:
    sft = read_manifest(sft_dir(cfg.run_path)) or {}
    n = int(summary["n"].max()) if len(summary) else 0
    text = (
        f"profile {cfg.profile}; seeds {', '.join(map(str, cfg.sweep.seeds))}; up to n = {n} held-out prompts per "
        f"point (pooled over seeds); data {sft.get('data_source', '?')}; greedy decoding."
    )
    warning = sft.get("data_warning")
    return f"{warning} {text}" if warning else text


def main(cfg: Config) -> pd.DataFrame:
    out, p = results_dir(cfg.run_path), params(cfg)
    if is_done(out, p):
        print(f"[results] already done: {out}")
        return pd.read_csv(out / "summary.csv")
    evals = {
        (seed, prop, method): pd.read_parquet(eval_file(cfg.run_path, policy_id(seed, prop, method)))
        for seed, prop, method in planned_policies(cfg)
    }
    summary = summarize(evals, list(cfg.gold.groups))
    with stage_output(out, "results", p) as stage:
        summary.to_csv(stage["path"] / "summary.csv", index=False)
        text = caption(cfg, summary)
        plots.gold_score_figure(summary, stage["path"], text)
        plots.win_rate_figure(summary, stage["path"], text)
        (stage["path"] / "summary.md").write_text(plots.markdown_table(summary) + f"\n_{text}_\n")
        stage["extra"].update(caption=text)
    return summary


if __name__ == "__main__":
    command_line(main)
