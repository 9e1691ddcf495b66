"""The sweep: the numbered notebooks run with papermill, in dependency order, once per parameter
combination that each stage needs, skipping every stage whose manifest says it is already done.

SFT once; responses once (inside the first 02 run); preferences and reward models per seed ×
proportion; GRPO and evaluation per policy; results once. Executed notebooks land in
`<run_dir>/notebooks/`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .runs import (
    eval_file,
    is_done,
    notebooks_dir,
    policy_dir,
    policy_id,
    preferences_dir,
    prop_name,
    responses_dir,
    results_dir,
    rm_dir,
    sft_dir,
)
from .stages import evaluate, grpo, preferences, responses, results, reward_models, sft

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@dataclass
class Step:
    notebook: str
    label: str
    parameters: dict[str, Any]
    done: Callable[[], bool]


def _done(target: Path, make_params: Callable[[], dict]) -> Callable[[], bool]:
    """A check run just before the step: upstream manifests exist by then (or the step runs)."""

    def check() -> bool:
        try:
            return is_done(target, make_params())
        except FileNotFoundError:
            return False

    return check


def plan(cfg: Config, base: dict[str, Any]) -> list[Step]:
    """Every notebook execution of the sweep, in dependency order. `base` goes to every notebook."""
    run = cfg.run_path
    steps = [Step("01_sft", "01_sft", base, _done(sft_dir(run), lambda: sft.params(cfg)))]
    seeds, props = cfg.sweep.seeds, cfg.sweep.proportions
    for seed in seeds:
        for prop in props:
            params = {**base, "seed": seed, "proportion": prop}
            tag = f"seed{seed}-{prop_name(prop)}"

            def prefs_done(seed=seed, prop=prop) -> bool:
                return (
                    _done(responses_dir(run), lambda: responses.params(cfg))()
                    and _done(preferences_dir(run, seed, prop), lambda: preferences.params(cfg, seed, prop))()
                )

            steps.append(Step("02_preference_data", f"02_preference_data-{tag}", params, prefs_done))
    for seed in seeds:
        for prop in props:
            steps.append(
                Step(
                    "03_reward_models",
                    f"03_reward_models-seed{seed}-{prop_name(prop)}",
                    {**base, "seed": seed, "proportion": prop},
                    _done(rm_dir(run, seed, prop), lambda s=seed, p=prop: reward_models.params(cfg, s, p)),
                )
            )
    policies = results.planned_policies(cfg)
    for seed, prop, method in policies:
        if method == "sft":
            continue
        steps.append(
            Step(
                "04_grpo",
                f"04_grpo-{policy_id(seed, prop, method)}",
                {**base, "seed": seed, "proportion": prop, "method": method},
                _done(policy_dir(run, seed, prop, method), lambda s=seed, p=prop, m=method: grpo.params(cfg, s, p, m)),
            )
        )
    for seed, prop, method in policies:
        pid = policy_id(seed, prop, method)
        steps.append(
            Step(
                "05_evaluate",
                f"05_evaluate-{pid}",
                {**base, "seed": seed, "proportion": prop, "method": method},
                _done(eval_file(run, pid), lambda s=seed, p=prop, m=method: evaluate.params(cfg, s, p, m)),
            )
        )
    steps.append(Step("06_results", "06_results", base, _done(results_dir(run), lambda: results.params(cfg))))
    return steps


def run_sweep(
    cfg: Config,
    overrides: dict[str, Any],
    notebooks: Path = NOTEBOOKS,
    kernel: str = "python3",
    log: Callable[[str], None] = print,
    profile: str | None = None,
) -> list[tuple[str, str, float]]:
    """Execute the plan; returns (label, "ran" | "skipped", seconds) per step.

    A failing notebook stops the sweep with its executed copy (error included) left in
    `<run_dir>/notebooks/` for a person to read. Every notebook runs in one kernel (`SharedKernel`).
    """
    out_dir = notebooks_dir(cfg.run_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    # `profile`: how the notebooks load it (a YAML profile's path; default the packaged profile's name)
    base = {"profile": profile or cfg.profile, "overrides": {**overrides, "run_dir": str(cfg.run_path.resolve())}}
    steps = plan(cfg, base)
    if cfg.sweep.launcher == "accelerate":  # the notebooks pass it on to launcher.launch
        config_file = cfg.sweep.accelerate_config or "accelerate's default config"
        log(f"stages sft, responses, grpo, evaluate run through accelerate launch ({config_file})")
    report = []
    sweep_start = time.time()
    timings: list[dict[str, Any]] = []  # per-step wall time and kernel peak memory -> notebooks/sweep_log.json
    earlier = _read_sweep_log(out_dir)
    load_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    shared = SharedKernel(kernel)  # one kernel for every notebook of this sweep, started by the first one
    try:
        _run_steps(steps, shared, notebooks, out_dir, earlier, timings, report, sweep_start, load_start, log)
    finally:
        shared.shutdown()
    return report


def _run_steps(steps, shared, notebooks, out_dir, earlier, timings, report, sweep_start, load_start, log) -> None:
    """`run_sweep`'s loop: each step skipped when done, else its notebook executed (papermill, shared kernel)."""
    import papermill as pm

    for i, step in enumerate(steps, 1):
        prefix = f"[{i}/{len(steps)}] {step.label}"
        if step.done():
            log(f"{prefix}: done already, skipped")
            report.append((step.label, "skipped", 0.0))
            # a step done by an earlier invocation keeps that invocation's timing
            timings.append(earlier.get(step.label, {"label": step.label, "status": "skipped", "wall_s": 0.0}))
            continue
        log(f"{prefix}: running ...")
        start = time.time()
        executed = out_dir / f"{step.label}.ipynb"
        draft = out_dir / f".{step.label}.ipynb.{os.getpid()}"  # in place only once we know it is ours to keep
        try:
            with PeakRSS() as memory:  # samples the papermill kernel's process tree
                pm.execute_notebook(
                    str(notebooks / f"{step.notebook}.ipynb"),
                    str(draft),
                    parameters=step.parameters,
                    kernel_name=shared.kernel_name,
                    progress_bar=False,
                    cwd=str(notebooks),
                    **shared.engine_kwargs(),
                )
        except Exception as error:
            if getattr(error, "ename", None) == "StageBusy":  # another sweep's stage: its notebook stays
                draft.unlink(missing_ok=True)
            elif draft.exists():
                draft.replace(executed)  # the failed run, error included, for a person to read
            raise
        draft.replace(executed)
        seconds = time.time() - start
        peak = f", peak {memory.peak_mb:.0f} MB" if memory.peak_mb is not None else ""
        log(f"{prefix}: finished in {seconds:.1f}s{peak} (total {time.time() - sweep_start:.0f}s)")
        report.append((step.label, "ran", seconds))
        cells = _cells_seconds(executed)
        timings.append(
            {
                "label": step.label,
                "status": "ran",
                "wall_s": round(seconds, 2),
                "peak_rss_mb": memory.peak_mb,
                # outside the notebook's cells: kernel start (the first notebook only), connecting, reading, writing
                "outside_cells_s": None if cells is None else round(seconds - cells, 2),
            }
        )
        _write_sweep_log(out_dir, timings, time.time() - sweep_start, load_start)


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
    """Peak resident memory (MB) of this process's children, e.g. a papermill kernel, sampled in a thread.

    RSS of several processes is summed, so shared pages count once per process: an upper bound.
    `peak_mb` stays None without psutil.
    """

    def __init__(self, interval_s: float = 0.25, include_self: bool = False):
        self.interval_s, self.include_self = interval_s, include_self
        self.peak_mb: float | None = None
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
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass  # a child that just ended
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


def _read_sweep_log(out_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        return {s["label"]: s for s in json.loads((out_dir / "sweep_log.json").read_text())["steps"]}
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return {}


def _write_sweep_log(
    out_dir: Path, steps: list[dict[str, Any]], total_s: float, load_start: list[float] | None = None
) -> None:
    """Per-step timings of this sweep invocation (what `sharedrep bench` reads), replaced atomically."""
    log_file = out_dir / "sweep_log.json"
    tmp = log_file.with_name(f".{log_file.name}.tmp")
    ran = sum(s["wall_s"] for s in steps if s["status"] == "ran")
    log = {"total_s": round(total_s, 1), "ran_s": round(ran, 1), "kernel": "one shared kernel", "steps": steps}
    if hasattr(os, "getloadavg"):  # other load on the machine, for reading the times: at the start and now
        log["load_avg_start"] = load_start
        log["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    tmp.write_text(json.dumps(log, indent=2))
    tmp.replace(log_file)
