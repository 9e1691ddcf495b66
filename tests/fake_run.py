"""A small finished run directory written from scratch (no training): what 06_results reads.

Two seeds × two proportions × {maxmin, sharedrep-k2, sharedrep-k16, uniform}, gold per seed, SFT;
evaluation parquet files with shuffled prompt order, reward-model metrics.json, GRPO training logs,
and the manifests the stages would write. Each policy writes its own completion text, except that
Uniform repeats its seed's gold completion on the first TIED prompts (a tie: the same text, scored
with a difference of 1e-7, as one text scored in another batch shape can be).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sharedrep_utils.config import Config, load_config
from sharedrep_utils.runs import eval_file, policy_dir, policy_id, rm_dir, sft_dir, stage_output
from sharedrep_utils.stages.results import planned_policies
from sharedrep_utils.stats import split_method

SEEDS = [1, 2]
PROPORTIONS = [0.1, 0.3]
N_PROMPTS = 30
TIED = 5
SHIFT = {"gold": 0.0, "sft": -0.3, "maxmin": -0.2, "sharedrep-k2": 0.1, "sharedrep-k16": -0.1, "uniform": -0.4}


def overrides(run_dir: Path) -> dict:
    return {
        "run_dir": str(run_dir),
        "sweep.seeds": SEEDS,
        "sweep.proportions": PROPORTIONS,
        "reward_model.ks": [2, 16],
        "results.n_bootstrap": 200,
    }


def fake_config(run_dir: Path, **extra) -> Config:
    return load_config("smoke", {**overrides(run_dir), **extra})


def write_fake_run(run_dir: Path, with_rm: bool = True, with_grpo: bool = True, asked: int = N_PROMPTS) -> Config:
    """`asked`: the data.n_eval_prompts the evaluation manifests record (more than N_PROMPTS: a shortfall)."""
    cfg = fake_config(run_dir)
    run = cfg.run_path
    rng = np.random.default_rng(0)
    with stage_output(sft_dir(run), "sft", {"fake": True}) as stage:
        stage["extra"].update(data_source="fixture:fake-run")
    ids = [f"p{i:02d}" for i in range(N_PROMPTS)]
    gold_traits = {}
    for seed, prop, method in planned_policies(cfg):
        pid = policy_id(seed, prop, method)
        order = rng.permutation(N_PROMPTS)  # every file in its own prompt order: matching is by id
        helpful = rng.normal(0.5 + SHIFT[method] + (prop or 0), 0.3, N_PROMPTS)
        harmless = rng.uniform(0, 1, N_PROMPTS)
        completion = np.array([f"{method} answer {i}" for i in range(N_PROMPTS)], dtype=object)
        if method == "gold":
            gold_traits[seed] = (helpful.copy(), harmless.copy())
        if method == "uniform":  # the gold policy's completions on the first TIED prompts: ties
            helpful[:TIED] = gold_traits[seed][0][:TIED] + 1e-7
            harmless[:TIED] = gold_traits[seed][1][:TIED]
            completion[:TIED] = [f"gold answer {i}" for i in range(TIED)]
        table = pd.DataFrame(
            {
                "prompt_id": [ids[i] for i in order],
                "prompt": [f"\n\nHuman: question {i}?" for i in order],
                "completion": completion[order],
                "trait_helpful": helpful[order],
                "trait_harmless": harmless[order],
            }
        )
        table["group_minority"] = table["trait_helpful"]
        table["group_majority"] = 0.3 * table["trait_helpful"] + 0.7 * table["trait_harmless"]
        table["policy_id"], table["method"], table["seed"], table["proportion"] = pid, method, seed, prop
        with stage_output(eval_file(run, pid), "evaluate", {"pid": pid}, seed=seed) as stage:
            table.to_parquet(stage["path"] / eval_file(run, pid).name, index=False)
            stage["extra"].update(
                n_prompts=N_PROMPTS,
                prompts={"setting": "data.n_eval_prompts", "asked": asked, "available": N_PROMPTS, "used": N_PROMPTS},
            )
        if with_grpo and method != "sft":
            history = [
                {"step": s, "reward": -1 + 0.1 * s + SHIFT[method], "kl": 0.01 * s, "completions/mean_length": 20 - s}
                for s in range(2, 12, 2)
            ] + [{"step": 10, "train_runtime": 1.0, "train_loss": 0.1}]
            with stage_output(policy_dir(run, seed, prop, method), "grpo", {"pid": pid}, seed=seed) as stage:
                (stage["path"] / "training_log.json").write_text(json.dumps(history))
                stage["extra"].update(log_history=history)
    if with_rm:
        for seed in SEEDS:
            for prop in PROPORTIONS:
                with stage_output(rm_dir(run, seed, prop), "reward_models", {"s": seed, "p": prop}, seed=seed) as stage:
                    for name in cfg.policy_methods():
                        _, k = split_method(name)
                        metrics = {
                            split: {
                                "overall": {"n": 40, "accuracy": 0.7},
                                "minority": {"n": int(40 * prop), "accuracy": 0.5 + prop + 0.01 * seed},
                                "majority": {"n": 40, "accuracy": 0.8 - 0.01 * (k or 0)},
                            }
                            for split in ("train", "test")
                        }
                        (stage["path"] / name).mkdir()
                        (stage["path"] / name / "metrics.json").write_text(json.dumps({"method": name, **metrics}))
    return cfg
