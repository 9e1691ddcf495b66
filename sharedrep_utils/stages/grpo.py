"""Stage 4 (per policy): GRPO from the SFT policy with TRL's GRPOTrainer.

Reward = min over groups: of the learned group heads (maxmin, sharedrep-k<K>, uniform: one
backbone pass per batch for all heads), or of the gold group scores for the `gold` oracle policy.
Output: the policy's stage directory with model/ and training_log.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from .. import calibration
from ..config import Config
from ..distributed import is_main, stage_output  # only the main process writes under accelerate launch
from ..hh_data import load_hh, take_counted, to_messages
from ..launcher import command_line
from ..methods import check_policy
from ..policy import load_tokenizer, pick_device
from ..rewards import reward_function
from ..runs import is_done, locked, policy_dir, read_manifest, require, rm_dir, sft_dir
from ..training import trainer_arguments

# settings added after runs were made, at their defaults: left out of the hash (params)
LATER_DEFAULTS = {"use_bias_correction_kl": True, "gold_reward_text": "scored"}


def params(cfg: Config, seed: int, proportion: float | None, method: str) -> dict:
    check_policy(method, ["gold", *cfg.policy_methods()])
    upstream = (
        {
            "gold": {"traits": {n: asdict(t) for n, t in cfg.gold.traits.items()}, "groups": cfg.gold.groups},
            "gold_text": cfg.gold.text,
            **({"gold_dtype": cfg.gold.dtype} if cfg.gold.dtype != "float32" else {}),
        }
        if method == "gold"
        else {"rm": require(rm_dir(cfg.run_path, seed, proportion), "03_reward_models")["params_hash"]}
    )
    # the calibrated min (calibration.py) only when on: a switch that is off changes no existing hash
    calibrated = {"calibration": asdict(cfg.calibration)} if cfg.calibration.mode != "none" and method != "gold" else {}
    # settings added later enter the hash only when changed, so runs made before them keep their hashes
    grpo = {k: v for k, v in asdict(cfg.grpo).items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}
    if method != "gold":  # only the gold reward reads it: a learned-reward policy does not rerun for it
        grpo.pop("gold_reward_text", None)
    return {
        "sft": require(sft_dir(cfg.run_path), "01_sft")["params_hash"],
        **upstream,
        **calibrated,
        "grpo": grpo,
        "n_grpo_prompts": cfg.data.n_grpo_prompts or cfg.data.n_preference_prompts,
        "method": method,
        "seed": seed,
        "proportion": None if method == "gold" else proportion,
    }


def grpo_arguments(cfg: Config, device: str, seed: int, output_dir, **changes):
    """TRL's GRPOConfig for this profile (what the stage and `sharedrep bench`'s grpo_step train with);
    `changes` override single fields."""
    from trl import GRPOConfig

    g = cfg.grpo
    fields = dict(
        learning_rate=g.learning_rate,
        num_train_epochs=g.num_train_epochs,
        max_steps=g.max_steps,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.num_generations,
        beta=g.beta,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        logging_steps=g.logging_steps,
        loss_type=g.loss_type,
        use_bias_correction_kl=g.use_bias_correction_kl,
        model_init_kwargs={"trust_remote_code": cfg.policy.trust_remote_code},
    )
    common = {**trainer_arguments(device, seed, output_dir, g.trainer_kwargs), **changes}
    return GRPOConfig(**common, **{k: v for k, v in fields.items() if k not in changes})


@locked("04_grpo", lambda cfg, seed, proportion, method: policy_dir(cfg.run_path, seed, proportion, method))
def main(cfg: Config, seed: int, proportion: float | None, method: str) -> list[dict]:
    """Trains the policy (unless done); returns TRL's log history."""
    from datasets import Dataset
    from trl import GRPOTrainer

    if method == "gold":
        proportion = None
    out, p = policy_dir(cfg.run_path, seed, proportion, method), params(cfg, seed, proportion, method)
    if is_done(out, p):
        print(f"[grpo] already done: {out}")
        return read_manifest(out)["log_history"]
    device = pick_device(cfg)
    data = load_hh(cfg.data, cfg.hh_dir())
    setting = "data.n_grpo_prompts" if cfg.data.n_grpo_prompts else "data.n_preference_prompts"
    prompts, drawn = take_counted(
        data.train, cfg.data.n_grpo_prompts or cfg.data.n_preference_prompts, setting, "GRPO train prompts",
        echo=is_main(),
    )  # fmt: skip
    dataset = Dataset.from_list([{"prompt": to_messages(e.prompt), "prompt_id": e.prompt_id} for e in prompts])
    sft_model = sft_dir(cfg.run_path) / "model"
    tokenizer = load_tokenizer(sft_model, cfg.policy)
    inputs = {**data.files, "sft_model": sft_model}
    if method != "gold":
        inputs["reward_heads"] = rm_dir(cfg.run_path, seed, proportion) / method
    with stage_output(out, "grpo", p, seed=seed, inputs=inputs) as stage:
        args = grpo_arguments(cfg, device, seed, stage["path"] / "trainer")
        reward = reward_function(cfg, seed, proportion, method, device, tokenizer, fit_calibration=True)
        if getattr(reward, "calibration", None) is not None:  # recorded with the policy; evaluation reads it
            calibration.write(reward.calibration, stage["path"])
            stage["extra"]["calibration"] = reward.calibration
        trainer = GRPOTrainer(
            model=str(sft_model),  # a path, so TRL can build the reference model from it
            reward_funcs=[reward],
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        trainer.train()
        trainer.save_model(str(stage["path"] / "model"))
        # Trainer pickles its arguments there; the manifest holds them, and a run keeps no pickles
        (stage["path"] / "model" / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(str(stage["path"] / "model"))
        (stage["path"] / "training_log.json").write_text(json.dumps(trainer.state.log_history, indent=2))
        stage["extra"].update(
            log_history=trainer.state.log_history,
            n_prompts=len(prompts),
            prompts=drawn,
            generation_backend="vllm" if args.use_vllm else "transformers",  # vLLM falls back when not installed
        )
    return read_manifest(out)["log_history"]


if __name__ == "__main__":
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", required=True)
    pre.add_argument("--proportion", default=None)  # gold is per seed: a proportion given for it is ignored
    known, rest = pre.parse_known_args()
    if known.method == "gold":
        command_line(lambda cfg, seed: main(cfg, seed, None, "gold"), rest, seed=int)
    else:
        rest += ["--proportion", known.proportion] if known.proportion is not None else []
        command_line(
            lambda cfg, seed, proportion: main(cfg, seed, proportion, known.method), rest, seed=int, proportion=float
        )
