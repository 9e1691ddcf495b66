"""Run-directory layout and stage manifests.

A stage writes everything into a hidden partial directory, writes its manifest last, and then
renames the directory into place: a stage directory that exists with a manifest is finished, and a
half-written stage is never mistaken for a finished one. A stage whose manifest holds the same
parameter hash is skipped.

Two processes never work on one stage at once: a stage holds an exclusive lock (`flock` on a
hidden `.<name>.lock` beside it) from before its "done?" check until its output is in place. The
kernel drops the lock when a process dies, even by SIGKILL, so a crash never leaves a stage locked.
A busy stage makes the caller wait up to $SHAREDREP_LOCK_WAIT seconds (default 0: fail at once;
negative: wait as long as it takes), then raise StageBusy naming the stage and its holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
LOCK_WAIT_ENV = "SHAREDREP_LOCK_WAIT"


class StageBusy(RuntimeError):
    """Another process holds the stage's lock; the message names the stage and who holds it."""


class MissingInput(FileNotFoundError):
    """A stage was asked to run before the stage that makes its inputs; the message names that stage."""


_VERSIONED = ("torch", "transformers", "trl", "datasets", "accelerate", "papermill", "numpy", "pandas")


def prop_name(proportion: float) -> str:
    return f"prop{proportion:g}"


def sft_dir(run: Path) -> Path:
    return run / "sft"


def responses_dir(run: Path) -> Path:
    return run / "responses"


def preferences_dir(run: Path, seed: int, proportion: float) -> Path:
    return run / f"seed{seed}" / prop_name(proportion) / "preferences"


def rm_dir(run: Path, seed: int, proportion: float) -> Path:
    return run / f"seed{seed}" / prop_name(proportion) / "rm"


def features_dir(run: Path) -> Path:
    return run / "features"


def policy_dir(run: Path, seed: int, proportion: float | None, method: str) -> Path:
    """The stage directory of a policy (its weights are in `model/`); gold is per seed only."""
    if method == "sft":
        return sft_dir(run)
    if method == "gold":
        return run / f"seed{seed}" / "gold" / "policy"
    return run / f"seed{seed}" / prop_name(proportion) / "policy" / method


def policy_id(seed: int | None, proportion: float | None, method: str) -> str:
    if method == "sft":
        return "sft"
    if method == "gold":
        return f"seed{seed}-gold"
    return f"seed{seed}-{prop_name(proportion)}-{method}"


def eval_file(run: Path, pid: str) -> Path:
    return run / "eval" / f"{pid}.parquet"


def results_dir(run: Path) -> Path:
    return run / "results"


def notebooks_dir(run: Path) -> Path:
    return run / "notebooks"


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def manifest_path(target: Path) -> Path:
    """A stage directory keeps manifest.json inside; a single-file stage (x.parquet) has x.manifest.json."""
    return target.with_name(target.stem + ".manifest.json") if target.suffix else target / MANIFEST


def read_manifest(target: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(manifest_path(target).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return manifest if target.exists() else None


def is_done(stage_dir: Path, params: dict[str, Any]) -> bool:
    manifest = read_manifest(stage_dir)
    return manifest is not None and manifest.get("params_hash") == params_hash(params)


def require(stage_dir: Path, made_by: str) -> dict[str, Any]:
    """The manifest of a stage this one reads, or an error naming the stage that makes it."""
    manifest = read_manifest(stage_dir)
    if manifest is None:
        raise MissingInput(f"{stage_dir} is missing or unfinished; run {made_by} first.")
    return manifest


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def lock_path(stage_dir: Path) -> Path:
    return stage_dir.parent / f".{stage_dir.name}.lock"


_held: dict[str, int] = {}  # lock files this process holds -> nesting depth (locks are re-entrant here)


def lock_wait() -> float:
    """Seconds to wait for a busy stage, from $SHAREDREP_LOCK_WAIT (negative = no limit)."""
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    try:
        return float(text) if text else 0.0
    except ValueError:
        raise ValueError(f"${LOCK_WAIT_ENV}={text!r} is not a number of seconds.") from None


@contextlib.contextmanager
def stage_lock(stage_dir: Path, stage: str, wait: float | None = None) -> Iterator[None]:
    """Hold the stage's exclusive lock; re-entrant within one process.

    `wait`: seconds to wait for another holder (None: $SHAREDREP_LOCK_WAIT; negative: forever).
    The lock file is removed on release; a waiter that locked a file already removed retries on the
    new one, so two processes never both believe they hold the stage.
    """
    path = lock_path(stage_dir)
    key = os.path.abspath(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    wait = lock_wait() if wait is None else wait
    deadline = None if wait < 0 else time.monotonic() + wait
    path.parent.mkdir(parents=True, exist_ok=True)
    announced = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            if deadline is not None and time.monotonic() >= deadline:
                waited = f" after waiting {wait:g}s" if wait > 0 else ""
                raise StageBusy(
                    f"Stage {stage} ({stage_dir}) is busy{waited}: {holder or 'another process'} is running it; "
                    f"wait for it to finish, or set ${LOCK_WAIT_ENV} (seconds, -1 = as long as it takes) to wait."
                ) from None
            if not announced:
                print(f"[lock] stage {stage} is busy ({holder or 'another process'}); waiting", flush=True)
                announced = True
            time.sleep(0.5)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed this file as we locked it: lock the current one instead
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode())
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still locked: a waiter re-checks the inode and retries
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    return ""


def locked(stage: str, target: Callable[..., Path], done: Callable[..., bool] | None = None) -> Callable:
    """Decorator for a stage's `main`: hold the stage's lock (see stage_lock) for the whole call,
    so a second process neither redoes the work nor sees it half done. `target(*args)` is the
    stage's output path for the call's arguments. `done(*args)`: true when that output is finished
    (its manifest, written last, matches), so `main` only reads it and needs no lock; for a stage that
    several stage runs read at once (the responses, for every 02 run of a parallel sweep)."""

    def wrap(main: Callable) -> Callable:
        @functools.wraps(main)
        def run(*args, **kwargs):
            if not _locking_process() or (done is not None and done(*args, **kwargs)):
                return main(*args, **kwargs)
            with stage_lock(target(*args, **kwargs), stage):
                return main(*args, **kwargs)

        return run

    return wrap


def _locking_process() -> bool:
    """Under a multi-process launch (accelerate/torchrun set WORLD_SIZE, RANK) only the main process
    takes stage locks: it alone writes the stage (distributed.stage_output), for the whole group."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return True
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def clean_stale(stage_dir: Path) -> list[Path]:
    """Remove what a killed writer of this stage left behind (partial and trash directories).

    Called only with the stage's lock held, so no live writer owns them.
    """
    stale = [
        p
        for pattern in (
            f".{stage_dir.name}.partial-*",
            f".{stage_dir.name}.old-*",
            f".{manifest_path(stage_dir).name}.tmp-*",  # a single-file stage's manifest, half written
        )
        for p in stage_dir.parent.glob(pattern)
    ]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def path_hash(path: Path) -> str:
    """Content hash of a file, or of every file below a directory (names and contents, sorted)."""
    if path.is_file():
        return file_hash(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(path).as_posix()}\0{file_hash(item)}\n".encode())
    return digest.hexdigest()[:16]


def input_hashes(inputs: dict[str, Path | str]) -> dict[str, str]:
    """{name: content hash} of what a stage read, so a result traces to exactly what made it."""
    return {name: path_hash(Path(path)) for name, path in inputs.items()}


@contextlib.contextmanager
def stage_output(
    stage_dir: Path,
    stage: str,
    params: dict[str, Any],
    seed: int | None = None,
    inputs: dict[str, Path | str] | None = None,
) -> Iterator[dict]:
    """Yield a dict with "path" (a partial directory to write into) and "extra" (manifest additions).

    On success: manifest written last into the partial directory, which then replaces `stage_dir`.
    A single-file stage (`stage_dir` has a suffix) writes its file under that name into the partial
    directory; it is moved into place and its manifest written beside it, last.
    On error: the partial directory is removed and any earlier finished `stage_dir` stays as it was.
    The stage's lock is held throughout; partial directories of a killed earlier attempt are removed.
    `inputs` ({name: file or directory}) are hashed into the manifest; so are the seed and versions.
    """
    with stage_lock(stage_dir, stage):
        clean_stale(stage_dir)
        yield from _stage_output(stage_dir, stage, params, seed, inputs or {})


def _stage_output(stage_dir: Path, stage: str, params: dict, seed: int | None, inputs: dict) -> Iterator[dict]:
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = stage_dir.parent / f".{stage_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    handle: dict[str, Any] = {"path": partial, "extra": {}}
    start = time.time()
    try:
        yield handle
        manifest = {
            "stage": stage,
            "params": params,
            "params_hash": params_hash(params),
            "seed": seed,
            "wall_time_s": round(time.time() - start, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "git_commit": git_commit(),
            "inputs": input_hashes(inputs),
            **handle["extra"],
        }
        text = json.dumps(manifest, indent=2, default=str)
        if stage_dir.suffix:
            manifest_path(stage_dir).unlink(missing_ok=True)  # stale until the new file is in place
            os.replace(partial / stage_dir.name, stage_dir)
            _write_atomic(manifest_path(stage_dir), text)
        elif stage_dir.exists():
            _write_atomic(partial / MANIFEST, text)
            trash = stage_dir.parent / f".{stage_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(stage_dir, trash)
            os.replace(partial, stage_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            _write_atomic(partial / MANIFEST, text)
            os.replace(partial, stage_dir)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)
