"""Run-directory layout and stage manifests.

A stage writes everything into a hidden partial directory, writes its manifest last, and then
renames the directory into place: a stage directory that exists with a manifest is finished, and a
half-written stage is never mistaken for a finished one. A stage whose manifest holds the same
parameter hash is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
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
        raise FileNotFoundError(f"{stage_dir} is missing or unfinished; run {made_by} first.")
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


@contextlib.contextmanager
def stage_output(stage_dir: Path, stage: str, params: dict[str, Any], seed: int | None = None) -> Iterator[dict]:
    """Yield a dict with "path" (a partial directory to write into) and "extra" (manifest additions).

    On success: manifest written last into the partial directory, which then replaces `stage_dir`.
    A single-file stage (`stage_dir` has a suffix) writes its file under that name into the partial
    directory; it is moved into place and its manifest written beside it, last.
    On error: the partial directory is removed and any earlier finished `stage_dir` stays as it was.
    """
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
