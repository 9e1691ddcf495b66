"""Stage 3 (per seed × proportion): MaxMin, SharedRep for each K, and Uniform reward models.

Frozen backbone (default): features are computed once per unique text (cached under features/ and
shared by every seed × proportion), then every head trains on the cache.
`reward_model.freeze_backbone: false`: each method trains end to end (backbone + the same heads)
through TRL's RewardTrainer (`reward_trainer.py`); its fine-tuned backbone(s) are saved with it.
MaxMin trains one run per group on that group's pairs alone (as upstream), SharedRep and Uniform one run
on all pairs; metrics.json records each run's pairs and optimiser steps (`runs`).
With `reward_model.grid` (budgets.py) every method also trains at every grid cell, on the training pairs less a
validation split, and the heads of `reward_model.budget` are saved; rm/budgets.csv holds every setting's accuracy.
Output: seed<S>/prop<P>/rm/<method>/ with heads.safetensors, config.json, metrics.json (and backbone*/
when trained end to end); `MinOverGroupsReward` loads either kind."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict

import pandas as pd
import torch

from .. import budgets
from ..config import Config
from ..groups import split_pairs
from ..hh_data import scorer_texts
from ..launcher import command_line
from ..methods import split_method
from ..policy import load_tokenizer, pick_device
from ..reward_models import (
    FeatureExtractor,
    cached_features,
    fits,
    pair_metrics,
    pair_tensors,
    pair_texts,
    prepare_tokenizer,
    reward_pair_metrics,
    save_heads,
    save_reward_model,
    text_rewards,
    train_heads,
)
from ..runs import (
    features_dir,
    is_done,
    locked,
    preferences_dir,
    read_manifest,
    require,
    responses_dir,
    rm_dir,
    sft_dir,
    stage_output,
)


def params(cfg: Config, seed: int, proportion: float) -> dict:
    rm = asdict(cfg.reward_model)
    if rm["budget"] == budgets.DEFAULT and not rm["grid"]["learning_rates"]:  # added later: no grid keeps old hashes
        del rm["budget"], rm["grid"]
    return {
        "preferences": require(preferences_dir(cfg.run_path, seed, proportion), "02_preference_data")["params_hash"],
        "reward_model": rm,
        "seed": seed,
        "proportion": proportion,
    }


@locked("03_reward_models", lambda cfg, seed, proportion: rm_dir(cfg.run_path, seed, proportion))
def main(cfg: Config, seed: int, proportion: float) -> dict:
    """Trains every reward model (unless done); returns their metrics by policy name (`report.metrics_table`
    turns them into a table)."""
    out, p = rm_dir(cfg.run_path, seed, proportion), params(cfg, seed, proportion)
    if not is_done(out, p):
        train(cfg, seed, proportion, p)
    else:
        print(f"[reward_models] already done: {out}")
    return read_manifest(out)["metrics"]


def chat_tokenizer(cfg: Config):
    """The policy's tokenizer when the reward models read the chat text (`reward_model.text: chat`), else None."""
    return load_tokenizer(sft_dir(cfg.run_path) / "model", cfg.policy) if cfg.reward_model.text == "chat" else None


def without_long_pairs(pairs: pd.DataFrame, tokenizer, cfg: Config, chat) -> tuple[pd.DataFrame, int]:
    """With `reward_model.drop_long_pairs` (upstream's TRL RewardTrainer), the pairs whose chosen and
    rejected texts both fit in `reward_model.max_length` backbone tokens, and how many were dropped."""
    rm = cfg.reward_model
    if not rm.drop_long_pairs:
        return pairs, 0
    chosen, rejected = pair_texts(pairs, rm.text_format, rm.text, chat)
    keep = fits(tokenizer, chosen, rm.max_length) & fits(tokenizer, rejected, rm.max_length)
    return pairs[keep].reset_index(drop=True), int((~keep).sum())


def named_runs(runs: list[dict], groups: list[str]) -> list[dict]:
    """A model's training runs with group names: which heads each run trained, on how many pairs, in how many
    optimiser steps (MaxMin: one run per group; SharedRep, Uniform: one run on all pairs)."""
    return [{**run, "groups": [groups[u] for u in run["groups"]]} for run in runs]


def train(cfg: Config, seed: int, proportion: float, p: dict) -> None:
    rm, out = cfg.reward_model, rm_dir(cfg.run_path, seed, proportion)
    pairs = pd.read_parquet(preferences_dir(cfg.run_path, seed, proportion) / "preferences.parquet")
    groups = list(cfg.gold.groups)
    chat = chat_tokenizer(cfg)
    if not rm.freeze_backbone:
        train_end_to_end_all(cfg, seed, proportion, p, pairs, groups, chat)
        return
    responses = pd.read_parquet(responses_dir(cfg.run_path) / "responses.parquet")
    texts = [
        text
        for column in ("response_0", "response_1")
        for text in scorer_texts(rm.text, rm.text_format, list(responses["prompt"]), list(responses[column]), chat)
    ]
    start = time.perf_counter()
    extractor = FeatureExtractor(rm, pick_device(cfg))
    features = cached_features(extractor, texts, features_dir(cfg.run_path))
    featurise_s = time.perf_counter() - start  # includes loading the backbone; ~0 on a cache hit
    pairs, n_long = without_long_pairs(pairs, extractor.tokenizer, cfg, chat)
    train_pairs, test_pairs = split_pairs(pairs, rm.test_fraction, seed)
    grid = rm.grid if rm.grid.learning_rates else None
    # with a grid, a validation split from the training pairs picks the tuned cell; every budget trains on the rest
    val_pairs = None
    if grid:
        train_pairs, val_pairs = split_pairs(train_pairs, grid.validation_fraction, seed)
    train_t, test_t = (
        pair_tensors(train_pairs, features, rm.text_format, rm.text, chat),
        pair_tensors(test_pairs, features, rm.text_format, rm.text, chat),
    )
    if grid:
        train_grid(cfg, seed, proportion, p, groups, train_t, pair_tensors(val_pairs, features, rm.text_format,
                   rm.text, chat), test_t, inputs_of(cfg, seed, proportion),  # fmt: skip
                   {"n_train_pairs": len(train_pairs), "n_validation_pairs": len(val_pairs),
                    "n_test_pairs": len(test_pairs), "n_dropped_long_pairs": n_long, "n_unique_texts": len(features),
                    "featurise_s": round(featurise_s, 2), "backbone_batches": extractor.calls})  # fmt: skip
        return
    all_metrics = {}
    with stage_output(out, "reward_models", p, seed=seed, inputs=inputs_of(cfg, seed, proportion)) as stage:
        start = time.perf_counter()
        for name in cfg.policy_methods():
            method, k = split_method(name)
            hp = getattr(rm, method)
            heads, losses = train_heads(method, k, len(groups), *train_t, hp, seed)
            metrics = head_metrics(method, k, hp, heads, losses, groups, {"train": train_t, "test": test_t})
            all_metrics[name] = save_model(stage["path"] / name, heads, metrics, groups, rm, seed, proportion)
        stage["extra"].update(
            metrics=all_metrics,
            n_train_pairs=len(train_pairs),
            n_test_pairs=len(test_pairs),
            n_dropped_long_pairs=n_long,
            n_unique_texts=len(features),
            featurise_s=round(featurise_s, 2),
            heads_s=round(time.perf_counter() - start, 2),  # every head of every method, with metrics
            backbone_batches=extractor.calls,
        )


def head_metrics(method: str, k: int | None, hp, heads, losses: list[float], groups: list[str], splits: dict,
                 **extra) -> dict:  # fmt: skip
    """metrics.json of heads trained on cached features: settings, losses, runs, and pair metrics per split."""
    return {
        "method": method,
        "k": k,
        **extra,
        "hyperparameters": asdict(hp),
        "loss_per_epoch": losses,
        "runs": named_runs(heads.runs, groups),
        **{split: pair_metrics(heads, *tensors, groups) for split, tensors in splits.items()},
    }


def save_model(path, heads, metrics: dict, groups: list[str], rm, seed: int, proportion: float) -> dict:
    """The heads and their metrics.json into `path`; returns the metrics."""
    save_heads(heads, path, groups, rm, {"seed": seed, "proportion": proportion})
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def inputs_of(cfg: Config, seed: int, proportion: float) -> dict:
    return {
        "preferences": preferences_dir(cfg.run_path, seed, proportion) / "preferences.parquet",
        "responses": responses_dir(cfg.run_path) / "responses.parquet",
    }


def train_grid(cfg: Config, seed: int, proportion: float, p: dict, groups: list[str], train_t, val_t, test_t,
               inputs: dict, extra: dict) -> None:  # fmt: skip
    """Every method at its own settings and at every grid cell (budgets.py); saves the heads of the run's budget
    (`reward_model.budget`) and writes budgets.csv: accuracy per setting, split and group, steps, the cells picked."""
    rm, out = cfg.reward_model, rm_dir(cfg.run_path, seed, proportion)
    with stage_output(out, "reward_models", p, seed=seed, inputs=inputs) as stage:
        start = time.perf_counter()
        trained, tables = {}, []
        for name in cfg.policy_methods():
            method, k = split_method(name)
            trained[name], table = budgets.train_budgets(
                name, method, k, getattr(rm, method), rm.grid, groups, train_t, val_t, test_t, seed
            )
            tables.append(table)
        table = budgets.mark_choices(pd.concat(tables, ignore_index=True), rm.grid)
        table.to_csv(stage["path"] / "budgets.csv", index=False)
        all_metrics = {}
        for name in cfg.policy_methods():
            method, k = split_method(name)
            setting = budgets.chosen_setting(rm.budget, table, name, rm.grid)
            heads, losses = trained[name][setting]
            hp = budgets.settings(getattr(rm, method), rm.grid)[setting]
            splits = {"train": train_t, "validation": val_t, "test": test_t}
            metrics = head_metrics(method, k, hp, heads, losses, groups, splits, budget=rm.budget, setting=setting)
            all_metrics[name] = save_model(stage["path"] / name, heads, metrics, groups, rm, seed, proportion)
        stage["extra"].update(metrics=all_metrics, budget=rm.budget, heads_s=round(time.perf_counter() - start, 2),
                              **extra)  # fmt: skip


def train_end_to_end_all(
    cfg: Config, seed: int, proportion: float, p: dict, pairs: pd.DataFrame, groups: list[str], chat=None
) -> None:
    """Every method end to end through TRL's RewardTrainer; metrics on the trained model's rewards."""
    from transformers import AutoTokenizer

    from ..hub import resolve_model
    from ..reward_trainer import train_end_to_end

    rm, out, device = cfg.reward_model, rm_dir(cfg.run_path, seed, proportion), pick_device(cfg)
    if rm.drop_long_pairs:
        pairs, n_long = without_long_pairs(
            pairs, prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_model(rm.backbone))), cfg, chat
        )
    else:
        n_long = 0
    train_pairs, test_pairs = split_pairs(pairs, rm.test_fraction, seed)
    all_metrics = {}
    inputs = {"preferences": preferences_dir(cfg.run_path, seed, proportion) / "preferences.parquet"}
    with stage_output(out, "reward_models", p, seed=seed, inputs=inputs) as stage:
        for name in cfg.policy_methods():
            method, k = split_method(name)
            hp = getattr(rm, method)
            model, tokenizer, log = train_end_to_end(
                method, k, len(groups), train_pairs, rm, hp, seed, stage["path"] / ".trainer", device, chat
            )
            metrics = {
                "method": method,
                "k": k,
                "freeze_backbone": False,
                "hyperparameters": asdict(hp),
                "loss_per_step": [row["loss"] for row in log if "loss" in row],
                "n_backbones": len(model.backbones),
                "runs": named_runs(model.runs, groups),
                "train_runtime_s": next((row["train_runtime"] for row in log if "train_runtime" in row), None),
            }
            for split, part in (("train", train_pairs), ("test", test_pairs)):
                chosen, rejected = (
                    text_rewards(model, tokenizer, t, rm, device)
                    for t in pair_texts(part, rm.text_format, rm.text, chat)
                )
                ids = torch.tensor(part["group_id"].tolist(), dtype=torch.long)
                metrics[split] = reward_pair_metrics(chosen.cpu(), rejected.cpu(), ids, groups)
            save_reward_model(
                model, tokenizer, stage["path"] / name, groups, rm, {"seed": seed, "proportion": proportion}
            )
            (stage["path"] / name / "metrics.json").write_text(json.dumps(metrics, indent=2))
            all_metrics[name] = metrics
            del model  # one end-to-end model in memory at a time
        shutil.rmtree(stage["path"] / ".trainer", ignore_errors=True)
        stage["extra"].update(
            metrics=all_metrics,
            n_train_pairs=len(train_pairs),
            n_test_pairs=len(test_pairs),
            n_dropped_long_pairs=n_long,
            freeze_backbone=False,
        )


if __name__ == "__main__":
    command_line(main, seed=int, proportion=float)
