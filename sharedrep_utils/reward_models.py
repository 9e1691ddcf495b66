"""Group-aware reward models on a frozen backbone: heads over cached features.

- MaxMin: one linear head per group, each trained in its own run on its own group's pairs (own optimiser,
  schedule and step count, as upstream trains one reward model per group), then stacked as U columns.
- SharedRep(K): Linear(d, K) then Linear(K, U, bias=False); each pair's loss goes to its group's column.
- Uniform: one head on all pairs, whatever the group.

All three are `GroupHeads`; routing is the same gather, so a pair only trains its own group's
output. Features φ are the backbone's output at the last non-pad token
(decoders) or the CLS / mean-pooled output (encoders), computed once per unique text and cached.
`GroupRewardModel` puts the same heads on trainable backbone(s) for end-to-end training
(`reward_trainer.py`); `MinOverGroupsReward` serves either kind to GRPO.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .calibration import apply as on_common_scale
from .config import HeadConfig, RewardModelConfig
from .hh_data import chat_to_hh, scorer_texts
from .hub import loading, resolve_model
from .text_batches import length_sorted_batches


class SimplexMixing(nn.Module):
    """Per-group mixing weights on the simplex (softmax of free logits), as in the paper's theory."""

    def __init__(self, k: int, n_groups: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_groups, k))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h @ torch.softmax(self.logits, dim=1).T


class GroupHeads(nn.Module):
    """Rewards for U groups from features: (N, d) -> (N, U). Uniform has U = 1 (shared by everyone).

    SharedRep's mixing is a free Linear(K, U) as in the upstream code, or weights on the simplex with
    `simplex=True` as in the paper's theory. `bias` puts a bias on the last layer (upstream: none; the
    reward's last layer is GPT-2's bias-free score layer, and SharedRep's first layer keeps its bias).
    """

    def __init__(
        self, method: str, dim: int, n_groups: int, k: int | None = None, simplex: bool = False, bias: bool = False
    ):
        super().__init__()
        self.method, self.dim, self.n_groups, self.k, self.simplex = method, dim, n_groups, k, simplex
        self.bias = bias
        if method == "sharedrep":
            if not k or k < 1:
                raise ValueError(f"SharedRep needs K >= 1, got {k}.")
            mixing = SimplexMixing(k, n_groups) if simplex else nn.Linear(k, n_groups, bias=bias)
            self.net = nn.Sequential(nn.Linear(dim, k), mixing)
        elif method == "maxmin":
            self.net = nn.Linear(dim, n_groups, bias=bias)  # column u is group u's own head
        elif method == "uniform":
            self.net = nn.Linear(dim, 1, bias=bias)
        else:
            raise ValueError(f"Unknown method {method!r}; allowed: maxmin, sharedrep, uniform.")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.net(features)
        return out.expand(-1, self.n_groups) if self.method == "uniform" else out

    def group_reward(self, features: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """Each row's reward under its own group's head (the routing)."""
        return self(features).gather(1, group_ids.view(-1, 1)).squeeze(1)

    def min_reward(self, features: torch.Tensor) -> torch.Tensor:
        return self(features).min(dim=1).values


def group_rewards(heads: GroupHeads, features: list[torch.Tensor]) -> torch.Tensor:
    """(N, U) rewards from one feature matrix (one shared backbone) or one per group (end-to-end MaxMin,
    where group u's reward is head u on backbone u's features)."""
    if len(features) == 1:
        return heads(features[0])
    if len(features) != heads.n_groups:
        raise ValueError(f"Features from {len(features)} backbones; expected 1 or one per group ({heads.n_groups}).")
    return torch.stack([heads(f)[:, u] for u, f in enumerate(features)], dim=1)


def bt_loss(r_c: torch.Tensor, r_r: torch.Tensor, tanh: bool, center_rewards_coefficient: float = 0.0) -> torch.Tensor:
    """Bradley–Terry loss −log σ(r_c − r_r) (rewards squashed by tanh if set), plus TRL's optional
    centering term coefficient · mean((r_c + r_r)²). Shared by head training and RewardTrainer."""
    if tanh:
        r_c, r_r = torch.tanh(r_c), torch.tanh(r_r)
    loss = -F.logsigmoid(r_c - r_r).mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((r_c + r_r) ** 2).mean()
    return loss


def pair_loss(
    heads: GroupHeads,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    group_ids: torch.Tensor,
    tanh: bool,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """`bt_loss` on each pair's own group head (the routing)."""
    r_c = heads.group_reward(chosen, group_ids)
    r_r = heads.group_reward(rejected, group_ids)
    return bt_loss(r_c, r_r, tanh, center_rewards_coefficient)


def single_threaded(fn):
    """Run `fn` with one intra-op thread: head training is thousands of tiny ops, where a second thread only
    adds synchronisation, and stalls badly when the cores are busy (measured: 4.3 s vs 62 s on 2 loaded cores,
    see docs/performance.md)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


def new_heads(method: str, dim: int, n_groups: int, k: int | None, hp: HeadConfig) -> GroupHeads:
    """Untrained heads as the config says: bias, mixing, and initialisation (`hp.init`): "normal" is what
    transformers gives a new GPT-2 score head (every Linear weight N(0, 0.02), biases 0), as upstream's heads
    were initialised; "torch" keeps PyTorch's defaults. Simplex mixing logits start at 0 either way."""
    heads = GroupHeads(method, dim, n_groups, k, simplex=hp.simplex_mixing, bias=hp.bias)
    if hp.init == "normal":
        for module in heads.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    elif hp.init != "torch":
        raise ValueError(f"Head init {hp.init!r} is not one of normal, torch.")
    return heads


def stack_maxmin(singles: list[GroupHeads]) -> GroupHeads:
    """U single-group MaxMin heads (each `GroupHeads("maxmin", d, 1)`) as one MaxMin `GroupHeads` of U columns."""
    first = singles[0]
    heads = GroupHeads("maxmin", first.dim, len(singles), bias=first.bias).to(first.net.weight.device)
    with torch.no_grad():
        heads.net.weight.copy_(torch.cat([h.net.weight for h in singles]))
        if first.bias:
            heads.net.bias.copy_(torch.cat([h.net.bias for h in singles]))
    return heads


def fit_heads(
    heads: GroupHeads, chosen: torch.Tensor, rejected: torch.Tensor, group_ids: torch.Tensor, hp: HeadConfig, seed: int
) -> tuple[list[float], int]:
    """One training run: (mean loss per epoch, optimiser steps). `hp.train_passes` passes of `hp.num_epochs`
    epochs, each pass a fresh schedule with Adam's state carried over, as a second `trainer.train()` on the
    same Trainer does (upstream's MaxMin script). Adam at weight decay 0 is transformers' AdamW; "linear"
    is its default schedule (full rate down to 0 at the pass's last step, no warm-up)."""
    if len(group_ids) == 0:
        return [], 0
    optimizer = torch.optim.Adam(heads.parameters(), lr=hp.learning_rate)
    steps_per_pass = hp.num_epochs * -(-len(group_ids) // hp.batch_size)
    decay = (lambda step: 1.0 - step / steps_per_pass) if hp.lr_scheduler == "linear" else (lambda step: 1.0)
    generator = torch.Generator().manual_seed(seed)
    losses, steps = [], 0
    for _ in range(hp.train_passes):
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)  # restarts at the full rate
        for _ in range(hp.num_epochs):
            order = torch.randperm(len(group_ids), generator=generator)
            total = 0.0
            for start in range(0, len(order), hp.batch_size):
                idx = order[start : start + hp.batch_size]
                loss = pair_loss(
                    heads, chosen[idx], rejected[idx], group_ids[idx], hp.tanh, hp.center_rewards_coefficient
                )
                optimizer.zero_grad()
                loss.backward()
                if hp.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(heads.parameters(), hp.max_grad_norm)
                optimizer.step()
                scheduler.step()
                steps += 1
                total += loss.item() * len(idx)
            losses.append(total / len(order))
    return losses, steps


@single_threaded
def train_heads(
    method: str,
    k: int | None,
    n_groups: int,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    group_ids: torch.Tensor,
    hp: HeadConfig,
    seed: int,
) -> tuple[GroupHeads, list[float]]:
    """Heads trained on cached features; returns the heads and the mean loss per epoch (`fit_heads`).

    SharedRep and Uniform: one run over all pairs. MaxMin: one run per group, as upstream runs one process
    per group: head u sees only group u's pairs, with its own optimiser, schedule and step count, and the U
    heads are then stacked into one `GroupHeads` (what is saved and what GRPO's min over groups reads); its
    loss per epoch is the pair-weighted mean over the runs. `heads.runs` records every run: the group ids it
    trained, its pairs and its optimiser steps.
    """
    torch.manual_seed(seed)
    dim = chosen.shape[1]
    if method != "maxmin":
        heads = new_heads(method, dim, n_groups, k, hp)
        losses, steps = fit_heads(heads, chosen, rejected, group_ids, hp, seed)
        heads.runs = [{"groups": list(range(n_groups)), "pairs": len(group_ids), "optimizer_steps": steps}]
        return heads.eval(), losses
    singles = [new_heads("maxmin", dim, 1, None, hp) for _ in range(n_groups)]  # all initialised up front
    runs, per_run = [], []
    for u, head in enumerate(singles):
        own = group_ids == u
        n = int(own.sum())
        run_losses, steps = fit_heads(head, chosen[own], rejected[own], torch.zeros(n, dtype=torch.long), hp, seed)
        runs.append({"groups": [u], "pairs": n, "optimizer_steps": steps})
        per_run.append((n, run_losses))
    heads = stack_maxmin(singles)
    heads.runs = runs
    trained = [(n, run_losses) for n, run_losses in per_run if run_losses]
    total = sum(n for n, _ in trained)
    epochs = hp.num_epochs * hp.train_passes
    losses = [sum(n * run_losses[e] for n, run_losses in trained) / total for e in range(epochs)] if total else []
    return heads.eval(), losses


@torch.no_grad()
def pair_metrics(
    heads: GroupHeads, chosen: torch.Tensor, rejected: torch.Tensor, group_ids: torch.Tensor, groups: list[str]
) -> dict:
    """Pairwise accuracy and mean margin on each pair's own group head, per group and overall."""
    return reward_pair_metrics(heads(chosen), heads(rejected), group_ids, groups)


@torch.no_grad()
def reward_pair_metrics(
    chosen: torch.Tensor, rejected: torch.Tensor, group_ids: torch.Tensor, groups: list[str]
) -> dict:
    """`pair_metrics` from (N, U) reward matrices of the chosen and rejected texts."""
    rows = group_ids.view(-1, 1)
    margin = (chosen.gather(1, rows) - rejected.gather(1, rows)).squeeze(1)
    out = {}
    for name, mask in [("overall", torch.ones_like(group_ids, dtype=torch.bool))] + [
        (g, group_ids == u) for u, g in enumerate(groups)
    ]:
        n = int(mask.sum())
        out[name] = {
            "n": n,
            "accuracy": float((margin[mask] > 0).float().mean()) if n else None,
            "mean_margin": float(margin[mask].mean()) if n else None,
        }
    return out


def load_backbone(name: str, device: str = "cpu"):
    """(tokenizer, AutoModel) for a hub id, local path or pkg: model; a tokenizer without a pad token
    pads with its eos token (GPT-2, Llama): features never look at pads, they follow the attention mask."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model(name)
    with loading(name):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).to(device)
    return prepare_tokenizer(tokenizer), model


def prepare_tokenizer(tokenizer):
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def backbone_inputs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
    """Inputs with position ids counted over real tokens only, so a left-padded text gets the same
    positions (and features) as a right-padded one."""
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "position_ids" in inspect.signature(model.forward).parameters:
        inputs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return inputs


def weights_fingerprint(model) -> str:
    """A cheap hash of the weights (64 evenly spaced values per tensor): two different checkpoints behind
    one name or path (a retrained local model, a fine-tuned copy) get different feature caches."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().flatten()
        digest.update(name.encode() + flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class FeatureExtractor:
    """A frozen backbone (AutoModel) that maps texts to one feature vector each.

    `model` and `tokenizer` default to `rm.backbone`; pass them to featurise with a backbone in memory
    (e.g. one just trained end to end) through exactly the same tokenization, batching and pooling."""

    def __init__(self, rm: RewardModelConfig, device: str = "cpu", model=None, tokenizer=None):
        self.rm, self.device = rm, device
        if model is None:
            tokenizer, model = load_backbone(rm.backbone, device)
        self.tokenizer, self.model = prepare_tokenizer(tokenizer), model.eval()
        self.dim = self.model.config.hidden_size
        self.calls = 0  # backbone forward passes, for tests and benchmarks

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for idx, batch in length_sorted_batches(self.tokenizer, texts, self.rm.batch_size, self.rm.max_length):
            batch = batch.to(self.device)
            self.calls += 1
            hidden = self.model(**backbone_inputs(self.model, batch["input_ids"], batch["attention_mask"]))
            out[idx] = pool(hidden.last_hidden_state, batch["attention_mask"], self.rm.pooling).float().cpu()
        return out

    def cache_key(self, texts: list[str]) -> str:
        """Hash of the backbone (name and weights), its tokenizer, pooling, max length and the texts."""
        if not hasattr(self, "_fingerprint"):
            self._fingerprint = weights_fingerprint(self.model)
        setup = [
            self.rm.backbone,
            self._fingerprint,
            type(self.tokenizer).__name__,
            len(self.tokenizer),
            self.rm.pooling,
            self.rm.max_length,
        ]
        digest = hashlib.sha256(json.dumps(setup).encode())
        for text in texts:
            digest.update(text.encode("utf-8") + b"\0")
        return digest.hexdigest()[:16]


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """The feature per row: last non-pad token (works for left or right padding), CLS, or mean."""
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (positions * mask).argmax(dim=1)  # highest index that is a real token
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def cached_features(extractor: FeatureExtractor, texts: list[str], cache_dir: Path) -> dict[str, torch.Tensor]:
    """text -> feature for the unique texts, from `cache_dir/<hash>.safetensors` or computed once."""
    unique = sorted(set(texts))
    path = cache_dir / f"{extractor.cache_key(unique)}.safetensors"
    if path.exists():
        features = load_file(path)["features"]
    else:
        features = extractor(unique)
        cache_dir.mkdir(parents=True, exist_ok=True)
        # a name of this process's own: two sweeps may fill the same cache entry at once
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        save_file({"features": features.contiguous()}, tmp)
        tmp.replace(path)
    return dict(zip(unique, features))


class GroupRewardModel(nn.Module):
    """Backbone(s) + `GroupHeads`, trained end to end (`freeze_backbone: false`): texts -> (N, U) rewards.

    One shared backbone for SharedRep and Uniform; one backbone per group for MaxMin, whose groups share
    nothing (the upstream trains a separate reward model per group). Pooling is `pool`, as when frozen.
    The `config` and tag hooks are the parts of a PreTrainedModel that TRL's RewardTrainer touches.
    """

    def __init__(self, backbones: list[nn.Module], heads: GroupHeads, pooling: str):
        super().__init__()
        self.backbones, self.heads, self.pooling = nn.ModuleList(backbones), heads, pooling

    @property
    def config(self):
        return self.backbones[0].config

    def add_model_tags(self, tags) -> None:
        for backbone in self.backbones:
            backbone.add_model_tags(tags)

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        for backbone in self.backbones:
            backbone.gradient_checkpointing_enable(**kwargs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **unused) -> torch.Tensor:
        features = [
            pool(b(**backbone_inputs(b, input_ids, attention_mask)).last_hidden_state, attention_mask, self.pooling)
            for b in self.backbones
        ]
        return group_rewards(self.heads, features)


def text_rewards(model: GroupRewardModel, tokenizer, texts: list[str], rm: RewardModelConfig, device: str = "cpu"):
    """(N, U) rewards of an in-memory end-to-end model, through `FeatureExtractor` as after loading."""
    extractors = [FeatureExtractor(rm, device, model=b, tokenizer=tokenizer) for b in model.backbones]
    heads_device = next(model.heads.parameters()).device  # features come back on the CPU
    with torch.no_grad():
        return group_rewards(model.heads.eval(), [e(texts).to(heads_device) for e in extractors]).cpu()


def save_reward_model(
    model: GroupRewardModel, tokenizer, out_dir: Path, groups: list[str], rm: RewardModelConfig, extra: dict
) -> None:
    """An end-to-end model: heads.safetensors + config.json as `save_heads`, and each fine-tuned backbone
    with its tokenizer under backbone/ (or backbone<u>/ per MaxMin group), in safetensors."""
    names = ["backbone"] if len(model.backbones) == 1 else [f"backbone{u}" for u in range(len(model.backbones))]
    for name, backbone in zip(names, model.backbones):
        backbone.save_pretrained(out_dir / name)
        tokenizer.save_pretrained(out_dir / name)
    save_heads(model.heads, out_dir, groups, rm, {**extra, "backbones": names, "freeze_backbone": False})


def save_heads(heads: GroupHeads, out_dir: Path, groups: list[str], rm: RewardModelConfig, extra: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in heads.state_dict().items()}, out_dir / "heads.safetensors")
    config = {
        "method": heads.method,
        "k": heads.k,
        "simplex": heads.simplex,
        "dim": heads.dim,
        "groups": groups,
        "backbone": rm.backbone,
        "pooling": rm.pooling,
        "max_length": rm.max_length,
        "text_format": rm.text_format,
        "text": rm.text,
        "bias": heads.bias,
        **extra,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))


def load_heads(model_dir: Path) -> tuple[GroupHeads, dict]:
    config = json.loads((model_dir / "config.json").read_text())
    heads = GroupHeads(
        config["method"],
        config["dim"],
        len(config["groups"]),
        config["k"],
        config.get("simplex", False),
        config.get("bias", config["method"] != "sharedrep"),  # files from before the setting: the old layout
    )
    heads.load_state_dict(load_file(model_dir / "heads.safetensors"))
    return heads.eval(), config


class MinOverGroupsReward:
    """GRPO reward for a learned model: one backbone pass per batch, then min over the group heads.

    A frozen-backbone model reads `rm.backbone`; an end-to-end one its own saved backbone(s), one pass
    each. Tokenization, pooling, max length and scored text are the saved model's, so rewards match training;
    a model trained on the chat text (`reward_model.text: chat`) needs the policy's `chat_tokenizer`."""

    def __init__(
        self,
        model_dir: Path,
        rm: RewardModelConfig,
        device: str = "cpu",
        extractor: FeatureExtractor | None = None,
        chat_tokenizer=None,
    ):
        self.heads, self.config = load_heads(model_dir)
        self.text, self.chat_tokenizer = self.config.get("text", "hh"), chat_tokenizer
        if self.text == "chat" and chat_tokenizer is None:
            raise ValueError(f"{model_dir} was trained on the chat text; pass the policy's tokenizer (chat_tokenizer).")
        saved = replace(rm, pooling=self.config["pooling"], max_length=self.config["max_length"])
        if self.config.get("backbones"):
            self.extractors = [
                FeatureExtractor(replace(saved, backbone=str(Path(model_dir) / name)), device)
                for name in self.config["backbones"]
            ]
        else:
            self.extractors = [extractor or FeatureExtractor(replace(saved, backbone=self.config["backbone"]), device)]
        self.text_format = self.config["text_format"]
        self.__name__ = f"min_over_groups_{self.config['method']}"

    def all_rewards(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """(N, U): every group's reward."""
        texts = scorer_texts(self.text, self.text_format, prompts, responses, self.chat_tokenizer)
        with torch.no_grad():
            return group_rewards(self.heads, [e(texts) for e in self.extractors])

    calibration: dict | None = None  # offsets and scales per group head (calibration.py); None: the raw heads

    def scaled_rewards(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """(N, U): every group's reward on the scale the min compares (calibrated when `calibration` is set)."""
        return on_common_scale(self.all_rewards(prompts, responses), self.calibration, self.config["groups"])

    def rewards(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return self.scaled_rewards(prompts, responses).min(axis=1)

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        return self.rewards(*chat_to_hh(prompts, completions, clean=False)).tolist()  # scorer_texts cleans for hh


def pair_texts(pairs, text_format: str, text: str = "hh", chat_tokenizer=None) -> tuple[list[str], list[str]]:
    """The scored texts of a preference DataFrame's chosen and rejected responses (`hh_data.scorer_texts`)."""
    prompts = list(pairs["prompt"])
    return (
        scorer_texts(text, text_format, prompts, list(pairs["chosen"]), chat_tokenizer),
        scorer_texts(text, text_format, prompts, list(pairs["rejected"]), chat_tokenizer),
    )


def pair_tensors(
    pairs, features: dict[str, torch.Tensor], text_format: str, text: str = "hh", chat_tokenizer=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(chosen φ, rejected φ, group ids) for a preference DataFrame."""
    chosen, rejected = pair_texts(pairs, text_format, text, chat_tokenizer)
    return (
        torch.stack([features[t] for t in chosen]),
        torch.stack([features[t] for t in rejected]),
        torch.tensor(np.asarray(pairs["group_id"]).tolist(), dtype=torch.long),
    )


def fits(tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Whether each text is at most `max_length` tokens (upstream's TRL RewardTrainer dropped longer pairs)."""
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]] if texts else []
    return np.asarray(lengths, dtype=int) <= max_length
