"""Sharded generation/scoring and main-process-only writes (sharedrep_utils/distributed.py).

The multi-process tests start real `accelerate launch` runs with 2 CPU processes. In accelerate
1.15, `accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is set up (its
simple launcher); two CPU processes come from `--multi_gpu --num_processes 2` on a machine that
shows no GPU (torchrun, gloo), which is what these tests use.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from sharedrep_utils import distributed, runs

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:  # bind only (conftest blocks connecting, not binding)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_launch_args(processes: int = 2) -> list[str]:
    return [
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
    ]


def cpu_env() -> dict[str, str]:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def launch_script(script: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", *cpu_launch_args(processes), str(script), *args]
    return subprocess.run(command, capture_output=True, text=True, env=cpu_env(), timeout=300)


# --- one process: plain pass-throughs, accelerate's state untouched ---------------------------------


def test_single_process_is_a_pass_through(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    calls = []

    def upper(shard, start):
        calls.append((list(shard), start))
        return [s.upper() for s in shard]

    assert distributed.map_in_order(upper, ["a", "b", "c"]) == ["A", "B", "C"]
    assert calls == [(["a", "b", "c"], 0)]
    assert distributed.map_in_order(upper, []) == [] and len(calls) == 1  # empty: fn not called
    assert not distributed.active() and distributed.is_main() and distributed.num_processes() == 1
    assert distributed.device("cuda") == "cuda" and distributed.device("cpu") == "cpu"
    scored = distributed.map_columns(lambda p, r: {"len": [len(x + y) for x, y in zip(p, r)]}, ["ab", "c"], ["d", ""])
    assert list(scored["len"]) == [3, 1]


def test_a_function_that_drops_rows_fails_loudly(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(RuntimeError, match="a shard of 3 items gave 2 results"):
        distributed.map_in_order(lambda shard, start: shard[:2], [1, 2, 3])


def test_single_process_stage_output_is_runs_stage_output(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.stage_output(tmp_path / "stage", "demo", {"a": 1}, seed=3) as stage:
        assert stage["shared"] == stage["path"]
        (stage["path"] / "x.txt").write_text("x")
    manifest = runs.read_manifest(tmp_path / "stage")
    assert manifest["params"] == {"a": 1} and "num_processes" not in manifest
    assert (tmp_path / "stage" / "x.txt").read_text() == "x"


# --- two processes through accelerate launch ---------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from sharedrep_utils import distributed

    out = Path(sys.argv[1])
    rank = distributed._state().process_index
    report = {"rank": rank, "num_processes": distributed.num_processes(), "shards": {}, "results": {}}
    for n in (0, 1, 2, 7):
        items = [f"p{i}" for i in range(n)]

        def fn(shard, start, n=n):
            report["shards"][str(n)] = [start, list(shard)]
            return [f"{s}:r{rank}" for s in shard]

        report["results"][str(n)] = distributed.map_in_order(fn, items)
    cols = distributed.map_columns(lambda a, b: {"sum": [x + y for x, y in zip(a, b)]}, list(range(5)), [10] * 5)
    report["columns"] = [int(v) for v in cols["sum"]]
    # only the main process writes the stage; the others write into scratch that disappears
    with distributed.stage_output(out / "stage", "probe", {"k": 1}) as stage:
        (stage["path"] / f"from-rank{rank}.txt").write_text(str(rank))
        report["shared_is_main_path"] = stage["shared"].name.startswith(".stage.partial-")
        stage["extra"]["written_by"] = rank
    report["sees_manifest"] = (out / "stage" / "manifest.json").is_file()
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    distributed.finish()
    """
)


def test_two_processes_shard_gather_in_order_and_only_main_writes(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    result = launch_script(script, str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["num_processes"] for r in reports] == [2, 2]
    for n in (0, 1, 2, 7):
        expected_items = [f"p{i}" for i in range(n)]
        # every process gets the whole list back, in item order, each item exactly once
        for report in reports:
            got = report["results"][str(n)]
            assert [g.split(":")[0] for g in got] == expected_items
        assert reports[0]["results"][str(n)] == reports[1]["results"][str(n)]
        # contiguous shards, sizes differing by at most one (odd counts; fewer items than processes)
        shards = [r["shards"].get(str(n), [None, []]) for r in reports]
        assert sum(len(s[1]) for s in shards) == n
        assert shards[0][1] + shards[1][1] == expected_items
        assert abs(len(shards[0][1]) - len(shards[1][1])) <= 1
        # the work was really split: rows of the second shard came from rank 1
        assert all(g.endswith(":r1") for g in reports[0]["results"][str(n)][len(shards[0][1]) :])
    assert reports[0]["columns"] == reports[1]["columns"] == [10, 11, 12, 13, 14]
    stage = tmp_path / "stage"
    assert sorted(p.name for p in stage.iterdir()) == ["from-rank0.txt", "manifest.json"]
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["written_by"] == 0 and manifest["num_processes"] == 2
    assert all(r["sees_manifest"] and r["shared_is_main_path"] for r in reports)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch, partial or lock left


# --- a real stage through sharedrep_utils.launcher.launch ---------------------------------------------


def _tiny_run(tmp_path: Path, name: str, hh: Path, **extra) -> "object":
    """A run directory holding a finished (tiny, untrained) SFT policy, and its config."""
    from sharedrep_utils.config import load_config
    from sharedrep_utils.policy import build_tiny_policy

    overrides = {
        "run_dir": str(tmp_path / name),
        "data.hh_dir": str(hh),
        "data.n_eval_prompts": 7,  # odd: shards of 4 and 3
        "evaluation.max_new_tokens": 6,
        "evaluation.batch_size": 1,  # no padding: the same greedy tokens however prompts are sharded
        "policy.tiny.vocab_size": 400,
        **extra,
    }
    cfg = load_config("smoke", overrides)
    with runs.stage_output(cfg.run_path / "sft", "sft", {"tiny": True}) as stage:
        texts = [json.loads(line)["chosen"] for line in (hh / "train.jsonl").read_text().splitlines()]
        build_tiny_policy(cfg.policy, texts, stage["path"] / "model", seed=0)
    return cfg


@pytest.mark.integration
def test_evaluate_stage_through_accelerate_launch_matches_one_process(tmp_path):
    from sharedrep_utils.launcher import launch
    from sharedrep_utils.stages import evaluate

    hh = tmp_path / "hh"
    hh.mkdir()
    for split, n in (("train", 30), ("test", 12)):
        rows = [
            {
                "chosen": f"\n\nHuman: {split} question number {i} about topic {i % 5}?\n\nAssistant: answer {i}.",
                "rejected": f"\n\nHuman: {split} question number {i} about topic {i % 5}?\n\nAssistant: no.",
            }
            for i in range(n)
        ]
        (hh / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    one = _tiny_run(tmp_path, "one", hh)
    two = _tiny_run(
        tmp_path, "two", hh, **{"sweep.launcher": "accelerate", "sweep.accelerate_args": cpu_launch_args(2)}
    )
    # same policy weights in both runs, so the only difference is how the stage ran
    for item in (one.run_path / "sft" / "model").iterdir():
        (two.run_path / "sft" / "model" / item.name).write_bytes(item.read_bytes())
    local = launch(one, evaluate, seed=None, proportion=None, method="sft")
    sharded = launch(two, evaluate, seed=None, proportion=None, method="sft")
    assert len(sharded) == len(local) == 7
    assert sharded["prompt_id"].is_unique
    assert list(sharded["prompt_id"]) == list(local["prompt_id"])  # prompt order kept, nothing dropped
    assert list(sharded["completion"]) == list(local["completion"])
    traits = [c for c in local.columns if c.startswith(("trait_", "group_"))]
    assert len(traits) >= 4
    pd.testing.assert_frame_equal(sharded[traits], local[traits], atol=1e-5, check_exact=False)
    manifest = runs.read_manifest(two.run_path / "eval" / "sft.parquet")
    assert manifest["num_processes"] == 2
    assert "num_processes" not in runs.read_manifest(one.run_path / "eval" / "sft.parquet")
    assert not list((two.run_path / "eval").glob(".*"))  # no scratch or lock left behind
    assert not list(two.run_path.glob(".launch-*"))  # the launch profile is removed
