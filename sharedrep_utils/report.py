"""What the notebooks show: small, tested shapings of saved artifacts into tables and notes.

Every function takes what a stage returned or wrote (a manifest dict, a DataFrame, TRL's log
history, a directory) and returns a DataFrame, a string or a list of paths; plotting stays in the
notebooks. Only `sft_samples` loads a model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import Config
from .stats import Options, accuracy_interval, gain_row, paired_rewards, sem
from .tables import spread_shown

GRPO_CURVES = ("reward", "kl", "completions/mean_length")


# 01 · SFT


def data_note(manifest: dict) -> str:
    """One Markdown line on where the HH data came from (with the fixture warning when it applies)."""
    line = (
        f"Data: `{manifest.get('data_source')}`; {manifest.get('n_train_dialogues')} SFT dialogues "
        f"({manifest.get('n_train_available')} train and {manifest.get('n_heldout_available')} held-out "
        "prompts available)."
    )
    warning = manifest.get("data_warning")
    return f"**{warning}**\n\n{line}" if warning else line


def skipped_rows(manifest: dict) -> pd.DataFrame:
    """Rows the HH loader skipped, by reason, most frequent first."""
    skipped = manifest.get("skipped_rows") or {}
    frame = pd.DataFrame(sorted(skipped.items(), key=lambda kv: -kv[1]), columns=["reason", "rows"])
    return frame.set_index("reason")


def log_frame(history: list[dict]) -> pd.DataFrame:
    """TRL's log history as one row per logged step (the final summary entry dropped)."""
    rows = [entry for entry in history if "train_runtime" not in entry and "step" in entry]
    return pd.DataFrame(rows, columns=None if rows else ["step"]).reset_index(drop=True)


def training_curves(history: list[dict], metrics: tuple[str, ...] = GRPO_CURVES) -> pd.DataFrame:
    """Long table (step, metric, value) of the wanted metrics that were logged, in the order asked."""
    frame = log_frame(history)
    present = [m for m in metrics if m in frame and frame[m].notna().any()]
    long = frame.melt(id_vars="step", value_vars=present, var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def reward_climb(history: list[dict]) -> pd.DataFrame:
    """Mean logged training reward over the first and the last quarter of the logged steps, and the change."""
    frame = log_frame(history)
    if "reward" not in frame or frame["reward"].notna().sum() < 2:
        return pd.DataFrame(columns=["first quarter", "last quarter", "change", "logged steps"])
    reward = frame["reward"].dropna().to_numpy(dtype=float)
    quarter = max(1, len(reward) // 4)
    first, last = reward[:quarter].mean(), reward[-quarter:].mean()
    row = {"first quarter": first, "last quarter": last, "change": last - first, "logged steps": len(reward)}
    return pd.DataFrame([row], index=["training reward"])


def sft_samples(cfg: Config, n: int = 3, max_new_tokens: int = 64) -> pd.DataFrame:
    """Greedy replies of the SFT policy to the first n held-out prompts (a look, not an evaluation)."""
    from .hh_data import load_hh, take
    from .policy import generate, load_policy, pick_device
    from .runs import sft_dir

    data = load_hh(cfg.data, cfg.hh_dir())
    prompts = [e.prompt for e in take(data.test, n)]
    model, tokenizer = load_policy(sft_dir(cfg.run_path) / "model", cfg.policy, pick_device(cfg))
    tokens = min(max_new_tokens, cfg.evaluation.max_new_tokens)
    replies = generate(model, tokenizer, prompts, max_new_tokens=tokens, batch_size=max(n, 1), do_sample=False)
    return pd.DataFrame({"prompt": prompts, "completion": [r[0] for r in replies]})


# 02 · Preference data


def responses_note(manifest: dict) -> str:
    """One Markdown line from the responses manifest: prompts, group disagreement, identical pairs."""
    share = manifest.get("group_disagreement")
    share_text = f"{share:.0%}" if share is not None else "?"
    return (
        f"{manifest.get('n_prompts')} prompts × 2 sampled responses. The groups disagree on which response "
        f"is better for **{share_text}** of the pairs; {manifest.get('identical_pairs')} pairs have two "
        "identical responses."
    )


def response_samples(
    scored: pd.DataFrame, traits: list[str], groups: dict[str, dict[str, float]], n: int = 3
) -> pd.DataFrame:
    """The first n prompts with both responses: trait scores, each group's score, and which groups prefer it.

    One row per (prompt, response); `preferred by` names the groups that score this response strictly
    higher than the other one.
    """
    head = scored.head(n)
    per_response = []
    for i in (0, 1):
        part = pd.DataFrame({"prompt": head["prompt"], "response": i, "text": head[f"response_{i}"]})
        for t in traits:
            part[t] = head[f"{t}_{i}"]
        for g, weights in groups.items():
            part[f"{g} score"] = sum(w * head[f"{t}_{i}"] for t, w in weights.items())
        per_response.append(part)
    first, second = per_response
    for part, other in ((first, second), (second, first)):
        part["preferred by"] = [
            ", ".join(g for g in groups if part.at[idx, f"{g} score"] > other.at[idx, f"{g} score"])
            for idx in part.index
        ]
    out = pd.concat([first, second]).rename_axis("row").reset_index()
    return out.sort_values(["row", "response"]).drop(columns="row").set_index(["prompt", "response"])


def trait_frame(scored: pd.DataFrame, traits: list[str]) -> pd.DataFrame:
    """One row per sampled response with its trait scores (both responses of each prompt stacked)."""
    parts = []
    for i in (0, 1):
        part = scored[["prompt_id"] + [f"{t}_{i}" for t in traits]].rename(columns={f"{t}_{i}": t for t in traits})
        parts.append(part.assign(response=i))
    return pd.concat(parts, ignore_index=True)


def pair_counts(manifest: dict) -> pd.DataFrame:
    """From the preferences manifest: pairs kept per group, and rows dropped as ties or identical responses."""
    counts = manifest.get("counts", {})
    rows = [{"what": f"pairs for {g}", "n": n} for g, n in counts.get("pairs_per_group", {}).items()]
    rows += [{"what": "dropped: tie", "n": counts.get("dropped_ties")}]
    rows += [{"what": "dropped: identical responses", "n": counts.get("dropped_identical")}]
    return pd.DataFrame(rows).set_index("what")


def pair_samples(pairs: pd.DataFrame, per_group: int = 2) -> pd.DataFrame:
    """The first `per_group` preference pairs of each group: prompt, chosen, rejected and their group scores."""
    columns = ["group", "prompt", "chosen", "rejected", "chosen_score", "rejected_score"]
    return pairs.groupby("group", sort=False).head(per_group)[columns].sort_values("group", kind="stable")


def group_weight_table(groups: dict[str, dict[str, float]], traits: list[str]) -> pd.DataFrame:
    """Groups × traits: each group's weight on each gold trait (0 where it leaves one out), in profile order."""
    from .groups import check_group_traits

    check_group_traits(groups, traits)
    table = pd.DataFrame([{t: float(weights.get(t, 0.0)) for t in traits} for weights in groups.values()])
    return table.set_axis(pd.Index(list(groups), name="group")).rename_axis(columns="trait")


def redundancy_note(redundancy: pd.DataFrame) -> str:
    """One Markdown sentence reading `groups.trait_redundancy`: the trait the others predict best, and the
    most rank-correlated pair."""
    r2 = redundancy["r2_from_others"].dropna()
    if r2.empty:
        return "Every trait is constant on these responses: no R² to read."
    top = r2.idxmax()
    text = (
        f"The others predict **{top}** best (R² {r2[top]:.2f}): near 1, a trait adds no direction the others do not "
        "already give; near 0, it is a direction of its own."
    )
    names = list(redundancy.index)
    rho = {(a, b): abs(redundancy.at[a, f"rho_{b}"]) for i, a in enumerate(names) for b in names[i + 1 :]}
    rho = {pair: value for pair, value in rho.items() if pd.notna(value)}
    if rho:
        a, b = max(rho, key=rho.get)
        text += f" The strongest rank correlation is {a}–{b} (|ρ| {rho[a, b]:.2f})."
    constant = list(redundancy.index[redundancy["note"].astype(bool)])
    if constant:
        text += f" Constant on these responses: {', '.join(constant)}."
    return text


# 03 · Reward models


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per reward model, split and group (accuracy, mean margin, n) from `stages.reward_models.main`."""
    rows = [
        {"policy": name, "split": split, "group": group, **values}
        for name, m in metrics.items()
        for split in ("train", "test")
        for group, values in m[split].items()
    ]
    return pd.DataFrame(rows)


def margin_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean reward margin (chosen − rejected, own group's reward) per reward model and (split, group),
    with the number of pairs behind each cell."""

    def wide(value: str) -> pd.DataFrame:
        table = metrics.pivot_table(index="policy", columns=["split", "group"], values=value, sort=False)
        return table.reindex(columns=["test", "train"], level=0)

    return pd.concat({"mean margin": wide("mean_margin").round(3), "pairs": wide("n").astype(int)}, axis=1)


def accuracy_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Held-out and train accuracy, one row per reward model, one column per (split, group)."""
    wide = metrics.pivot_table(index="policy", columns=["split", "group"], values="accuracy", sort=False)
    return wide.reindex(columns=["test", "train"], level=0).round(3)


def group_accuracy(metrics: pd.DataFrame, split: str = "test", confidence: float = 0.95) -> pd.DataFrame:
    """Per-group (not overall) accuracy of each reward model on one split: policy, group, n, accuracy and
    its Wilson interval (few minority pairs give a wide one)."""
    rows = metrics[(metrics["split"] == split) & (metrics["group"] != "overall")]
    out = rows[["policy", "group", "n", "accuracy"]].reset_index(drop=True)
    intervals = [accuracy_interval(a, int(n), confidence) for a, n in zip(out["accuracy"], out["n"])]
    out["ci_low"], out["ci_high"] = [i[0] for i in intervals], [i[1] for i in intervals]
    return out


def rm_budget_tables(rm_path: Path, minority: str) -> dict[str, pd.DataFrame] | None:
    """A reward-model stage's budgets.csv (reward_model.grid) as the tables notebook 03 shows: optimiser steps per
    setting and policy, the minority's test accuracy, the validation accuracy (mean over groups) that picks `tuned`,
    and what each budget picked; None without a grid."""
    path = rm_path / "budgets.csv"
    if not path.is_file():
        return None
    from .budgets import comparison

    grid = pd.read_csv(path)
    validation = grid[(grid["split"] == "validation") & (grid["group"] != "overall")]
    picked = grid[(grid["split"] == "test") & (grid["group"] == "overall") & (grid["matched"] | grid["tuned"])]
    return {
        "optimiser steps": grid.drop_duplicates(["policy", "setting"]).pivot(
            index="setting", columns="policy", values="optimizer_steps"
        ),
        f"{minority}: test accuracy": comparison(grid, minority, "test").round(3),
        "validation accuracy, mean over groups": validation.pivot_table(
            index="setting", columns="policy", values="accuracy", sort=False
        ).round(3),
        "picked (test accuracy, all groups)": picked[["policy", "setting", "matched", "tuned", "accuracy"]],
    }


# 05 · Evaluation


def group_means(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± SEM of each gold group score and trait in an evaluation table."""
    columns = [c for c in table.columns if c.startswith(("group_", "trait_"))]
    return pd.DataFrame(
        {
            "n": [int(table[c].notna().sum()) for c in columns],
            "mean": [table[c].mean() for c in columns],
            "sem": [sem(table[c].dropna().to_numpy()) for c in columns],
        },
        index=columns,
    )


def reward_before_after(
    table: pd.DataFrame, sft: pd.DataFrame | None, groups: list[str], options: Options | None = None
) -> pd.DataFrame:
    """Did RL climb? On the same held-out prompts: the SFT policy's and this policy's mean of the reward it
    was trained on (`training`, both completions scored by this policy's reward) and of the gold min over
    groups, the mean paired gain with its bootstrap interval, and n."""
    pairs = paired_rewards(table, sft, groups)
    rows = {reward: gain_row(pair, options or Options(), reward) for reward, pair in pairs.items()}
    columns = ["mean_sft", "mean_policy", "mean_gain_vs_sft", "ci_low", "ci_high", "n"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("reward")


def policy_before_after(cfg: Config, table: pd.DataFrame, method: str) -> pd.DataFrame | str:
    """Notebook 05's view: `reward_before_after` against the run's SFT evaluation, or why there is none."""
    if method == "sft":
        return "this is the SFT policy: nothing to compare with"
    sft = sft_evaluation(cfg)
    if sft is None:
        return "no SFT evaluation yet: run this notebook with method = 'sft' first"
    return reward_before_after(
        table,
        sft,
        list(cfg.gold.groups),
        Options(cfg.results.ties, cfg.results.n_bootstrap, cfg.results.confidence, cfg.results.bootstrap_seed),
    )


def sft_evaluation(cfg: Config) -> pd.DataFrame | None:
    """The SFT policy's evaluation table (eval/sft.parquet), or None when it has not been run."""
    from .runs import eval_file

    path = eval_file(cfg.run_path, "sft")
    return pd.read_parquet(path) if path.is_file() else None


def completion_samples(table: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The first n evaluation prompts with the policy's completion and its gold group scores."""
    groups = [c for c in table.columns if c.startswith("group_")]
    return table[["prompt", "completion", *groups]].head(n)


GENERATION_COLUMNS = ("do_sample", "temperature", "top_p", "generation_seed", "max_new_tokens")


def generation_settings(table: pd.DataFrame) -> pd.DataFrame:
    """The decoding settings an evaluation table was made with (one row per distinct setting)."""
    columns = [c for c in GENERATION_COLUMNS if c in table]
    return table[columns].drop_duplicates().reset_index(drop=True)


# 06 · Results


def figure_paths(results: Path) -> list[Path]:
    """The PNG figures in a results directory, by name."""
    return sorted(Path(results).glob("*.png"))


def table_paths(results: Path, ext: str = "md") -> list[Path]:
    """The paper-style tables (table_k<K>.<ext>, or table_nok without SharedRep) in a results directory, by K."""

    def k_of(path: Path) -> int:
        k = path.stem.removeprefix("table_k")
        return int(k) if k.isdigit() else -1

    return sorted(Path(results).glob(f"table_*.{ext}"), key=k_of)


def caption_of(results: Path) -> str:
    """The caption line 06_results wrote into its manifest (profile, seeds, n, data, decoding)."""
    from .runs import read_manifest

    return (read_manifest(Path(results)) or {}).get("caption", "")


SPREAD_LABELS = {
    "seed": "± seed SEM",  # standard error across the per-seed values
    "pooled": "± pooled SEM (prompt × seed rows)",  # upstream's: evaluation noise only
    "prompts": "± SEM over prompts",  # one seed: the only spread there is
}


def results_overview(summary: pd.DataFrame, spread: str = "seed") -> pd.DataFrame:
    """summary.csv as a person reads it: policy, p, group, n, seeds, mean ± spread, mean [CI over prompts],
    win rate ± spread [CI over prompts], seed SD, both tie rules.

    With two or more seeds ± is the standard error across the per-seed values (`results.spread: seed`, the
    default; a policy run once, SFT, has none on its score) or, when asked (`pooled`), upstream's standard
    error over all prompt × seed rows; with one seed it is the standard error over prompts. The column
    names say which.
    """
    from .methods import method_label

    def column(name: str) -> pd.Series:
        return summary[name] if name in summary else pd.Series(float("nan"), index=summary.index)

    kind = spread_shown(summary, spread)
    score_pm, win_pm = {
        "seed": ("seed_sem_gold_score", "seed_sem_win_rate"),
        "pooled": ("sem_gold_score", "sem_win_rate"),
        "prompts": ("sem_gold_score", "sem_win_rate"),
    }[kind]

    def cells(mean: str, pm: str | None, low: str | None, high: str | None, digits: int) -> list[str]:
        out = []
        for m, s, lo, hi in zip(column(mean), column(pm) if pm else column(""), column(low or ""), column(high or "")):
            text = f"{m:.{digits}f}" if pd.notna(m) else "—"
            text += f" ± {s:.{digits}f}" if pd.notna(m) and pd.notna(s) else ""
            text += f" [{lo:.{digits}f}, {hi:.{digits}f}]" if pd.notna(m) and pd.notna(lo) else ""
            out.append(text)
        return out

    label = SPREAD_LABELS[kind]
    return pd.DataFrame(
        {
            "policy": [method_label(m, k) for m, k in zip(summary["method"], summary["k"])],
            "p": summary["proportion"],
            "group": summary["group"],
            "n": summary["n"],
            "seeds": column("n_seeds"),
            f"mean {label}": cells("mean_gold_score", score_pm, None, None, 3),
            "mean [CI over prompts]": cells("mean_gold_score", None, "ci_low_gold_score", "ci_high_gold_score", 3),
            f"win rate vs gold {label} [CI over prompts]": cells(
                "win_rate_vs_gold", win_pm, "win_rate_ci_low", "win_rate_ci_high", 2
            ),
            "seed SD (score)": column("seed_sd_gold_score").round(3),
            "win rate ties ½ / lose": [
                f"{h:.2f} / {lo:.2f}" if pd.notna(h) else "—"
                for h, lo in zip(column("win_rate_vs_gold_ties_half"), column("win_rate_vs_gold_ties_lose"))
            ],
        }
    )


def gain_overview(gain: pd.DataFrame) -> pd.DataFrame:
    """reward_gain.csv as a person reads it: policy, p, seed, reward, SFT → policy means, gain [CI], n, and
    whether the whole interval is above zero."""
    from .methods import method_label

    k = gain["k"].astype("Int64") if len(gain) else gain["k"]
    return pd.DataFrame(
        {
            "policy": [method_label(m, None if pd.isna(kk) else int(kk)) for m, kk in zip(gain["method"], k)],
            "p": gain["proportion"],
            "seed": gain["seed"],
            "reward": gain["reward"],
            "SFT → policy": [f"{a:.3f} → {b:.3f}" for a, b in zip(gain["mean_sft"], gain["mean_policy"])],
            "gain [CI]": [
                f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for m, lo, hi in zip(gain["mean_gain_vs_sft"], gain["ci_low"], gain["ci_high"])
            ],
            "n": gain["n"],
            "climbed": gain["ci_low"] > 0,
        }
    )


def budget_overview(results: Path) -> dict[str, pd.DataFrame] | None:
    """With a budget grid (reward_model.grid): the reward-model accuracy gap to MaxMin under every budget, and each
    group's test accuracy under the default, matched and tuned budgets pooled over seeds (n, Wilson interval; tuned:
    each seed's own pick); None for a run without a grid."""
    gaps_path, accuracy_path = results / "budget_gaps.csv", results / "rm_accuracy_by_budget.csv"
    if not accuracy_path.is_file():
        return None
    return {"gaps": pd.read_csv(gaps_path).round(4), "accuracy": pd.read_csv(accuracy_path).round(4)}
