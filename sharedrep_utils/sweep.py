"""The sweep: the numbered notebooks run with papermill, once per stage run of the sweep's graph
(`graph.py`: what runs for which seed × proportion × method, and what each waits for), skipping every stage
run whose manifest says it is already done. Executed notebooks land in `<run_dir>/notebooks/`.

Executors (`executors.py`, `slurm.py`) decide where each stage run executes; `notebook_run.py` executes one
(`execute_stage`, in a `SharedKernel`) and keeps `notebooks/sweep_log.json` (`SweepLog`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config
from .graph import build_graph
from .notebook_run import PeakRSS, SharedKernel, SweepLog, _cells_seconds, clean_stale_drafts, execute_stage  # noqa: F401 (the sweep's API)
from .runs import notebooks_dir

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_sweep(
    cfg: Config,
    overrides: dict[str, Any],
    notebooks: Path = NOTEBOOKS,
    kernel: str = "python3",
    log: Callable[[str], None] = print,
    profile: str | None = None,
    jobs: int = 1,
    gpus_per_job: int = 1,
    executor: str = "local",
    wait: bool = True,
) -> list[tuple[str, str, float]]:
    """Execute the graph; returns (label, "ran" | "skipped", seconds) per stage run.

    `executor` local, `jobs` 1: every notebook in one kernel (`SharedKernel`), in the graph's order; `jobs` N > 1:
    a local pool of N processes (`executors.run_pool`), each with its own shared kernel and its share of the
    cores or GPUs. `executor` slurm: one SLURM job per stage run (`slurm.run_slurm`; `wait`: follow them to the
    end). A failing notebook stops the sweep with its executed copy (error included) left in
    `<run_dir>/notebooks/` for a person to read.
    """
    from . import executors

    out_dir = notebooks_dir(cfg.run_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    if stale := clean_stale_drafts(out_dir):  # a killed sweep's notebooks in flight, as its partial stages are
        log(f"removed {len(stale)} draft folder(s) of ended processes from {out_dir}")
    nodes = build_graph(cfg, base_parameters(cfg, overrides, profile))
    announce(cfg, log)
    from .variants import link

    link(cfg)  # the variants' shared stages, as symlinks into this run (variants.py)
    if executor == "slurm":
        kernels = "one kernel per SLURM job"
    else:
        kernels = "one shared kernel" if jobs == 1 else f"one shared kernel per worker, {jobs} workers"
    # on SLURM the CPU time is the jobs' (summed from their records), not this process's
    sweep = SweepLog(out_dir, kernels, cpu_from_steps=executor == "slurm")
    report: list[tuple[str, str, float]] = []
    try:
        if executor == "slurm":
            from .slurm import run_slurm

            run_slurm(cfg, nodes, notebooks, out_dir, kernel, sweep, report, log, wait=wait)
        elif jobs == 1:
            executors.run_serial(nodes, notebooks, out_dir, kernel, sweep, report, log)
        else:
            executors.run_pool(nodes, notebooks, out_dir, kernel, sweep, report, log, jobs, gpus_per_job)
    finally:
        sweep.finish()
    return report


def base_parameters(cfg: Config, overrides: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """What every notebook gets: the profile (how the notebooks load it: a YAML profile's path, default the
    packaged profile's name) and the overrides, with the run directory made absolute."""
    return {"profile": profile or cfg.profile, "overrides": {**overrides, "run_dir": str(cfg.run_path.resolve())}}


def announce(cfg: Config, log: Callable[[str], None]) -> None:
    """What a person should know before the sweep starts (every executor prints it once)."""
    if cfg.sweep.launcher == "accelerate":  # the notebooks pass it on to launcher.launch
        config_file = cfg.sweep.accelerate_config or "accelerate's default config"
        log(f"stages sft, responses, grpo, evaluate run through accelerate launch ({config_file})")
    from .methods import rank_notice

    if notice := rank_notice(cfg):  # SharedRep's K >= U constrains nothing: say so once, whatever the executor
        log(notice)
    from .variants import describe

    if line := describe(cfg):
        log(line)
