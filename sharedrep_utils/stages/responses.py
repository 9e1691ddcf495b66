"""Stage 2a (once per profile): two sampled responses per training prompt from the SFT policy,
each scored by every gold trait. Output: responses/responses.parquet."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from .. import distributed
from ..config import Config
from ..distributed import stage_output  # only the main process writes under accelerate launch
from ..gold import GoldScorer
from ..groups import disagreement
from ..hh_data import load_hh, take_counted
from ..launcher import command_line
from ..policy import generate, load_policy, pick_device
from ..runs import is_done, locked, require, responses_dir, sft_dir


def params(cfg: Config) -> dict:
    return {
        "sft": require(sft_dir(cfg.run_path), "01_sft")["params_hash"],
        "n_preference_prompts": cfg.data.n_preference_prompts,
        "generation": asdict(cfg.generation),
        "traits": {name: asdict(t) for name, t in cfg.gold.traits.items()},
        "gold_text": cfg.gold.text,
        **({"gold_dtype": cfg.gold.dtype} if cfg.gold.dtype != "float32" else {}),  # added later: see grpo.params
        "keep_run_on": keep_run_on(cfg),
        "seed": cfg.seed,
    }


def keep_run_on(cfg: Config) -> bool:
    """Responses are stored as generated (run-on turns kept) when a scorer reads upstream's chat text;
    the HH text cuts them when it is built (`hh_data.scorer_texts`)."""
    return "chat" in (cfg.gold.text, cfg.reward_model.text)


# done: read without the lock, as every 02 run of a parallel sweep does at the same time
@locked("02_preference_data (responses)", lambda cfg: responses_dir(cfg.run_path),
        done=lambda cfg: is_done(responses_dir(cfg.run_path), params(cfg)))  # fmt: skip
def main(cfg: Config) -> pd.DataFrame:
    out, p = responses_dir(cfg.run_path), params(cfg)
    if is_done(out, p):
        print(f"[responses] already done: {out}")
        return pd.read_parquet(out / "responses.parquet")
    device = pick_device(cfg)
    data = load_hh(cfg.data, cfg.hh_dir())
    prompts, drawn = take_counted(
        data.train, cfg.data.n_preference_prompts, "data.n_preference_prompts", "train prompts",
        echo=distributed.is_main(),
    )  # fmt: skip
    model, tokenizer = load_policy(sft_dir(cfg.run_path) / "model", cfg.policy, device)
    gen = cfg.generation
    # under accelerate launch each process samples a contiguous shard; gathered back in prompt order
    samples = distributed.map_in_order(
        lambda shard, start, model=model: generate(  # model bound now: it is deleted below
            model,
            tokenizer,
            shard,
            max_new_tokens=gen.max_new_tokens,
            batch_size=gen.batch_size,
            do_sample=True,
            temperature=gen.temperature,
            top_p=gen.top_p,
            top_k=gen.top_k,
            num_return_sequences=2,
            seed=cfg.seed + start,
            chat_template=gen.chat_template,
            keep_run_on=keep_run_on(cfg),
        ),
        [e.prompt for e in prompts],
    )
    del model
    table = pd.DataFrame(
        {
            "prompt_id": [e.prompt_id for e in prompts],
            "prompt": [e.prompt for e in prompts],
            "response_0": [s[0] for s in samples],
            "response_1": [s[1] for s in samples],
        }
    )
    scorer = GoldScorer(cfg.gold, device, chat_tokenizer=tokenizer)
    for i in (0, 1):
        scored = distributed.map_columns(scorer.traits, list(table["prompt"]), list(table[f"response_{i}"]))
        for trait, values in scored.items():
            table[f"{trait}_{i}"] = values
    inputs = {**data.files, "sft_model": sft_dir(cfg.run_path) / "model"}
    with stage_output(out, "responses", p, seed=cfg.seed, inputs=inputs) as stage:
        table.to_parquet(stage["path"] / "responses.parquet", index=False)
        stage["extra"].update(
            n_prompts=len(table),
            prompts=drawn,
            group_disagreement=disagreement(table, list(cfg.gold.traits), cfg.gold.groups),
            identical_pairs=int((table["response_0"] == table["response_1"]).sum()),
            data_warning=data.warning,
            skipped_rows=dict(data.skipped),
        )
    return table


if __name__ == "__main__":
    command_line(main)
