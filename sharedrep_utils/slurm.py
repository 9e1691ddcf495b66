"""`sharedrep run --executor slurm`: every stage run of the sweep's graph one SLURM job, submitted through
submitit, with what it waits for given to SLURM (`--dependency=afterok:...`), so the whole sweep is queued at
once and SLURM schedules it. Resources come from the profile's `slurm:` section (and `--slurm-*` flags);
SLURM is asked whether it accepts them (`sbatch --test-only`) before anything is submitted or written.

Job logs land under `<run_dir>/slurm/` (submitit's `<jobid>_0_log.out/.err`); `<run_dir>/slurm/jobs.json`
maps each stage run to its job, so the same command run again waits for jobs still queued instead of
submitting them twice, and skips finished stage runs (manifests), as locally.
"""

from __future__ import annotations

import getpass
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, SlurmConfig
from .executors import Progress, StageFailed
from .graph import Node, StageRun
from .notebook_run import SharedKernel, SweepLog, execute_stage, failure

POLL_S = 5.0
HEARTBEAT_S = 60.0
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}


def slurm_dir(run: Path) -> Path:
    return run / "slurm"


def check_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "--executor slurm needs SLURM's sbatch on PATH, and there is none here; use --executor local "
            "(allowed: local, slurm), or start a one-node cluster with scripts/slurm-local.sh start."
        )


def job_parameters(slurm: SlurmConfig) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters for every stage run's job (names as submitit spells them)."""
    params: dict[str, Any] = {"time": slurm.time_min, "cpus_per_task": slurm.cpus_per_job, "nodes": 1,
                              "ntasks_per_node": 1}  # fmt: skip
    if slurm.partition:
        params["partition"] = slurm.partition
    if slurm.gpus_per_job:
        params["gpus_per_node"] = slurm.gpus_per_job
    if slurm.mem_gb:
        params["mem"] = f"{int(slurm.mem_gb * 1024)}M"
    if slurm.account:
        params["account"] = slurm.account
    # a job waiting for a failed one is cancelled by SLURM instead of pending forever
    params["additional_parameters"] = {"kill-on-invalid-dep": "yes", **{str(k): str(v) for k, v in slurm.extra.items()}}
    return params


def sbatch_flags(params: dict[str, Any]) -> list[str]:
    """The same parameters as sbatch command-line flags (for `sbatch --test-only`)."""
    flat = {k: v for k, v in params.items() if k != "additional_parameters"}
    flat.update(params.get("additional_parameters", {}))
    return [f"--{key.replace('_', '-')}={value}" for key, value in flat.items()]


def check_resources(slurm: SlurmConfig) -> None:
    """Ask SLURM whether it would accept one stage run's job (`sbatch --test-only`: nothing is submitted);
    if not, one sentence naming the request, SLURM's reason and what the cluster has."""
    for name, value, least in (("cpus_per_job", slurm.cpus_per_job, 1), ("gpus_per_job", slurm.gpus_per_job, 0),
                               ("time_min", slurm.time_min, 1), ("mem_gb", slurm.mem_gb, 0)):  # fmt: skip
        if value < least:
            raise ConfigError(f"slurm.{name} {value} is not allowed; give {least} or more.")
    flags = sbatch_flags(job_parameters(slurm))
    result = subprocess.run(["sbatch", "--test-only", "--job-name=sharedrep-check", *flags, "--wrap=true"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    if result.returncode != 0:
        lines = (result.stderr + "\n" + result.stdout).splitlines()
        said = [x.removeprefix("sbatch: error: ").removeprefix("allocation failure: ").strip() for x in lines]
        reason = "; ".join(dict.fromkeys(x for x in said if x)) or f"sbatch exit status {result.returncode}"
        raise ConfigError(
            f"SLURM rejects the job request {' '.join(flags)}: {reason}; this cluster has {cluster_summary()} "
            "(set slurm.* in the profile or the --slurm-* flags)."
        )


def cluster_summary() -> str:
    """Partitions with their CPUs, memory (MB), GPUs (GRES) and time limit per node, as sinfo reports them."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P cpus=%c mem=%mMB gres=%G time=%l"], capture_output=True,
                             text=True, timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "partitions unknown (sinfo failed)"
    rows = sorted({line.strip() for line in out.splitlines() if line.strip()})
    return "partitions " + "; ".join(rows) if rows else "no partitions (sinfo lists none)"


def job_name(run: StageRun) -> str:
    return f"sharedrep:{run.label}"  # e.g. sharedrep:04_grpo-seed42-prop0.2-maxmin


def run_job(run: StageRun, notebooks: Path, out_dir: Path, kernel: str) -> dict[str, Any]:
    """What each SLURM job runs: one stage run's notebook in a fresh kernel. A failure raises, so that SLURM marks
    the job failed and cancels what waits for it."""
    shared = SharedKernel(kernel)
    try:
        return execute_stage(run, notebooks, out_dir, shared)
    except Exception as error:
        raise StageFailed(run.label, *failure(error), out_dir / f"{run.label}.ipynb") from None
    finally:
        shared.shutdown()


def queue_states() -> dict[str, tuple[str, str]]:
    """job id -> (state, reason) of this user's jobs SLURM still lists (ended ones for MinJobAge seconds)."""
    result = subprocess.run(["squeue", "-h", "--states=all", "-u", getpass.getuser(), "-o", "%i|%T|%r"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    states = {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def run_slurm(
    cfg: Config,
    nodes: list[Node],
    notebooks: Path,
    out_dir: Path,
    kernel: str,
    sweep: SweepLog,
    report: list,
    log: Callable[[str], None],
    wait: bool = True,
) -> None:
    """Submit every stage run that is not done (each waiting, through SLURM, for the submitted ones it needs),
    then, if `wait`, follow the jobs until all have ended, with progress; a failed or cancelled job is raised
    (`StageFailed`) with its log's path once nothing is running any more."""
    import submitit

    logging.getLogger("submitit").setLevel(logging.ERROR)  # without SLURM accounting every sacct call warns
    folder = slurm_dir(cfg.run_path)
    folder.mkdir(parents=True, exist_ok=True)
    known = _read_jobs(folder)
    queued = queue_states()
    executor = submitit.SlurmExecutor(folder=folder)
    jobs: dict[str, Any] = {}
    progress = Progress(len(nodes), None, log, sweep, report)  # skips come first here; as parallel as SLURM runs
    for node in nodes:
        if node.done():
            progress.skipped(node.label)
            continue
        old = known.get(node.label)
        if old and queued.get(old, ("", ""))[0] in ACTIVE:  # submitted by an earlier invocation, still queued
            jobs[node.label] = submitit.SlurmJob(folder=folder, job_id=old)
            log(f"[queued] {node.label}: job {old} (submitted earlier)")
            continue
        after = [jobs[label].job_id for label in node.needs if label in jobs]
        executor.update_parameters(**job_parameters(cfg.slurm), job_name=job_name(node.run),
                                   dependency=f"afterok:{':'.join(after)}" if after else None,
                                   setup=[f"export OMP_NUM_THREADS={cfg.slurm.cpus_per_job}"])  # fmt: skip
        jobs[node.label] = executor.submit(run_job, node.run, notebooks, out_dir, kernel)
        waits = f", after job(s) {', '.join(after)}" if after else ""
        log(f"[submitted] {node.label}: job {jobs[node.label].job_id}{waits}")
        _write_jobs(folder, {**known, **{label: job.job_id for label, job in jobs.items()}})
    if not jobs:
        return
    log(f"{len(jobs)} SLURM job(s) queued; logs in {folder}/<jobid>_0_log.out|err")
    if not wait:
        log("not waiting (--no-wait): see `squeue -u $USER`; the same command run again waits for these jobs")
        return
    by_label = {n.label: n for n in nodes}
    try:
        follow(jobs, by_label, progress, log)
    except KeyboardInterrupt:
        ids = " ".join(job.job_id for job in jobs.values())
        log(f"stopped waiting; the jobs stay queued (scancel {ids} to stop them; the same command waits again)")
        raise


def follow(jobs: dict[str, Any], by_label: dict[str, Node], progress: Progress, log: Callable[[str], None]) -> None:
    """Poll until every job has ended: a result file (submitit's pickle) says how it went; a job SLURM no longer
    lists as active without one failed, was cancelled, or never ran because what it waited for failed."""
    pending = dict(jobs)
    failures: list[StageFailed] = []
    never_ran: list[str] = []
    last_status = time.time()
    gone_once: set[str] = set()  # ended without a result at one poll: given one more for the result to appear
    while pending:
        states = queue_states()
        for label, job in list(pending.items()):
            state, reason = states.get(job.job_id, ("GONE", ""))
            if job.paths.result_pickle.exists():
                pending.pop(label)
                outcome, value = _outcome(job)
                if outcome == "success":
                    busy, job_text = running(pending, states), f" (job {job.job_id})"
                    progress.ran(by_label[label].run, value, busy, waiting(pending, busy, by_label), job_text)
                else:
                    failures.append(_failed(label, job, value))
                    log(f"[failed] {label}: job {job.job_id}, {failures[-1].ename}: {failures[-1].evalue}; "
                        f"log {job.paths.stderr}")  # fmt: skip
            elif state not in ACTIVE:
                if job.job_id not in gone_once:
                    gone_once.add(job.job_id)
                    continue
                pending.pop(label)
                if reason == "DependencyNeverSatisfied" or (state == "CANCELLED" and not job.paths.stderr.exists()):
                    never_ran.append(label)
                    log(f"[not run] {label}: job {job.job_id} cancelled by SLURM, as a job it waits for failed")
                else:
                    failures.append(StageFailed(label, f"SLURM job {job.job_id} {state.lower()}", "no result written",
                                                None, job.paths.stderr))  # fmt: skip
                    log(f"[failed] {label}: job {job.job_id} {state}, no result; log {job.paths.stderr}")
        if pending and time.time() - last_status >= HEARTBEAT_S:
            busy = running(pending, states)
            progress.status(busy, waiting(pending, busy, by_label))
            last_status = time.time()
        if pending:
            time.sleep(POLL_S)
    if failures:
        first = failures[0]
        if never_ran:
            first.evalue += f" ({len(never_ran)} stage run(s) waiting for it were cancelled)"
        raise first


def running(pending: dict[str, Any], states: dict[str, tuple[str, str]]) -> list[str]:
    return sorted(label for label, job in pending.items() if states.get(job.job_id, ("",))[0] == "RUNNING")


def waiting(pending: dict[str, Any], busy: list[str], by_label: dict[str, Node]) -> list[StageRun]:
    """The pending jobs not running yet: the estimate counts the running ones apart (half done)."""
    return [by_label[label].run for label in pending if label not in busy]


def _outcome(job) -> tuple[str, Any]:
    """("success", the job's return value) or ("error", its traceback text), read by submitit from its result file
    (which exists by now, so neither call waits)."""
    error = job.exception()
    if error is None:
        return "success", job.result()
    # submitit's message puts the job's traceback between two dashed lines
    parts = str(error).split("----------------------\n")
    return "error", parts[1] if len(parts) > 2 else str(error)


def _failed(label: str, job, traceback_text: str) -> StageFailed:
    last = next((x for x in reversed(str(traceback_text).strip().splitlines()) if x.strip()), "")
    # the job raised StageFailed("<label> failed: <ename>: <evalue>"): keep ename and evalue
    _, _, said = last.partition(f"{label} failed: ")
    ename, _, evalue = (said or last).partition(": ")
    notebook = Path(job.paths.folder).parent / "notebooks" / f"{label}.ipynb"
    return StageFailed(label, ename or "error", evalue, notebook if notebook.exists() else None, job.paths.stderr)


def _read_jobs(folder: Path) -> dict[str, str]:
    try:
        return json.loads((folder / "jobs.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_jobs(folder: Path, jobs: dict[str, str]) -> None:
    tmp = folder / ".jobs.json.tmp"
    tmp.write_text(json.dumps(jobs, indent=1))
    tmp.replace(folder / "jobs.json")
