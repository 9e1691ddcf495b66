"""Figures from saved results (summary tables, evaluation scores, reward-model metrics, GRPO logs).

Every figure is written as PNG and PDF with a caption line under it (profile, seeds, n and what the
error bars are); the functions take DataFrames built from files, never live models. With two or more
seeds the error bars of the summary figures are the standard error across the per-seed values (the seed
is the unit of replication); with one seed, the bootstrap interval over prompts at `confidence`.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND"):  # a Jupyter kernel sets its inline backend there: keep it
    matplotlib.use("Agg")  # elsewhere files, not windows; 06_results displays the saved images
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .methods import method_label  # noqa: E402
from .tables import policy_order, spread_shown  # noqa: E402

REFERENCES = ("Gold", "SFT")  # dashed: reference policies, not methods
TIES_TEXT = {"half": "ties count ½", "lose": "ties lose"}


def interval_text(summary: pd.DataFrame, confidence: float = 0.95) -> str:
    """What a prompt-level interval is: the bootstrap interval over prompts, cluster or within each seed."""
    kinds = set(summary["bootstrap"].dropna()) if "bootstrap" in summary else set()
    level = f"{confidence * 100:g}%"
    if "within-seed" in kinds:
        return f"bootstrap {level} CI over prompts, resampled within each seed (seeds evaluated on different prompts)"
    return f"cluster-bootstrap {level} CI over prompts (prompt ids drawn jointly for every seed)"


def n_seeds(summary: pd.DataFrame) -> int:
    """The most seeds behind any row (0 for an empty summary)."""
    return int(summary["n_seeds"].max()) if "n_seeds" in summary and len(summary) else 0


# summary column of each plotted value -> (its seed-level SEM, its pooled SEM, its prompt-level interval low, high)
ERRORS = {
    "mean_gold_score": ("seed_sem_gold_score", "sem_gold_score", "ci_low_gold_score", "ci_high_gold_score"),
    "win_rate_vs_gold": ("seed_sem_win_rate", "sem_win_rate", "win_rate_ci_low", "win_rate_ci_high"),
}


def error_columns(summary: pd.DataFrame, y: str, spread: str = "seed") -> tuple[pd.DataFrame, str, str]:
    """The summary with the error-bar ends of `y` as columns, and their names: with two or more seeds ± what the
    tables put after ± (`results.spread`): the standard error across seeds (none for a policy run once), or with
    "pooled" upstream's standard error over all prompt × seed rows; with one seed, the prompt-level interval."""
    seed_sem, pooled_sem, low, high = ERRORS[y]
    kind = spread_shown(summary, spread)
    if kind == "prompts":
        return summary, low, high
    sem = pooled_sem if kind == "pooled" else seed_sem
    out = summary.assign(_seed_low=summary[y] - summary[sem], _seed_high=summary[y] + summary[sem])
    return out, "_seed_low", "_seed_high"


def error_text(summary: pd.DataFrame, confidence: float = 0.95, spread: str = "seed") -> str:
    """What the error bars of `error_columns` are, for the caption."""
    seeds, kind = n_seeds(summary), spread_shown(summary, spread)
    if kind == "pooled":
        return (
            "± the pooled standard error over all of a policy's prompt × seed rows (upstream's ±, results.spread = "
            "pooled: evaluation noise only, not the spread between seeds)"
        )
    if kind == "seed":
        return f"± standard error across the {seeds} per-seed values (none for a policy trained once)"
    return interval_text(summary, confidence)


CURVE_LABELS = {
    "reward": "training reward\n(own RM, min over groups)",
    "kl": "KL to the SFT policy\n(nats per token)",
    "completions/mean_length": "mean completion length (tokens)",
}


def _labelled(summary: pd.DataFrame) -> pd.DataFrame:
    out = summary.copy()
    out["policy"] = [method_label(m, k) for m, k in zip(out["method"], out["k"])]
    return out


def palette(labels: list[str]) -> dict[str, tuple]:
    """One colour per policy, the same in every figure of a run."""
    return dict(zip(labels, sns.color_palette("tab10", max(len(labels), 1))))


def _save(fig, out_dir: Path, name: str, caption: str) -> list[Path]:
    """Caption wrapped under the axes (space reserved for it), then PNG and PDF."""
    width, height = fig.get_size_inches()
    lines = textwrap.wrap(caption, width=int(width * 16)) or [""]
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, ha="left", va="bottom")
    bottom = (0.15 * len(lines) + 0.15) / height
    fig.tight_layout(rect=(0, min(bottom, 0.5), 1, 1))
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:  # the caption also goes into the file's metadata, where a script can read it
        key = "Description" if path.suffix == ".png" else "Subject"
        fig.savefig(path, dpi=150, metadata={key: caption})
    plt.close(fig)
    return paths


def _error(rows: pd.DataFrame, mean: str, low: str, high: str, fallback: str | None = None):
    """Asymmetric error bars from interval columns (or symmetric from `fallback`, e.g. SEM)."""
    if low in rows and rows[low].notna().any():
        return [(rows[mean] - rows[low]).clip(lower=0).fillna(0), (rows[high] - rows[mean]).clip(lower=0).fillna(0)]
    return rows[fallback].fillna(0) if fallback else None


def _dodge(props: list[float], n: int) -> tuple[float, float]:
    """Horizontal offset step between n policies at the same proportion, and the x padding."""
    span = (max(props) - min(props)) if len(props) > 1 else 0.5 * max(abs(props[0]), 0.02)
    return span * 0.5 / max(len(props) * n, 1), span * 0.15


def _proportion_axis(ax, props: list[float], pad: float) -> None:
    ax.set_xticks(props, [f"{p:g}" for p in props])
    ax.set_xlim(min(props) - pad, max(props) + pad)
    ax.set_xlabel("minority proportion p (share of annotators)")


def _dodged_lines(ax, data: pd.DataFrame, y: str, yerr, order: list[str], colours: dict) -> None:
    """One line per policy over proportions, policies shifted a little sideways so bars do not hide each other."""
    props = sorted(data["proportion"].dropna().unique())
    present = [p for p in order if p in set(data["policy"])]
    step, pad = _dodge(props, len(present))
    for i, policy in enumerate(present):
        rows = data[data["policy"] == policy].sort_values("proportion")
        ax.errorbar(
            rows["proportion"] + (i - (len(present) - 1) / 2) * step,
            rows[y],
            yerr=yerr(rows),
            label=policy,
            marker="o",
            capsize=3,
            linestyle="--" if policy in REFERENCES else "-",
            color=colours[policy],
        )
    _proportion_axis(ax, props, pad + step * len(present) / 2)


def _per_group_lines(summary, y, low, high, ylabel, caption, out_dir, name, fallback=None, skip=(), hline=None):
    data = _labelled(summary)
    data = data[~data["method"].isin(skip)].dropna(subset=[y])
    groups = list(dict.fromkeys(summary["group"]))
    order = policy_order(summary)
    colours = palette(order)
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        rows = data[data["group"] == group]
        if len(rows):
            _dodged_lines(ax, rows, y, lambda r: _error(r, y, low, high, fallback), order, colours)
        if hline is not None:
            ax.axhline(hline, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{group} group")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    return _save(fig, out_dir, name, caption)


def gold_score_figure(summary: pd.DataFrame, out_dir: Path, caption: str, confidence: float = 0.95,
                      spread: str = "seed") -> list[Path]:  # fmt: skip
    """Per-group mean gold score vs minority proportion, one line per policy; error bars per `error_columns`."""
    data, low, high = error_columns(summary, "mean_gold_score", spread)
    return _per_group_lines(
        data,
        "mean_gold_score",
        low,
        high,
        "mean gold group score (gold scorer units)",
        caption + f" Error bars: {error_text(summary, confidence, spread)}.",
        out_dir,
        "gold_score_vs_proportion",
        # one seed without a bootstrap interval: the SEM over prompts; with seeds, a policy run once (SFT) gets no
        # seed-level bar (under results.spread pooled it gets its pooled SEM, like every other policy)
        fallback="sem_gold_score" if n_seeds(summary) < 2 else None,
    )


def win_rate_figure(summary: pd.DataFrame, out_dir: Path, caption: str, confidence: float = 0.95,
                    spread: str = "seed") -> list[Path]:  # fmt: skip
    """Win rate against the gold policy vs minority proportion, per group and policy (bars: `error_columns`)."""
    ties = str(summary["ties"].iloc[0]) if "ties" in summary and len(summary) else "lose"
    data, low, high = error_columns(summary, "win_rate_vs_gold", spread)
    return _per_group_lines(
        data,
        "win_rate_vs_gold",
        low,
        high,
        f"win rate vs gold policy\n(share of prompts; {TIES_TEXT.get(ties, ties)})",
        caption + f" Error bars: {error_text(summary, confidence, spread)}; a tie is an identical completion. "
        "Dotted line: even with the gold policy.",
        out_dir,
        "win_rate_vs_proportion",
        skip=("gold",),
        hline=0.5,
    )


def k_ablation_figure(summary: pd.DataFrame, out_dir: Path, caption: str, confidence: float = 0.95,
                      spread: str = "seed") -> list[Path]:  # fmt: skip
    """SharedRep's gold score and win rate vs K, one line per proportion (bars: `error_columns`); MaxMin as a
    dotted reference."""
    shared = summary[summary["method"] == "sharedrep"].dropna(subset=["k"])
    groups = list(dict.fromkeys(summary["group"]))
    props = sorted(summary["proportion"].dropna().unique())
    colours = dict(zip(props, sns.color_palette("viridis", max(len(props), 1))))
    ks = sorted(int(k) for k in shared["k"].unique())
    fig, axes = plt.subplots(2, len(groups), figsize=(5 * len(groups), 7), squeeze=False)
    metrics = [
        ("mean_gold_score", "mean gold group score (gold scorer units)"),
        ("win_rate_vs_gold", "win rate vs gold policy\n(share of prompts)"),
    ]
    for row, (y, ylabel) in enumerate(metrics):
        with_errors, low, high = error_columns(shared, y, spread)
        for col, group in enumerate(groups):
            ax = axes[row][col]
            for prop in props:
                rows = with_errors[(shared["group"] == group) & (shared["proportion"] == prop)].sort_values("k")
                x = [ks.index(int(k)) for k in rows["k"]]
                ax.errorbar(
                    x,
                    rows[y],
                    yerr=_error(rows, y, low, high),
                    marker="o",
                    capsize=3,
                    color=colours[prop],
                    label=f"SharedRep, p = {prop:g}",
                )
                ref = summary[
                    (summary["method"] == "maxmin") & (summary["group"] == group) & (summary["proportion"] == prop)
                ]
                if len(ref) and pd.notna(ref[y].iloc[0]):
                    ax.axhline(
                        ref[y].iloc[0], color=colours[prop], linestyle=":", linewidth=1, label=f"MaxMin, p = {prop:g}"
                    )
            ax.set_xticks(range(len(ks)), [str(k) for k in ks])
            ax.set_xlabel("SharedRep rank K (shared representation size)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{group} group")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    bars = error_text(shared, confidence, spread)
    text = caption + f" Error bars: {bars}; dotted lines: MaxMin at the same p (no K)."
    return _save(fig, out_dir, "k_ablation", text)


def contrast_figure(contrasts: pd.DataFrame, out_dir: Path, caption: str) -> list[Path]:
    """The declared contrast under every budget × calibration (one panel per outcome): the estimate with its
    t interval across seeds, a line at 0. What the run claims, with its uncertainty, in one picture."""
    primary = contrasts[contrasts["primary"].astype(bool)].copy()
    if primary.empty:
        return []
    primary["variant"] = primary["budget"] + " budget, calibration " + primary["calibrated"]
    outcomes = list(dict.fromkeys(primary["group"]))
    size = (4.6 * len(outcomes) + 2, 0.5 * primary["variant"].nunique() + 2.4)
    fig, axes = plt.subplots(1, len(outcomes), figsize=size, sharey=True, squeeze=False)
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        rows = primary[primary["group"] == outcome].reset_index(drop=True)
        y = range(len(rows))
        ax.errorbar(rows["estimate"], y, xerr=_error(rows, "estimate", "ci_low", "ci_high"), fmt="o", color="black",
                    capsize=3)  # fmt: skip
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(list(y), rows["variant"])
        ax.set_title(f"{rows['contrast'].iloc[0]}\non {'the min over groups' if outcome == 'min' else outcome}")
        ax.set_xlabel(f"gold score difference ({rows['confidence'].iloc[0]:.0%} t interval)")
    ax.invert_yaxis()
    n = int(primary["n_seeds"].max())
    return _save(fig, out_dir, "primary_contrast", f"{caption} Declared contrast; {n} seeds, paired per seed.")


def budget_gap_figure(gaps: pd.DataFrame, out_dir: Path, caption: str) -> list[Path]:
    """Reward-model test accuracy gap (policy − MaxMin) under every budget: the default (the paper's unmatched
    settings), each grid cell, matched and tuned; a row of panels per proportion, one panel per outcome, a point per
    policy, t intervals across seeds. One matched cell can pick the winner; the whole grid shows whether it does."""
    outcomes, props = list(dict.fromkeys(gaps["group"])), sorted(gaps["proportion"].unique())
    budgets_, policies = list(dict.fromkeys(gaps["budget"])), list(dict.fromkeys(gaps["policy"]))
    fig, axes = plt.subplots(len(props), len(outcomes), figsize=(4.5 * len(outcomes), 3.6 * len(props)), sharey=True,
                             squeeze=False)  # fmt: skip
    for row_axes, prop in zip(axes, props, strict=True):
        for ax, outcome in zip(row_axes, outcomes, strict=True):
            cell = gaps[(gaps["group"] == outcome) & (gaps["proportion"] == prop)]
            for i, policy in enumerate(policies):
                rows = cell[cell["policy"] == policy].set_index("budget").reindex(budgets_)
                x = [j + (i - (len(policies) - 1) / 2) * 0.15 for j in range(len(budgets_))]
                yerr = _error(rows, "estimate", "ci_low", "ci_high")  # a budget this policy lacks: NaN, no bar
                label = f"{policy} − {rows['baseline'].dropna().iloc[0]}"
                ax.errorbar(x, rows["estimate"], yerr=yerr, fmt="o", capsize=3, label=label)
            ax.axhline(0, color="grey", linestyle="--", linewidth=1)
            ax.set_xticks(range(len(budgets_)), budgets_, rotation=30, ha="right")
            ax.set_title(f"{outcome}, p = {prop:g}")
        row_axes[0].set_ylabel("reward-model test accuracy gap\n(t interval across seeds)")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, out_dir, "budget_gaps", f"{caption} Reward models under every budget, paired per seed.")


def rm_accuracy_figure(metrics: pd.DataFrame, out_dir: Path, caption: str, split: str = "test") -> list[Path]:
    """Reward-model preference accuracy per group vs minority proportion (mean over seeds, ± SD).

    `metrics`: columns seed, proportion, method, k, split, group, n, accuracy.
    """
    data = metrics[(metrics["split"] == split) & (metrics["group"] != "overall")].copy()
    data["policy"] = [method_label(m, k) for m, k in zip(data["method"], data["k"])]
    cells = data.groupby(["policy", "group", "proportion"], sort=False)
    agg = cells.agg(accuracy=("accuracy", "mean"), sd=("accuracy", "std"), n=("n", "min")).reset_index()
    groups = list(dict.fromkeys(data["group"]))
    order = policy_order(data)
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(5 * max(len(groups), 1), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        _dodged_lines(ax, agg[agg["group"] == group], "accuracy", lambda r: r["sd"].fillna(0), order, palette(order))
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylim(0, 1)
        ax.set_title(f"{group} group ({split} pairs)")
        ax.set_ylabel("reward-model accuracy\n(share of held-out pairs ranked right)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    n = int(data["n"].min()) if len(data) else 0
    text = (
        caption + f" Held-out preference pairs per group and seed: at least {n}; bars: SD over seeds; dotted: chance."
    )
    return _save(fig, out_dir, "rm_accuracy_vs_proportion", text)


def training_curves_figure(curves: pd.DataFrame, out_dir: Path, caption: str) -> list[Path]:
    """GRPO training curves: rows = reward, KL, completion length; columns = minority proportions.

    `curves`: columns seed, proportion (NaN for gold), method, k, step, metric, value. The gold
    policy has no proportion and is drawn in every column; lines are means over seeds (band: SD).
    """
    data = curves.copy()
    data["policy"] = [method_label(m, k) for m, k in zip(data["method"], data["k"])]
    props = sorted(data["proportion"].dropna().unique()) or [float("nan")]
    metrics = [m for m in CURVE_LABELS if m in set(data["metric"])] + sorted(set(data["metric"]) - set(CURVE_LABELS))
    order = policy_order(data)
    fig, axes = plt.subplots(
        max(len(metrics), 1), len(props), figsize=(max(4.2 * len(props), 7), 2.8 * max(len(metrics), 1)), squeeze=False
    )
    for col, prop in enumerate(props):
        here = data[data["proportion"].isna() | (data["proportion"] == prop)]
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            rows = here[here["metric"] == metric]
            sns.lineplot(
                data=rows,
                x="step",
                y="value",
                hue="policy",
                hue_order=[o for o in order if o in set(rows["policy"])],
                palette=palette(order),
                errorbar="sd",
                ax=ax,
                legend="auto" if row == 0 and col == len(props) - 1 else False,
            )
            ax.set_xlabel("GRPO step")
            ax.set_ylabel(CURVE_LABELS.get(metric, metric) if col == 0 else "")
            if row == 0:
                ax.set_title(f"p = {prop:g}" if pd.notna(prop) else "")
            ax.grid(alpha=0.3)
            if ax.get_legend():
                ax.legend(fontsize=7)
    text = caption + " Lines: mean over seeds (band: SD). Rewards are each policy's own reward model's units."
    return _save(fig, out_dir, "grpo_training_curves", text)


def score_distribution_figure(scores: pd.DataFrame, out_dir: Path, caption: str) -> list[Path]:
    """ECDF of per-prompt gold group scores per policy; rows = proportions, columns = groups.

    `scores`: columns method, k, proportion (NaN for gold and SFT), group, score.
    """
    data = scores.copy()
    data["policy"] = [method_label(m, k) for m, k in zip(data["method"], data["k"])]
    groups = list(dict.fromkeys(data["group"]))
    props = sorted(data["proportion"].dropna().unique()) or [float("nan")]
    order = policy_order(data)
    fig, axes = plt.subplots(len(props), len(groups), figsize=(5 * len(groups), 3.3 * len(props)), squeeze=False)
    for row, prop in enumerate(props):
        here = data[data["proportion"].isna() | (data["proportion"] == prop)]
        for col, group in enumerate(groups):
            ax = axes[row][col]
            rows = here[here["group"] == group]
            sns.ecdfplot(
                data=rows,
                x="score",
                hue="policy",
                hue_order=[o for o in order if o in set(rows["policy"])],
                palette=palette(order),
                ax=ax,
                legend="auto" if row == 0 and col == len(groups) - 1 else False,
            )
            ax.set_xlabel(f"{group} gold group score (gold scorer units)")
            ax.set_ylabel("share of prompts with score ≤ x")
            ax.set_title(f"{group} group, p = {prop:g}" if pd.notna(prop) else f"{group} group")
            ax.grid(alpha=0.3)
    text = caption + " Empirical CDF over prompts, pooled over seeds; further right is better."
    return _save(fig, out_dir, "gold_score_distribution", text)


# 00 · synthetic check: one line per method along p or n, mean over seeds ± SEM

SYNTHETIC_STYLE = {"maxmin": ("tab:red", "o"), "sharedrep": ("tab:blue", "s"), "uniform": ("tab:grey", "^")}
AXIS_LABELS = {"proportion": "minority proportion p", "n_pairs": "training pairs n"}


def synthetic_lines(summary: pd.DataFrame, x: str, metric: str, ax, role: str, fixed: tuple[str, float]) -> None:
    """One line per method for one role, along `x` ("proportion" or "n_pairs") with the other held at `fixed`."""
    column, value = fixed
    part = summary[(summary["role"] == role) & (summary[column] == value)]
    for (method, k), line in part.groupby(["method", "k"], dropna=False):
        line = line.sort_values(x)
        color, marker = SYNTHETIC_STYLE[method]
        ax.errorbar(
            line[x],
            line[f"{metric}_mean"],
            yerr=line[f"{metric}_sem"],
            color=color,
            marker=marker,
            capsize=3,
            label=method_label(method, k),
        )
    ax.set_xlabel(AXIS_LABELS[x])
    ax.set_title(role)
    ax.grid(alpha=0.3)
    if x == "n_pairs":
        log_ticks(ax, part[x].unique())


def log_ticks(ax, values) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sorted(values), [str(v) for v in sorted(values)])
    ax.minorticks_off()


def synthetic_figure(summary: pd.DataFrame, x: str, metric: str, fixed: tuple[str, float], ylabel: str, title: str):
    """Minority and majority side by side (shared y); returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, role in zip(axes, ["minority", "majority"]):
        synthetic_lines(summary, x, metric, ax, role, fixed)
    axes[0].set_ylabel(ylabel)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def synthetic_budget_figure(gaps: pd.DataFrame, title: str):
    """The synthetic check's gap SharedRep(K) − MaxMin per grid cell (points, the matched one starred) against
    the default and tuned budgets (lines with ± SEM bands), one panel per problem of `budget_gap_table`."""
    problems = list(dict.fromkeys(gaps.index.get_level_values("problem")))
    fig, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 3.8), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], problems):
        g = gaps.loc[name]
        grid_cells = [c for c in g.index if c not in ("default", "matched", "tuned")]
        x = np.arange(len(grid_cells))
        ax.errorbar(x, g.loc[grid_cells, "gap_mean"], yerr=g.loc[grid_cells, "gap_sem"], fmt="o", color="tab:blue",
                    capsize=3, label="grid cell")  # fmt: skip
        m = grid_cells.index(g.loc["matched", "setting"])
        ax.plot(x[m], g.loc["matched", "gap_mean"], "*", ms=15, color="tab:blue", label="matched (declared cell)")
        for budget, (colour, style) in [("default", ("tab:red", "--")), ("tuned", ("tab:green", ":"))]:
            mean, err = g.loc[budget, ["gap_mean", "gap_sem"]]
            ax.axhline(mean, color=colour, ls=style, label=f"{budget} (± SEM band)")
            ax.axhspan(mean - err, mean + err, color=colour, alpha=0.12)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, grid_cells, rotation=20)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"minority accuracy gap\nSharedRep({int(gaps['k'].iloc[0])}) - MaxMin")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
