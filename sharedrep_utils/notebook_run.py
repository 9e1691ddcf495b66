"""Executing one stage run's notebook: papermill in a Jupyter kernel that outlives the notebook
(`SharedKernel`: one per sweep, per pool worker or per SLURM job), its peak memory and CPU time (`PeakRSS`),
and the sweep's record of them (`SweepLog`, `notebooks/sweep_log.json`). Every executor uses these."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .graph import StageRun


def execute_stage(run: StageRun, notebooks: Path, out_dir: Path, shared: SharedKernel) -> dict[str, Any]:
    """Execute one stage run's notebook with papermill in `shared`'s kernel; the executed copy becomes
    `<out_dir>/<label>.ipynb` (also when it fails, error included). Returns its timing record; raises what
    papermill raises."""
    import papermill as pm

    start = time.time()
    executed = out_dir / f"{run.label}.ipynb"
    # in place only once we know it is ours to keep; in a folder of this call's own (a pid alone can repeat on
    # another SLURM node sharing the run directory), where a glob of notebooks/*.ipynb never sees it, and under
    # a name papermill takes as a notebook
    drafts = Path(tempfile.mkdtemp(prefix=f"{DRAFTS}-{socket.gethostname()}-{os.getpid()}-", dir=out_dir))
    draft = drafts / f"{run.label}.ipynb"
    try:
        with PeakRSS() as memory:  # samples the papermill kernel's process tree
            pm.execute_notebook(
                str(notebooks / f"{run.notebook}.ipynb"),
                str(draft),
                parameters=run.parameters,
                kernel_name=shared.kernel_name,
                progress_bar=False,
                cwd=str(notebooks),
                **shared.engine_kwargs(),
            )
        draft.replace(executed)
    except Exception as error:
        if getattr(error, "ename", None) == "StageBusy":  # another sweep's stage: its notebook stays
            draft.unlink(missing_ok=True)
        elif draft.exists():
            draft.replace(executed)  # the failed run, error included, for a person to read
        raise
    finally:
        with contextlib.suppress(OSError):
            drafts.rmdir()
    seconds = time.time() - start
    cells = _cells_seconds(executed)
    return {
        "label": run.label,
        "status": "ran",
        "wall_s": round(seconds, 2),
        "peak_rss_mb": memory.peak_mb,
        "cpu_s": memory.cpu_s,
        # outside the notebook's cells: kernel start (a kernel's first notebook only), connecting, reading, writing
        "outside_cells_s": None if cells is None else round(seconds - cells, 2),
    }


DRAFTS = ".drafts"  # notebooks being executed: <run_dir>/notebooks/.drafts-<host>-<pid>-<random>/<label>.ipynb


def clean_stale_drafts(out_dir: Path) -> list[Path]:
    """Remove the draft folders a killed sweep left in `out_dir`: those of this host whose process has ended.
    Another host's (a SLURM job on another node sharing the run directory) are never touched: its process cannot
    be asked from here. Returns what was removed."""
    import shutil

    removed = []
    for folder in out_dir.glob(f"{DRAFTS}-*"):
        host, _, rest = folder.name.removeprefix(f"{DRAFTS}-").rpartition("-")  # rest: mkdtemp's suffix, no "-"
        host, _, pid = host.rpartition("-")
        if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class SweepLog:
    """`notebooks/sweep_log.json`: per stage run its wall time, peak memory and CPU-seconds, and the sweep's total
    wall time and CPU-seconds (this process and every child it has waited for: kernels, pool workers). Stage runs
    done by an earlier invocation keep that invocation's record. Rewritten atomically after every stage run."""

    def __init__(self, out_dir: Path, kernel: str, cpu_from_steps: bool = False):
        self.out_dir, self.kernel, self.cpu_from_steps = out_dir, kernel, cpu_from_steps
        self.earlier = _read_sweep_log(out_dir)
        self.steps: list[dict[str, Any]] = []
        self.start = time.time()
        self.cpu_start = _cpu_seconds()
        self.load_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None

    def skipped(self, label: str) -> None:
        self.steps.append(self.earlier.get(label, {"label": label, "status": "skipped", "wall_s": 0.0}))

    def ran(self, record: dict[str, Any]) -> None:
        self.steps.append(record)
        self.write()

    def write(self, final: bool = False) -> None:
        if self.cpu_from_steps:
            cpu = sum(s.get("cpu_s") or 0.0 for s in self.steps if s["status"] == "ran")
        else:
            cpu = _cpu_seconds() - self.cpu_start
        extra = {"cpu_s": round(cpu, 1)} if final else {}
        _write_sweep_log(self.out_dir, self.steps, time.time() - self.start, self.load_start, self.kernel, extra)

    def finish(self) -> None:
        """The final record, with the sweep's CPU-seconds (a child counts once it has been waited for)."""
        if any(s["status"] == "ran" for s in self.steps):
            self.write(final=True)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of every child it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# Run silently in the shared kernel before each notebook: the notebook then starts from an empty namespace,
# numbered from 1, as in a fresh kernel; imported modules (torch, transformers, TRL) stay loaded.
_RESET = """\
get_ipython().run_line_magic("reset", "-f")
__import__("gc").collect()
get_ipython().execution_count = 1
"""


class SharedKernel:
    """One Jupyter kernel for all the notebooks of a sweep, so that starting a kernel and importing torch,
    transformers and TRL (seconds per notebook) is paid once. The first notebook starts it; before each
    notebook its namespace is reset (`_RESET`); `shutdown` ends it (also after a failure). Each notebook is
    still executed and saved by papermill, through its nbclient engine with this kernel manager."""

    ENGINE = "sharedrep-shared-kernel"

    def __init__(self, kernel_name: str = "python3"):
        self.kernel_name = kernel_name
        self.km = None

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `papermill.execute_notebook`: the engine and the kernel manager."""
        if self.km is None:
            from jupyter_client import AsyncKernelManager

            _register_engine(self.ENGINE)
            self.km = AsyncKernelManager(kernel_name=self.kernel_name)
        return {"engine_name": self.ENGINE, "km": self.km}

    def shutdown(self) -> None:
        if self.km is None or not self.km.has_kernel:
            return
        from jupyter_core.utils import run_sync

        try:
            run_sync(self.km.shutdown_kernel)(now=False)
        except RuntimeError:  # it died already
            pass


def _register_engine(name: str) -> None:
    """papermill's nbclient engine, but on a kernel manager that outlives the notebook (`km`): the kernel is
    reset before the notebook's cells run and left running after; the notebook's client is closed."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    class Client(PapermillNotebookClient):
        def papermill_execute_cells(self):
            reply = self.wait_for_reply(self.kc.execute(_RESET, silent=True, store_history=False))
            if reply is None or reply["content"]["status"] != "ok":
                raise RuntimeError(f"Could not reset the shared kernel before the notebook: {reply}")
            super().papermill_execute_cells()

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None, start_timeout=60,
            execution_timeout=None, km=None, **kwargs,
        ):  # fmt: skip
            kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
            client = Client(
                nb_man, km=km, timeout=execution_timeout, startup_timeout=start_timeout, kernel_name=kernel_name,
                log=logging.getLogger("papermill"), log_output=log_output, stdout_file=stdout_file,
                stderr_file=stderr_file, **kwargs,
            )  # fmt: skip
            try:
                return client.execute()
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    if name not in papermill_engines._engines:
        papermill_engines.register(name, Engine)


def _cells_seconds(executed: Path) -> float | None:
    """Sum of the cells' run times that papermill recorded in an executed notebook (None if it recorded none)."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return None
    times = [c.get("metadata", {}).get("papermill", {}).get("duration") for c in cells]
    return sum(t for t in times if t) if any(t is not None for t in times) else None


class PeakRSS:
    """Peak resident memory (MB) of this process's children, e.g. a papermill kernel, sampled in a thread, and
    the CPU-seconds they spent meanwhile (`cpu_s`).

    RSS of several processes is summed, so shared pages count once per process: an upper bound. CPU time is
    each child's user + system (with its own waited-for children) at the last sample less at the first: a
    child that ends between two samples loses at most one interval. `peak_mb` stays None without psutil.
    """

    def __init__(self, interval_s: float = 0.25, include_self: bool = False):
        self.interval_s, self.include_self = interval_s, include_self
        self.peak_mb: float | None = None
        self.cpu_s: float | None = None
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._sampled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> float | None:
        try:
            import psutil
        except ImportError:
            return None
        me = psutil.Process()
        total = me.memory_info().rss if self.include_self else 0
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
                t = child.cpu_times()
                cpu = t.user + t.system + t.children_user + t.children_system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # a child that just ended
            # a child there at the first sample (a kernel that ran earlier notebooks) counts from then, a new one from 0
            self._cpu_first.setdefault(child.pid, cpu if not self._sampled else 0.0)
            self._cpu_last[child.pid] = cpu
        self._sampled = True
        return total / 2**20

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = self.sample()
            if value is None:
                return
            self.peak_mb = max(self.peak_mb or 0.0, value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.peak_mb is not None:
            self.peak_mb = round(self.peak_mb, 1)
            self.cpu_s = round(sum(self._cpu_last[p] - self._cpu_first[p] for p in self._cpu_last), 1)


def _read_sweep_log(out_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        return {s["label"]: s for s in json.loads((out_dir / "sweep_log.json").read_text())["steps"]}
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return {}


def _write_sweep_log(
    out_dir: Path,
    steps: list[dict[str, Any]],
    total_s: float,
    load_start: list[float] | None = None,
    kernel: str = "one shared kernel",
    extra: dict[str, Any] | None = None,
) -> None:
    """Per-step timings of this sweep invocation (what `sharedrep bench` reads), replaced atomically."""
    log_file = out_dir / "sweep_log.json"
    tmp = log_file.with_name(f".{log_file.name}.tmp")
    ran = sum(s["wall_s"] for s in steps if s["status"] == "ran")
    log = {"total_s": round(total_s, 1), "ran_s": round(ran, 1), **(extra or {}), "kernel": kernel, "steps": steps}
    if hasattr(os, "getloadavg"):  # other load on the machine, for reading the times: at the start and now
        log["load_avg_start"] = load_start
        log["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    tmp.write_text(json.dumps(log, indent=2))
    tmp.replace(log_file)


def failure(error: Exception) -> tuple[str, str]:
    """(exception name, its message's last line): from inside the notebook when a notebook failed."""
    name = getattr(error, "ename", None) or type(error).__name__
    text = str(getattr(error, "evalue", None) or error).strip()
    return name, text.splitlines()[-1] if text else ""
