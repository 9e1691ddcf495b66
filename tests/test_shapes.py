"""`sharedrep shapes`: the paper's architectures at real dimensions (built from configs written in code),
one step per stage measured, or skipped / shrunk with the reason; here at a tiny scale, in seconds."""

import json

import pytest

from sharedrep_utils import cli, shapes
from sharedrep_utils.config import load_config

# the paper profile with short lengths, so the tiny-scale items take milliseconds
SHORT = {
    "sft.max_length": 32,
    "generation.max_new_tokens": 8,
    "grpo.max_completion_length": 8,
    "gold.traits.helpful.max_length": 32,
    "gold.traits.harmless.max_length": 32,
    "reward_model.max_length": 32,
}


def test_the_architectures_are_tinyllama_and_gpt2_large():
    arch = shapes.architectures()
    llama, gpt2 = arch["policy"], arch["gpt2"]
    assert (llama["vocab_size"], llama["hidden_size"], llama["intermediate_size"]) == (32000, 2048, 5632)
    assert (llama["num_hidden_layers"], llama["num_attention_heads"], llama["num_key_value_heads"]) == (22, 32, 4)
    assert (llama["max_position_embeddings"], llama["rms_norm_eps"]) == (2048, 1e-5)
    assert (gpt2["n_embd"], gpt2["n_layer"], gpt2["n_head"], gpt2["n_positions"], gpt2["vocab_size"]) == (
        1280, 36, 20, 1024, 50257,
    )  # fmt: skip
    # published parameter counts: TinyLlama 1.1B, gpt2-large 774M (GPT2Model, the LM head is tied)
    assert shapes._params("policy", llama) == 1_100_048_384
    assert shapes._params("gpt2", gpt2) == 774_030_080
    small = shapes.architectures(0.05)["policy"]
    assert small["num_attention_heads"] // small["num_key_value_heads"] == 8
    assert small["hidden_size"] % small["num_attention_heads"] == 0


def test_items_follow_the_paper_profiles_sizes():
    cfg = load_config("paper")
    sizes = shapes.sizes_for(cfg)
    assert sizes["sft_step"] == {"batch": 8, "tokens": 512}
    assert sizes["generation"] == {"sequences": 64, "prompt_tokens": shapes.PROMPT_TOKENS, "new_tokens": 256}
    assert sizes["grpo_step"]["completions"] == 4 and sizes["grpo_step"]["new_tokens"] == 256
    assert sizes["gold_scoring"] == {"batch": 16, "tokens": 1024} == sizes["featurisation"]
    counts = shapes.step_counts(cfg)
    assert counts["grpo_step"] == 42 * 10_000 * 2 / 2  # 42 policies, 2 epochs, 2 prompts a step
    assert counts["featurisation"] == 20_000 / 16
    assert counts["gold_scoring"] == 2 * (20_000 + 43 * 2_000) / 16


def test_measure_all_at_a_tiny_scale(tmp_path):
    cfg = load_config("paper", SHORT)
    result = shapes.measure_all(cfg, device="cpu", scale=0.02, log=lambda line: None)
    rows = {row["item"]: row for row in result["items"]}
    assert list(rows) == list(shapes.ITEMS)
    for row in rows.values():
        assert row["status"] == "measured" and row["seconds"] > 0 and "peak_memory_gb" in row  # value: next test
    assert result["machine"]["device"] == "cpu" and result["calibration"]["matmul_gflops"] > 0
    assert {r["item"] for r in result["projection"]["rows"]} == set(shapes.ITEMS)
    assert result["projection"]["total_hours"] > 0 and "upper bound" in result["projection"]["assumptions"]
    table = shapes.table_markdown(result)
    assert table.count("| measured |") == 5 and "Full paper sweep" in table
    shapes.write_result(result, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["scale"] == 0.02
    assert (tmp_path / "s.md").read_text().startswith("Measured on cpu")


def test_peak_memory_on_a_cpu_sees_a_known_allocation():
    """256 MiB written inside the block (so the pages are resident) and freed: the peak is about 0.25 GiB above
    the start, whatever the process held before; an empty block stays near 0."""
    import numpy as np

    with shapes.PeakMemory("cpu") as memory:
        block = np.ones(256 * 2**20, dtype=np.uint8)
        del block
    assert 0.24 <= memory.peak / 2**30 <= 0.3
    with shapes.PeakMemory("cpu") as idle:
        pass
    assert idle.peak / 2**30 < 0.05


def test_items_over_the_limits_are_shrunk_or_skipped_and_say_so():
    cfg = load_config("paper", SHORT)
    slow = shapes.measure_all(cfg, device="cpu", scale=0.02, max_seconds=1e-9, only=["featurisation"], log=print)
    (row,) = slow["items"]
    assert row["status"] == "skipped" and "over --max-seconds" in row["reason"]  # not even batch 1 fits
    big = shapes.measure_all(cfg, device="cpu", scale=0.02, max_memory_gb=1e-9, only=["sft_step"], log=print)
    (row,) = big["items"]
    assert row["status"] == "skipped" and "over the 0 GB limit" in row["reason"]
    item = shapes.build_item("gold_scoring", {"batch": 16, "tokens": 32}, cfg, 0.02)
    smaller = shapes.reduced(item, lambda i: i.sizes["batch"] <= 3, cfg, 0.02, "cpu")
    assert smaller.sizes == {"batch": 2, "tokens": 32}
    generation = shapes.build_item("generation", {"sequences": 2, "prompt_tokens": 8, "new_tokens": 64}, cfg, 0.02)
    shorter = shapes.reduced(generation, lambda i: i.sizes["new_tokens"] <= 20, cfg, 0.02, "cpu")
    assert shorter.sizes == {"sequences": 1, "prompt_tokens": 8, "new_tokens": 16}


def test_shapes_command_line(tmp_path, capsys):
    out = tmp_path / "shapes.json"
    args = ["shapes", "--profile", "paper", "--scale", "0.02", "--only", "gold_scoring", "--out", str(out)]
    for key, value in SHORT.items():
        args += ["--set", f"{key}={value}"]
    assert cli.main(args) == 0
    assert [row["item"] for row in json.loads(out.read_text())["items"]] == ["gold_scoring"]
    assert "| gold_scoring |" in capsys.readouterr().out and out.with_suffix(".md").is_file()
    assert cli.main(["shapes", "--only", "everything"]) == 2
    assert "not a shapes item" in capsys.readouterr().err
    assert cli.main(["shapes", "--scale", "2"]) == 2
    assert set(cli.SHAPE_ITEMS) == set(shapes.ITEMS)


@pytest.mark.parametrize("bad", [["standins"], ["paper-dryrun", "--launcher", "torchrun"]])
def test_paper_path_commands_reject_bad_input(bad):
    with pytest.raises(SystemExit) as stop:
        cli.main(bad)
    assert stop.value.code == 2
