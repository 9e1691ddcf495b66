"""End-to-end reward models (`reward_model.freeze_backbone: false`) through TRL's `RewardTrainer`.

The model is `reward_models.GroupRewardModel` (backbone(s) + the same `GroupHeads` as when frozen), so
MaxMin, SharedRep(K) and Uniform mean the same thing either way. `GroupRewardTrainer` is a documented
subclass of TRL's `RewardTrainer` that changes only what the groups need:

- the dataset is tokenized here (same truncation as `FeatureExtractor`, so training and the GRPO
  reward see the same tokens; TRL would append EOS and drop over-long pairs) and keeps `group_id`;
- `GroupPreferenceCollator` is TRL's `DataCollatorForPreference` that also batches `group_id`;
- `compute_loss` routes each pair to its own group's reward column, then applies the same
  `bt_loss` as the frozen path (tanh if the method's config says so, TRL's center-rewards term).

Everything else (optimizer, schedule, clipping, dropout off, seeding, accelerate, logging) is TRL's and
transformers' own; each method's `HeadConfig` fills the `RewardConfig`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from trl import RewardConfig, RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from .config import HeadConfig, RewardModelConfig
from .reward_models import GroupRewardModel, bt_loss, load_backbone, new_heads, pair_texts, stack_maxmin
from .training import trainer_arguments


@dataclass
class GroupPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator (chosen rows, then rejected rows, right-padded) plus `group_id` per pair."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        batch["group_id"] = torch.tensor([example["group_id"] for example in examples], dtype=torch.long)
        return batch


class GroupRewardTrainer(RewardTrainer):
    """TRL's RewardTrainer with the loss routed to each pair's group and optional tanh on rewards."""

    def __init__(self, *args, tanh: bool = False, **kwargs):
        self.tanh = tanh
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:  # keep group_id when unused columns are removed
            self._signature_columns = ["chosen_ids", "rejected_ids", "group_id"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        rewards = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])  # (2B, U)
        rows = inputs["group_id"].view(-1, 1)
        chosen, rejected = (r.gather(1, rows).squeeze(1) for r in rewards.chunk(2))
        loss = bt_loss(chosen, rejected, self.tanh, self.args.center_rewards_coefficient or 0.0)
        if mode == "train":
            self._total_train_tokens += self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():  # the same names TRL logs, on the routed (pre-tanh) rewards
            margin = chosen - rejected
            accuracy = self.accelerator.gather_for_metrics((margin > 0).float().mean()).mean().item()
            self._metrics[mode]["accuracy"].append(accuracy)
            self._metrics[mode]["margin"].append(self.accelerator.gather_for_metrics(margin.mean()).mean().item())
            self._metrics[mode]["mean_reward"].append(torch.cat([chosen, rejected]).mean().item())
        return (loss, {"rewards": rewards}) if return_outputs else loss


def preference_dataset(
    tokenizer, pairs: pd.DataFrame, text_format: str, max_length: int, text: str = "hh", chat_tokenizer=None
):
    """A tokenized `datasets.Dataset` (chosen_ids, rejected_ids, group_id) that RewardTrainer uses as is."""
    from datasets import Dataset

    chosen, rejected = pair_texts(pairs, text_format, text, chat_tokenizer)
    tokenize = lambda texts: tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]  # noqa: E731
    return Dataset.from_dict(
        {
            "chosen_ids": tokenize(chosen),
            "rejected_ids": tokenize(rejected),
            "group_id": [int(g) for g in pairs["group_id"]],
        }
    )


def train_end_to_end(
    method: str,
    k: int | None,
    n_groups: int,
    train_pairs: pd.DataFrame,
    rm: RewardModelConfig,
    hp: HeadConfig,
    seed: int,
    output_dir: Path,
    device: str = "cpu",
    chat_tokenizer=None,
) -> tuple[GroupRewardModel, Any, list[dict]]:
    """Backbone(s) and heads trained together on the pairs; returns (model in eval mode, tokenizer, TRL log).

    SharedRep and Uniform: one RewardTrainer run over all pairs, one shared backbone. MaxMin: one run per
    group, as upstream runs one process per group: backbone u and head u are trained by their own trainer on
    group u's pairs only (own optimiser, schedule and steps), then put side by side (U backbones, the U heads
    stacked). `model.runs` records each run (group ids, pairs, optimiser steps); each log row names its run's
    groups. The method's HeadConfig gives rate, epochs, batch size, schedule, clipping, tanh, centering and
    passes (each pass one `trainer.train()`); `rm.trainer_kwargs` go to TRL's RewardConfig as is (e.g. bf16,
    gradient_checkpointing on a GPU); `chat_tokenizer` is the policy's, for `rm.text: chat`.
    """
    missing = {"prompt", "chosen", "rejected", "group_id"} - set(train_pairs.columns)
    if missing:
        raise ValueError(f"Preference pairs lack column(s) {', '.join(sorted(missing))}.")
    if len(train_pairs) == 0:
        raise ValueError("No training pairs: the reward model needs at least one.")
    torch.manual_seed(seed)  # the heads' and any fresh weights' initialisation
    tokenizer, first = load_backbone(rm.backbone)
    dim = first.config.hidden_size

    def run(model: GroupRewardModel, pairs: pd.DataFrame, out: Path) -> tuple[int, list[dict]]:
        return _train_run(model, tokenizer, pairs, rm, hp, seed, out, device, chat_tokenizer)

    if method != "maxmin":
        model = GroupRewardModel([first], new_heads(method, dim, n_groups, k, hp), rm.pooling)
        steps, log = run(model, train_pairs, output_dir)
        model.runs = [{"groups": list(range(n_groups)), "pairs": len(train_pairs), "optimizer_steps": steps}]
        return model.eval(), tokenizer, log
    backbones = [first] + [copy.deepcopy(first) for _ in range(n_groups - 1)]
    singles = [new_heads("maxmin", dim, 1, None, hp) for _ in range(n_groups)]  # all initialised up front
    runs, log = [], []
    for u in range(n_groups):
        own = train_pairs[train_pairs["group_id"] == u].assign(group_id=0)  # head 0 of this run's model
        steps, run_log = (0, [])  # a group without training pairs keeps its initial backbone and head
        if len(own):
            steps, run_log = run(
                GroupRewardModel([backbones[u]], singles[u], rm.pooling), own, output_dir / f"group{u}"
            )
        runs.append({"groups": [u], "pairs": len(own), "optimizer_steps": steps})
        log += [{**row, "groups": [u]} for row in run_log]
    model = GroupRewardModel(backbones, stack_maxmin(singles), rm.pooling)
    model.runs = runs
    return model.eval(), tokenizer, log


def _train_run(
    model: GroupRewardModel,
    tokenizer,
    pairs: pd.DataFrame,
    rm: RewardModelConfig,
    hp: HeadConfig,
    seed: int,
    output_dir: Path,
    device: str,
    chat_tokenizer,
) -> tuple[int, list[dict]]:
    """One RewardTrainer over `pairs`, `hp.train_passes` times `trainer.train()`: a second call restarts the
    schedule and keeps the optimiser and its state (upstream's MaxMin). Returns (optimiser steps, log)."""
    for backbone in model.backbones:
        backbone.config.num_labels = 1  # RewardTrainer's check for a scalar reward model; U columns come from heads
    kwargs = trainer_arguments(device, seed, output_dir, rm.trainer_kwargs)
    kwargs.setdefault("logging_steps", 1)
    # TRL turns activation checkpointing on by default; it costs compute and the upstream did not use it,
    # so it is opt-in here (trainer_kwargs: {gradient_checkpointing: true} on a GPU that needs the memory)
    kwargs.setdefault("gradient_checkpointing", False)
    args = RewardConfig(
        **kwargs,
        learning_rate=hp.learning_rate,
        num_train_epochs=hp.num_epochs,
        per_device_train_batch_size=hp.batch_size,
        lr_scheduler_type=hp.lr_scheduler,
        max_grad_norm=hp.max_grad_norm,
        center_rewards_coefficient=hp.center_rewards_coefficient or None,
        max_length=None,  # already truncated to rm.max_length, as the GRPO reward truncates
    )
    trainer = GroupRewardTrainer(
        model=model,
        args=args,
        data_collator=GroupPreferenceCollator(pad_token_id=tokenizer.pad_token_id),
        train_dataset=preference_dataset(tokenizer, pairs, rm.text_format, rm.max_length, rm.text, chat_tokenizer),
        processing_class=tokenizer,
        tanh=hp.tanh,
    )
    steps, log = 0, []
    for _ in range(hp.train_passes):
        trainer.train()
        steps += trainer.state.global_step  # TrainerState restarts with each train()
        log += trainer.state.log_history
    return steps, log
