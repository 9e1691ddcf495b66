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
