"""Stage 3 (per seed × proportion): MaxMin, SharedRep for each K, and Uniform reward heads on one
frozen backbone. Features are computed once per unique text (cached under features/ and shared by
every seed × proportion), then every head trains on the cache.
Output: seed<S>/prop<P>/rm/<method>/ with heads.safetensors, config.json, metrics.json."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd

from ..config import Config
from ..hh_data import format_scored_text
from ..policy import pick_device
from ..reward_models import FeatureExtractor, cached_features, pair_metrics, pair_tensors, save_heads, train_heads
from ..runs import features_dir, is_done, preferences_dir, read_manifest, require, responses_dir, rm_dir, stage_output
from ..stats import split_method
from . import command_line


def params(cfg: Config, seed: int, proportion: float) -> dict:
    return {
        "preferences": require(preferences_dir(cfg.run_path, seed, proportion), "02_preference_data")["params_hash"],
        "reward_model": asdict(cfg.reward_model),
        "seed": seed,
        "proportion": proportion,
    }


def split_pairs(pairs: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/test split of preference pairs, stratified by group so every group is tested."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(pairs), dtype=bool)
    for _, idx in pairs.groupby("group_id").indices.items():
        n_test = int(round(len(idx) * test_fraction))
        if len(idx) > 1:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test[rng.permutation(idx)[:n_test]] = True
    return pairs[~test].reset_index(drop=True), pairs[test].reset_index(drop=True)


def main(cfg: Config, seed: int, proportion: float) -> pd.DataFrame:
    """Trains every head; returns the accuracy table (method, split, group, accuracy, margin)."""
    out, p = rm_dir(cfg.run_path, seed, proportion), params(cfg, seed, proportion)
    if not is_done(out, p):
        train(cfg, seed, proportion, p)
    else:
        print(f"[reward_models] already done: {out}")
    return metrics_table(read_manifest(out)["metrics"])


def train(cfg: Config, seed: int, proportion: float, p: dict) -> None:
    rm, out = cfg.reward_model, rm_dir(cfg.run_path, seed, proportion)
    pairs = pd.read_parquet(preferences_dir(cfg.run_path, seed, proportion) / "preferences.parquet")
    groups = list(cfg.gold.groups)
    responses = pd.read_parquet(responses_dir(cfg.run_path) / "responses.parquet")
    texts = [
        format_scored_text(rm.text_format, prompt, response)
        for column in ("response_0", "response_1")
        for prompt, response in zip(responses["prompt"], responses[column])
    ]
    extractor = FeatureExtractor(rm, pick_device(cfg))
    features = cached_features(extractor, texts, features_dir(cfg.run_path))
    train_pairs, test_pairs = split_pairs(pairs, rm.test_fraction, seed)
    train_t, test_t = (
        pair_tensors(train_pairs, features, rm.text_format),
        pair_tensors(test_pairs, features, rm.text_format),
    )
    all_metrics = {}
    with stage_output(out, "reward_models", p, seed=seed) as stage:
        for name in cfg.policy_methods():
            method, k = split_method(name)
            hp = getattr(rm, method)
            heads, losses = train_heads(method, k, len(groups), *train_t, hp, seed)
            metrics = {
                "method": method,
                "k": k,
                "hyperparameters": asdict(hp),
                "loss_per_epoch": losses,
                "train": pair_metrics(heads, *train_t, groups),
                "test": pair_metrics(heads, *test_t, groups),
            }
            save_heads(heads, stage["path"] / name, groups, rm, {"seed": seed, "proportion": proportion})
            (stage["path"] / name / "metrics.json").write_text(json.dumps(metrics, indent=2))
            all_metrics[name] = metrics
        stage["extra"].update(
            metrics=all_metrics,
            n_train_pairs=len(train_pairs),
            n_test_pairs=len(test_pairs),
            n_unique_texts=len(features),
            backbone_batches=extractor.calls,
        )


def metrics_table(metrics: dict) -> pd.DataFrame:
    rows = [
        {"policy": name, "split": split, "group": group, **values}
        for name, m in metrics.items()
        for split in ("train", "test")
        for group, values in m[split].items()
    ]
    return pd.DataFrame(rows)


if __name__ == "__main__":
    command_line(main, seed=int, proportion=float)
