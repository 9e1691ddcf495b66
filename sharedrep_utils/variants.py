"""Budget × calibration variants of one run (`sweep.budgets`, `sweep.calibrations`).

The run itself is the first variant (its own `reward_model.budget` and `calibration.mode`). Every other one is a
run of its own under `<run>/variants/<budget>-<mode>/`, with the same profile and those two settings changed. A
variant shares what neither setting changes, through relative symlinks to the run's own stage directories: SFT,
the sampled responses, the feature cache, the preference pairs, the gold policies and the SFT and gold
evaluations; a variant that differs only in calibration also shares the reward models of its budget. So a
variant trains only its reward models (when its budget differs) and its GRPO policies, and evaluates them.

The graph (`graph.py`) holds every variant's stage runs, labelled `<stage label>.<budget>-<mode>`; the run's
own results stage waits for all of them and writes the contrasts of every variant (`contrasts.csv`).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from .config import Config, with_overrides
from .runs import eval_file, features_dir, policy_id, preferences_dir, responses_dir, rm_dir, sft_dir

ROOT = "variants"


def key(budget: str, mode: str) -> str:
    return f"{budget}-{mode}"


def variant_settings(cfg: Config) -> list[tuple[str, str]]:
    """(budget, calibration mode) of every variant, the run's own first."""
    budgets = cfg.sweep.budgets or [cfg.reward_model.budget]
    modes = cfg.sweep.calibrations or [cfg.calibration.mode]
    return list(itertools.product(budgets, modes))


def variant_dir(run: Path, budget: str, mode: str) -> Path:
    return run / ROOT / key(budget, mode)


def overrides(cfg: Config, budget: str, mode: str) -> dict:
    """The settings that make a variant's config from the run's (what its notebooks get on top of the run's)."""
    return {
        "reward_model.budget": budget,
        "calibration.mode": mode,
        "sweep.budgets": [],
        "sweep.calibrations": [],
        "run_dir": str(variant_dir(cfg.run_path.resolve(), budget, mode)),
    }


def variant_config(cfg: Config, budget: str, mode: str) -> Config:
    """The run's config with a variant's `overrides` applied (the run's own: itself), as its notebooks load it."""
    if (budget, mode) == variant_settings(cfg)[0]:
        return cfg
    return with_overrides(cfg, overrides(cfg, budget, mode))


def others(cfg: Config) -> list[tuple[str, str, Config]]:
    """(budget, mode, config) of every variant but the run's own."""
    return [(b, m, variant_config(cfg, b, m)) for b, m in variant_settings(cfg)[1:]]


def rm_source(cfg: Config, budget: str) -> tuple[str, str]:
    """The variant whose reward models a variant of this budget reads: its budget's first calibration mode."""
    for b, m in variant_settings(cfg):
        if b == budget:
            return b, m
    raise ValueError(
        f"Budget {budget!r} is not one of this run's: {', '.join(dict.fromkeys(b for b, _ in variant_settings(cfg)))}."
    )


def rm_home(cfg: Config, budget: str) -> tuple[Path, tuple[str, str] | None]:
    """Where a budget's reward models are trained: the run itself (None) for the run's own budget, else the
    directory of its budget's first variant and that variant's settings (`rm_source`)."""
    source = rm_source(cfg, budget)
    if source == variant_settings(cfg)[0]:
        return cfg.run_path.resolve(), None
    return variant_dir(cfg.run_path.resolve(), *source), source


def shared_paths(cfg: Config, budget: str, mode: str) -> list[tuple[Path, Path]]:
    """(path in the variant, path it points to) for everything the variant shares."""
    run = cfg.run_path.resolve()
    target = variant_dir(run, budget, mode)
    pairs = [(f(target), f(run)) for f in (sft_dir, responses_dir, features_dir)]
    for pid in ["sft", *(policy_id(s, None, "gold") for s in cfg.sweep.seeds)]:
        for name in (f"{pid}.parquet", f"{pid}.manifest.json"):
            pairs.append((eval_file(target, pid).with_name(name), eval_file(run, pid).with_name(name)))
    source = rm_source(cfg, budget)
    for seed in cfg.sweep.seeds:
        pairs.append((target / f"seed{seed}" / "gold", run / f"seed{seed}" / "gold"))
        for p in cfg.sweep.proportions:
            pairs.append((preferences_dir(target, seed, p), preferences_dir(run, seed, p)))
            if source != (budget, mode):  # trained elsewhere: by the run or by its budget's first variant
                pairs.append((rm_dir(target, seed, p), rm_dir(rm_home(cfg, budget)[0], seed, p)))
    return pairs


def link(cfg: Config) -> list[Path]:
    """Make every variant's symlinks (relative, so the run directory can move); returns the links made. A path that
    already exists is left alone; a link may point at a stage not yet run (it resolves once that stage finishes)."""
    made = []
    for budget, mode in variant_settings(cfg)[1:]:
        for path, points_to in shared_paths(cfg, budget, mode):
            if path.exists() or path.is_symlink():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            points_to.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(os.path.relpath(points_to, path.parent))
            made.append(path)
    return made


def label(stage_label: str, budget: str, mode: str) -> str:
    return f"{stage_label}.{key(budget, mode)}"


def describe(cfg: Config) -> str | None:
    """One line for the sweep's start: the variants and what they share (None with only the run's own)."""
    settings = variant_settings(cfg)
    if len(settings) == 1:
        return None
    names = ", ".join(key(b, m) for b, m in settings)
    return (
        f"variants (reward-model budget - calibration): {names}; the first is this run, the others run under "
        f"{cfg.run_path / ROOT}/ and share its SFT, responses, preferences and gold policies"
    )
