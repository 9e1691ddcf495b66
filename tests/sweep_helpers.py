"""What the tests share besides fixtures: the small real sweep (its settings and command), the network
guard its processes load, and where the HH sample is. Imported as a plain module (`from sweep_helpers import
...`); conftest.py holds only fixtures.
"""

import os
import random
import string
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HH_DIR = os.environ.get("SHAREDREP_HH_DIR") or str(ROOT.parent / "shared" / "data" / "hh-rlhf")
# An `hf_` token in the sweep's environment, as on a machine logged in to the hub: no output may contain it.
FAKE_HF_TOKEN = "hf_" + "".join(random.Random(6).choices(string.ascii_letters, k=34))

# Small but real: every stage, all four methods, two proportions; minutes on 2 cores.
SMALL = [
    "data.n_sft=96",
    "data.n_preference_prompts=160",
    "data.n_grpo_prompts=8",
    "data.n_eval_prompts=24",
    "policy.tiny.hidden_size=32",
    "policy.tiny.intermediate_size=64",
    "policy.tiny.num_hidden_layers=1",
    "policy.tiny.vocab_size=512",
    "sft.num_train_epochs=1",
    "generation.max_new_tokens=12",
    "grpo.max_steps=2",
    "grpo.max_completion_length=8",
    "evaluation.max_new_tokens=12",
    "reward_model.maxmin.num_epochs=3",
    "reward_model.sharedrep.num_epochs=3",
    "reward_model.uniform.num_epochs=3",
]
SMALL_SWEEP = ["--profile", "smoke", "--seeds", "42", "--proportions", "0.2", "0.4", "--ks", "2"]

needs_hh = pytest.mark.skipif(not Path(HH_DIR).is_dir(), reason=f"no HH data at {HH_DIR} (set SHAREDREP_HH_DIR)")


def sweep_command(run_dir: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "sharedrep_utils", "run", *SMALL_SWEEP, "--run-dir", str(run_dir), *extra]
    for item in SMALL:
        args += ["--set", item]
    return args


# Loaded by every Python process of a sweep (the CLI and each notebook's kernel, through PYTHONPATH):
# refuses, and records, any connection that leaves the machine. Kernels talk to papermill over
# loopback, which stays open. A record catches an attempt even where the code swallows the error.
NETWORK_GUARD = """
import os, socket
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_LOCAL = ("127.0.0.1", "::1", "localhost")

def _check(sock, address):
    if sock.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in _LOCAL):
        return
    with open(os.environ["SHAREDREP_NETWORK_LOG"], "a") as log:
        log.write(f"{os.getpid()} {address!r}\\n")
    raise OSError(f"network access is blocked in test sweeps (attempted {address!r})")

def connect(self, address):
    _check(self, address)
    return _connect(self, address)

def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)

socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
"""
GUARD_DIR = Path(tempfile.gettempdir()) / f"sharedrep-network-guard-{os.getpid()}"


def sweep_env() -> dict[str, str]:
    """Offline, the shared HH data, a fake hub token to look for, and the network guard."""
    GUARD_DIR.mkdir(exist_ok=True)
    (GUARD_DIR / "sitecustomize.py").write_text(NETWORK_GUARD)
    path = os.pathsep.join(p for p in [str(GUARD_DIR), os.environ.get("PYTHONPATH", "")] if p)
    return {
        **os.environ,
        "SHAREDREP_HH_DIR": HH_DIR,
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": FAKE_HF_TOKEN,
        "PYTHONPATH": path,
        "SHAREDREP_NETWORK_LOG": str(GUARD_DIR / "attempts.log"),
    }


def network_attempts() -> list[str]:
    log = GUARD_DIR / "attempts.log"
    return log.read_text().splitlines() if log.exists() else []


