"""Several processes under `accelerate launch`: who writes, and generation/scoring split by prompt.

Stages are the same functions with one process or many. Under a multi-process launch (accelerate
sets WORLD_SIZE > 1) every process runs the stage; TRL's trainers handle DDP/DeepSpeed themselves,
`map_in_order` splits a list of prompts into contiguous shards (accelerate's
`split_between_processes`), runs a function on each process's shard and gathers the results
(`gather_object`) back into prompt order on every process, and `stage_output` lets only the main
process write the stage directory and its manifest. With one process none of this touches
accelerate's state: the functions are plain pass-throughs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import runs


def active() -> bool:
    """True inside a multi-process launch (torchrun / accelerate set WORLD_SIZE for every process)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _state():
    import torch
    from accelerate import PartialState

    # Without cpu=True accelerate treats a CPU-only multi-process launch as one process (no gloo group).
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    return PartialState(cpu=cpu)


def num_processes() -> int:
    return _state().num_processes if active() else 1


def is_main() -> bool:
    return not active() or _state().is_main_process


def wait() -> None:
    """A barrier: every process waits here for the others (no-op with one process)."""
    if active():
        _state().wait_for_everyone()


def finish() -> None:
    """End of a multi-process run: wait for every process, then close the process group (a gloo
    group left open at interpreter exit can abort with "terminate called without an active exception")."""
    if active():
        state = _state()
        state.wait_for_everyone()
        state.destroy_process_group()


def device(default: str) -> str:
    """This process's device: its own GPU (cuda:<local rank>) under a multi-GPU launch, else `default`."""
    if active() and default == "cuda":
        return str(_state().device)
    return default


def map_in_order(fn: Callable[[list, int], Sequence], items: Sequence) -> list:
    """`fn(shard, start)` on this process's contiguous shard of `items` (`start` = index of its first
    item), results gathered from every process, in the order of `items`, on every process.

    `fn` must return one result per item of its shard. Shards differ by at most one item (odd
    counts, fewer items than processes); an empty shard does not call `fn`. The gathered rows are
    checked: each index exactly once, so a dropped or duplicated row fails loudly.
    """
    items = list(items)
    if not active():
        results = list(fn(items, 0)) if items else []
        _check_length(results, items)
        return results
    from accelerate.utils import gather_object

    state = _state()
    with state.split_between_processes(list(range(len(items)))) as indices:
        shard = [items[i] for i in indices]
        results = list(fn(shard, indices[0])) if indices else []
        _check_length(results, shard)
        pairs = list(zip(indices, results))
    gathered = sorted(gather_object(pairs), key=lambda pair: pair[0])
    got = [i for i, _ in gathered]
    if got != list(range(len(items))):
        raise RuntimeError(
            f"gathered {len(got)} rows ({len(set(got))} distinct) for {len(items)} items across "
            f"{state.num_processes} processes; every item must come back exactly once."
        )
    return [result for _, result in gathered]


def map_columns(fn: Callable[..., dict[str, Sequence]], *columns: Sequence) -> dict[str, np.ndarray]:
    """Like `map_in_order` for a scorer that takes columns and returns {name: values}: rows are
    split between processes, `fn(*shard_columns)` scores each shard, and the columns come back whole."""
    rows = list(zip(*columns))

    def per_row(shard: list, start: int) -> list[dict[str, Any]]:
        scored = fn(*(list(column) for column in zip(*shard)))
        names = list(scored)
        return [{name: scored[name][j] for name in names} for j in range(len(shard))]

    scored_rows = map_in_order(per_row, rows)
    names = list(scored_rows[0]) if scored_rows else []
    return {name: np.asarray([row[name] for row in scored_rows]) for name in names}


def _check_length(results: list, shard: list) -> None:
    if len(results) != len(shard):
        raise RuntimeError(f"a shard of {len(shard)} items gave {len(results)} results; expected one per item.")


@contextlib.contextmanager
def stage_output(
    stage_dir: Path, stage: str, params: dict[str, Any], seed: int | None = None, **kwargs: Any
) -> Iterator[dict]:
    """`runs.stage_output` for one process or many: only the main process writes the stage.

    The handle has "path" (where this process writes), "extra" (manifest additions) and "shared"
    (the main process's partial directory, for a file every process must read, e.g. a model
    built once by the main process). Other processes write into a private scratch directory that
    is deleted afterwards, and return only after the main process has moved the finished stage
    into place, so every process can read it.
    """
    if not active():
        with runs.stage_output(stage_dir, stage, params, seed, **kwargs) as handle:
            handle["shared"] = handle["path"]
            yield handle
        return
    from accelerate.utils import broadcast_object_list

    state = _state()
    if state.is_main_process:
        with runs.stage_output(stage_dir, stage, params, seed, **kwargs) as handle:
            broadcast_object_list([str(handle["path"])])
            handle["shared"] = handle["path"]
            handle["extra"]["num_processes"] = state.num_processes
            yield handle
            state.wait_for_everyone()  # the others are done with the shared partial directory
        state.wait_for_everyone()  # the stage is in place: release the others
        return
    shared = [None]
    broadcast_object_list(shared)
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{stage_dir.name}.rank{state.process_index}-", dir=stage_dir.parent))
    try:
        yield {"path": scratch, "extra": {}, "shared": Path(shared[0])}
        state.wait_for_everyone()
        state.wait_for_everyone()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
