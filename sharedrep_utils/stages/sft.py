"""Stage 1: supervised fine-tuning of the chat policy on HH chosen dialogues (TRL SFTTrainer).

Rows are conversational prompt/completion pairs, so TRL's completion-only loss trains on the
assistant's reply alone (assistant-only loss for single-turn dialogues).
"""

from __future__ import annotations

import math
from dataclasses import asdict

from .. import distributed
from ..config import Config
from ..distributed import stage_output  # only the main process writes under accelerate launch
from ..hh_data import load_hh, take, to_messages
from ..launcher import command_line
from ..policy import TINY, build_tiny_policy, load_tokenizer, pick_device
from ..runs import is_done, locked, read_manifest, sft_dir
from ..training import trainer_arguments


def params(cfg: Config) -> dict:
    data = asdict(cfg.data)
    sft = asdict(cfg.sft)
    if sft["model_dtype"] == "float32":  # added later: the default keeps the hashes of runs made before it
        del sft["model_dtype"]
    return {
        "data": data,
        "hh_dir": cfg.hh_dir(),
        "policy": asdict(cfg.policy),
        "sft": sft,
        "seed": cfg.seed,
    }


def logging_steps(n_examples: int, cfg: Config, points: int = 20) -> int:
    """About `points` loss readings over the whole run, whatever its length."""
    per_epoch = math.ceil(n_examples / (cfg.sft.per_device_train_batch_size * cfg.sft.gradient_accumulation_steps))
    total = cfg.sft.max_steps if cfg.sft.max_steps > 0 else math.ceil(per_epoch * cfg.sft.num_train_epochs)
    return max(1, total // points)


def sft_dataset(examples):
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": to_messages(e.prompt), "completion": [{"role": "assistant", "content": e.chosen}]}
            for e in examples
        ]
    )


def sft_arguments(cfg: Config, device: str, output_dir, n_examples: int, **changes):
    """TRL's SFTConfig for this profile (what the stage and `sharedrep bench`'s sft_step train with);
    `changes` override single fields."""
    from trl import SFTConfig

    fields = dict(
        learning_rate=cfg.sft.learning_rate,
        num_train_epochs=cfg.sft.num_train_epochs,
        max_steps=cfg.sft.max_steps,
        per_device_train_batch_size=cfg.sft.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.sft.gradient_accumulation_steps,
        max_length=cfg.sft.max_length,
        completion_only_loss=True,
        logging_steps=logging_steps(n_examples, cfg),
        # the weights' dtype (TRL 1.16 loads float32 unless told): bfloat16 = upstream's bf16 weights and AdamW state
        model_init_kwargs={"trust_remote_code": cfg.policy.trust_remote_code, "dtype": cfg.sft.model_dtype},
    )
    common = {**trainer_arguments(device, cfg.seed, output_dir, cfg.sft.trainer_kwargs), **changes}
    return SFTConfig(**common, **{k: v for k, v in fields.items() if k not in changes})


@locked("01_sft", lambda cfg: sft_dir(cfg.run_path))
def main(cfg: Config) -> dict:
    from trl import SFTTrainer

    out, p = sft_dir(cfg.run_path), params(cfg)
    if is_done(out, p):
        print(f"[sft] already done: {out}")
        return read_manifest(out)
    data = load_hh(cfg.data, cfg.hh_dir())
    examples = take(data.train, cfg.data.n_sft)
    device = pick_device(cfg)
    with stage_output(out, "sft", p, seed=cfg.seed, inputs=data.files) as stage:
        model_path = cfg.policy.model
        if model_path == TINY:  # built once, by the main process, where every process reads it
            if distributed.is_main():
                texts = [e.prompt + "\n\n" + e.chosen for e in data.train]
                build_tiny_policy(cfg.policy, texts, stage["path"] / "init", cfg.seed)
            distributed.wait()
            model_path = str(stage["shared"] / "init")
        tokenizer = load_tokenizer(model_path, cfg.policy)
        args = sft_arguments(cfg, device, stage["path"] / "trainer", len(examples))
        trainer = SFTTrainer(
            model=model_path, args=args, train_dataset=sft_dataset(examples), processing_class=tokenizer
        )
        result = trainer.train()
        # TinyLlama-Chat's generation_config carries max_length 2048: GRPO, which loads this checkpoint, would
        # log "both max_new_tokens and max_length set" at every step (10K lines per policy at paper scale)
        trainer.model.generation_config.max_length = None
        trainer.save_model(str(stage["path"] / "model"))
        # Trainer pickles its arguments there; the manifest holds them, and a run keeps no pickles
        (stage["path"] / "model" / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(str(stage["path"] / "model"))
        stage["extra"].update(
            data_source=data.source,
            data_warning=data.warning,
            skipped_rows=dict(data.skipped),
            n_train_dialogues=len(examples),
            n_train_available=len(data.train),
            n_heldout_available=len(data.test),
            train_loss=result.training_loss,
            log_history=trainer.state.log_history,
        )
    return read_manifest(out)


if __name__ == "__main__":
    command_line(main)
