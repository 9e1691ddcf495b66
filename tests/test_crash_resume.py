"""Crash safety: SIGKILL at any moment loses no finished work and is never mistaken for a result.

Unit part: a child process dies (SIGKILL, no cleanup) inside each window of `stage_output`; the
stage is then never "done", an earlier finished version survives, and the next writer cleans up.
Integration part: a real small sweep is killed at several points (the whole process group, kernels
included), resumed each time, and its final results/summary.csv equals an uninterrupted run's.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import ROOT, needs_hh, network_attempts, sweep_command, sweep_env

from sharedrep_utils.runs import is_done, manifest_path, read_manifest, stage_output

PARAMS = {"lr": 0.1}

# The child writes a stage and kills itself at the n-th os.replace of stage_output (the moves that
# put work in place): the worst moments for a crash.
CHILD = """
import os, signal, sys
from pathlib import Path
from sharedrep_utils import runs

target, version, die_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
calls = 0
real_replace = os.replace

def replace(src, dst):
    global calls
    calls += 1
    if calls == die_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

os.replace = replace
with runs.stage_output(target, "demo", {"version": version}) as out:
    name = target.name if target.suffix else "data.txt"
    (out["path"] / name).write_text(version)
"""


def write_in_child(target: Path, version: str, die_at: int) -> int:
    return subprocess.run([sys.executable, "-c", CHILD, str(target), version, str(die_at)], cwd=ROOT).returncode


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("die_at", [1, 2, 3])
@pytest.mark.parametrize("kind", ["directory", "file"])
def test_sigkill_inside_stage_output_never_yields_a_false_done(tmp_path, kind, die_at):
    target = tmp_path / ("stage" if kind == "directory" else "stage.parquet")
    assert write_in_child(target, "v1", die_at=0) == 0  # a finished first version
    assert is_done(target, {"version": "v1"})
    code = write_in_child(target, "v2", die_at=die_at)
    assert code == -signal.SIGKILL or code == 0  # a single-file stage makes fewer moves
    done_v1, done_v2 = is_done(target, {"version": "v1"}), is_done(target, {"version": "v2"})
    if code == 0:
        assert done_v2
    else:
        assert not done_v2  # half-written v2 never counts
        if done_v1:  # v1 still claims to be done: its data must be v1's, whole
            data = target if kind == "file" else target / "data.txt"
            assert data.read_text() == "v1"
    # the next writer (a resumed sweep) finishes and leaves nothing behind
    assert write_in_child(target, "v3", die_at=0) == 0
    assert is_done(target, {"version": "v3"})
    assert (target if kind == "file" else target / "data.txt").read_text() == "v3"
    assert hidden(tmp_path) == []


def test_a_partial_directory_of_a_killed_writer_is_ignored_then_removed(tmp_path):
    stage = tmp_path / "rm"
    stale = tmp_path / ".rm.partial-deadbeef"
    stale.mkdir()
    (stale / "manifest.json").write_text(json.dumps({"params_hash": "x"}))  # even one with a manifest
    assert read_manifest(stage) is None and not is_done(stage, PARAMS)
    with stage_output(stage, "rm", PARAMS) as out:
        (out["path"] / "heads.safetensors").write_bytes(b"h")
    assert not stale.exists()
    assert hidden(tmp_path) == []


def test_a_killed_sweeps_draft_notebooks_are_removed_only_when_their_process_has_ended(tmp_path):
    """Drafts of an ended process on this host go; a live one's, another host's (a SLURM node's) and an older
    layout's without a host stay."""
    import socket

    from sharedrep_utils.notebook_run import DRAFTS, clean_stale_drafts

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, host = int(ended.stdout), socket.gethostname()
    names = {
        "dead": f"{DRAFTS}-{host}-{dead}-ab_c1",
        "live": f"{DRAFTS}-{host}-{os.getpid()}-x9y",
        "other host": f"{DRAFTS}-elsewhere-node-{dead}-q1",
        "no host": f"{DRAFTS}-{dead}-z2",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "04_grpo-seed42-prop0.1-maxmin.ipynb").write_text("{}")
    removed = clean_stale_drafts(tmp_path)
    assert removed == [tmp_path / names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items() if k != "dead")


# ------------------------------------------------------------------------------------- integration

# (what to wait for, seconds after it appears): SIGKILL then. A `.<stage>.partial-*` directory
# appears when a stage starts writing, so these kill stages mid-write; a stage's draft notebook
# (notebooks/.drafts-*/<label>.ipynb) lives while papermill runs it, so those kill the sweep's kernel
# while a notebook starts or works. A partial that lives only milliseconds (smoke's reward heads: heads_s 0.04) is no
# marker: a 50 ms poll can miss it; SIGKILL inside stage_output's windows is the unit test's above.
DRAFT = "notebooks/.drafts-*/{}.ipynb"
KILL_POINTS = [
    (".sft.partial-*", 0.5),  # SFT training
    (DRAFT.format("02_preference_data-seed42-prop0.2"), 0.0),  # a notebook starting in the sweep's kernel
    (DRAFT.format("03_reward_models-seed42-prop0.4"), 0.5),  # reward models under way
    ("seed42/prop0.2/policy/.sharedrep-k2.partial-*", 1.0),  # GRPO
    (DRAFT.format("05_evaluate-seed42-prop0.4-maxmin"), 0.7),  # an evaluation under way
    (".results.partial-*", 0.3),  # figures being drawn
]
ARTIFACTS = {  # what a stage with a manifest must hold (checked after every kill)
    "sft": ["model/model.safetensors", "model/tokenizer.json"],
    "responses": ["responses.parquet"],
    "preferences": ["preferences.parquet"],
    "reward_models": ["maxmin/heads.safetensors", "sharedrep-k2/heads.safetensors", "uniform/heads.safetensors"],
    "grpo": ["model/model.safetensors", "training_log.json"],
    "results": ["summary.csv"],
}


def matches(run_dir: Path, pattern: str) -> set[Path]:
    return set(run_dir.glob(pattern))


def kill_when(run_dir: Path, pattern: str, delay: float, log: Path) -> None:
    """Start the sweep; SIGKILL its whole process group `delay` s after a new `pattern` match appears."""
    before = matches(run_dir, pattern) if run_dir.exists() else set()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            sweep_command(run_dir), stdout=out, stderr=subprocess.STDOUT, env=sweep_env(), cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 900
        try:
            while not (run_dir.exists() and matches(run_dir, pattern) - before):
                assert proc.poll() is None, f"sweep ended before {pattern} appeared:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"{pattern} never appeared"
                time.sleep(0.05)
            time.sleep(delay)
        finally:
            with contextlib.suppress(ProcessLookupError):  # a sweep that already ended: the assert above says why
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def finished_stages(run_dir: Path) -> dict[Path, int]:
    """Manifest -> mtime of every finished stage; each one checked to hold its artifacts, readable."""
    out = {}
    for manifest in run_dir.rglob("*manifest.json"):
        if any(part.startswith(".") for part in manifest.relative_to(run_dir).parts):
            continue  # inside a partial directory: not a finished stage
        stage = json.loads(manifest.read_text())["stage"]
        if manifest.name == "manifest.json":
            for name in ARTIFACTS.get(stage, []):
                assert (manifest.parent / name).is_file(), f"{manifest.parent} is done but lacks {name}"
            if stage in ("responses", "preferences"):
                pd.read_parquet(manifest.parent / ARTIFACTS[stage][0])
        else:  # a single-file stage: its file beside it, whole
            table = manifest.with_name(manifest.name.replace(".manifest.json", ".parquet"))
            assert manifest_path(table) == manifest
            assert len(pd.read_parquet(table)) > 0
        out[manifest] = manifest.stat().st_mtime_ns
    return out


@pytest.mark.integration
@needs_hh
def test_a_sweep_killed_at_several_points_resumes_to_the_uninterrupted_result(reference_run, tmp_path):
    reference_dir, _ = reference_run
    run_dir = tmp_path / "run"
    kept: dict[Path, int] = {}
    for i, (pattern, delay) in enumerate(KILL_POINTS):
        kill_when(run_dir, pattern, delay, tmp_path / f"attempt{i}.log")
        done = finished_stages(run_dir)
        # nothing finished earlier was redone or lost
        assert {m: done.get(m) for m in kept} == kept, f"finished stages changed at kill point {pattern}"
        kept = done
    result = subprocess.run(sweep_command(run_dir), capture_output=True, text=True, env=sweep_env(), cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    final = finished_stages(run_dir)
    assert {m: final.get(m) for m in kept} == kept  # the last resume redid only unfinished stages
    assert "skipped" in result.stdout
    ours = (run_dir / "results" / "summary.csv").read_bytes()
    theirs = (reference_dir / "results" / "summary.csv").read_bytes()
    if ours != theirs:
        pd.testing.assert_frame_equal(
            pd.read_csv(run_dir / "results" / "summary.csv"), pd.read_csv(reference_dir / "results" / "summary.csv")
        )
        pytest.fail("summary.csv differs from the uninterrupted run's in formatting only")
    leftovers = [p for p in run_dir.rglob(".*") if ".partial-" in p.name or ".old-" in p.name or p.suffix == ".lock"
                 or p.name.startswith(".drafts-")]  # fmt: skip
    assert leftovers == []
    assert network_attempts() == []
    # and the same preference data, byte for byte
    for prop in ("0.2", "0.4"):
        rel = Path(f"seed42/prop{prop}/preferences/preferences.parquet")
        assert (run_dir / rel).read_bytes() == (reference_dir / rel).read_bytes()
