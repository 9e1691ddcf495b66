"""`sharedrep compare`: which files of two runs are byte-identical, and how far evaluation files moved apart."""

import pandas as pd
import pytest

from sharedrep_utils import cli
from sharedrep_utils.run_compare import compare_runs, verdict


def write_eval(path, completions: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(len(completions))], "completion": completions,
                          "group_minority": [0.1 * i for i in range(len(completions))]})  # fmt: skip
    frame.to_parquet(path, index=False)


@pytest.fixture
def two_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        write_eval(run / "eval" / "sft.parquet", ["hi", "there", "you", "all"])
        (run / "results").mkdir()
        (run / "results" / "summary.csv").write_text("policy,score\nsft,0.5\n")
    write_eval(a / "eval" / "seed42-prop0.1-maxmin.parquet", ["x", "y", "z", "w"])
    write_eval(b / "eval" / "seed42-prop0.1-maxmin.parquet", ["x", "y", "Z", "W"])  # two of four moved
    write_eval(a / "eval" / "seed42-gold.parquet", ["g"])  # only in a
    (b / "results" / "contrasts.csv").write_text("contrast\n")  # only in b
    prefs = a / "seed42" / "prop0.1" / "preferences" / "preferences.parquet"
    prefs.parent.mkdir(parents=True)
    pd.DataFrame({"chosen": ["u"], "rejected": ["v"]}).to_parquet(prefs)
    (b / prefs.relative_to(a)).parent.mkdir(parents=True)
    (b / prefs.relative_to(a)).write_bytes(prefs.read_bytes())
    return a, b


def test_every_file_of_either_run_is_compared_byte_for_byte(two_runs):
    a, b = two_runs
    table = compare_runs(a, b).set_index("artifact")
    assert set(table.index) == {
        "eval/sft.parquet", "eval/seed42-prop0.1-maxmin.parquet", "eval/seed42-gold.parquet",
        "results/summary.csv", "results/contrasts.csv", "seed42/prop0.1/preferences/preferences.parquet",
    }  # fmt: skip
    assert table.loc["eval/sft.parquet", "identical"] and table.loc["results/summary.csv", "identical"]
    assert table.loc["seed42/prop0.1/preferences/preferences.parquet", "identical"]
    assert not table.loc["eval/seed42-prop0.1-maxmin.parquet", "identical"]
    assert table.loc["eval/seed42-prop0.1-maxmin.parquet", "same_completions"] == pytest.approx(0.5)
    assert table.loc["eval/sft.parquet", "same_completions"] == 1.0
    assert table.loc["eval/sft.parquet", "n_prompts"] == 4
    gold = table.loc["eval/seed42-gold.parquet"]
    assert gold["in_a"] and not gold["in_b"] and not gold["identical"] and pd.isna(gold["same_completions"])
    assert pd.isna(table.loc["results/summary.csv", "same_completions"])  # not an evaluation file


def test_the_verdict_counts_identical_files_per_kind_and_names_the_unpaired(two_runs):
    lines = verdict(compare_runs(*two_runs)).splitlines()
    assert "evaluation files: 1 of 2 byte-identical" in lines
    assert "results tables: 1 of 1 byte-identical" in lines
    assert "preference sets: 1 of 1 byte-identical" in lines
    assert lines[-1] == "in one run only: eval/seed42-gold.parquet, results/contrasts.csv"


def test_the_command_prints_the_table_and_writes_the_csv(two_runs, tmp_path, capsys):
    out = tmp_path / "same.csv"
    assert cli.main(["compare", str(two_runs[0]), str(two_runs[1]), "--out", str(out)]) == 1  # they differ
    printed = capsys.readouterr().out
    assert "evaluation files: 1 of 2 byte-identical" in printed
    assert pd.read_csv(out)["identical"].sum() == 3
    assert cli.main(["compare", str(two_runs[0]), str(two_runs[0])]) == 0  # a run against itself: the same
    capsys.readouterr()
    assert cli.main(["compare", str(two_runs[0]), str(two_runs[1]), "--out", str(tmp_path / "no" / "x.csv")]) == 2
    assert "folder" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_a_missing_run_is_a_clear_error_and_nothing_is_written(two_runs, tmp_path, capsys):
    out = tmp_path / "same.csv"
    assert cli.main(["compare", str(two_runs[0]), str(tmp_path / "nope"), "--out", str(out)]) == cli.EXIT_BAD_INPUT
    assert "run directory" in capsys.readouterr().err and not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["compare", str(empty), str(empty)]) == cli.EXIT_BAD_INPUT
    assert "holds an evaluation, preference or results file" in capsys.readouterr().err
