"""`python -m sharedrep_utils bench --out FILE.json`: where the time goes, the kit's way against the naive way,
and where one GRPO and one SFT step spend their time against their arithmetic.

Each comparison runs both ways in one process, alternating them (the order rotates every repeat, so neither
always runs warm or always runs first), and keeps the median of the repeats:

- gold_scoring / reward_scoring: length-sorted batches with dynamic padding vs every text padded to the model's
  whole context in input order (the upstream's way);
- reward_training: every head of one seed × proportion on features computed once vs a backbone pass per batch,
  per epoch, per head (measured on its first batches, extrapolated linearly);
- grpo_reward: one backbone pass for all group heads vs one pass per head (and 1 vs 2 groups);
- generation: length-sorted, left-padded batches vs every prompt left-padded to the policy's context;
- grpo_step / sft_step: the stages' own TRL trainers for a few steps, with timing hooks around TRL's methods
  (steps.py), against the step's FLOPs at the machine's measured matmul rate;
- sweep: wall time and peak memory per stage from a sweep's `notebooks/sweep_log.json`.

Every result records the machine (CPU, cores, matmul GFLOP/s, load average at the start and the end). Ratios
measured in one run are robust to other load on the machine; absolute times are not. Only the CLI's `bench`
command imports this package.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..config import Config
from . import entries
from .harness import (
    load_average,
    machine_info,
    matmul_gflops,
    read_sweep_log,
    run_smoke_sweep,
    table_markdown,
    targets,
    write_result,
)

__all__ = ["ENTRIES", "run_benchmark", "table_markdown", "write_result"]

ENTRIES = (
    "gold_scoring",
    "reward_scoring",
    "reward_training",
    "grpo_reward",
    "generation",
    "grpo_step",
    "sft_step",
    "sweep",
)
QUICK = {"n_texts": 12, "n_pairs": 40, "n_generate": 4, "grpo_batch": 8, "repeats": 2, "steps": 2, "warmup": 1}
FULL = {"n_texts": 128, "n_pairs": 256, "n_generate": 32, "grpo_batch": 64, "repeats": 3, "steps": 8, "warmup": 2}


def run_benchmark(
    cfg: Config,
    *,
    quick: bool = False,
    repeats: int | None = None,
    policy_path: str | None = None,
    sweep_dir: Path | None = None,
    run_sweep: bool = False,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Every entry on the profile's models; reward training uses the profile's first sweep seed and proportion."""
    import torch

    if only is not None and (unknown := sorted(set(only) - set(ENTRIES))):
        raise ValueError(f"Unknown benchmark entries {unknown}; allowed: {', '.join(ENTRIES)}.")
    seed, proportion = cfg.sweep.seeds[0], cfg.sweep.proportions[0]
    sizes = QUICK if quick else FULL
    repeats = repeats or sizes["repeats"]
    device = "cuda" if cfg.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
    started = time.time()
    machine = machine_info()
    log(f"[bench] {machine['cpu_model']}, {machine['cpus']} CPUs, {machine['matmul_gflops']} GFLOP/s fp32 matmul, "
        f"load {machine['load_avg_start']}")  # fmt: skip
    want = [name for name in ENTRIES if only is None or name in only]
    models = [name for name in want if name != "sweep"]
    n = max(sizes["n_texts"], sizes["n_pairs"], sizes["n_generate"], sizes["grpo_batch"])
    examples, source = entries.bench_examples(cfg, n) if models else ([], None)
    if models:
        log(f"[bench] {len(examples)} HH examples from {source}; {repeats} repeats; device {device}")
    results: dict[str, dict] = {}
    if "gold_scoring" in want:
        log("[bench] gold scoring ...")
        results["gold_scoring"], _ = entries.gold_scoring(cfg, examples[: sizes["n_texts"]], repeats, device)
    if "reward_scoring" in want:
        log("[bench] reward scoring ...")
        results["reward_scoring"] = entries.reward_scoring(cfg, examples[: sizes["n_texts"]], repeats, device)
    if "reward_training" in want:
        log("[bench] reward-model training ...")
        results["reward_training"] = entries.reward_training(
            cfg, examples[: sizes["n_pairs"]], repeats, device, seed, proportion
        )
    if "grpo_reward" in want:
        log("[bench] GRPO reward ...")
        # cheap and the one ratio near 1: more repeats for a steadier median
        batch = examples[: sizes["grpo_batch"]]
        results["grpo_reward"] = entries.grpo_reward(cfg, batch, max(repeats, 5), device, seed)
    with tempfile.TemporaryDirectory() as tmp:
        if {"generation", "grpo_step", "sft_step"} & set(want):
            policy = entries.bench_policy(cfg, policy_path, examples, Path(tmp), seed)
        if "generation" in want:
            log("[bench] generation ...")
            results["generation"] = entries.generation(cfg, policy, examples[: sizes["n_generate"]], repeats, device)
        # the matmul rate is measured again just before each step profile: other load on the machine changes it
        steps = {"steps": sizes["steps"], "warmup": sizes["warmup"]}
        if "grpo_step" in want:
            log("[bench] one GRPO step ...")
            results["grpo_step"] = entries.grpo_step(
                cfg, policy, device, gflops=matmul_gflops(), workdir=Path(tmp), seed=seed, **steps
            )
        if "sft_step" in want:
            log("[bench] one SFT step ...")
            results["sft_step"] = entries.sft_step(
                cfg, policy, device, gflops=matmul_gflops(), workdir=Path(tmp), **steps
            )
    if sweep_dir is not None and "sweep" in want:
        if run_sweep:
            log(f"[bench] running the smoke sweep into {sweep_dir} ...")
            run_smoke_sweep(sweep_dir)
        results["sweep"] = read_sweep_log(sweep_dir)
    machine["load_avg_end"] = load_average()
    return {
        "profile": cfg.profile,
        "data_source": source,
        "quick": quick,
        "repeats": repeats,
        "device": device,
        "machine": machine,
        "note": "ours and naive ran alternately in one process; ratios are robust to other load on the "
        "machine, absolute seconds are not (the CPUs may be shared).",
        "bench_wall_s": round(time.time() - started, 1),
        "bench_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "entries": results,
        "targets": targets(results),
    }
