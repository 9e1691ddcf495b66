"""Method and policy names: the one place that builds, parses, checks and labels them.

Reward-model methods are `maxmin`, `sharedrep` and `uniform`; a policy trained on a reward model is named
after it, with SharedRep's rank in the name (`sharedrep-k16`). Two reference policies have no reward model:
`gold` (GRPO on the gold group scores) and `sft` (no RLHF).
"""

from __future__ import annotations

import math

from .errors import ConfigError

METHODS = ("maxmin", "sharedrep", "uniform")  # reward-model methods
REFERENCES = ("gold", "sft")  # policies without a learned reward model
NAMES = {"maxmin": "MaxMin", "sharedrep": "SharedRep", "uniform": "Uniform", "gold": "Gold", "sft": "SFT"}
ORDER = [*METHODS, *REFERENCES]  # display order


def policy_name(method: str, k: int | None = None) -> str:
    """("sharedrep", 16) -> "sharedrep-k16"; other methods by their own name."""
    return f"sharedrep-k{k}" if method == "sharedrep" else method


def policy_names(methods: list[str], ks: list[int]) -> list[str]:
    """The reward-model-driven policies of a run: maxmin, sharedrep-k<K> for each K, uniform (in `methods` order)."""
    names: list[str] = []
    for method in methods:
        names += [policy_name(method, k) for k in ks] if method == "sharedrep" else [method]
    return names


def split_method(name: str) -> tuple[str, int | None]:
    """ "sharedrep-k16" -> ("sharedrep", 16); other names have no K."""
    if name.startswith("sharedrep-k"):
        return "sharedrep", int(name.removeprefix("sharedrep-k"))
    return name, None


def check_policy(name: str, allowed: list[str]) -> None:
    """A policy name given by a person (notebook, command line): one line naming what is allowed."""
    if name not in allowed:
        raise ConfigError(f"Unknown policy method {name!r}; allowed: {', '.join(allowed)}.")


def _rank(k) -> int | None:
    """K as an int, or None for "no K" however a table spells it (None, NaN, pandas' NA)."""
    try:
        value = float(k)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else int(value)


def method_label(method: str, k=None) -> str:
    """ "sharedrep", 2 -> "SharedRep (K=2)"; methods without K by their display name."""
    name = NAMES.get(method, method)
    return name if _rank(k) is None else f"{name} (K={_rank(k)})"


def display_order(keys: list[tuple[str, int | None]]) -> list[tuple[str, int | None]]:
    """(method, k) pairs in display order: MaxMin, SharedRep by K, Uniform, Gold, SFT, then others."""
    rank = {m: i for i, m in enumerate(ORDER)}

    def key(item: tuple[str, int | None]):
        method, k = item
        return rank.get(method, 99), method, _rank(k) or 0

    return sorted(keys, key=key)


def rank_notice(cfg) -> str | None:  # cfg: a config.Config (config.py imports this module, so no import here)
    """One line when SharedRep's rank K constrains nothing: with U groups and K >= U, Linear(d, K) then
    Linear(K, U) can express any U linear heads (synthetic.py), so a SharedRep-MaxMin gap at that K can only
    come from optimisation (with free mixing weights, the default; simplex mixing only approaches it). Names the
    Ks below U when only some are; None when every K < U or the run has no SharedRep."""
    if "sharedrep" not in cfg.reward_model.methods:
        return None
    groups, ks = len(cfg.gold.groups), sorted(cfg.reward_model.ks)
    free = [k for k in ks if k >= groups]
    if not free:
        return None
    spell = ", ".join(map(str, free))
    line = (
        f"K >= U: with U = {groups} groups, SharedRep's rank K = {spell} constrains nothing (any {groups} linear "
        f"heads are expressible), so a SharedRep-MaxMin gap there can only come from optimisation"
    )
    constrained = [k for k in ks if k < groups]
    if constrained:
        return line + f"; only K = {', '.join(map(str, constrained))} (< U) constrains the heads."
    return line + "."
