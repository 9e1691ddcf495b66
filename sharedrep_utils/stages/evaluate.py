"""Stage 5 (per policy): completions on held-out HH prompts (greedy by default), gold trait and
group scores. Output: eval/<policy-id>.parquet (+ .manifest.json)."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from ..config import Config
from ..gold import GoldScorer
from ..hh_data import load_hh, take
from ..policy import generate, load_policy, pick_device
from ..runs import eval_file, is_done, policy_dir, policy_id, require, stage_output
from . import command_line
from .grpo import check_method


def params(cfg: Config, seed: int | None, proportion: float | None, method: str) -> dict:
    if method != "sft":
        check_method(cfg, method)
    made_by = "01_sft" if method == "sft" else "04_grpo"
    return {
        "policy": require(policy_dir(cfg.run_path, seed, proportion, method), made_by)["params_hash"],
        "evaluation": asdict(cfg.evaluation),
        "n_eval_prompts": cfg.data.n_eval_prompts,
        "traits": {n: asdict(t) for n, t in cfg.gold.traits.items()},
        "groups": cfg.gold.groups,
        "seed": seed,
    }


def normalise(seed: int | None, proportion: float | None, method: str) -> tuple[int | None, float | None]:
    if method == "sft":
        return None, None
    if method == "gold":
        return seed, None
    return seed, proportion


def main(cfg: Config, seed: int | None, proportion: float | None, method: str) -> pd.DataFrame:
    seed, proportion = normalise(seed, proportion, method)
    pid = policy_id(seed, proportion, method)
    out, p = eval_file(cfg.run_path, pid), params(cfg, seed, proportion, method)
    if is_done(out, p):
        print(f"[evaluate] already done: {out}")
        return pd.read_parquet(out)
    device = pick_device(cfg)
    data = load_hh(cfg.data, cfg.hh_dir())
    prompts = take(data.test, cfg.data.n_eval_prompts)
    model, tokenizer = load_policy(policy_dir(cfg.run_path, seed, proportion, method) / "model", cfg.policy, device)
    ev = cfg.evaluation
    completions = generate(
        model,
        tokenizer,
        [e.prompt for e in prompts],
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        do_sample=ev.do_sample,
        seed=seed or 0,
    )
    del model
    table = pd.DataFrame(
        {
            "prompt_id": [e.prompt_id for e in prompts],
            "prompt": [e.prompt for e in prompts],
            "completion": [c[0] for c in completions],
        }
    )
    scorer = GoldScorer(cfg.gold, device)
    traits = scorer.traits(list(table["prompt"]), list(table["completion"]))
    for name, values in traits.items():
        table[f"trait_{name}"] = values
    for name, values in scorer.groups(traits).items():
        table[f"group_{name}"] = values
    table["policy_id"], table["method"], table["seed"], table["proportion"] = pid, method, seed, proportion
    table["do_sample"], table["max_new_tokens"] = ev.do_sample, ev.max_new_tokens
    with stage_output(out, "evaluate", p, seed=seed) as stage:
        table.to_parquet(stage["path"] / out.name, index=False)
        stage["extra"].update(
            policy_id=pid, method=method, proportion=proportion, n_prompts=len(table), data_warning=data.warning
        )
    return table


if __name__ == "__main__":
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", required=True)
    pre.add_argument("--seed", type=int, default=None)
    pre.add_argument("--proportion", type=float, default=None)
    known, rest = pre.parse_known_args()
    command_line(lambda cfg: main(cfg, known.seed, known.proportion, known.method), rest)
