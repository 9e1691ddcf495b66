"""The reward a GRPO policy is trained on, callable wherever it is needed: by the trainer (04_grpo) and on
held-out completions (05_evaluate), so "RL climbs its reward" is measured with the very function it climbed.

Min over groups: of a trained reward model's heads (maxmin, sharedrep-k<K>, uniform), or of the gold group
scores for the `gold` oracle policy.
"""

from __future__ import annotations

import numpy as np

from .config import Config
from .gold import GoldMinReward, GoldScorer
from .hh_data import to_messages
from .policy import load_tokenizer
from .reward_models import MinOverGroupsReward
from .runs import rm_dir, sft_dir


def reward_function(
    cfg: Config,
    seed: int,
    proportion: float | None,
    method: str,
    device: str,
    chat_tokenizer=None,
    gold_scorer: GoldScorer | None = None,
):
    """Min over groups of the gold scores or of a trained reward model's heads; a scorer that reads the chat
    text (`gold.text` / `reward_model.text: chat`) renders it with `chat_tokenizer` (default: the SFT policy's).
    `gold_scorer`: the profile's gold models already loaded (evaluation has them; the paper's are 2 × gpt2-large)."""
    if method == "gold" and gold_scorer is not None:
        return GoldMinReward(gold_scorer)
    if chat_tokenizer is None and "chat" in (cfg.gold.text, cfg.reward_model.text):
        chat_tokenizer = load_tokenizer(sft_dir(cfg.run_path) / "model", cfg.policy)
    if method == "gold":
        return GoldMinReward(GoldScorer(cfg.gold, device, chat_tokenizer=chat_tokenizer))
    return MinOverGroupsReward(
        rm_dir(cfg.run_path, seed, proportion) / method, cfg.reward_model, device, chat_tokenizer=chat_tokenizer
    )


def trainer_inputs(prompts: list[str], completions: list[str]) -> tuple[list, list]:
    """HH prompts and completion texts as GRPOTrainer hands them to a reward function (conversational)."""
    return [to_messages(p) for p in prompts], [[{"role": "assistant", "content": c}] for c in completions]


def training_reward(reward, prompts: list[str], completions: list[str]) -> np.ndarray:
    """What `reward` (a `reward_function`) gives these completions when the trainer calls it."""
    return np.asarray(reward(*trainer_inputs(prompts, completions)), dtype=np.float64)
