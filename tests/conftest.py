"""Test-wide guards: no network, Hugging Face libraries in offline mode.

Every test runs with sockets blocked (connect, connect_ex, create_connection raise), so a hidden
download fails loudly instead of quietly reaching the hub, and with HF_HUB_OFFLINE=1.

Also `reference_run`, one uninterrupted small sweep per session that the crash-resume and safety tests
share (sweeps run as subprocesses with HF_HUB_OFFLINE=1; their settings are in sweep_helpers.py).
"""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import GUARD_DIR, HH_DIR, ROOT, sweep_command, sweep_env

# huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported (test modules import it at
# collection time, before any fixture runs), so the variable is also set here, for this process.
os.environ["HF_HUB_OFFLINE"] = "1"


class NetworkBlockedError(OSError):
    """Raised by any attempt to open a network connection during the tests."""


def _blocked(*args, **kwargs):
    raise NetworkBlockedError(f"network access is blocked in tests (attempted connection: {args[1:] or args})")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and hasattr(constants, "HF_HUB_OFFLINE"):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


# --- fixtures around the small real sweep (its settings and helpers: sweep_helpers.py) ------------

@pytest.fixture(scope="session", autouse=True)
def remove_network_guard():
    yield
    shutil.rmtree(GUARD_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """One uninterrupted small sweep: (run directory, completed process with its stdout/stderr)."""
    if not Path(HH_DIR).is_dir():
        pytest.skip(f"no HH data at {HH_DIR} (set SHAREDREP_HH_DIR)")
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = subprocess.run(
        sweep_command(run_dir), capture_output=True, text=True, env=sweep_env(), cwd=ROOT, timeout=1500
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result


@pytest.fixture(scope="session")
def paper_dryrun_run(tmp_path_factory):
    """One local `make paper-dryrun` per session, shared by test_paper_dryrun.py and test_slurm_executor.py:
    (run directory, completed process)."""
    run_dir = tmp_path_factory.mktemp("paper-dryrun") / "paper-dryrun"
    command = [sys.executable, "-m", "sharedrep_utils", "paper-dryrun", "--run-dir", str(run_dir)]
    result = subprocess.run(command, capture_output=True, text=True, env=sweep_env(), cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result
