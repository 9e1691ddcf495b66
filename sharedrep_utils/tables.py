"""The paper-style HH table from `results/summary.csv`: Markdown, LaTeX (booktabs) and CSV.

One table per SharedRep K, the K stated in its title (MaxMin, Uniform, Gold and SFT have no K and
appear in every table): never K=16 scores next to K=2 win rates. Rows: minority proportion ×
policy; columns: each group's mean gold score ± SEM, then each group's win rate against the gold
policy. The best learned method (MaxMin, SharedRep, Uniform) per proportion and column is bold;
Gold is the oracle reference and SFT the no-RLHF one, so neither competes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .methods import METHODS, NAMES, display_order, method_label

SCORE_DIGITS, WIN_DIGITS = 3, 2


def policy_order(summary: pd.DataFrame) -> list[str]:
    """Display labels in a fixed order (MaxMin, SharedRep by K, Uniform, Gold, SFT, then others)."""
    keys = [(r.method, r.k) for r in summary[["method", "k"]].drop_duplicates().itertuples(index=False)]
    return [method_label(m, k) for m, k in display_order(keys)]


def table_ks(summary: pd.DataFrame) -> list[int | None]:
    """The SharedRep Ks (one table each); [None] when the run has no SharedRep."""
    ks = sorted(int(k) for k in summary.loc[summary["method"] == "sharedrep", "k"].dropna().unique())
    return ks or [None]


def paper_table(summary: pd.DataFrame, k: int | None) -> pd.DataFrame:
    """Numbers of one table (one K): a row per (proportion, policy), columns per group.

    Per group: `<g>_mean`, `<g>_sem`, `<g>_ci_low`, `<g>_ci_high`, `<g>_win_rate`, `<g>_win_ci_low`,
    `<g>_win_ci_high`; `k` is the SharedRep K of the whole table.
    """
    keep = (summary["method"] != "sharedrep") | (summary["k"] == k if k is not None else False)
    data = summary[keep.fillna(False).astype(bool)].copy()
    data["policy"] = [method_label(m, kk) for m, kk in zip(data["method"], data["k"])]
    groups = list(dict.fromkeys(data["group"]))
    fields = {
        "mean": "mean_gold_score",
        "sem": "sem_gold_score",
        "ci_low": "ci_low_gold_score",
        "ci_high": "ci_high_gold_score",
        "win_rate": "win_rate_vs_gold",
        "win_ci_low": "win_rate_ci_low",
        "win_ci_high": "win_rate_ci_high",
    }
    order = policy_order(data)
    rows = []
    for (prop, policy), block in data.groupby(["proportion", "policy"], sort=False):
        row = {"k": k, "proportion": prop, "policy": policy, "method": block["method"].iloc[0]}
        for group in groups:
            match = block[block["group"] == group]
            for short, column in fields.items():
                value = match[column].iloc[0] if len(match) and column in match else float("nan")
                row[f"{group}_{short}"] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_order"] = [order.index(p) for p in table["policy"]]
    table = table.sort_values(["proportion", "_order"]).drop(columns="_order").reset_index(drop=True)
    table["k"] = table["k"].astype("Int64")
    return table


def groups_of(table: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]


def _best(table: pd.DataFrame, column: str, digits: int) -> pd.Series:
    """True where a learned method has the highest value (as printed) within its proportion."""
    rounded = table[column].round(digits)
    learned = table["method"].isin(METHODS) & rounded.notna()
    best = rounded.where(learned).groupby(table["proportion"]).transform("max")
    return learned & (rounded == best)


def _cells(table: pd.DataFrame, bold: tuple[str, str], pm: str, dash: str) -> pd.DataFrame:
    """Formatted cells: score `mean ± sem`, win rate; bold markup around the best learned values."""
    out = pd.DataFrame({"p": [f"{p:g}" for p in table["proportion"]], "policy": table["policy"]})
    for group in groups_of(table):
        best = _best(table, f"{group}_mean", SCORE_DIGITS)
        text = [
            f"{m:.{SCORE_DIGITS}f}{pm}{s:.{SCORE_DIGITS}f}" if pd.notna(s) else f"{m:.{SCORE_DIGITS}f}"
            for m, s in zip(table[f"{group}_mean"], table[f"{group}_sem"])
        ]
        out[f"score {group}"] = [f"{bold[0]}{t}{bold[1]}" if b else t for t, b in zip(text, best)]
    for group in groups_of(table):
        best = _best(table, f"{group}_win_rate", WIN_DIGITS)
        text = [f"{w:.{WIN_DIGITS}f}" if pd.notna(w) else dash for w in table[f"{group}_win_rate"]]
        out[f"win {group}"] = [f"{bold[0]}{t}{bold[1]}" if b else t for t, b in zip(text, best)]
    return out


def title(k: int | None) -> str:
    which = f"SharedRep K = {k}" if k is not None else "no SharedRep in this run"
    return f"HH results, {which}: mean gold score ± SEM per group, and win rate against the gold policy"


def to_markdown(table: pd.DataFrame, k: int | None, caption: str, ties: str = "half") -> str:
    cells = _cells(table, ("**", "**"), " ± ", "—")
    groups = groups_of(table)
    header = ["minority proportion p", "policy"]
    header += [f"{g} score (± SEM)" for g in groups] + [f"{g} win rate vs gold" for g in groups]
    lines = [f"**{title(k)}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (2 * len(groups))]
    lines += ["| " + " | ".join(row) + " |" for row in cells.astype(str).itertuples(index=False)]
    tie_note = "ties count ½" if ties == "half" else "ties count as losses"
    lines += [
        "",
        f"_{caption} Win rate: share of prompts (matched by id) where the policy beats the gold policy; "
        f"{tie_note}. Bold: best learned method per proportion._",
    ]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in str(text)).replace("±", r"$\pm$")


def to_latex(table: pd.DataFrame, k: int | None, caption: str, ties: str = "half") -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs}); best learned values in bold."""
    cells = _cells(table, ("\\textbf{", "}"), " $\\pm$ ", "--")
    groups = groups_of(table)
    u = len(groups)
    tie_note = "ties count 1/2" if ties == "half" else "ties count as losses"
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{tex_escape(title(k))}. {tex_escape(caption)} Win rate: share of prompts where the policy "
        f"beats the gold policy ({tie_note}). Bold: best learned method per proportion.}}",
        f"\\label{{tab:hh-{'k' + str(k) if k is not None else 'nok'}}}",
        "\\begin{tabular}{ll" + "r" * (2 * u) + "}",
        "\\toprule",
        f" & & \\multicolumn{{{u}}}{{c}}{{Gold score (mean $\\pm$ SEM)}}"
        f" & \\multicolumn{{{u}}}{{c}}{{Win rate vs gold}} \\\\",
        f"\\cmidrule(lr){{3-{2 + u}}} \\cmidrule(lr){{{3 + u}-{2 + 2 * u}}}",
        "$p$ & Method & " + " & ".join(tex_escape(g) for g in groups * 2) + " \\\\",
        "\\midrule",
    ]
    previous = None
    for row in cells.itertuples(index=False):
        values = list(row)
        if previous is not None and values[0] != previous:
            lines.append("\\midrule")
        first = values[0] if values[0] != previous else ""
        previous = values[0]
        lines.append(" & ".join([first, tex_escape(values[1]), *values[2:]]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(summary: pd.DataFrame, out_dir: Path, caption: str, ties: str = "half") -> list[Path]:
    """table_k<K>.{md,tex,csv} per SharedRep K (table_nok.* without SharedRep); returns the paths."""
    paths = []
    for k in table_ks(summary):
        table = paper_table(summary, k)
        stem = out_dir / (f"table_k{k}" if k is not None else "table_nok")
        pairs = [
            (stem.with_suffix(".md"), to_markdown(table, k, caption, ties)),
            (stem.with_suffix(".tex"), to_latex(table, k, caption, ties)),
        ]
        for path, text in pairs:
            path.write_text(text)
        table.to_csv(stem.with_suffix(".csv"), index=False)
        paths += [p for p, _ in pairs] + [stem.with_suffix(".csv")]
    return paths


def head_to_head_markdown(h2h: pd.DataFrame) -> str:
    """SharedRep vs MaxMin win rate per K, proportion and group, with its interval."""
    if h2h.empty:
        return "_No head-to-head comparison (the run lacks SharedRep or MaxMin)._\n"
    frame = pd.DataFrame(
        {
            "K": h2h["k"],
            "p": [f"{p:g}" for p in h2h["proportion"]],
            "group": h2h["group"],
            "n prompts": h2h["n"],
            "wins / ties / losses": [
                f"{w} / {t} / {loss}" for w, t, loss in zip(h2h["wins"], h2h["tie_count"], h2h["losses"])
            ],
            "win rate [CI]": [
                f"{r:.2f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in zip(h2h["win_rate"], h2h["ci_low"], h2h["ci_high"])
            ],
        }
    )
    name = f"{NAMES.get(h2h['method'].iloc[0], h2h['method'].iloc[0])} vs {NAMES.get(h2h['opponent'].iloc[0], '?')}"
    return f"**Head to head: {name} on the same prompts**\n\n" + frame.to_markdown(index=False) + "\n"
