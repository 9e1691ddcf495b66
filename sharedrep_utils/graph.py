"""The sweep as an explicit graph of stage runs: each node is one notebook execution (one stage run for one
seed × proportion × method), with the labels of the nodes it waits for. Every executor (one kernel, a local
process pool, SLURM) runs this same graph; `sharedrep plan` prints it.

SFT → responses (made by the first 02 run) → preferences + reward models per seed × p → one GRPO run per
policy → one evaluation per policy (after SFT's, whose scores the others' manifests name) → results.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .runs import (
    eval_file,
    is_done,
    policy_dir,
    policy_id,
    preferences_dir,
    prop_name,
    responses_dir,
    results_dir,
    rm_dir,
    sft_dir,
)


@dataclass(frozen=True)
class StageRun:
    """What a worker needs to execute one node: plain data, so it pickles to a process or a SLURM job."""

    label: str
    notebook: str
    parameters: dict[str, Any] = field(hash=False)


@dataclass
class Node:
    run: StageRun
    needs: tuple[str, ...]
    done: Callable[[], bool]  # checked just before the node would run: its inputs' manifests exist by then

    @property
    def label(self) -> str:
        return self.run.label


def _done(target: Path, make_params: Callable[[], dict]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return is_done(target, make_params())
        except FileNotFoundError:  # an input is missing: not done
            return False

    return check


def build_graph(cfg: Config, base: dict[str, Any]) -> list[Node]:
    """Every stage run of the sweep with what it waits for, in an order that respects those waits (the serial
    order). `base` (profile, overrides) goes to every notebook."""
    # the stages' parameter functions say when a stage run is done; imported here, so that a pool worker that
    # only executes notebooks does not import torch and TRL for nothing
    from .stages import evaluate, grpo, preferences, responses, results, reward_models, sft

    run = cfg.run_path
    nodes = [Node(StageRun("01_sft", "01_sft", base), (), _done(sft_dir(run), lambda: sft.params(cfg)))]
    seeds, props = cfg.sweep.seeds, cfg.sweep.proportions
    first_prefs = None  # the 02 run that also samples the responses every other 02 run reads
    for seed in seeds:
        for prop in props:
            label = f"02_preference_data-seed{seed}-{prop_name(prop)}"

            def prefs_done(seed=seed, prop=prop) -> bool:
                return (
                    _done(responses_dir(run), lambda: responses.params(cfg))()
                    and _done(preferences_dir(run, seed, prop), lambda: preferences.params(cfg, seed, prop))()
                )

            params = {**base, "seed": seed, "proportion": prop}
            nodes.append(Node(StageRun(label, "02_preference_data", params), (first_prefs or "01_sft",), prefs_done))
            first_prefs = first_prefs or label
    for seed in seeds:
        for prop in props:
            tag = f"seed{seed}-{prop_name(prop)}"
            params = {**base, "seed": seed, "proportion": prop}
            done = _done(rm_dir(run, seed, prop), lambda s=seed, p=prop: reward_models.params(cfg, s, p))
            nodes.append(Node(StageRun(f"03_reward_models-{tag}", "03_reward_models", params),
                              (f"02_preference_data-{tag}",), done))  # fmt: skip
    policies = results.planned_policies(cfg)
    for seed, prop, method in policies:
        if method == "sft":
            continue
        pid = policy_id(seed, prop, method)
        needs = ("01_sft",) if method == "gold" else (f"03_reward_models-seed{seed}-{prop_name(prop)}",)
        done = _done(policy_dir(run, seed, prop, method), lambda s=seed, p=prop, m=method: grpo.params(cfg, s, p, m))
        params = {**base, "seed": seed, "proportion": prop, "method": method}
        nodes.append(Node(StageRun(f"04_grpo-{pid}", "04_grpo", params), needs, done))
    sft_eval = None
    for seed, prop, method in policies:
        pid = policy_id(seed, prop, method)
        needs = ("01_sft",) if method == "sft" else (f"04_grpo-{pid}",) + ((sft_eval,) if sft_eval else ())
        done = _done(eval_file(run, pid), lambda s=seed, p=prop, m=method: evaluate.params(cfg, s, p, m))
        params = {**base, "seed": seed, "proportion": prop, "method": method}
        nodes.append(Node(StageRun(f"05_evaluate-{pid}", "05_evaluate", params), needs, done))
        sft_eval = f"05_evaluate-{pid}" if method == "sft" else sft_eval
    nodes += variant_nodes(cfg, base)
    # results read every evaluation (every variant's: the contrasts) and, for their accuracy table and curves, the
    # reward models and GRPO logs
    upstream = tuple(n.label for n in nodes if n.run.notebook in ("03_reward_models", "05_evaluate"))
    nodes.append(Node(StageRun("06_results", "06_results", base), upstream,
                      _done(results_dir(run), lambda: results.params(cfg))))  # fmt: skip
    check_graph(nodes)
    return nodes


def variant_nodes(cfg: Config, base: dict[str, Any]) -> list[Node]:
    """The stage runs of every budget × calibration variant but the run's own (variants.py): reward models (unless
    shared with its budget's first variant), GRPO and evaluation of each learned-reward policy, and its results.
    They wait for the run's own preference data, reward models (which fill the feature cache) and SFT evaluation."""
    from . import variants
    from .stages import evaluate, grpo, results, reward_models

    nodes: list[Node] = []
    for budget, mode, vcfg in variants.others(cfg):
        run, tag_of = vcfg.run_path, (lambda label, b=budget, m=mode: variants.label(label, b, m))
        vbase = {**base, "overrides": {**base.get("overrides", {}), **variants.overrides(cfg, budget, mode)}}
        source = variants.rm_source(cfg, budget)
        own_rms = [(s, p) for s in cfg.sweep.seeds for p in cfg.sweep.proportions] if source == (budget, mode) else []
        for seed, prop in own_rms:  # else its reward models are its budget's first variant's
            tag = f"seed{seed}-{prop_name(prop)}"
            params = {**vbase, "seed": seed, "proportion": prop}
            done = _done(rm_dir(run, seed, prop), lambda s=seed, p=prop, c=vcfg: reward_models.params(c, s, p))
            nodes.append(Node(StageRun(tag_of(f"03_reward_models-{tag}"), "03_reward_models", params),
                              (f"03_reward_models-{tag}",), done))  # fmt: skip
        home = variants.rm_home(cfg, budget)[1]  # None: the run's own reward models
        rm_label = (lambda label: label) if home is None else (lambda label, s=home: variants.label(label, *s))
        learned = [(s, p, m) for s, p, m in results.planned_policies(vcfg) if m not in ("gold", "sft")]
        for seed, prop, method in learned:
            pid = policy_id(seed, prop, method)
            params = {**vbase, "seed": seed, "proportion": prop, "method": method}
            target = policy_dir(run, seed, prop, method)
            done = _done(target, lambda s=seed, p=prop, m=method, c=vcfg: grpo.params(c, s, p, m))
            needs = (rm_label(f"03_reward_models-seed{seed}-{prop_name(prop)}"),)
            nodes.append(Node(StageRun(tag_of(f"04_grpo-{pid}"), "04_grpo", params), needs, done))
            done = _done(eval_file(run, pid), lambda s=seed, p=prop, m=method, c=vcfg: evaluate.params(c, s, p, m))
            needs = (tag_of(f"04_grpo-{pid}"),) + (("05_evaluate-sft",) if cfg.sweep.evaluate_sft else ())
            nodes.append(Node(StageRun(tag_of(f"05_evaluate-{pid}"), "05_evaluate", params), needs, done))
        mine = tuple(n.label for n in nodes if n.label.endswith(f".{variants.key(budget, mode)}"))
        gold = tuple(f"05_evaluate-{policy_id(s, None, 'gold')}" for s in cfg.sweep.seeds)
        nodes.append(Node(StageRun(tag_of("06_results"), "06_results", vbase), mine + gold,
                          _done(results_dir(run), lambda c=vcfg: results.params(c))))  # fmt: skip
    return nodes


def check_graph(nodes: list[Node]) -> None:
    """Every wait names an earlier node and labels are unique (so the list order is a topological one: no cycle)."""
    labels = [n.label for n in nodes]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise ValueError(f"duplicate stage runs in the sweep graph: {twice}")
    seen: set[str] = set()
    for node in nodes:
        missing = [x for x in node.needs if x not in seen]
        if missing:
            raise ValueError(f"{node.label} waits for {missing}, which do not come before it in the graph")
        seen.add(node.label)


def sorter(nodes: list[Node]) -> graphlib.TopologicalSorter:
    """The standard library's topological sorter over the graph: `get_ready()` gives what may run now."""
    return graphlib.TopologicalSorter({n.label: n.needs for n in nodes})


def describe(nodes: list[Node]) -> list[str]:
    """`sharedrep plan`'s lines: each stage run, done or to run, and what it waits for."""
    width = max(len(n.label) for n in nodes)
    lines, done = [], 0
    for i, node in enumerate(nodes, 1):
        finished = node.done()
        done += finished
        waits = ", ".join(node.needs) if node.needs else "-"
        if len(node.needs) > 4:  # results wait for every evaluation: a count reads better than 40 labels
            kinds = sorted({x.split("-")[0] for x in node.needs})
            waits = f"{len(node.needs)} runs ({', '.join(kinds)})"
        lines.append(f"{i:>3}. {node.label:<{width}}  {'done   ' if finished else 'to run '}  waits for: {waits}")
    lines.append(f"{len(nodes)} stage runs: {done} done, {len(nodes) - done} to run")
    return lines
