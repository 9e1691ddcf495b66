"""Notebook display helpers: shapings of saved artifacts (no models, no network, except a stubbed one)."""

import numpy as np
import pandas as pd
import pytest

from sharedrep_utils import report
from sharedrep_utils.config import load_config

GROUPS = {"minority": {"helpful": 1.0}, "majority": {"helpful": 0.3, "harmless": 0.7}}


def scored_responses() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt_id": ["p", "q", "r"],
            "prompt": ["P?", "Q?", "R?"],
            "response_0": ["p0", "q0", "r0"],
            "response_1": ["p1", "q1", "r1"],
            "helpful_0": [1.0, 2.0, 0.5],
            "helpful_1": [3.0, 1.0, 0.5],
            "harmless_0": [1.0, 0.2, 0.0],
            "harmless_1": [0.0, 0.4, 0.0],
        }
    )


def test_log_frame_keeps_step_rows_and_drops_the_summary():
    history = [
        {"loss": 2.0, "step": 1},
        {"loss": 1.5, "reward": 0.1, "step": 2},
        {"train_runtime": 3.0, "train_loss": 1.7, "step": 2},
    ]
    frame = report.log_frame(history)
    assert list(frame["step"]) == [1, 2]
    assert frame["loss"].tolist() == [2.0, 1.5]
    assert "train_runtime" not in frame
    assert list(report.log_frame([]).columns) == ["step"]


def test_training_curves_long_form_only_logged_metrics():
    history = [
        {"step": 2, "reward": 0.1, "kl": 0.0, "loss": 1.0},
        {"step": 4, "reward": 0.3, "loss": 0.5},
        {"step": 4, "train_runtime": 1.0, "train_loss": 0.7},
    ]
    curves = report.training_curves(history, ("reward", "kl", "completions/mean_length"))
    assert list(dict.fromkeys(curves["metric"])) == ["reward", "kl"]  # absent metric left out, order kept
    assert curves[curves["metric"] == "reward"]["value"].tolist() == [0.1, 0.3]
    assert curves[curves["metric"] == "kl"][["step", "value"]].values.tolist() == [[2, 0.0]]  # NaN row dropped
    assert report.training_curves([{"step": 1, "loss": 1.0}]).empty


def test_data_note_puts_the_fixture_warning_first():
    note = report.data_note({"data_source": "fixture:x", "data_warning": "DATA WARNING: tiny", "n_train_dialogues": 3})
    assert note.startswith("**DATA WARNING: tiny**")
    assert "fixture:x" in report.data_note({"data_source": "fixture:x"})
    assert "WARNING" not in report.data_note({"data_source": "local:/hh"})


def test_skipped_rows_sorted_by_count():
    frame = report.skipped_rows({"skipped_rows": {"a": 1, "b": 5, "c": 3}})
    assert list(frame.index) == ["b", "c", "a"]
    assert frame.loc["b", "rows"] == 5
    assert report.skipped_rows({}).empty


def test_responses_note_shows_the_disagreement_share():
    note = report.responses_note({"n_prompts": 10, "group_disagreement": 0.25, "identical_pairs": 1})
    assert "**25%**" in note and "10 prompts" in note
    assert "**?**" in report.responses_note({})


def test_response_samples_scores_both_responses_and_names_who_prefers_them():
    samples = report.response_samples(scored_responses(), ["helpful", "harmless"], GROUPS, n=2)
    assert list(samples.index) == [("P?", 0), ("P?", 1), ("Q?", 0), ("Q?", 1)]
    row = samples.loc[("P?", 0)]
    assert row["text"] == "p0" and row["helpful"] == 1.0
    assert np.isclose(row["majority score"], 0.3 * 1.0 + 0.7 * 1.0)
    # P: minority prefers response 1 (helpful 3 > 1), majority prefers response 0 (1.0 > 0.9)
    assert samples.loc[("P?", 0), "preferred by"] == "majority"
    assert samples.loc[("P?", 1), "preferred by"] == "minority"
    # Q: both groups prefer response 0 (minority 2 > 1; majority 0.74 > 0.58)
    assert samples.loc[("Q?", 0), "preferred by"] == "minority, majority"
    assert samples.loc[("Q?", 1), "preferred by"] == ""


def test_response_samples_tie_is_preferred_by_nobody():
    samples = report.response_samples(scored_responses().iloc[2:], ["helpful", "harmless"], GROUPS)
    assert samples["preferred by"].tolist() == ["", ""]


def test_trait_frame_stacks_both_responses():
    long = report.trait_frame(scored_responses(), ["helpful", "harmless"])
    assert len(long) == 6
    assert sorted(long["helpful"]) == [0.5, 0.5, 1.0, 1.0, 2.0, 3.0]
    row = long[(long["prompt_id"] == "q") & (long["response"] == 1)].iloc[0]
    assert (row["helpful"], row["harmless"]) == (1.0, 0.4)


def test_pair_counts_from_the_preferences_manifest():
    manifest = {
        "counts": {"pairs_per_group": {"minority": 4, "majority": 30}, "dropped_ties": 2, "dropped_identical": 1}
    }
    counts = report.pair_counts(manifest)
    assert counts.loc["pairs for minority", "n"] == 4
    assert counts.loc["pairs for majority", "n"] == 30
    assert counts.loc["dropped: tie", "n"] == 2 and counts.loc["dropped: identical responses", "n"] == 1


def test_pair_samples_takes_the_first_pairs_of_each_group():
    pairs = pd.DataFrame(
        {
            "group": ["majority", "minority", "majority", "majority", "minority"],
            "prompt": list("abcde"),
            "chosen": list("ABCDE"),
            "rejected": list("vwxyz"),
            "chosen_score": [1.0] * 5,
            "rejected_score": [0.0] * 5,
            "group_id": [1, 0, 1, 1, 0],
        }
    )
    samples = report.pair_samples(pairs, per_group=2)
    assert samples["prompt"].tolist() == ["a", "c", "b", "e"]
    assert "group_id" not in samples


def accuracy_metrics() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"policy": policy, "split": split, "group": group, "n": 10, "accuracy": acc + bonus}
            for policy, bonus in (("maxmin", 0.0), ("uniform", 0.05))
            for split, acc in (("train", 0.9), ("test", 0.6))
            for group in ("overall", "minority", "majority")
        ]
    )


def test_accuracy_table_puts_test_first():
    table = report.accuracy_table(accuracy_metrics())
    assert table.columns.get_level_values(0)[0] == "test"
    assert list(table.index) == ["maxmin", "uniform"]
    assert table.loc["maxmin", ("test", "minority")] == 0.6
    assert table.loc["uniform", ("train", "overall")] == 0.95


def test_group_accuracy_one_split_without_overall():
    rows = report.group_accuracy(accuracy_metrics(), "test")
    assert set(rows["group"]) == {"minority", "majority"}
    assert len(rows) == 4 and np.allclose(sorted(rows["accuracy"]), [0.6, 0.6, 0.65, 0.65])
    assert list(rows.columns) == ["policy", "group", "n", "accuracy", "ci_low", "ci_high"]
    assert (rows["ci_low"] < rows["accuracy"]).all() and (rows["accuracy"] < rows["ci_high"]).all()  # 10 pairs: wide


def test_group_means_mean_and_sem():
    table = pd.DataFrame({"group_a": [1.0, 2.0, 3.0], "trait_x": [0.0, 0.0, 3.0], "completion": ["", "", ""]})
    means = report.group_means(table)
    assert list(means.index) == ["group_a", "trait_x"]
    assert means.loc["group_a", "mean"] == 2.0
    assert np.isclose(means.loc["group_a", "sem"], 1.0 / np.sqrt(3))
    assert means.loc["trait_x", "n"] == 3


def test_completion_samples_keeps_text_and_group_scores():
    table = pd.DataFrame(
        {
            "prompt_id": ["a", "b", "c"],
            "prompt": ["A", "B", "C"],
            "completion": ["x", "y", "z"],
            "trait_helpful": [1.0, 2.0, 3.0],
            "group_minority": [1.0, 2.0, 3.0],
            "group_majority": [0.0, 1.0, 2.0],
        }
    )
    samples = report.completion_samples(table, n=2)
    assert list(samples.columns) == ["prompt", "completion", "group_minority", "group_majority"]
    assert samples["completion"].tolist() == ["x", "y"]


def test_figure_paths_lists_png_files_only(tmp_path):
    for name in ("b.png", "a.png", "a.pdf", "summary.md"):
        (tmp_path / name).write_text("")
    assert [p.name for p in report.figure_paths(tmp_path)] == ["a.png", "b.png"]


def test_generation_settings_one_row_per_setting():
    table = pd.DataFrame(
        {"prompt_id": ["a", "b"], "do_sample": [True, True], "temperature": [0.7, 0.7], "top_p": [0.9, 0.9],
         "generation_seed": [5, 5], "max_new_tokens": [32, 32]}
    )  # fmt: skip
    settings = report.generation_settings(table)
    assert settings.to_dict("records") == [
        {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "generation_seed": 5, "max_new_tokens": 32}
    ]


def test_table_paths_sorted_by_k(tmp_path):
    for name in ("table_k16.md", "table_k2.md", "table_k2.tex", "summary.md"):
        (tmp_path / name).write_text("")
    assert [p.name for p in report.table_paths(tmp_path)] == ["table_k2.md", "table_k16.md"]
    assert [p.name for p in report.table_paths(tmp_path, "tex")] == ["table_k2.tex"]


def test_caption_of_reads_the_results_manifest(tmp_path):
    from sharedrep_utils.runs import stage_output

    with stage_output(tmp_path / "results", "results", {}) as stage:
        stage["extra"].update(caption="Profile smoke; seeds 1; n = 3.")
    assert report.caption_of(tmp_path / "results") == "Profile smoke; seeds 1; n = 3."
    assert report.caption_of(tmp_path / "missing") == ""


def test_results_overview_formats_intervals_and_missing_win_rates():
    summary = pd.DataFrame(
        {"method": ["gold", "sharedrep"], "k": pd.array([None, 2], dtype="Int64"), "proportion": [0.1, 0.1],
         "group": ["minority"] * 2, "n": [4, 4], "mean_gold_score": [1.0, 0.5], "sem_gold_score": [0.1, 0.2],
         "ci_low_gold_score": [0.8, 0.1], "ci_high_gold_score": [1.2, 0.9], "win_rate_vs_gold": [None, 0.25],
         "win_rate_ci_low": [None, 0.0], "win_rate_ci_high": [None, 0.5], "seed_sd_gold_score": [None, 0.05]}
    )  # fmt: skip
    view = report.results_overview(summary)  # no n_seeds column: one seed, so ± is over prompts
    assert view["policy"].tolist() == ["Gold", "SharedRep (K=2)"]
    assert view["mean ± SEM over prompts"].tolist() == ["1.000 ± 0.100", "0.500 ± 0.200"]
    assert view["mean [CI over prompts]"].tolist() == ["1.000 [0.800, 1.200]", "0.500 [0.100, 0.900]"]
    assert view["win rate vs gold ± SEM over prompts [CI over prompts]"].tolist() == ["—", "0.25 [0.00, 0.50]"]


def test_results_overview_shows_the_seed_sem_with_two_seeds_and_the_pooled_one_only_when_asked():
    """Per-seed means 0.2 and 0.8: SD |0.8 − 0.2| / √2 = 0.424, seed SEM 0.424 / √2 = 0.3, where the pooled
    rows' SEM is 0.01: the overview shows 0.3 unless the pooled one is asked for (labelled)."""
    summary = pd.DataFrame(
        {"method": ["uniform", "sft"], "k": pd.array([None, None], dtype="Int64"), "proportion": [0.05, 0.05],
         "group": ["minority"] * 2, "n": [400, 200], "n_seeds": [2, 1], "mean_gold_score": [0.5, 0.7],
         "sem_gold_score": [0.01, 0.02], "seed_sem_gold_score": [0.3, None], "ci_low_gold_score": [0.48, 0.66],
         "ci_high_gold_score": [0.52, 0.74], "win_rate_vs_gold": [0.4, 0.9], "sem_win_rate": [0.02, 0.03],
         "seed_sem_win_rate": [0.25, 0.05], "win_rate_ci_low": [0.36, 0.84], "win_rate_ci_high": [0.44, 0.96]}
    )  # fmt: skip
    view = report.results_overview(summary)
    assert view["mean ± seed SEM"].tolist() == ["0.500 ± 0.300", "0.700"]  # SFT ran once: no ± on its score
    assert view["win rate vs gold ± seed SEM [CI over prompts]"].tolist() == [
        "0.40 ± 0.25 [0.36, 0.44]",
        "0.90 ± 0.05 [0.84, 0.96]",
    ]
    pooled = report.results_overview(summary, "pooled")
    label = "± pooled SEM (prompt × seed rows)"
    assert pooled[f"mean {label}"].tolist() == ["0.500 ± 0.010", "0.700 ± 0.020"]
    assert pooled[f"win rate vs gold {label} [CI over prompts]"].iloc[0] == "0.40 ± 0.02 [0.36, 0.44]"


def test_sft_samples_uses_held_out_prompts_greedily(tmp_path, monkeypatch):
    from sharedrep_utils import hh_data, policy

    (tmp_path / "hh.jsonl").write_text("")  # config checks the HH directory holds data files; load_hh is stubbed
    cfg = load_config("smoke", {"run_dir": str(tmp_path), "data.hh_dir": str(tmp_path)})
    heldout = [hh_data.Example(f"id{i}", f"\n\nHuman: q{i}", "c", "r") for i in range(5)]
    calls = {}
    monkeypatch.setattr(hh_data, "load_hh", lambda data, hh_dir: hh_data.HHData(train=[], test=heldout, source="x"))
    monkeypatch.setattr(policy, "load_policy", lambda path, pol, device: (calls.setdefault("path", path), "tok"))

    def fake_generate(model, tokenizer, prompts, **kwargs):
        calls.update(kwargs)
        return [[f"reply to {p.split()[-1]}"] for p in prompts]

    monkeypatch.setattr(policy, "generate", fake_generate)
    samples = report.sft_samples(cfg, n=2, max_new_tokens=1000)
    assert samples["completion"].tolist() == ["reply to q0", "reply to q1"]
    assert calls["path"] == tmp_path / "sft" / "model"
    assert calls["do_sample"] is False
    assert calls["max_new_tokens"] == cfg.evaluation.max_new_tokens  # capped by the profile


@pytest.mark.parametrize("n", [0, 1])
def test_pair_samples_with_few_rows(n):
    pairs = pd.DataFrame(
        {"group": ["g"] * n, "prompt": ["p"] * n, "chosen": ["c"] * n, "rejected": ["r"] * n}
        | {"chosen_score": [1.0] * n, "rejected_score": [0.0] * n}
    )
    assert len(report.pair_samples(pairs)) == n


def test_margin_table_gives_mean_margin_and_pairs_per_reward_model_split_and_group():
    metrics = {
        "maxmin": {
            "train": {"minority": {"n": 4, "accuracy": 0.75, "mean_margin": 0.5}},
            "test": {"minority": {"n": 2, "accuracy": 0.5, "mean_margin": -0.25}},
        },
        "uniform": {
            "train": {"minority": {"n": 4, "accuracy": 1.0, "mean_margin": 1.0}},
            "test": {"minority": {"n": 2, "accuracy": 1.0, "mean_margin": 0.125}},
        },
    }
    table = report.margin_table(report.metrics_table(metrics))
    assert table.loc["maxmin", ("mean margin", "test", "minority")] == -0.25
    assert table.loc["uniform", ("mean margin", "train", "minority")] == 1.0
    assert table.loc["maxmin", ("pairs", "train", "minority")] == 4
    assert list(table["mean margin"].columns.get_level_values(0)) == ["test", "train"]  # held-out first
