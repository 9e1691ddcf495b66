"""Stage 6 (once): statistics, tables and figures from the saved files alone (evaluation parquet
files, reward-model metrics.json, GRPO training logs, manifests): no model is loaded, so it runs in
seconds on a finished run directory, also one copied back from a GPU machine.

Output (results/): summary.csv (pooled over seeds), summary_by_seed.csv, head_to_head.csv,
head_to_head_by_seed.csv, preference_data.csv (prompts, group disagreement, identical pairs),
contrasts.csv and contrasts_by_seed.csv (the declared primary contrast and the secondary ones, the seed
as the unit: contrasts.py), rm_accuracy.csv, reward_gain.csv (did RL climb: each policy's training reward
and the gold min over groups, policy minus SFT on the same prompts), table_k<K>.{md,tex,csv}, summary.md,
and figures as PNG + PDF. With budget × calibration variants (variants.py) contrasts.csv covers every variant
(primary_contrast.png) and calibration_effect.csv says what calibrating changed; with a budget grid (budgets.py)
budgets.csv, budgets_pooled.csv, rm_accuracy_by_budget.csv and budget_gaps.{csv,png}.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .. import budgets, contrasts, plots, tables, variants
from ..config import Config
from ..launcher import command_line
from ..methods import rank_notice, split_method
from ..report import training_curves
from ..runs import (
    eval_file,
    is_done,
    locked,
    policy_dir,
    policy_id,
    read_manifest,
    require,
    responses_dir,
    results_dir,
    rm_dir,
    sft_dir,
    stage_output,
)
from ..stats import Options, accuracy_interval, completion_stats, head_to_head_all, reward_gain, summarize_all


def planned_policies(cfg: Config) -> list[tuple[int | None, float | None, str]]:
    """(seed, proportion, method) of every policy the sweep evaluates, in a stable order."""
    out: list[tuple[int | None, float | None, str]] = [(None, None, "sft")] if cfg.sweep.evaluate_sft else []
    for seed in cfg.sweep.seeds:
        out.append((seed, None, "gold"))
        for proportion in cfg.sweep.proportions:
            out += [(seed, proportion, m) for m in cfg.policy_methods()]
    return out


def _hash(path: Path) -> str | None:
    manifest = read_manifest(path)
    return manifest["params_hash"] if manifest else None


def params(cfg: Config) -> dict:
    """Evaluation files are required; reward-model and GRPO stages are optional (figures skipped)."""
    evals, grpo = {}, {}
    for seed, prop, method in planned_policies(cfg):
        pid = policy_id(seed, prop, method)
        evals[pid] = require(eval_file(cfg.run_path, pid), f"05_evaluate for {pid}")["params_hash"]
        if method != "sft":
            grpo[pid] = _hash(policy_dir(cfg.run_path, seed, prop, method))
    rms = {
        f"seed{s}-prop{p:g}": _hash(rm_dir(cfg.run_path, s, p)) for s in cfg.sweep.seeds for p in cfg.sweep.proportions
    }
    out = {
        "evals": evals,
        "reward_models": rms,
        "grpo": grpo,
        "groups": list(cfg.gold.groups),
        "results": asdict(cfg.results),
    }
    if len(variants.variant_settings(cfg)) > 1:  # the contrasts read every variant's evaluations
        out["variants"] = {variants.key(b, m): params(vcfg) for b, m, vcfg in variants.others(cfg)}
    return out


def options(cfg: Config) -> Options:
    r = cfg.results
    return Options(r.ties, r.n_bootstrap, r.confidence, r.bootstrap_seed, r.spread)


def load_evals(cfg: Config) -> dict[tuple[int | None, float | None, str], pd.DataFrame]:
    return {
        (seed, prop, method): pd.read_parquet(eval_file(cfg.run_path, policy_id(seed, prop, method)))
        for seed, prop, method in planned_policies(cfg)
    }


def score_frame(evals: dict, groups: list[str]) -> pd.DataFrame:
    """Long table of per-prompt gold group scores: method, k, seed, proportion, group, prompt_id, score."""
    parts = []
    for (seed, prop, method), table in evals.items():
        name, k = split_method(method)
        for group in groups:
            parts.append(
                pd.DataFrame(
                    {
                        "method": name,
                        "k": k,
                        "seed": seed,
                        "proportion": prop,
                        "group": group,
                        "prompt_id": table["prompt_id"],
                        "score": table[f"group_{group}"].astype(float),
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    frame["k"] = frame["k"].astype("Int64")
    return frame


def budgets_frame(cfg: Config) -> pd.DataFrame:
    """Every seed's budgets.csv (reward models at every budget, reward_model.grid) with seed and proportion."""
    parts = [
        pd.read_csv(path).assign(seed=seed, proportion=prop)
        for seed in cfg.sweep.seeds
        for prop in cfg.sweep.proportions
        if (path := rm_dir(cfg.run_path, seed, prop) / "budgets.csv").is_file()
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def rm_metrics_frame(cfg: Config) -> pd.DataFrame:
    """Per (seed, proportion, reward model, split, group): n, accuracy with its interval, mean margin (metrics.json)."""
    rows = []
    for seed in cfg.sweep.seeds:
        for prop in cfg.sweep.proportions:
            for name in cfg.policy_methods():
                path = rm_dir(cfg.run_path, seed, prop) / name / "metrics.json"
                if not path.is_file():
                    continue
                metrics = json.loads(path.read_text())
                method, k = split_method(name)
                for split in ("train", "test"):
                    for group, values in metrics.get(split, {}).items():
                        rows.append(
                            {"seed": seed, "proportion": prop, "method": method, "k": k, "split": split, "group": group}
                            | {key: values.get(key) for key in ("n", "accuracy", "mean_margin")}
                        )
    columns = [
        "seed",
        "proportion",
        "method",
        "k",
        "split",
        "group",
        "n",
        "accuracy",
        "ci_low",
        "ci_high",
        "mean_margin",
    ]
    for row in rows:  # Wilson interval of the accuracy on its n pairs
        row["ci_low"], row["ci_high"] = accuracy_interval(row["accuracy"], row["n"] or 0, cfg.results.confidence)
    frame = pd.DataFrame(rows, columns=columns)
    frame["k"] = frame["k"].astype("Int64")
    return frame


def training_log(directory: Path) -> list[dict] | None:
    """TRL's log history as the GRPO stage saved it (training_log.json, else the manifest's copy)."""
    path = directory / "training_log.json"
    if path.is_file():
        return json.loads(path.read_text())
    manifest = read_manifest(directory)
    return manifest.get("log_history") if manifest else None


def curves_frame(cfg: Config) -> pd.DataFrame:
    """Long table of GRPO curves (reward, KL, completion length): seed, proportion, method, k, step, metric, value."""
    parts = []
    for seed, prop, method in planned_policies(cfg):
        if method == "sft":
            continue
        history = training_log(policy_dir(cfg.run_path, seed, prop, method))
        if not history:
            continue
        name, k = split_method(method)
        parts.append(training_curves(history).assign(seed=seed, proportion=prop, method=name, k=k))
    columns = ["seed", "proportion", "method", "k", "step", "metric", "value"]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)[columns]
    frame["k"] = frame["k"].astype("Int64")
    frame["proportion"] = frame["proportion"].astype(float)
    return frame


def prompt_shortfall(cfg: Config) -> str | None:
    """One sentence when 05_evaluate used fewer held-out prompts than data.n_eval_prompts asked for."""
    records = [
        (read_manifest(eval_file(cfg.run_path, policy_id(*key))) or {}).get("prompts") or {}
        for key in planned_policies(cfg)
    ]
    short = [r for r in records if r.get("asked") and r.get("used", 0) < r["asked"]]
    if not short:
        return None
    return (
        f"{short[0]['setting']} asked for {short[0]['asked']} held-out prompts, but the data holds only "
        f"{short[0]['available']}."
    )


def source_label(source: str) -> str:
    """The data source for a caption: a local directory by its name only (no machine path in a figure)."""
    kind, _, where = source.partition(":")
    return f"{kind}:{Path(where).name}" if kind == "local" and where else source


def preference_data_frame(cfg: Config) -> pd.DataFrame:
    """From the responses manifest: prompts, the share of response pairs the groups rank differently (the
    group disagreement notebook 02 shows), identical pairs; empty when the stage left no manifest."""
    columns = ["n_prompts", "group_disagreement", "identical_pairs"]
    manifest = read_manifest(responses_dir(cfg.run_path)) or {}
    if "group_disagreement" not in manifest:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame([{c: manifest.get(c) for c in columns}], columns=columns)


def caption(cfg: Config, by_seed: pd.DataFrame) -> str:
    """The line under every figure and table: profile, seeds, n, data source, decoding."""
    sft = read_manifest(sft_dir(cfg.run_path)) or {}
    ns = sorted({int(n) for n in by_seed["n"]}) or [0]
    text = caption_line(cfg, ns, sft.get("data_source", "?"))
    shortfall = prompt_shortfall(cfg)
    if shortfall:
        text += f" {shortfall}"
    notice = rank_notice(cfg)  # K >= U: said, not hidden
    if notice:
        text += f" {notice}"
    warning = sft.get("data_warning")
    return f"{warning} {text}" if warning else text


def caption_line(cfg: Config, ns: list[int], data_source: str) -> str:
    """The caption from the settings, the prompts per policy and seed (`ns`) and the data source."""
    ev = cfg.evaluation
    per_seed = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    decoding = f"sampling (T={ev.temperature:g}, top-p={ev.top_p:g}, seed {ev.seed})" if ev.do_sample else "greedy"
    which = "drawn per seed, SFT on the first n by id" if ev.prompts_per_seed else "the same prompts for every seed"
    return (
        f"Profile {cfg.profile}; seeds {', '.join(map(str, cfg.sweep.seeds))}; n = {per_seed} held-out prompts per "
        f"policy and seed ({which}; pooled over seeds); {decoding} decoding, {ev.max_new_tokens} new tokens; "
        f"data {source_label(data_source)}."
    )


def build(cfg: Config, out: Path) -> dict[str, pd.DataFrame]:
    """Every statistic, table and figure into `out`; returns the frames written."""
    groups = list(cfg.gold.groups)
    opts = options(cfg)
    evals = load_evals(cfg)
    read = {str(cfg.run_path): evals}  # each variant's evaluations read once (contrasts, calibration effect)

    def load(c: Config) -> dict:
        if str(c.run_path) not in read:  # setdefault would read the files before looking
            read[str(c.run_path)] = load_evals(c)
        return read[str(c.run_path)]

    summary, by_seed = summarize_all(evals, groups, opts)
    h2h, h2h_by_seed = head_to_head_all(evals, groups, "sharedrep", "maxmin", opts)
    gain = reward_gain(evals, groups, opts)
    contrast, contrast_by_seed = contrasts.variant_contrast_tables(cfg, load)
    rm = rm_metrics_frame(cfg)
    curves = curves_frame(cfg)
    text = caption(cfg, by_seed)
    summary.to_csv(out / "summary.csv", index=False)
    by_seed.to_csv(out / "summary_by_seed.csv", index=False)
    h2h.to_csv(out / "head_to_head.csv", index=False)
    h2h_by_seed.to_csv(out / "head_to_head_by_seed.csv", index=False)
    preference_data_frame(cfg).to_csv(out / "preference_data.csv", index=False)
    rm.to_csv(out / "rm_accuracy.csv", index=False)
    gain.to_csv(out / "reward_gain.csv", index=False)
    completion_stats(evals).to_csv(out / "completion_stats.csv", index=False)  # what they write, not how it scores
    contrast.to_csv(out / "contrasts.csv", index=False)
    contrast_by_seed.to_csv(out / "contrasts_by_seed.csv", index=False)
    if len({m for _, m in variants.variant_settings(cfg)}) > 1:  # raw and calibrated min: what calibrating changes
        contrasts.calibration_effect(cfg, load).to_csv(out / "calibration_effect.csv", index=False)
    grid = budgets_frame(cfg)
    if len(grid):  # every reward model at every budget (reward_model.grid), and the SharedRep - MaxMin gap
        grid.to_csv(out / "budgets.csv", index=False)
        budgets.pooled(grid, cfg.results.confidence).to_csv(out / "budgets_pooled.csv", index=False)
        budgets.budget_accuracy(grid, "test", cfg.results.confidence).to_csv(
            out / "rm_accuracy_by_budget.csv", index=False
        )
        gaps = budgets.gaps(grid, cfg.gold.minority_group, cfg.results.confidence)
        gaps.to_csv(out / "budget_gaps.csv", index=False)
    table_paths = tables.write_tables(summary, out, text, opts.ties, opts.confidence, opts.spread)
    sections = [contrasts.contrasts_markdown(contrast)]  # the declared contrast first: what the run claims
    sections += [p.read_text() for p in table_paths if p.suffix == ".md"]
    sections.append(tables.head_to_head_markdown(h2h, opts.confidence, opts.spread))
    (out / "summary.md").write_text("\n".join(sections) + f"\n_{text}_\n")
    if len(variants.variant_settings(cfg)) > 1:
        plots.contrast_figure(contrast, out, text)
    if len(grid) and len(gaps):
        plots.budget_gap_figure(gaps, out, text)
    plots.gold_score_figure(summary, out, text, opts.confidence, opts.spread)  # ± as in the tables
    plots.win_rate_figure(summary, out, text, opts.confidence, opts.spread)
    plots.score_distribution_figure(score_frame(evals, groups), out, text)
    if summary["method"].eq("sharedrep").any():
        plots.k_ablation_figure(summary, out, text, opts.confidence, opts.spread)
    if len(rm):
        plots.rm_accuracy_figure(rm, out, text)
    else:
        print("[results] no reward-model metrics.json found: rm_accuracy_vs_proportion skipped")
    if len(curves):
        plots.training_curves_figure(curves, out, text)
    else:
        print("[results] no GRPO training logs found: grpo_training_curves skipped")
    return {
        "summary": summary,
        "by_seed": by_seed,
        "head_to_head": h2h,
        "reward_gain": gain,
        "contrasts": contrast,
        "rm": rm,
        "curves": curves,
        "caption": text,
    }


@locked("06_results", lambda cfg: results_dir(cfg.run_path))
def main(cfg: Config) -> pd.DataFrame:
    out, p = results_dir(cfg.run_path), params(cfg)
    if is_done(out, p):
        print(f"[results] already done: {out}")
        return pd.read_csv(out / "summary.csv")
    inputs = {policy_id(*key): eval_file(cfg.run_path, policy_id(*key)) for key in planned_policies(cfg)}
    with stage_output(out, "results", p, inputs=inputs) as stage:
        built = build(cfg, stage["path"])
        stage["extra"].update(caption=built["caption"], files=sorted(f.name for f in stage["path"].iterdir()))
    return built["summary"]


if __name__ == "__main__":
    command_line(main)
