"""Where the sweep's stage runs execute on this machine: serially in one kernel (`--jobs 1`, the default), or in
a pool of N worker processes (`--jobs N`, `concurrent.futures.ProcessPoolExecutor`), each with its own shared
kernel and its share of the machine: cores // N threads, or its own GPU(s) through CUDA_VISIBLE_DEVICES.

The graph's order is kept by the standard library's `graphlib.TopologicalSorter`: a stage run is submitted
once everything it waits for is done. A failure stops new submissions, lets the running ones finish, and is
raised (`StageFailed`) naming the stage run and its executed notebook.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import multiprocessing.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .graph import Node, StageRun, sorter
from .notebook_run import SharedKernel, SweepLog, execute_stage, failure

HEARTBEAT_S = 60.0  # a progress line at least this often while stage runs are running


class StageFailed(RuntimeError):
    """A stage run failed in a worker (or a SLURM job): `ename`/`evalue` as a papermill error has them."""

    def __init__(self, label: str, ename: str, evalue: str, notebook: Path | None, log_file: Path | None = None):
        self.label, self.ename, self.evalue, self.notebook, self.log_file = label, ename, evalue, notebook, log_file
        super().__init__(f"{label} failed: {ename}: {evalue}")


class Progress:
    """What a person watching sees, one line per event (done / total, what is running, elapsed, what is left), and
    what the sweep keeps of each stage run: a `report` row and its `sweep` log record (sweep_log.json)."""

    def __init__(self, total: int, jobs: int | None, log: Callable[[str], None], sweep: SweepLog, report: list,
                 done_at_start: set[str] = frozenset()):  # fmt: skip
        # jobs None: as many at once as are running (SLURM); done_at_start: labels that will be skipped, not run
        self.total, self.jobs, self.log, self.done_at_start = total, jobs, log, done_at_start
        self.sweep, self.report = sweep, report
        self.finished = 0
        self.start = time.time()
        self.walls: dict[str, list[float]] = {}  # notebook -> wall times of its stage runs that ran here

    def skipped(self, label: str) -> None:
        self.finished += 1
        self.report.append((label, "skipped", 0.0))
        self.sweep.skipped(label)  # a stage run done by an earlier invocation keeps that one's timing
        self.log(f"[{self.finished}/{self.total}] {label}: done already, skipped")

    def ran(self, run: StageRun, record: dict[str, Any], running: list[str], waiting: list[StageRun],
            where: str = "") -> None:  # fmt: skip
        """`record`: the stage run's timing record (`execute_stage`); `where`: e.g. its SLURM job."""
        seconds = record["wall_s"]
        self.finished += 1
        self.report.append((run.label, "ran", seconds))
        self.sweep.ran(record)
        self.walls.setdefault(run.notebook, []).append(seconds)
        self.log(f"[{self.finished}/{self.total}] {run.label}: finished in {seconds:.1f}s{where}{peak_note(record)}")
        self.status(running, waiting)

    def status(self, running: list[str], waiting: list[StageRun]) -> None:
        left = self.estimate_left(waiting, len(running))
        text = f"about {_duration(left)} left" if left is not None else "time left unknown yet"
        self.log(f"    running: {', '.join(running) or '-'} | elapsed {_duration(time.time() - self.start)}, {text}")

    def estimate_left(self, waiting: list[StageRun], running: int) -> float | None:
        """Mean wall time of stage runs of the same notebook (else of all) seen so far, summed over what is yet to
        run and the running ones (counted half done), shared by the jobs (on SLURM, by as many as run now). Stage
        runs done when the sweep started count 0: they will be skipped."""
        seen = [x for walls in self.walls.values() for x in walls]
        if not seen:
            return None
        overall = sum(seen) / len(seen)
        mean = {nb: sum(w) / len(w) for nb, w in self.walls.items()}
        todo = [r for r in waiting if r.label not in self.done_at_start]
        work = sum(mean.get(r.notebook, overall) for r in todo) + 0.5 * running * overall
        return work / (self.jobs or max(1, running))


def done_at_start(nodes: list[Node]) -> set[str]:
    """Stage runs done already (as `sharedrep plan` would list them): the estimate of what is left leaves them
    out. Each is checked again when reached, as a rerun upstream can undo it."""
    return {n.label for n in nodes if n.done()}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def peak_note(record: dict[str, Any]) -> str:
    return f", peak {record['peak_rss_mb']:.0f} MB" if record.get("peak_rss_mb") is not None else ""


def run_serial(
    nodes: list[Node], notebooks: Path, out_dir: Path, kernel: str, sweep: SweepLog, report: list, log
) -> None:
    """Today's sweep: the graph's order, one notebook at a time, all in one kernel (`SharedKernel`).
    A failing notebook's error is raised as papermill raised it."""
    progress = Progress(len(nodes), 1, log, sweep, report, done_at_start(nodes))
    shared = SharedKernel(kernel)  # one kernel for every notebook of this sweep, started by the first one
    try:
        for i, node in enumerate(nodes):
            if node.done():
                progress.skipped(node.label)
                continue
            log(f"[{progress.finished + 1}/{len(nodes)}] {node.label}: running ...")
            record = execute_stage(node.run, notebooks, out_dir, shared)
            progress.ran(node.run, record, [], [n.run for n in nodes[i + 1 :]])
    finally:
        shared.shutdown()


# --- the local pool -----------------------------------------------------------------------------------------


def worker_slots(jobs: int, gpus_per_job: int, cores: int | None = None, gpus: list[str] | None = None):
    """Each worker's environment: on GPUs, `gpus_per_job` visible GPUs of its own (so at most
    visible // gpus_per_job workers); else cores // jobs threads. Returns (environments, what was decided)."""
    cores = cores or os.cpu_count() or 1
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        workers = min(jobs, len(gpus) // gpus_per_job)
        if workers < 1:
            raise ValueError(f"--gpus-per-job {gpus_per_job} is more than the {len(gpus)} visible GPU(s).")
        groups = [gpus[i * gpus_per_job : (i + 1) * gpus_per_job] for i in range(workers)]
        threads = max(1, cores // workers)
        envs = [{"CUDA_VISIBLE_DEVICES": ",".join(g), **_threads(threads)} for g in groups]
        return envs, f"{workers} worker(s), GPUs {' | '.join(','.join(g) for g in groups)}, {threads} thread(s) each"
    threads = max(1, cores // jobs)
    return [_threads(threads) for _ in range(jobs)], f"{jobs} worker(s), {threads} thread(s) each of {cores} cores"


def _threads(n: int) -> dict[str, str]:
    # torch reads OMP_NUM_THREADS when it starts (in the worker's kernel, which inherits the worker's environment)
    return {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n)}


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them (torch asked only if needed)."""
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    if named is not None:
        return [x for x in named.split(",") if x.strip() and x.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


_worker_kernel: SharedKernel | None = None


def _start_worker(slots, kernel: str) -> None:
    """Pool initializer: take one slot's environment (threads or GPUs) and make this worker's shared kernel."""
    global _worker_kernel
    os.environ.update(slots.get())
    _worker_kernel = SharedKernel(kernel)
    # multiprocessing runs Finalize callbacks as a worker exits (it skips atexit): end the kernel with it
    multiprocessing.util.Finalize(_worker_kernel, _worker_kernel.shutdown, exitpriority=10)


def _work(run: StageRun, notebooks: Path, out_dir: Path) -> dict[str, Any]:
    """One stage run in this worker's kernel; a failure comes back as a record (papermill's errors need not
    pickle), with the executed notebook's path."""
    assert _worker_kernel is not None
    try:
        return execute_stage(run, notebooks, out_dir, _worker_kernel)
    except Exception as error:
        name, message = failure(error)
        executed = out_dir / f"{run.label}.ipynb"
        return {"label": run.label, "status": "failed", "ename": name, "evalue": message,
                "notebook": str(executed) if executed.exists() else None}  # fmt: skip


def run_pool(
    nodes: list[Node],
    notebooks: Path,
    out_dir: Path,
    kernel: str,
    sweep: SweepLog,
    report: list,
    log,
    jobs: int,
    gpus_per_job: int = 1,
) -> None:
    envs, decided = worker_slots(jobs, gpus_per_job)
    log(f"local pool: {decided}")
    by_label = {n.label: n for n in nodes}
    graph = sorter(nodes)
    graph.prepare()
    progress = Progress(len(nodes), len(envs), log, sweep, report, done_at_start(nodes))
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked threads or CUDA
    slots = context.Queue()
    for env in envs:
        slots.put(env)
    running: dict[cf.Future, StageRun] = {}
    ready: list[Node] = []
    failures: list[dict[str, Any]] = []
    finished_labels: set[str] = set()

    def waiting() -> list[StageRun]:  # neither finished nor running: for the estimate of what is left
        busy = {r.label for r in running.values()}
        return [n.run for n in nodes if n.label not in finished_labels and n.label not in busy]

    with cf.ProcessPoolExecutor(len(envs), mp_context=context, initializer=_start_worker,
                                initargs=(slots, kernel)) as pool:  # fmt: skip
        while True:
            ready += [by_label[label] for label in graph.get_ready()]
            while ready and not failures and len(running) < len(envs):
                node = ready.pop(0)
                if node.done():  # checked now that what it waits for is in place
                    progress.skipped(node.label)
                    finished_labels.add(node.label)
                    graph.done(node.label)
                    ready += [by_label[label] for label in graph.get_ready()]
                    continue
                log(f"[start] {node.label}")
                running[pool.submit(_work, node.run, notebooks, out_dir)] = node.run
            if not running:
                break
            finished, _ = cf.wait(running, timeout=HEARTBEAT_S, return_when=cf.FIRST_COMPLETED)
            if not finished:
                progress.status(sorted(r.label for r in running.values()), waiting())
            for future in finished:
                run = running.pop(future)
                try:
                    record = future.result()
                except Exception as error:  # the worker process itself died (e.g. killed for memory)
                    record = {"label": run.label, "status": "failed", "ename": type(error).__name__,
                              "evalue": str(error) or "the worker process ended", "notebook": None}  # fmt: skip
                if record["status"] == "failed":
                    failures.append(record)
                    then = " (no new stage runs start; waiting for the running ones)" if running else ""
                    log(f"[failed] {run.label}: {record['ename']}: {record['evalue']}{then}")
                    continue
                finished_labels.add(run.label)
                graph.done(run.label)
                progress.ran(run, record, sorted(r.label for r in running.values()), waiting())
    if failures:
        first = failures[0]
        notebook = Path(first["notebook"]) if first.get("notebook") else None
        raise StageFailed(first["label"], first["ename"], first["evalue"], notebook)
