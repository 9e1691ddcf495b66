"""The paper-style HH table from `results/summary.csv`: Markdown, LaTeX (booktabs) and CSV.

One table per SharedRep K, the K stated in its title (MaxMin, Uniform, Gold and SFT have no K and
appear in every table): never K=16 scores next to K=2 win rates. Rows: minority proportion ×
policy; columns: each group's mean gold score, then each group's win rate against the gold policy
under the configured tie rule (`results.ties`), then under the other rule. A cell reads
`value ± spread [interval]`: with two or more seeds ± is the standard error across seeds (or, with
`results.spread: pooled`, upstream's standard error over all prompt × seed rows, labelled so in the
title and note), with one it is the standard error over prompts; the bracket is the bootstrap interval
over prompts; the caption says which (`uncertainty_note`). The best learned method (MaxMin, SharedRep, Uniform) per
proportion and column is bold; Gold is the oracle reference and SFT the no-RLHF one, so neither competes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .methods import METHODS, NAMES, display_order, method_label

SCORE_DIGITS, WIN_DIGITS = 3, 2
OTHER_RULE = {"half": "lose", "lose": "half"}
RULE_LABEL = {"half": "ties ½", "lose": "ties lose"}
RULE_TEX = {"half": "ties count 1/2", "lose": "ties lose"}


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

    Per group: `<g>_mean`, `<g>_sem` (over prompts), `<g>_seed_sem` (across seeds), `<g>_ci_low`,
    `<g>_ci_high`, `<g>_win_rate` (the summary's tie rule), `<g>_win_sem`, `<g>_win_seed_sem`,
    `<g>_win_ci_low`, `<g>_win_ci_high`, `<g>_win_rate_ties_half`, `<g>_win_rate_ties_lose`; per row
    `n_per_seed` (prompts per seed), `n_seeds` and `bootstrap`; `k` is the SharedRep K of the whole table.
    """
    keep = (summary["method"] != "sharedrep") | (summary["k"] == k if k is not None else False)
    data = summary[keep.fillna(False).astype(bool)].copy()
    data["policy"] = [method_label(m, kk) for m, kk in zip(data["method"], data["k"])]
    groups = list(dict.fromkeys(data["group"]))
    fields = {
        "mean": "mean_gold_score",
        "sem": "sem_gold_score",
        "seed_sem": "seed_sem_gold_score",
        "ci_low": "ci_low_gold_score",
        "ci_high": "ci_high_gold_score",
        "win_rate": "win_rate_vs_gold",
        "win_sem": "sem_win_rate",
        "win_seed_sem": "seed_sem_win_rate",
        "win_ci_low": "win_rate_ci_low",
        "win_ci_high": "win_rate_ci_high",
        "win_rate_ties_half": "win_rate_vs_gold_ties_half",
        "win_rate_ties_lose": "win_rate_vs_gold_ties_lose",
    }
    order = policy_order(data)
    rows = []
    for (prop, policy), block in data.groupby(["proportion", "policy"], sort=False):
        row = {"k": k, "proportion": prop, "policy": policy, "method": block["method"].iloc[0]}
        for column in ("n_seeds", "bootstrap"):
            row[column] = block[column].iloc[0] if column in block else float("nan")
        row["n_per_seed"] = (block["n"] / block["n_seeds"]).iloc[0] if {"n", "n_seeds"} <= set(block) else float("nan")
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


def spread_shown(table: pd.DataFrame, spread: str = "seed") -> str:
    """Which ± a table, overview or figure of `table` (summary rows with n_seeds) shows, decided here for all of
    them: `spread` ("seed": the standard error across seeds; "pooled": upstream's over all prompt × seed rows) when
    a row has two or more seeds, else "prompts" (one seed: the spread over prompts is all there is, and pooled is
    the same number)."""
    seeds = "n_seeds" in table and bool((pd.to_numeric(table["n_seeds"], errors="coerce") >= 2).any())
    return spread if seeds else "prompts"


def _cell(value, spread, low, high, digits: int, pm: str, dash: str) -> str:
    if pd.isna(value):
        return dash
    text = f"{value:.{digits}f}"
    if pd.notna(spread):
        text += f"{pm}{spread:.{digits}f}"
    if pd.notna(low) and pd.notna(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _cells(
    table: pd.DataFrame, bold: tuple[str, str], pm: str, dash: str, ties: str = "half", spread: str = "seed"
) -> pd.DataFrame:
    """Formatted cells: score and win rate `value ± spread [interval]`, the other tie rule's win rate;
    bold markup around the best learned values. `spread` "pooled" puts the pooled SEM after ±."""
    seeds = spread_shown(table, spread) == "seed"
    nan = pd.Series(float("nan"), index=table.index)

    def col(name: str) -> pd.Series:
        return table[name] if name in table else nan

    out = pd.DataFrame({"p": [f"{p:g}" for p in table["proportion"]], "policy": table["policy"]})
    columns = [
        ("score", "mean", "seed_sem" if seeds else "sem", "ci_low", "ci_high", SCORE_DIGITS),
        (f"win {RULE_LABEL[ties]}", "win_rate", "win_seed_sem" if seeds else "win_sem", "win_ci_low", "win_ci_high",
         WIN_DIGITS),
        (f"win {RULE_LABEL[OTHER_RULE[ties]]}", f"win_rate_ties_{OTHER_RULE[ties]}", None, None, None, WIN_DIGITS),
    ]  # fmt: skip
    for label, value, spread, low, high, digits in columns:
        for group in groups_of(table):
            values = col(f"{group}_{value}")
            best = _best(table.assign(_v=values), "_v", digits)
            spreads, lows, highs = (col(f"{group}_{c}") if c else nan for c in (spread, low, high))
            text = [_cell(*v, digits, pm, dash) for v in zip(values, spreads, lows, highs)]
            out[f"{label} {group}"] = [f"{bold[0]}{t}{bold[1]}" if b else t for t, b in zip(text, best)]
    return out


def _bootstrap_kind(table: pd.DataFrame) -> str:
    kinds = set(table["bootstrap"].dropna()) if "bootstrap" in table else set()
    return "within-seed" if "within-seed" in kinds else "cluster"


def uncertainty_note(table: pd.DataFrame, ties: str = "half", confidence: float = 0.95, spread: str = "seed") -> str:
    """What ± and [brackets] are in this table, and how a win and a tie are counted."""
    level = f"{confidence * 100:g}%"
    kind = spread_shown(table, spread)
    if kind == "pooled":
        text = (
            "± is the pooled standard error over all prompt × seed rows (upstream's ±, results.spread = pooled): it "
            "counts evaluation noise only, not the spread between seeds (summary.csv has seed_sem_*); [brackets] "
            f"the {level} bootstrap interval over prompts."
        )
    elif kind == "seed":
        n_seeds = int(pd.to_numeric(table["n_seeds"], errors="coerce").max())
        over = (
            f"[brackets] the {level} cluster-bootstrap interval over prompts (prompt ids drawn jointly for every seed)"
            if _bootstrap_kind(table) == "cluster"
            else f"[brackets] the {level} bootstrap interval over prompts resampled within each seed "
            "(the seeds were evaluated on different prompts)"
        )
        text = f"± is the standard error across seeds ({n_seeds} seeds); {over}."
        if table["n_seeds"].lt(2).any():
            text += (
                " A policy evaluated once (SFT) has no ± on its score; its win rates' ± is across the seeds' gold"
                " policies."
            )
    else:
        text = (
            "One seed, so the spread across seeds is unavailable: ± is the standard error over prompts and "
            f"[brackets] the {level} bootstrap interval over prompts."
        )
    return (
        f"{text} Win rate vs gold: share of prompts (matched by id) where the policy's group score beats the gold "
        "policy's; a tie (identical completion) counts ½ in the ties-½ columns and as a loss in the ties-lose "
        f"columns (the upstream's rule); ± and [brackets] are given for {RULE_LABEL[ties]} (results.ties)."
    )


def title(k: int | None, pooled: bool = False) -> str:
    which = f"SharedRep K = {k}" if k is not None else "no SharedRep in this run"
    label = " (± pooled SEM over prompt × seed rows, as upstream)" if pooled else ""
    return f"HH results, {which}: mean gold score per group, and win rate against the gold policy{label}"


def _pooled(table: pd.DataFrame, spread: str) -> bool:
    """True when ± is upstream's pooled SEM although the table has two or more seeds."""
    return spread_shown(table, spread) == "pooled"


def _header(groups: list[str], ties: str) -> list[str]:
    return (
        [f"{g} score" for g in groups]
        + [f"{g} win rate vs gold, {RULE_LABEL[ties]}" for g in groups]
        + [f"{g} win rate vs gold, {RULE_LABEL[OTHER_RULE[ties]]}" for g in groups]
    )


def to_markdown(
    table: pd.DataFrame, k: int | None, caption: str, ties: str = "half", confidence: float = 0.95, spread: str = "seed"
) -> str:
    cells = _cells(table, ("**", "**"), " ± ", "—", ties, spread)
    groups = groups_of(table)
    header = ["minority proportion p", "policy", *_header(groups, ties)]
    heading = f"**{title(k, _pooled(table, spread))}**"
    lines = [heading, "", "| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (3 * len(groups))]
    lines += ["| " + " | ".join(row) + " |" for row in cells.astype(str).itertuples(index=False)]
    lines += [
        "",
        f"_{caption} {uncertainty_note(table, ties, confidence, spread)} Bold: best learned method per proportion._",
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


def to_latex(
    table: pd.DataFrame, k: int | None, caption: str, ties: str = "half", confidence: float = 0.95, spread: str = "seed"
) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs}); best learned values in bold."""
    cells = _cells(table, ("\\textbf{", "}"), " $\\pm$ ", "--", ties, spread)
    groups = groups_of(table)
    u = len(groups)
    note = uncertainty_note(table, ties, confidence, spread).replace("½", "1/2")
    spans = ["Gold score", f"Win rate vs gold, {RULE_TEX[ties]}", f"Win rate vs gold, {RULE_TEX[OTHER_RULE[ties]]}"]
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{tex_escape(title(k, _pooled(table, spread)))}. {tex_escape(caption)} {tex_escape(note)} "
        "Bold: best learned method per proportion.}",
        f"\\label{{tab:hh-{'k' + str(k) if k is not None else 'nok'}}}",
        "\\begin{tabular}{ll" + "r" * (3 * u) + "}",
        "\\toprule",
        " & & " + " & ".join(f"\\multicolumn{{{u}}}{{c}}{{{tex_escape(span)}}}" for span in spans) + " \\\\",
        " ".join(f"\\cmidrule(lr){{{3 + i * u}-{2 + (i + 1) * u}}}" for i in range(3)),
        "$p$ & Method & " + " & ".join(tex_escape(g) for g in groups * 3) + " \\\\",
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


def write_tables(
    summary: pd.DataFrame,
    out_dir: Path,
    caption: str,
    ties: str = "half",
    confidence: float = 0.95,
    spread: str = "seed",
) -> list[Path]:
    """table_k<K>.{md,tex,csv} per SharedRep K (table_nok.* without SharedRep); returns the paths."""
    paths = []
    for k in table_ks(summary):
        table = paper_table(summary, k)
        stem = out_dir / (f"table_k{k}" if k is not None else "table_nok")
        pairs = [
            (stem.with_suffix(".md"), to_markdown(table, k, caption, ties, confidence, spread)),
            (stem.with_suffix(".tex"), to_latex(table, k, caption, ties, confidence, spread)),
        ]
        for path, text in pairs:
            path.write_text(text)
        table.to_csv(stem.with_suffix(".csv"), index=False)
        paths += [p for p, _ in pairs] + [stem.with_suffix(".csv")]
    return paths


def head_to_head_markdown(h2h: pd.DataFrame, confidence: float = 0.95, spread: str = "seed") -> str:
    """SharedRep vs MaxMin win rate per K, proportion and group, ± across seeds (two or more) and its interval."""
    if h2h.empty:
        return "_No head-to-head comparison (the run lacks SharedRep or MaxMin)._\n"
    pm_column = "seed_sem_win_rate" if spread_shown(h2h, spread) == "seed" else None
    frame = pd.DataFrame(
        {
            "K": h2h["k"],
            "p": [f"{p:g}" for p in h2h["proportion"]],
            "group": h2h["group"],
            "n prompts": h2h["n"],
            "wins / ties / losses": [
                f"{w} / {t} / {loss}" for w, t, loss in zip(h2h["wins"], h2h["tie_count"], h2h["losses"])
            ],
            "win rate ± seed SEM [CI]" if pm_column else "win rate [CI]": [
                _cell(r, pm, lo, hi, WIN_DIGITS, " ± ", "—")
                for r, pm, lo, hi in zip(
                    h2h["win_rate"], h2h[pm_column] if pm_column else [None] * len(h2h), h2h["ci_low"], h2h["ci_high"]
                )
            ],
        }
    )
    ties = str(h2h["ties"].iloc[0]) if "ties" in h2h else "half"
    other = f"win rate, {RULE_LABEL[OTHER_RULE[ties]]}"
    if f"win_rate_ties_{OTHER_RULE[ties]}" in h2h:
        frame[other] = [f"{r:.2f}" for r in h2h[f"win_rate_ties_{OTHER_RULE[ties]}"]]
    name = f"{NAMES.get(h2h['method'].iloc[0], h2h['method'].iloc[0])} vs {NAMES.get(h2h['opponent'].iloc[0], '?')}"
    kind = h2h["bootstrap"].iloc[0] if "bootstrap" in h2h else "cluster"
    across = ""
    if pm_column:
        seeds = int(h2h["n_seeds"].max())
        across = f"± the standard error across the {seeds} per-seed win rates (`head_to_head_by_seed.csv`), "
    note = (
        f"_A tie is an identical completion (or exactly equal scores); win rate: {RULE_LABEL[ties]}, {across}with "
        f"the {confidence * 100:g}% bootstrap interval over prompts ({kind})._"
    )
    return f"**Head to head: {name} on the same prompts**\n\n" + frame.to_markdown(index=False) + f"\n\n{note}\n"
