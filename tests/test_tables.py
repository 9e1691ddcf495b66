"""The paper-style HH table: one K per table (K stated), mean ± spread [interval] and win rates under
both tie rules per group, the caption saying what ± and [ ] are, best learned method in bold, in
Markdown, LaTeX (booktabs) and CSV; the LaTeX compiles where TeX exists."""

import shutil
import subprocess

import pandas as pd
import pytest

from sharedrep_utils import tables

ROWS = [
    # method, k, p, group, mean, sem, win
    ("gold", None, 0.1, "minority", 0.90, 0.01, None),
    ("gold", None, 0.1, "majority", 0.95, 0.01, None),
    ("maxmin", None, 0.1, "minority", 0.50, 0.02, 0.40),
    ("maxmin", None, 0.1, "majority", 0.70, 0.02, 0.45),
    ("sharedrep", 2, 0.1, "minority", 0.60, 0.02, 0.38),
    ("sharedrep", 2, 0.1, "majority", 0.60, 0.02, 0.30),
    ("sharedrep", 16, 0.1, "minority", 0.10, 0.02, 0.05),
    ("sharedrep", 16, 0.1, "majority", 0.99, 0.02, 0.99),
    ("uniform", None, 0.1, "minority", 0.55, 0.02, 0.41),
    ("uniform", None, 0.1, "majority", 0.70, 0.02, 0.20),
    ("sft", None, 0.1, "minority", 0.99, 0.02, 0.90),
    ("sft", None, 0.1, "majority", 0.20, 0.02, 0.10),
    ("gold", None, 0.2, "minority", 0.90, 0.01, None),
    ("gold", None, 0.2, "majority", 0.95, 0.01, None),
    ("maxmin", None, 0.2, "minority", 0.30, 0.02, 0.10),
    ("maxmin", None, 0.2, "majority", 0.30, 0.02, 0.10),
    ("sharedrep", 2, 0.2, "minority", 0.40, 0.02, 0.20),
    ("sharedrep", 2, 0.2, "majority", 0.40, 0.02, 0.20),
    ("sharedrep", 16, 0.2, "minority", 0.40, 0.02, 0.20),
    ("sharedrep", 16, 0.2, "majority", 0.40, 0.02, 0.20),
    ("uniform", None, 0.2, "minority", 0.40, 0.02, 0.15),
    ("uniform", None, 0.2, "majority", 0.20, 0.02, 0.05),
]


@pytest.fixture
def summary():
    frame = pd.DataFrame(
        ROWS, columns=["method", "k", "proportion", "group", "mean_gold_score", "sem_gold_score", "win_rate_vs_gold"]
    )
    frame["k"] = frame["k"].astype("Int64")
    frame["win_rate_ci_low"] = frame["win_rate_vs_gold"] - 0.05
    frame["win_rate_ci_high"] = frame["win_rate_vs_gold"] + 0.05
    return frame


@pytest.fixture
def two_seeds(summary):
    """The same numbers as from a two-seed run: spread across seeds, both tie rules, cluster intervals."""
    frame = summary.copy()
    frame["n"], frame["n_seeds"] = 60, 2
    frame.loc[frame["method"] == "sft", ["n", "n_seeds"]] = (30, 1)
    frame["seed_sem_gold_score"] = 0.004
    frame.loc[frame["method"] == "sft", "seed_sem_gold_score"] = float("nan")  # one evaluation: no spread
    frame["seed_sem_win_rate"] = 0.03
    frame["ci_low_gold_score"] = frame["mean_gold_score"] - 0.1
    frame["ci_high_gold_score"] = frame["mean_gold_score"] + 0.1
    frame["win_rate_vs_gold_ties_half"] = frame["win_rate_vs_gold"]
    frame["win_rate_vs_gold_ties_lose"] = frame["win_rate_vs_gold"] - 0.02
    frame["bootstrap"] = "cluster"
    return frame


def test_one_k_per_table(summary):
    assert tables.table_ks(summary) == [2, 16]
    k2 = tables.paper_table(summary, 2)
    assert set(k2["policy"]) == {"MaxMin", "SharedRep (K=2)", "Uniform", "Gold", "SFT"}
    assert (k2["k"] == 2).all()
    # row order: MaxMin, SharedRep, Uniform, Gold, SFT within each proportion
    assert k2["policy"].tolist()[:5] == ["MaxMin", "SharedRep (K=2)", "Uniform", "Gold", "SFT"]
    assert k2["proportion"].tolist() == [0.1] * 5 + [0.2] * 4  # no SFT row at 0.2 in this summary
    row = k2[(k2["policy"] == "SharedRep (K=2)") & (k2["proportion"] == 0.1)].iloc[0]
    assert (row["minority_mean"], row["minority_sem"], row["majority_win_rate"]) == (0.60, 0.02, 0.30)
    assert row["minority_win_ci_low"] == pytest.approx(0.33)
    markdown = tables.to_markdown(k2, 2, "caption")
    assert "SharedRep K = 2" in markdown and "K=16" not in markdown and "K = 16" not in markdown


def test_best_learned_method_is_bold_and_references_never_are(summary):
    md = tables.to_markdown(tables.paper_table(summary, 2), 2, "caption")
    lines = {
        (line.split(" | ")[0].strip("| "), line.split(" | ")[1]): line for line in md.splitlines() if " | " in line
    }
    # p = 0.1: minority score best is SharedRep 0.60 (SFT 0.99 and Gold 0.90 do not compete)
    assert "**0.600 ± 0.020**" in lines[("0.1", "SharedRep (K=2)")]
    assert "**" not in lines[("0.1", "SFT")] and "**" not in lines[("0.1", "Gold")]
    # majority score: MaxMin and Uniform tie at 0.70, both bold; win rates: Uniform 0.41 (minority), MaxMin 0.45
    assert "**0.700 ± 0.020**" in lines[("0.1", "MaxMin")] and "**0.700 ± 0.020**" in lines[("0.1", "Uniform")]
    assert "**0.41 [0.36, 0.46]**" in lines[("0.1", "Uniform")] and "**0.45 [0.40, 0.50]**" in lines[("0.1", "MaxMin")]
    assert lines[("0.1", "Gold")].endswith("| — | — | — | — |")  # no win rate against itself (either rule)
    # the K=16 table: its SharedRep wins the majority columns at p = 0.1
    md16 = tables.to_markdown(tables.paper_table(summary, 16), 16, "caption")
    assert "**0.990 ± 0.020**" in md16 and "**0.99 [0.94, 1.04]**" in md16


def test_latex_is_booktabs_with_bold_best_and_escaped_names(summary):
    summary = summary.replace({"group": {"minority": "low_income"}})
    tex = tables.to_latex(tables.paper_table(summary, 2), 2, "Profile x_y; 50% of prompts.")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\cmidrule(lr){3-4}"):
        assert rule in tex
    assert "\\textbf{0.600 $\\pm$ 0.020}" in tex
    assert "low\\_income" in tex and "x\\_y" in tex and "50\\% of prompts" in tex
    assert "SharedRep K = 2" in tex and "\\label{tab:hh-k2}" in tex
    assert tex.count("\\midrule") == 2  # after the header, and between the two proportions
    body = [line for line in tex.splitlines() if line.endswith("\\\\") and "&" in line][2:]
    assert all(line.count("&") == 7 for line in body)  # p, method, 2 scores, 2 win rates × 2 tie rules


def test_write_tables_all_formats_per_k(summary, tmp_path):
    paths = tables.write_tables(summary, tmp_path, "caption line", ties="lose")
    assert {p.name for p in paths} == {f"table_k{k}.{e}" for k in (2, 16) for e in ("md", "tex", "csv")}
    csv = pd.read_csv(tmp_path / "table_k16.csv")
    assert set(csv["k"]) == {16} and "SharedRep (K=16)" in set(csv["policy"])
    header = next(line for line in (tmp_path / "table_k16.md").read_text().splitlines() if "| policy |" in line)
    # the configured rule first (its ± and interval), the other rule after it
    assert header.index("win rate vs gold, ties lose") < header.index("win rate vs gold, ties ½")
    assert "± and [brackets] are given for ties lose" in (tmp_path / "table_k16.md").read_text()
    assert "caption line" in (tmp_path / "table_k2.tex").read_text()


def test_without_sharedrep_one_table_says_so(summary, tmp_path):
    paths = tables.write_tables(summary[summary["method"] != "sharedrep"], tmp_path, "c")
    assert {p.name for p in paths} == {"table_nok.md", "table_nok.tex", "table_nok.csv"}
    assert "no SharedRep in this run" in (tmp_path / "table_nok.md").read_text()


def test_two_seeds_show_the_seed_spread_and_the_cluster_interval_and_say_so(two_seeds):
    table = tables.paper_table(two_seeds, 2)
    md = tables.to_markdown(table, 2, "Profile x; n = 30 held-out prompts per policy and seed.")
    rows = {line.split(" | ")[1]: line for line in md.splitlines() if line.startswith("| 0.1 |")}
    # MaxMin minority: mean ± SE across seeds [cluster interval]; win rate ties ½ likewise; ties lose plain
    assert "| 0.500 ± 0.004 [0.400, 0.600] |" in rows["MaxMin"]
    assert "| 0.40 ± 0.03 [0.35, 0.45] |" in rows["MaxMin"] and rows["MaxMin"].endswith("| 0.38 | **0.43** |")
    assert "| 0.990 [0.890, 1.090] |" in rows["SFT"]  # one evaluation: no ± for its score
    assert "± is the standard error across seeds (2 seeds)" in md
    assert "[brackets] the 95% cluster-bootstrap interval over prompts" in md
    assert "A policy evaluated once (SFT) has no ± on its score" in md
    assert "n = 30 held-out prompts per policy and seed" in md
    header = next(line for line in md.splitlines() if "| policy |" in line)
    assert "minority win rate vs gold, ties ½" in header and "minority win rate vs gold, ties lose" in header
    within = tables.to_markdown(tables.paper_table(two_seeds.assign(bootstrap="within-seed"), 2), 2, "c")
    assert "resampled within each seed (the seeds were evaluated on different prompts)" in within
    assert list(table.filter(like="minority_win_rate_ties").columns) == [
        "minority_win_rate_ties_half",
        "minority_win_rate_ties_lose",
    ]
    assert (table["n_per_seed"] == 30).all()


def test_one_seed_says_the_seed_spread_is_unavailable_and_shows_the_prompt_one(two_seeds):
    one = two_seeds.assign(n_seeds=1, n=30, seed_sem_gold_score=float("nan"), seed_sem_win_rate=float("nan"))
    one["sem_win_rate"] = 0.06
    md = tables.to_markdown(tables.paper_table(one, 2), 2, "c")
    assert "One seed, so the spread across seeds is unavailable: ± is the standard error over prompts" in md
    assert "| 0.500 ± 0.020 [0.400, 0.600] |" in md  # the SEM over prompts
    assert "| 0.40 ± 0.06 [0.35, 0.45] |" in md
    assert "standard error across seeds" not in md


def test_head_to_head_markdown():
    h2h = pd.DataFrame(
        [{"method": "sharedrep", "opponent": "maxmin", "k": 2, "proportion": 0.1, "group": "minority", "n": 10,
          "wins": 6, "tie_count": 2, "losses": 2, "win_rate": 0.7, "ci_low": 0.5, "ci_high": 0.9}]
    )  # fmt: skip
    text = tables.head_to_head_markdown(h2h)
    assert "SharedRep vs MaxMin" in text and "6 / 2 / 2" in text and "0.70 [0.50, 0.90]" in text
    assert "No head-to-head" in tables.head_to_head_markdown(h2h.iloc[:0])


TEX_ENGINES = [e for e in ("pdflatex", "lualatex", "tectonic") if shutil.which(e)]


@pytest.mark.skipif(not TEX_ENGINES, reason="no TeX engine on PATH (pdflatex, lualatex or tectonic)")
def test_latex_table_compiles(summary, tmp_path):
    tables.write_tables(summary, tmp_path, "Profile smoke; seeds 1, 2; n = 30.")
    document = (
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{table_k2.tex}\n\\end{document}\n"
    )
    (tmp_path / "doc.tex").write_text(document)
    engine = TEX_ENGINES[0]
    command = (
        [engine, "doc.tex"]
        if engine == "tectonic"
        else [engine, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"]
    )
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "doc.pdf").is_file()
