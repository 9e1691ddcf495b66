"""Two processes on one run directory: a lock per stage; the second waits or names the busy stage."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sweep_helpers import ROOT, needs_hh, sweep_command, sweep_env

from sharedrep_utils import runs
from sharedrep_utils.runs import LOCK_WAIT_ENV, StageBusy, is_done, lock_path, stage_lock, stage_output

PARAMS = {"x": 1}

# Holds a stage's lock until its stdin closes (or it is killed); says "held" once it has it.
HOLDER = """
import sys
from pathlib import Path
from sharedrep_utils.runs import stage_lock
with stage_lock(Path(sys.argv[1]), "holder-stage", wait=-1):
    print("held", flush=True)
    sys.stdin.read()
"""


class Holder:
    """Another process holding `stage`'s lock."""

    def __init__(self, stage: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(stage)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc.stdin.close()


@pytest.fixture
def stage(tmp_path):
    return tmp_path / "seed1" / "prop0.1" / "rm"


def test_a_busy_stage_is_refused_at_once_naming_the_stage_and_holder(stage, monkeypatch):
    monkeypatch.delenv(LOCK_WAIT_ENV, raising=False)
    holder = Holder(stage)
    try:
        with pytest.raises(StageBusy) as info:
            with stage_output(stage, "03_reward_models", PARAMS):
                pytest.fail("entered a stage another process holds")
        message = str(info.value)
        assert "03_reward_models" in message and str(stage) in message
        assert f"pid {holder.proc.pid}" in message and LOCK_WAIT_ENV in message
        assert "\n" not in message
        assert not stage.exists() and not list(stage.parent.glob(".rm.partial-*"))  # nothing written
    finally:
        holder.release()
    with stage_output(stage, "03_reward_models", PARAMS):
        pass
    assert is_done(stage, PARAMS)


def test_a_waiter_gives_up_after_its_limit(stage):
    holder = Holder(stage)
    try:
        start = time.monotonic()
        with pytest.raises(StageBusy, match="after waiting 0.6s"):
            with stage_lock(stage, "rm", wait=0.6):
                pass
        assert time.monotonic() - start >= 0.6
    finally:
        holder.release()


def test_a_waiter_gets_the_stage_when_the_holder_finishes(stage, monkeypatch):
    monkeypatch.setenv(LOCK_WAIT_ENV, "-1")  # wait as long as it takes
    holder = Holder(stage)
    releaser = threading.Timer(1.0, holder.release)
    releaser.start()
    start = time.monotonic()
    with stage_lock(stage, "rm"):
        assert time.monotonic() - start >= 0.9  # it waited for the holder
        assert lock_path(stage).exists()
    releaser.join()
    assert not lock_path(stage).exists()  # removed on release: a run directory keeps no lock files


def test_a_killed_holder_leaves_no_stale_lock(stage):
    holder = Holder(stage)
    with pytest.raises(StageBusy):  # held: the check below can fail
        with stage_lock(stage, "rm", wait=0):
            pass
    assert lock_path(stage).exists()
    holder.kill()  # SIGKILL: no clean-up ran, but the kernel drops the lock with the process
    with stage_lock(stage, "rm", wait=0):
        assert runs._held  # this process holds it now, at once
    assert not lock_path(stage).exists()


def test_the_lock_is_reentrant_within_a_process_and_exclusive_across(stage):
    with stage_lock(stage, "rm", wait=0):
        with stage_lock(stage, "rm", wait=0):  # stage main, then its stage_output
            pass
        probe = subprocess.run(
            [sys.executable, "-c", HOLDER.replace("wait=-1", "wait=0"), str(stage)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        assert probe.returncode != 0 and "StageBusy" in probe.stderr
    assert runs._held == {}


def test_the_lock_wait_variable_must_be_a_number(stage, monkeypatch):
    monkeypatch.setenv(LOCK_WAIT_ENV, "soon")
    with pytest.raises(ValueError, match="'soon'"):
        with stage_lock(stage, "rm"):
            pass


def test_a_stage_main_holds_the_lock_for_its_whole_run(tmp_path, monkeypatch):
    """The check "done already?" and the work happen under one lock: no double work, no half view."""
    from sharedrep_utils.config import load_config
    from sharedrep_utils.stages import preferences

    cfg = load_config("smoke", {"run_dir": str(tmp_path)})
    target = runs.preferences_dir(tmp_path, 42, 0.1)
    seen = {}

    def fake_params(cfg, seed, proportion):
        seen["held"] = os.path.abspath(lock_path(target)) in runs._held
        raise RuntimeError("stop here")

    monkeypatch.setattr(preferences, "params", fake_params)
    with pytest.raises(RuntimeError, match="stop here"):
        preferences.main(cfg, 42, 0.1)
    assert seen["held"] and runs._held == {}


def test_a_stage_command_line_exits_3_on_a_busy_stage_and_2_on_missing_inputs(tmp_path, capsys):
    from sharedrep_utils.launcher import command_line
    from sharedrep_utils.stages import preferences

    argv = ["--run-dir", str(tmp_path), "--seed", "42", "--proportion", "0.1"]
    with pytest.raises(SystemExit) as info:
        command_line(preferences.main, argv, seed=int, proportion=float)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "02_preference_data (responses)" in err  # the stage that makes them
    holder = Holder(runs.preferences_dir(tmp_path, 42, 0.1))
    try:
        with pytest.raises(SystemExit) as info:
            command_line(preferences.main, argv, seed=int, proportion=float)
        assert info.value.code == 3
        assert "is busy" in capsys.readouterr().err
    finally:
        holder.release()


@pytest.mark.integration
@needs_hh
def test_a_second_sweep_on_a_busy_run_directory_exits_3_naming_the_stage(tmp_path):
    run_dir = tmp_path / "run"
    holder = Holder(run_dir / "sft")  # as if another sweep were training the SFT policy
    try:
        result = subprocess.run(
            sweep_command(run_dir), capture_output=True, text=True, env=sweep_env(), cwd=ROOT, timeout=600
        )
    finally:
        holder.release()
    assert result.returncode == 3, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "StageBusy" in error[0] and "01_sft" in error[0], result.stderr[-2000:]
    assert f"pid {holder.proc.pid}" in error[0]
    assert not (run_dir / "sft").exists()
    # with --lock-wait the second sweep waits instead; here it gives up after its limit
    holder = Holder(run_dir / "sft")
    try:
        start = time.monotonic()
        result = subprocess.run(
            sweep_command(run_dir, "--lock-wait", "2"),
            capture_output=True,
            text=True,
            env=sweep_env(),
            cwd=ROOT,
            timeout=600,
        )
    finally:
        holder.release()
    assert result.returncode == 3 and "after waiting 2s" in result.stderr
    assert time.monotonic() - start > 2


def test_lock_files_live_beside_the_stage_as_hidden_files(tmp_path):
    assert lock_path(tmp_path / "rm") == tmp_path / ".rm.lock"
    assert lock_path(tmp_path / "eval" / "x.parquet") == tmp_path / "eval" / ".x.parquet.lock"
    assert lock_path(Path("a/b")) == Path("a/.b.lock")  # relative paths stay relative


def test_under_a_multi_process_launch_only_the_main_process_locks(stage, monkeypatch):
    """accelerate runs a stage in every process; the main one locks for the group, the others follow."""

    @runs.locked("rm", lambda: stage)
    def main():
        return "ran"

    holder = Holder(stage)  # stands for the group's main process
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")
        assert main() == "ran"
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(StageBusy):
            main()
        monkeypatch.delenv("WORLD_SIZE")
        with pytest.raises(StageBusy):
            main()
    finally:
        holder.release()


def test_a_finished_stage_is_read_without_its_lock_while_another_process_holds_it(stage, monkeypatch):
    """A stage that several stage runs read at once (the responses, for every 02 run of a parallel sweep):
    finished, it is read while another process holds its lock; unfinished, the lock is still required."""
    from sharedrep_utils.runs import locked

    monkeypatch.delenv(LOCK_WAIT_ENV, raising=False)
    finished = {"now": True}

    @locked("responses-like", lambda: stage, done=lambda: finished["now"])
    def main():
        return "read"

    holder = Holder(stage)
    try:
        assert main() == "read"
        finished["now"] = False
        with pytest.raises(StageBusy):
            main()
    finally:
        holder.release()
