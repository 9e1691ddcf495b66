"""Stage 5 (per policy): completions on held-out HH prompts (greedy by default), gold trait and
group scores. Output: eval/<policy-id>.parquet (+ .manifest.json).

A GRPO policy's completions are also scored with the reward it was trained on (`training_reward`: the
same function the trainer called, so the learned min over heads, or the gold min), and so are the SFT
policy's completions on the same prompts (`sft_training_reward`, when the SFT policy has been evaluated
first, as the sweep does): the before/after of RL on held-out prompts, per prompt.

Prompts: the first `data.n_eval_prompts` held-out prompts by prompt id, the same for every policy and
seed; with `evaluation.prompts_per_seed` (the upstream's way), a seed's policies (gold included) take
the first n after a shuffle seeded by that seed, and the SFT policy (no seed) keeps the fixed prompts,
so its win rate against a seed's gold policy covers the prompt ids both hold. Fewer prompts than asked
is said in one line and recorded in the manifest (`prompts`: asked, available, used).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from .. import distributed
from ..config import Config
from ..distributed import stage_output  # only the main process writes under accelerate launch
from ..gold import GoldScorer
from ..hh_data import load_hh, take_counted
from ..launcher import command_line
from ..methods import check_policy
from ..policy import generate, load_policy, pick_device
from ..rewards import reward_function, training_reward
from ..runs import eval_file, is_done, locked, policy_dir, policy_id, read_manifest, require


def params(cfg: Config, seed: int | None, proportion: float | None, method: str) -> dict:
    check_policy(method, ["sft", "gold", *cfg.policy_methods()])
    made_by = "01_sft" if method == "sft" else "04_grpo"
    sft_eval = None if method == "sft" else read_manifest(output_file(cfg, None, None, "sft"))
    return {
        "sft_eval": sft_eval["params_hash"] if sft_eval else None,  # scored with this policy's reward
        "policy": require(policy_dir(cfg.run_path, seed, proportion, method), made_by)["params_hash"],
        "evaluation": asdict(cfg.evaluation),
        "n_eval_prompts": cfg.data.n_eval_prompts,
        "traits": {n: asdict(t) for n, t in cfg.gold.traits.items()},
        "groups": cfg.gold.groups,
        "gold_text": cfg.gold.text,
        # settings added later enter only when changed, so runs made before them keep their hashes
        **({"gold_dtype": cfg.gold.dtype} if cfg.gold.dtype != "float32" else {}),
        **({"chat_template": False} if not cfg.generation.chat_template else {}),
        "seed": seed,
    }


def generation_settings(ev) -> dict:
    """The decoding settings stored with every completion (sampling fields only when sampling)."""
    return {
        "do_sample": ev.do_sample,
        "temperature": ev.temperature if ev.do_sample else None,
        "top_p": ev.top_p if ev.do_sample else None,
        "generation_seed": ev.seed if ev.do_sample else None,
        "max_new_tokens": ev.max_new_tokens,
    }


def eval_prompts(cfg: Config, data, seed: int | None) -> tuple[list, dict]:
    """The held-out prompts a policy of this seed is evaluated on, and the record of their count."""
    draw = seed if cfg.evaluation.prompts_per_seed else None
    return take_counted(
        data.test, cfg.data.n_eval_prompts, "data.n_eval_prompts", "held-out prompts", draw, echo=distributed.is_main()
    )


def normalise(seed: int | None, proportion: float | None, method: str) -> tuple[int | None, float | None]:
    if method == "sft":
        return None, None
    if method == "gold":
        return seed, None
    return seed, proportion


def output_file(cfg: Config, seed: int | None, proportion: float | None, method: str):
    return eval_file(cfg.run_path, policy_id(*normalise(seed, proportion, method), method))


def sft_training_reward(cfg: Config, reward, table: pd.DataFrame) -> np.ndarray:
    """`reward` of the SFT policy's completions on this table's prompts (matched by id; NaN where the SFT
    evaluation lacks the prompt, or all NaN with one line when it has not been run)."""
    path = output_file(cfg, None, None, "sft")
    if not path.is_file():
        print(f"[evaluate] {path} not found: run 05_evaluate for sft first to compare with the SFT policy.")
        return np.full(len(table), np.nan)
    sft = pd.read_parquet(path).set_index("prompt_id").reindex(table["prompt_id"])
    known = sft["completion"].notna().to_numpy()
    values = np.full(len(table), np.nan)
    if known.any():
        values[known] = distributed.map_columns(
            lambda p, c: {"r": training_reward(reward, p, c)},
            list(table["prompt"][known]),
            list(sft["completion"][known]),
        )["r"]
    return values


@locked("05_evaluate", output_file)
def main(cfg: Config, seed: int | None, proportion: float | None, method: str) -> pd.DataFrame:
    seed, proportion = normalise(seed, proportion, method)
    pid = policy_id(seed, proportion, method)
    out, p = eval_file(cfg.run_path, pid), params(cfg, seed, proportion, method)
    if is_done(out, p):
        print(f"[evaluate] already done: {out}")
        return pd.read_parquet(out)
    device = pick_device(cfg)
    data = load_hh(cfg.data, cfg.hh_dir())
    prompts, drawn = eval_prompts(cfg, data, seed)
    model, tokenizer = load_policy(policy_dir(cfg.run_path, seed, proportion, method) / "model", cfg.policy, device)
    ev = cfg.evaluation
    # under accelerate launch each process generates a contiguous shard; gathered back in prompt order
    completions = distributed.map_in_order(
        lambda shard, start, model=model: generate(  # model bound now: it is deleted below
            model,
            tokenizer,
            shard,
            max_new_tokens=ev.max_new_tokens,
            batch_size=ev.batch_size,
            do_sample=ev.do_sample,
            temperature=ev.temperature,
            top_p=ev.top_p,
            seed=ev.seed + start,  # one sampling seed for every policy: differences come from the policies
            chat_template=cfg.generation.chat_template,  # false: upstream's --disable_chat_template, here too
            keep_run_on=cfg.gold.text == "chat",  # upstream's chat text keeps run-on turns (docs/deviations.md)
        ),
        [e.prompt for e in prompts],
    )
    del model
    table = pd.DataFrame(
        {
            "prompt_id": [e.prompt_id for e in prompts],  # policies are matched by this id, never by text
            "prompt": [e.prompt for e in prompts],
            "completion": [c[0] for c in completions],
        }
    )
    scorer = GoldScorer(cfg.gold, device, chat_tokenizer=tokenizer)
    traits = distributed.map_columns(scorer.traits, list(table["prompt"]), list(table["completion"]))
    for name, values in traits.items():
        table[f"trait_{name}"] = values
    for name, values in scorer.groups(traits).items():
        table[f"group_{name}"] = values
    if method != "sft":
        reward = reward_function(cfg, seed, proportion, method, device, tokenizer, gold_scorer=scorer)
        table["training_reward"] = distributed.map_columns(
            lambda p, c: {"r": training_reward(reward, p, c)}, list(table["prompt"]), list(table["completion"])
        )["r"]
        table["sft_training_reward"] = sft_training_reward(cfg, reward, table)
        del reward
    table["policy_id"], table["method"], table["seed"], table["proportion"] = pid, method, seed, proportion
    for key, value in generation_settings(ev).items():
        table[key] = value
    if table["prompt_id"].duplicated().any():
        raise ValueError(f"{pid}: duplicate prompt ids in the evaluation prompts; policies could not be matched.")
    inputs = {**data.files, "policy_model": policy_dir(cfg.run_path, seed, proportion, method) / "model"}
    with stage_output(out, "evaluate", p, seed=seed, inputs=inputs) as stage:
        table.to_parquet(stage["path"] / out.name, index=False)
        stage["extra"].update(
            policy_id=pid,
            method=method,
            proportion=proportion,
            n_prompts=len(table),
            prompts=drawn,
            data_warning=data.warning,
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
