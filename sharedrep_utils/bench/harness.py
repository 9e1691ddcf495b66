"""The benchmark's measuring parts: alternation, the machine, targets, tables, JSON, sweep logs.

No model is loaded here; `entries.py` holds the work being measured and `naive.py` the upstream's ways.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

TARGETS = {
    "reward_training_over_featurisation": 1.3,  # at most
    "scoring_speedup_vs_max_length": 5.0,  # at least
    "grpo_reward_two_groups_over_one": 1.1,  # at most
    "grpo_step_over_arithmetic": 3.0,  # at most
    "sft_step_over_arithmetic": 3.0,  # at most
    "smoke_sweep_seconds": 600.0,  # at most
}
AT_MOST = {name: name != "scoring_speedup_vs_max_length" for name in TARGETS}


# ---------------------------------------------------------------- measurement


def alternate(
    ways: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Median seconds per way over `repeats` rounds; the order rotates every round. Returns the runs too."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    names = list(ways)
    if warmup:  # first calls pay for lazy initialisation (kernels, allocator), which neither way should carry
        for name in names:
            ways[name]()
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock()
            ways[name]()
            runs[name].append(clock() - start)
    return {
        **{f"{name}_s": round(statistics.median(runs[name]), 4) for name in names},
        "runs_s": {name: [round(t, 4) for t in runs[name]] for name in names},
    }


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo on Linux, else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate now (GFLOP/s): best of `repeats` timed n x n products, with torch's
    current threads. What the step profiles divide their FLOPs by; on shared cores it is this process's share."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # first call pays for allocation and kernel choice
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return round(2 * n**3 / best / 1e9, 1)


def machine_info(gflops: Callable[[], float] | None = matmul_gflops) -> dict[str, Any]:
    """What the figures were measured on. `gflops` None skips the timed matmul."""
    import torch

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "matmul_gflops": gflops() if gflops else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_start": load_average(),
    }


# ---------------------------------------------------------------- targets


def targets(entries: dict) -> list[dict]:
    """The issues' targets that these entries measure, each with its value and whether it is met."""
    values = {
        "reward_training_over_featurisation": ("reward_training", "ours_over_featurisation"),
        "scoring_speedup_vs_max_length": ("reward_scoring", "speedup"),
        "grpo_reward_two_groups_over_one": ("grpo_reward", "two_groups_over_one"),
        "grpo_step_over_arithmetic": ("grpo_step", "over_arithmetic"),
        "sft_step_over_arithmetic": ("sft_step", "over_arithmetic"),
        "smoke_sweep_seconds": ("sweep", "total_s"),
    }
    rows = []
    for name, (entry, key) in values.items():
        if entry not in entries:
            continue
        value, limit = entries[entry].get(key), TARGETS[name]
        met = None if value is None else (value <= limit if AT_MOST[name] else value >= limit)
        rows.append({"target": name, "value": value, "limit": limit, "at_most": AT_MOST[name], "met": met})
    return rows


# ---------------------------------------------------------------- the sweep


def stage_of(label: str) -> str:
    """`04_grpo-seed42-gold` -> `04_grpo` (notebook names have no '-')."""
    return label.split("-", 1)[0]


def read_sweep_log(run_dir: Path) -> dict:
    """Per-stage wall time and peak memory of a sweep, from `notebooks/sweep_log.json`, else papermill's timings."""
    notebooks = Path(run_dir) / "notebooks"
    log = notebooks / "sweep_log.json"
    extra: dict[str, Any] = {}
    if log.is_file():
        data = json.loads(log.read_text())
        steps, source = data["steps"], str(log)
        total = data.get("total_s")
        extra = {k: data[k] for k in ("kernel", "load_avg_start", "load_avg_end") if k in data}
    else:
        executed = sorted(notebooks.glob("*.ipynb"))
        if not executed:
            raise FileNotFoundError(f"{notebooks} holds neither sweep_log.json nor executed notebooks.")
        steps, spans = [], []
        for path in executed:
            meta = json.loads(path.read_text())["metadata"].get("papermill", {})
            if meta.get("duration") is None:
                continue
            steps.append(
                {"label": path.stem, "status": "ran", "wall_s": round(meta["duration"], 2), "peak_rss_mb": None}
            )
            spans.append((meta["start_time"], meta["end_time"]))
        first = min(datetime.fromisoformat(s) for s, _ in spans)
        last = max(datetime.fromisoformat(e) for _, e in spans)
        total, source = round((last - first).total_seconds(), 1), f"papermill metadata in {notebooks}"
    stages: dict[str, dict] = {}
    for step in steps:
        if step["status"] != "ran":
            continue
        s = stages.setdefault(stage_of(step["label"]), {"steps": 0, "wall_s": 0.0, "peak_rss_mb": None})
        s["steps"] += 1
        s["wall_s"] = round(s["wall_s"] + step["wall_s"], 2)
        if step.get("peak_rss_mb") is not None:
            s["peak_rss_mb"] = max(s["peak_rss_mb"] or 0.0, step["peak_rss_mb"])
        if step.get("outside_cells_s") is not None:  # kernel start, connecting, reading and writing the notebook
            s["outside_cells_s"] = round(s.get("outside_cells_s", 0.0) + step["outside_cells_s"], 2)
    ran = sum(s["wall_s"] for s in stages.values())
    return {
        "source": source,
        "run_dir": str(run_dir),
        "total_s": total if total is not None else round(ran, 1),
        "steps_ran": sum(s["steps"] for s in stages.values()),
        "stages": stages,
        "dominant_stage": max(stages, key=lambda k: stages[k]["wall_s"]) if stages else None,
        **extra,
    }


SMOKE_SWEEP = ["--profile", "smoke", "--seeds", "42", "--proportions", "0.1", "--ks", "2", "16"]  # `make demo`


def run_smoke_sweep(run_dir: Path, sets: list[str] | None = None) -> float:
    """`make demo`'s sweep into `run_dir` in a child process; returns its wall time in seconds."""
    args = [sys.executable, "-m", "sharedrep_utils", "run", *SMOKE_SWEEP, "--run-dir", str(run_dir)]
    for item in sets or []:
        args += ["--set", item]
    start = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the smoke sweep failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return round(time.perf_counter() - start, 1)


# ---------------------------------------------------------------- output

OP_KINDS = ("matrix multiply", "attention kernels", "other tensor ops", "outside tensor ops (Python, dispatch)")
COMPARISONS = ("gold_scoring", "reward_scoring", "reward_training", "grpo_reward", "generation")


def table_markdown(result: dict) -> str:
    """The benchmark as Markdown: the machine, ours vs naive, the step profiles, the targets, the sweep."""
    m, e = result["machine"], result["entries"]
    lines = [
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, torch {m['torch']} with {m['torch_threads']} threads, "
        f"fp32 matmul {m['matmul_gflops']} GFLOP/s; load average {m['load_avg_start']} at the start, "
        f"{m.get('load_avg_end')} at the end.",
        "",
        "| work | ours (s) | naive (s) | naive / ours | sizes |",
        "|---|---|---|---|---|",
    ]
    for name in COMPARISONS:
        if name not in e:
            continue
        x = e[name]
        naive = x.get("naive_extrapolated_s", x["naive_s"])
        note = " (extrapolated)" if "naive_extrapolated_s" in x else ""
        lines.append(f"| {name} | {x['ours_s']:.3g} | {naive:.3g}{note} | {x['speedup']:g}x | {_sizes(name, x)} |")
    for name in ("grpo_step", "sft_step"):
        if name in e:
            lines += ["", *step_table(name, e[name])]
    lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        sign = "<=" if t["at_most"] else ">="
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "no")
        lines.append(f"| {t['target']} | {t['value']} | {sign} {t['limit']:g} | {met} |")
    if "sweep" in e:
        sweep = e["sweep"]
        lines += [
            "",
            f"Sweep {sweep['run_dir']}: load average {sweep.get('load_avg_start')} at the start, "
            f"{sweep.get('load_avg_end')} at the end.",
            "",
            "| stage | steps | wall (s) | outside cells (s) | peak RSS (MB) |",
            "|---|---|---|---|---|",
        ]
        for stage, s in sweep["stages"].items():
            outside = s.get("outside_cells_s", "n/a")
            lines.append(f"| {stage} | {s['steps']} | {s['wall_s']:.1f} | {outside} | {s['peak_rss_mb'] or 'n/a'} |")
        lines.append(f"| total | {sweep['steps_ran']} | {sweep['total_s']:.1f} | | |")
    return "\n".join(lines)


def step_table(name: str, x: dict) -> list[str]:
    """One step's time by category (median over the measured steps) against its arithmetic cost."""
    lines = [f"| {name}: category | mean s | share |", "|---|---|---|"]
    total = x["step_s"]
    for category, seconds in x["categories_s"].items():
        lines.append(f"| {category} | {seconds:.4f} | {seconds / total:.0%} |")
    lines.append(f"| step (mean of {x['steps_measured']}) | {total:.4f} | 100% |")
    lines.append(
        f"| arithmetic: {x['flops'] / 1e9:.2f} GFLOP at {x['matmul_gflops']} GFLOP/s | {x['arithmetic_s']:.4f} | "
        f"step / arithmetic {x['over_arithmetic']}x |"
    )
    if x.get("op_profile"):
        ops = x["op_profile"]
        parts = ", ".join(f"{k} {ops[k]:.3f} s" for k in OP_KINDS)
        kind = name.split("_")[0].upper()
        lines += [
            "",
            f"One more {kind} step under torch.profiler ({ops['step_s']:.3f} s, {ops['flops'] / 1e9:.2f} GFLOP): "
            f"{parts}; its matrix multiplies ran at {ops['achieved_matmul_gflops']} GFLOP/s.",
        ]
    return lines


def _sizes(name: str, x: dict) -> str:
    s = x["sizes"]
    if name == "gold_scoring":
        inner = next((v for v in s.values() if isinstance(v, dict)), None)
        if inner is None:  # no trait reads tokens (a lexicon, a linear classifier): nothing is padded
            return f"{s['examples']} examples, no padded scorer (the same call both ways)"
        return f"{s['examples']} examples, {inner['real_tokens']} tokens (pad to {inner['naive_pad_to']})"
    if name == "reward_scoring":
        return f"{s['texts']} texts, {s['real_tokens']} tokens (pad to {s['naive_pad_to']})"
    if name == "reward_training":
        return (
            f"{s['train_pairs']} pairs, {s['unique_texts']} unique texts, {s['real_tokens']} tokens; "
            f"ours / featurisation {x['ours_over_featurisation']}"
        )
    if name == "grpo_reward":
        return f"{s['texts']} completions, {s['real_tokens']} tokens; 2 groups / 1 group {x['two_groups_over_one']}"
    return (
        f"{s['prompts']} prompts, {s['prompt_tokens']} prompt tokens (pad to {s['naive_pad_to']}), "
        f"{s['max_new_tokens']} new"
    )


def write_result(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(out)
