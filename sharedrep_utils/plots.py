"""Figures and tables from `results/summary.csv` (saved files only, never live objects)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, not windows; the notebook displays the saved images
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def method_label(method: str, k) -> str:
    return f"{method} (K={int(k)})" if pd.notna(k) else method


def _labelled(summary: pd.DataFrame) -> pd.DataFrame:
    out = summary.copy()
    out["policy"] = [method_label(m, k) for m, k in zip(out["method"], out["k"])]
    return out


def _save(fig, out_dir: Path, name: str, caption: str) -> list[Path]:
    fig.text(0.01, 0.005, caption, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths


def gold_score_figure(summary: pd.DataFrame, out_dir: Path, caption: str) -> list[Path]:
    """Per-group mean gold score vs minority proportion, one line per method, SEM error bars."""
    data = _labelled(summary)
    groups = list(dict.fromkeys(data["group"]))
    palette = dict(zip(dict.fromkeys(data["policy"]), sns.color_palette("tab10")))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for policy, rows in data[data["group"] == group].groupby("policy", sort=False):
            rows = rows.sort_values("proportion")
            style = "--" if policy in ("gold", "sft") else "-"
            ax.errorbar(
                rows["proportion"],
                rows["mean_gold_score"],
                yerr=rows["sem_gold_score"].fillna(0),
                label=policy,
                marker="o",
                capsize=3,
                linestyle=style,
                color=palette[policy],
            )
        ax.set_title(f"{group} group")
        ax.set_xlabel("minority proportion p")
        ax.set_ylabel("mean gold group score (± SEM)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    return _save(fig, out_dir, "gold_score_vs_proportion", caption)


def win_rate_figure(summary: pd.DataFrame, out_dir: Path, caption: str) -> list[Path]:
    """Win rate against the gold policy vs minority proportion, per group and method."""
    data = _labelled(summary)
    data = data[~data["method"].isin(["gold"])].dropna(subset=["win_rate_vs_gold"])
    groups = list(dict.fromkeys(summary["group"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        rows = data[data["group"] == group]
        sns.lineplot(data=rows, x="proportion", y="win_rate_vs_gold", hue="policy", marker="o", ax=ax)
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylim(0, 1)
        ax.set_title(f"{group} group")
        ax.set_xlabel("minority proportion p")
        ax.set_ylabel("win rate vs gold policy (ties lose)")
        ax.grid(alpha=0.3)
    return _save(fig, out_dir, "win_rate_vs_proportion", caption)


def markdown_table(summary: pd.DataFrame) -> str:
    """Mean ± SEM and win rate per method and group, one block per proportion."""
    data = _labelled(summary)
    data["score"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(data["mean_gold_score"], data["sem_gold_score"].fillna(0))]
    data["win"] = [f"{w:.2f}" if pd.notna(w) else "—" for w in data["win_rate_vs_gold"]]
    lines = []
    for prop, block in data.groupby("proportion"):
        wide = block.pivot_table(index="policy", columns="group", values=["score", "win"], aggfunc="first", sort=False)
        wide.columns = [f"{group} {'score' if what == 'score' else 'win rate'}" for what, group in wide.columns]
        lines.append(f"**minority proportion p = {prop:g}**\n\n" + wide.to_markdown() + "\n")
    return "\n".join(lines)
