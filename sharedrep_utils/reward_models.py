"""Group-aware reward models on a frozen backbone: heads over cached features.

- MaxMin: one linear head per group, each trained only on its own group's pairs.
- SharedRep(K): Linear(d, K) then Linear(K, U, bias=False); each pair's loss goes to its group's column.
- Uniform: one head on all pairs, whatever the group.

All three are `GroupHeads`; routing is the same gather, so a pair only trains its own group's
output (for MaxMin, its own head). Features φ are the backbone's output at the last non-pad token
(decoders) or the CLS / mean-pooled output (encoders), computed once per unique text and cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .config import HeadConfig, RewardModelConfig
from .gold import chat_to_hh
from .hh_data import format_scored_text
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

    SharedRep's mixing is a free Linear(K, U, bias=False) as in the upstream code, or weights on the
    simplex with `simplex=True` as in the paper's theory.
    """

    def __init__(self, method: str, dim: int, n_groups: int, k: int | None = None, simplex: bool = False):
        super().__init__()
        self.method, self.dim, self.n_groups, self.k, self.simplex = method, dim, n_groups, k, simplex
        if method == "sharedrep":
            if not k or k < 1:
                raise ValueError(f"SharedRep needs K >= 1, got {k}.")
            mixing = SimplexMixing(k, n_groups) if simplex else nn.Linear(k, n_groups, bias=False)
            self.net = nn.Sequential(nn.Linear(dim, k), mixing)
        elif method == "maxmin":
            self.net = nn.Linear(dim, n_groups)  # column u is group u's own head
        elif method == "uniform":
            self.net = nn.Linear(dim, 1)
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


def pair_loss(
    heads: GroupHeads,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    group_ids: torch.Tensor,
    tanh: bool,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """Bradley–Terry loss −log σ(r_c − r_r) on each pair's own group head (rewards squashed by tanh if set),
    plus TRL's optional centering term coefficient · mean((r_c + r_r)²)."""
    r_c = heads.group_reward(chosen, group_ids)
    r_r = heads.group_reward(rejected, group_ids)
    if tanh:
        r_c, r_r = torch.tanh(r_c), torch.tanh(r_r)
    loss = -F.logsigmoid(r_c - r_r).mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((r_c + r_r) ** 2).mean()
    return loss


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
    """Adam on cached features; returns the heads and the mean loss per epoch."""
    torch.manual_seed(seed)
    heads = GroupHeads(method, chosen.shape[1], n_groups, k, simplex=hp.simplex_mixing)
    optimizer = torch.optim.Adam(heads.parameters(), lr=hp.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(hp.num_epochs):
        order = torch.randperm(len(group_ids), generator=generator)
        total = 0.0
        for start in range(0, len(order), hp.batch_size):
            idx = order[start : start + hp.batch_size]
            loss = pair_loss(heads, chosen[idx], rejected[idx], group_ids[idx], hp.tanh, hp.center_rewards_coefficient)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / max(len(order), 1))
    return heads.eval(), losses


@torch.no_grad()
def pair_metrics(
    heads: GroupHeads, chosen: torch.Tensor, rejected: torch.Tensor, group_ids: torch.Tensor, groups: list[str]
) -> dict:
    """Pairwise accuracy and mean margin on each pair's own group head, per group and overall."""
    margin = heads.group_reward(chosen, group_ids) - heads.group_reward(rejected, group_ids)
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


class FeatureExtractor:
    """A frozen backbone (AutoModel) that maps texts to one feature vector each."""

    def __init__(self, rm: RewardModelConfig, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.rm, self.device = rm, device
        path = resolve_model(rm.backbone)
        with loading(rm.backbone):
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).to(device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.dim = self.model.config.hidden_size
        self.calls = 0  # backbone forward passes, for tests and benchmarks

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for idx, batch in length_sorted_batches(self.tokenizer, texts, self.rm.batch_size, self.rm.max_length):
            batch = batch.to(self.device)
            self.calls += 1
            hidden = self.model(**batch).last_hidden_state
            out[idx] = pool(hidden, batch["attention_mask"], self.rm.pooling).float().cpu()
        return out

    def cache_key(self, texts: list[str]) -> str:
        digest = hashlib.sha256(json.dumps([self.rm.backbone, self.rm.pooling, self.rm.max_length]).encode())
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
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"features": features.contiguous()}, tmp)
        tmp.replace(path)
    return dict(zip(unique, features))


def save_heads(heads: GroupHeads, out_dir: Path, groups: list[str], rm: RewardModelConfig, extra: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in heads.state_dict().items()}, out_dir / "heads.safetensors")
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
        **extra,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))


def load_heads(model_dir: Path) -> tuple[GroupHeads, dict]:
    config = json.loads((model_dir / "config.json").read_text())
    heads = GroupHeads(
        config["method"], config["dim"], len(config["groups"]), config["k"], config.get("simplex", False)
    )
    heads.load_state_dict(load_file(model_dir / "heads.safetensors"))
    return heads.eval(), config


class MinOverGroupsReward:
    """GRPO reward for a learned model: one backbone pass per batch, then min over the group heads."""

    def __init__(
        self, model_dir: Path, rm: RewardModelConfig, device: str = "cpu", extractor: FeatureExtractor | None = None
    ):
        self.heads, self.config = load_heads(model_dir)
        self.extractor = extractor or FeatureExtractor(rm, device)
        self.text_format = self.config["text_format"]
        self.__name__ = f"min_over_groups_{self.config['method']}"

    def rewards(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        texts = [format_scored_text(self.text_format, p, r) for p, r in zip(prompts, responses, strict=True)]
        with torch.no_grad():
            return self.heads.min_reward(self.extractor(texts)).numpy()

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        return self.rewards(*chat_to_hh(prompts, completions)).tolist()


def pair_tensors(
    pairs, features: dict[str, torch.Tensor], text_format: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(chosen φ, rejected φ, group ids) for a preference DataFrame."""
    chosen = torch.stack(
        [features[format_scored_text(text_format, p, r)] for p, r in zip(pairs["prompt"], pairs["chosen"])]
    )
    rejected = torch.stack(
        [features[format_scored_text(text_format, p, r)] for p, r in zip(pairs["prompt"], pairs["rejected"])]
    )
    return chosen, rejected, torch.tensor(np.asarray(pairs["group_id"]).tolist(), dtype=torch.long)
