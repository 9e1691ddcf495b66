"""The reward a GRPO policy is trained on, callable wherever it is needed: by the trainer (04_grpo) and on
held-out completions (05_evaluate), so "RL climbs its reward" is measured with the very function it climbed.

Min over groups: of a trained reward model's heads (maxmin, sharedrep-k<K>, uniform), or of the gold group
scores for the `gold` oracle policy; with `calibration.mode` on, of the heads on a common scale, fitted here on
the run's reference set (calibration.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import calibration
from .config import Config
from .gold import GoldMinReward, GoldScorer
from .hh_data import scorer_texts, to_messages
from .policy import load_tokenizer
from .reward_models import MinOverGroupsReward, cached_features
from .runs import features_dir, policy_dir, responses_dir, rm_dir, sft_dir


def reward_function(
    cfg: Config,
    seed: int,
    proportion: float | None,
    method: str,
    device: str,
    chat_tokenizer=None,
    gold_scorer: GoldScorer | None = None,
    fit_calibration: bool = False,
):
    """Min over groups of the gold scores or of a trained reward model's heads; a scorer that reads the chat
    text (`gold.text` / `reward_model.text: chat`) renders it with `chat_tokenizer` (default: the SFT policy's).
    `gold_scorer`: the profile's gold models already loaded (evaluation has them; the paper's are 2 × gpt2-large).
    With `calibration.mode` on, a learned model's heads are calibrated before the min (calibration.py): fitted on
    the reference set when `fit_calibration` (the GRPO run, which records them), else read from the policy's
    GRPO run, so evaluation uses exactly the offsets training used. The gold min is never calibrated."""
    if method == "gold" and gold_scorer is not None:  # the same text the GRPO run's reward read (grpo.gold_reward_text)
        return GoldMinReward(gold_scorer, cfg.grpo.gold_reward_text)
    if chat_tokenizer is None and "chat" in (cfg.gold.text, cfg.reward_model.text):
        chat_tokenizer = load_tokenizer(sft_dir(cfg.run_path) / "model", cfg.policy)
    if method == "gold":
        return GoldMinReward(GoldScorer(cfg.gold, device, chat_tokenizer=chat_tokenizer), cfg.grpo.gold_reward_text)
    reward = MinOverGroupsReward(
        rm_dir(cfg.run_path, seed, proportion) / method, cfg.reward_model, device, chat_tokenizer=chat_tokenizer
    )
    mode = cfg.calibration.mode
    if mode != "none":
        reward.calibration = (
            reference_calibration(reward, cfg.run_path, mode)
            if fit_calibration
            else calibration.read(policy_dir(cfg.run_path, seed, proportion, method), mode)
        )
    return reward


def trainer_inputs(prompts: list[str], completions: list[str]) -> tuple[list, list]:
    """HH prompts and completion texts as GRPOTrainer hands them to a reward function (conversational)."""
    return [to_messages(p) for p in prompts], [[{"role": "assistant", "content": c}] for c in completions]


def training_reward(reward, prompts: list[str], completions: list[str]) -> np.ndarray:
    """What `reward` (a `reward_function`) gives these completions when the trainer calls it."""
    return np.asarray(reward(*trainer_inputs(prompts, completions)), dtype=np.float64)


def reference_set(run: Path) -> tuple[list[str], list[str]]:
    """(prompts, responses) of the reference set: both SFT responses of every prompt that 02_preference_data scored."""
    table = pd.read_parquet(responses_dir(run) / "responses.parquet")
    prompts = list(table["prompt"])
    return prompts + prompts, list(table["response_0"]) + list(table["response_1"])


def reference_rewards(reward: MinOverGroupsReward, prompts: list[str], responses: list[str], cache: Path) -> np.ndarray:
    """(N, U) raw group rewards on the reference set. A frozen backbone reads the reward-model stage's feature
    cache (the same texts, so no backbone pass); a fine-tuned one runs its own backbone(s)."""
    if reward.config.get("backbones"):
        return reward.all_rewards(prompts, responses).numpy()
    texts = scorer_texts(reward.text, reward.text_format, prompts, responses, reward.chat_tokenizer)
    features = cached_features(reward.extractors[0], texts, cache)
    with torch.no_grad():
        return reward.heads(torch.stack([features[t] for t in texts])).numpy()


def reference_calibration(reward: MinOverGroupsReward, run: Path, mode: str) -> dict:
    """The calibration of `reward`'s heads on the run's reference set, with the reference binding shares."""
    groups = reward.config["groups"]
    reference = reference_rewards(reward, *reference_set(run), features_dir(run))
    fitted = calibration.fit_offsets(reference, groups, mode)
    fitted["reference"] = calibration.REFERENCE
    table = calibration.binding_table(reference, fitted)
    fitted["binds_raw"] = dict(zip(groups, table["binds_raw"]))
    fitted["binds_calibrated"] = dict(zip(groups, table["binds_calibrated"]))
    return fitted


def reference_binding(cfg: Config, seed: int, proportion: float, method: str, device: str = "cpu") -> pd.DataFrame:
    """Which group's head binds on the reference set, raw and under each calibration mode (whatever
    `calibration.mode` is: what the switch would change), per group with its offset and std (notebook 04)."""
    chat = load_tokenizer(sft_dir(cfg.run_path) / "model", cfg.policy) if cfg.reward_model.text == "chat" else None
    path = rm_dir(cfg.run_path, seed, proportion) / method
    reward = MinOverGroupsReward(path, cfg.reward_model, device, chat_tokenizer=chat)
    groups = reward.config["groups"]
    reference = reference_rewards(reward, *reference_set(cfg.run_path), features_dir(cfg.run_path))
    table = calibration.binding_table(reference, calibration.fit_offsets(reference, groups, "center"))
    standardized = calibration.fit_offsets(reference, groups, "standardize")
    table["binds_standardized"] = table["group"].map(
        calibration.binding_shares(calibration.apply(reference, standardized, groups), groups)
    )
    table = table.rename(columns={"offset": "reference_mean", "binds_calibrated": "binds_centred"})
    return table.drop(columns="scale")
