"""One function per benchmark entry: the kit's way against the naive way (naive.py) of the same work, run
alternately in one process (harness.alternate). The step profiles are in steps.py."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..hh_data import Example, clean_response, format_scored_text, last_user_turn, load_hh, take, to_messages
from .harness import alternate, load_average
from .naive import (
    model_context,
    naive_features,
    naive_generate,
    naive_gold_scorers,
    naive_min_over_groups,
    naive_train_heads,
    padded_tokens,
)

NAIVE_TRAINING_BATCHES = 6  # batches per head the naive training runs; its full cost is extrapolated


def bench_examples(cfg: Config, n: int) -> tuple[list[Example], str]:
    """HH train examples (the real sample when $SHAREDREP_HH_DIR is set), chosen and rejected as two responses."""
    data = load_hh(cfg.data, cfg.hh_dir())
    examples = take(data.train, n)
    if not examples:
        raise ValueError(f"No HH examples to benchmark on from {data.source}.")
    return examples, data.source


# ---------------------------------------------------------------- scoring


def reward_scoring(cfg: Config, examples: list[Example], repeats: int, device: str) -> dict:
    from ..reward_models import FeatureExtractor

    rm = cfg.reward_model
    texts = [format_scored_text(rm.text_format, e.prompt, r) for e in examples for r in (e.chosen, e.rejected)]
    extractor = FeatureExtractor(rm, device)
    pad_to = max(model_context(extractor.tokenizer, extractor.model), rm.max_length)
    results: dict[str, torch.Tensor] = {}
    extractor(texts[:4]), naive_features(extractor, texts[:4], pad_to)  # warm-up on a slice: cheap
    timing = alternate(
        {
            "ours": lambda: results.__setitem__("ours", extractor(texts)),
            "naive": lambda: results.__setitem__("naive", naive_features(extractor, texts, pad_to)),
        },
        repeats,
        warmup=False,
    )
    sizes = padded_tokens(extractor.tokenizer, texts, rm.batch_size, rm.max_length)
    return {
        "what": f"frozen backbone features ({rm.backbone}, {rm.pooling} pooling), batch {rm.batch_size}",
        **timing,
        "speedup": round(timing["naive_s"] / timing["ours_s"], 2),
        "sizes": {**sizes, "naive_padded_tokens": len(texts) * pad_to, "naive_pad_to": pad_to},
        "max_abs_diff": float((results["ours"] - results["naive"]).abs().max()),
    }


def gold_scoring(cfg: Config, examples: list[Example], repeats: int, device: str) -> tuple[dict, dict]:
    """Returns the entry and the gold traits of (chosen, rejected), which reward_training reuses."""
    from ..gold import GoldScorer

    prompts = [e.prompt for e in examples] * 2
    responses = [e.chosen for e in examples] + [e.rejected for e in examples]
    ours, naive = GoldScorer(cfg.gold, device), naive_gold_scorers(cfg, device)
    results: dict[str, dict] = {}
    ours.traits(prompts[:4], responses[:4]), [s(prompts[:4], responses[:4]) for s in naive.values()]  # warm-up
    timing = alternate(
        {
            "ours": lambda: results.__setitem__("ours", ours.traits(prompts, responses)),
            "naive": lambda: results.__setitem__("naive", {n: s(prompts, responses) for n, s in naive.items()}),
        },
        repeats,
        warmup=False,
    )
    sizes: dict[str, Any] = {"examples": len(prompts)}
    for name, trait in cfg.gold.traits.items():
        pad_to = getattr(naive[name], "pad_to", None)
        if pad_to is None:
            continue
        tokenizer = naive[name].tokenizer  # type: ignore[attr-defined]
        texts = (
            [last_user_turn(p) for p in prompts] + responses
            if trait.kind == "embedding_relevance"
            else [format_scored_text(trait.text_format, p, r) for p, r in zip(prompts, responses)]
        )
        counts = padded_tokens(tokenizer, texts, trait.batch_size, trait.max_length)
        sizes[name] = {**counts, "naive_padded_tokens": len(texts) * pad_to, "naive_pad_to": pad_to}
    diff = max(float(np.abs(results["ours"][n] - results["naive"][n]).max()) for n in cfg.gold.traits)
    entry = {
        "what": "gold traits " + ", ".join(f"{n} ({t.kind})" for n, t in cfg.gold.traits.items()),
        **timing,
        "speedup": round(timing["naive_s"] / timing["ours_s"], 2),
        "sizes": sizes,
        "max_abs_diff": diff,
    }
    n = len(examples)
    traits = {name: (values[:n], values[n:]) for name, values in results["ours"].items()}
    return entry, traits


# ---------------------------------------------------------------- reward-model training


def _preference_pairs(cfg: Config, examples: list[Example], traits: dict, seed: int, proportion: float):
    import pandas as pd

    from ..groups import build_preferences

    table = pd.DataFrame(
        {
            "prompt_id": [e.prompt_id for e in examples],
            "prompt": [e.prompt for e in examples],
            "response_0": [e.chosen for e in examples],
            "response_1": [e.rejected for e in examples],
        }
    )
    for name, (first, second) in traits.items():
        table[f"{name}_0"], table[f"{name}_1"] = first, second
    pairs, _ = build_preferences(
        table, list(cfg.gold.traits), cfg.gold.groups, cfg.gold.minority_group, proportion, seed
    )
    return table, pairs


def reward_training(
    cfg: Config,
    examples: list[Example],
    repeats: int,
    device: str,
    seed: int,
    proportion: float,
    naive_batches: int = NAIVE_TRAINING_BATCHES,
) -> dict:
    from ..gold import GoldScorer
    from ..groups import split_pairs
    from ..methods import split_method
    from ..reward_models import FeatureExtractor, pair_tensors, train_heads

    scorer = GoldScorer(cfg.gold, device)
    first = scorer.traits([e.prompt for e in examples], [e.chosen for e in examples])
    second = scorer.traits([e.prompt for e in examples], [e.rejected for e in examples])
    traits = {name: (first[name], second[name]) for name in first}
    rm = cfg.reward_model
    table, pairs = _preference_pairs(cfg, examples, traits, seed, proportion)
    train_pairs, _ = split_pairs(pairs, rm.test_fraction, seed)
    unique = sorted(
        {
            format_scored_text(rm.text_format, p, r)
            for c in ("response_0", "response_1")
            for p, r in zip(table["prompt"], table[c])
        }
    )
    n_groups = len(cfg.gold.groups)
    heads_plan = [(name, *split_method(name)) for name in cfg.policy_methods()]
    extractor = FeatureExtractor(rm, device)
    texts_c = [format_scored_text(rm.text_format, p, r) for p, r in zip(train_pairs["prompt"], train_pairs["chosen"])]
    texts_r = [format_scored_text(rm.text_format, p, r) for p, r in zip(train_pairs["prompt"], train_pairs["rejected"])]
    group_ids = torch.tensor(train_pairs["group_id"].tolist(), dtype=torch.long)
    parts: dict[str, list[float]] = {"featurise": [], "heads": []}
    per_head: dict[str, list[float]] = {name: [] for name, _, _ in heads_plan}
    batches = {
        name: -(-len(group_ids) // getattr(rm, m).batch_size) * getattr(rm, m).num_epochs for name, m, _ in heads_plan
    }
    measured = {}

    def ours() -> None:
        start = time.perf_counter()
        features = dict(zip(unique, extractor(unique)))
        middle = time.perf_counter()
        tensors = pair_tensors(train_pairs, features, rm.text_format)
        for _, method, k in heads_plan:
            train_heads(method, k, n_groups, *tensors, getattr(rm, method), seed)
        parts["featurise"].append(middle - start)
        parts["heads"].append(time.perf_counter() - middle)

    def naive() -> None:
        for name, method, k in heads_plan:
            start = time.perf_counter()
            measured[name] = naive_train_heads(
                extractor, texts_c, texts_r, group_ids, method, k, n_groups, getattr(rm, method), seed, naive_batches
            )
            per_head[name].append(time.perf_counter() - start)

    timing = alternate({"ours": ours, "naive": naive}, repeats, warmup=False)
    featurise = statistics.median(parts["featurise"])
    heads_s = statistics.median(parts["heads"])
    extrapolated = sum(statistics.median(per_head[name]) * batches[name] / measured[name] for name, _, _ in heads_plan)
    tokens = padded_tokens(extractor.tokenizer, unique, rm.batch_size, rm.max_length)
    return {
        "what": f"all heads ({', '.join(n for n, _, _ in heads_plan)}) for one seed x proportion "
        f"(seed {seed}, p={proportion}); ours = featurise unique texts once + train every head on the features",
        **timing,
        "featurise_s": round(featurise, 4),
        "heads_s": round(heads_s, 4),
        "ours_over_featurisation": round((featurise + heads_s) / featurise, 3),
        "naive_measured_batches_per_head": measured,
        "naive_batches_per_head": batches,
        "naive_extrapolated_s": round(extrapolated, 2),
        "speedup": round(extrapolated / timing["ours_s"], 1),
        "epochs": {name: getattr(rm, method).num_epochs for name, method, _ in heads_plan},
        "sizes": {
            "prompts": len(table),
            "train_pairs": len(train_pairs),
            "unique_texts": len(unique),
            "real_tokens": tokens["real_tokens"],
            "naive_texts_per_epoch_per_head": 2 * len(train_pairs),
        },
    }


# ---------------------------------------------------------------- GRPO reward


def random_heads_reward(cfg: Config, directory: Path, groups: int, seed: int, device: str, extractor=None):
    """A `MinOverGroupsReward` over randomly initialised MaxMin heads for `groups` groups (saved in `directory`):
    the GRPO reward's cost without a trained reward model."""
    from ..reward_models import GroupHeads, MinOverGroupsReward, save_heads

    rm = cfg.reward_model
    names = list(cfg.gold.groups)[:groups]
    torch.manual_seed(seed)
    dim = extractor.dim if extractor is not None else None
    if dim is None:
        from ..reward_models import FeatureExtractor

        extractor = FeatureExtractor(rm, device)
        dim = extractor.dim
    heads = GroupHeads("maxmin", dim, groups).eval()
    save_heads(heads, directory, names, rm, {})
    return MinOverGroupsReward(directory, rm, device, extractor=extractor), heads


def grpo_reward(cfg: Config, examples: list[Example], repeats: int, device: str, seed: int) -> dict:
    from ..reward_models import FeatureExtractor

    rm = cfg.reward_model
    extractor = FeatureExtractor(rm, device)
    prompts = [to_messages(e.prompt) for e in examples]
    completions = [[{"role": "assistant", "content": e.chosen}] for e in examples]
    u = len(cfg.gold.groups)
    with tempfile.TemporaryDirectory() as tmp:
        one, _ = random_heads_reward(cfg, Path(tmp) / "u1", 1, seed, device, extractor)
        every, heads = random_heads_reward(cfg, Path(tmp) / f"u{u}", u, seed, device, extractor)
    texts = [format_scored_text(rm.text_format, e.prompt, clean_response(e.chosen)) for e in examples]
    out: dict[str, list[float]] = {}
    timing = alternate(
        {
            "ours": lambda: out.__setitem__("ours", every(prompts, completions)),
            "one_group": lambda: one(prompts, completions),
            "naive": lambda: out.__setitem__("naive", naive_min_over_groups(heads, extractor, texts, u)),
        },
        repeats,
    )
    return {
        "what": f"min over {u} group heads (maxmin) for one GRPO batch of completions; "
        "one_group = the same with 1 head",
        **timing,
        "speedup": round(timing["naive_s"] / timing["ours_s"], 2),
        "two_groups_over_one": round(timing["ours_s"] / timing["one_group_s"], 3),
        "groups": u,
        "sizes": padded_tokens(extractor.tokenizer, texts, rm.batch_size, rm.max_length),
        "max_abs_diff": float(np.abs(np.asarray(out["ours"]) - np.asarray(out["naive"])).max()),
    }


# ---------------------------------------------------------------- generation


def bench_policy(cfg: Config, policy_path: str | None, examples: list[Example], workdir: Path, seed: int) -> str:
    """The policy to generate with: a given path, else the smoke profile's tiny Llama built here (random init)."""
    from ..policy import TINY, build_tiny_policy

    if policy_path:
        return policy_path
    if cfg.policy.model != TINY:
        return cfg.policy.model
    texts = [e.prompt + "\n\nAssistant: " + e.chosen for e in examples]
    return str(build_tiny_policy(cfg.policy, texts, workdir / "tiny-policy", seed))


def generation(cfg: Config, policy_path: str, examples: list[Example], repeats: int, device: str) -> dict:
    from ..policy import generate, load_policy

    model, tokenizer = load_policy(policy_path, cfg.policy, device)
    ev = cfg.evaluation
    prompts = [e.prompt for e in examples]
    pad_to = model_context(tokenizer, model) - ev.max_new_tokens
    out: dict[str, list[str]] = {}

    def ours() -> None:
        kwargs = {"max_new_tokens": ev.max_new_tokens, "batch_size": ev.batch_size, "do_sample": False}
        out["ours"] = [r[0] for r in generate(model, tokenizer, prompts, **kwargs)]

    timing = alternate(
        {
            "ours": ours,
            "naive": lambda: out.__setitem__(
                "naive", naive_generate(model, tokenizer, prompts, ev.max_new_tokens, ev.batch_size, pad_to)
            ),
        },
        repeats,
    )
    rendered = [
        tokenizer.apply_chat_template(to_messages(p), tokenize=False, add_generation_prompt=True) for p in prompts
    ]
    lengths = sorted(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in rendered)
    b = ev.batch_size
    return {
        "what": f"greedy generation, {ev.max_new_tokens} new tokens, batch {b}, policy {policy_path}",
        **timing,
        "speedup": round(timing["naive_s"] / timing["ours_s"], 2),
        "same_completions": round(float(np.mean([a == c for a, c in zip(out["ours"], out["naive"])])), 3),
        "sizes": {
            "prompts": len(prompts),
            "prompt_tokens": sum(lengths),
            "dynamic_padded_prompt_tokens": sum(
                max(lengths[s : s + b]) * len(lengths[s : s + b]) for s in range(0, len(lengths), b)
            ),
            "naive_padded_prompt_tokens": len(prompts) * pad_to,
            "naive_pad_to": pad_to,
            "max_new_tokens": ev.max_new_tokens,
        },
    }


# ---------------------------------------------------------------- one training step, profiled


def _step_entry(what: str, timer, warmup: int, steps: int, flops_of: Callable[[dict], dict], gflops: float) -> dict:
    """Means over the measured steps, their FLOPs (`flops_of(step)` by part) against the matmul rate, and the extra
    profiled step's time by kind of tensor op, with the matmul rate its matrix multiplies reached."""
    from .steps import arithmetic

    timer.steps, profiled = timer.steps[: warmup + steps], timer.steps[warmup + steps :]
    summary = timer.summary(skip=warmup)
    flops_per_step = [flops_of(s) for s in timer.steps[warmup:]]
    parts = {k: statistics.fmean(f[k] for f in flops_per_step) for k in flops_per_step[0]}
    flops = sum(parts.values())
    seconds = arithmetic(flops, gflops)
    ops = timer.op_profile if profiled else None
    if ops:
        ops["flops"] = round(sum(flops_of(profiled[0]).values()))
        # the step's FLOPs per second of matrix multiplies: the rate its (small) matrices reached
        matmul = ops["matrix multiply"]
        ops["achieved_matmul_gflops"] = float(f"{ops['flops'] / matmul / 1e9:.3g}") if matmul > 0 else None
    return {
        "what": what,
        **summary,
        "flops": round(flops),
        "flops_by_part": {k: round(v) for k, v in parts.items()},
        "matmul_gflops": gflops,  # measured just before this entry
        "load_avg_after": load_average(),
        "arithmetic_s": round(seconds, 6),
        "over_arithmetic": round(summary["step_s"] / seconds, 2),
        # one more step under torch.profiler (not in the means above): its time by kind of tensor op
        "op_profile": ops,
    }


def sft_step(
    cfg: Config, policy_path: str, device: str, gflops: float, steps: int, warmup: int, workdir: Path, **changes
) -> dict:
    """The SFT stage's trainer (same arguments, data and model) for warmup + steps optimizer steps, hooked."""
    from trl import SFTTrainer

    from ..policy import load_tokenizer
    from ..stages.sft import sft_arguments, sft_dataset
    from .steps import StepTimer, hook_sft, sft_step_flops

    data = load_hh(cfg.data, cfg.hh_dir())
    examples = take(data.train, cfg.data.n_sft)
    tokenizer = load_tokenizer(policy_path, cfg.policy)
    args = sft_arguments(cfg, device, workdir / "sft", len(examples), max_steps=warmup + steps + 1, **changes)
    trainer = SFTTrainer(model=policy_path, args=args, train_dataset=sft_dataset(examples), processing_class=tokenizer)
    timer = StepTimer()
    timer.profile_ops(warmup + steps)
    hook_sft(trainer, timer)
    trainer.train()
    tokens = [sum(x for part in s.get("lengths", []) for x in part) for s in timer.steps[warmup : warmup + steps]]
    entry = _step_entry(
        f"one SFT step: batch {args.per_device_train_batch_size}, {len(examples)} HH dialogues, policy {policy_path}",
        timer,
        warmup,
        steps,
        lambda s: {"forward_backward": sft_step_flops(trainer.model, s)},
        gflops,
    )
    entry["tokens_per_step"] = round(statistics.fmean(tokens), 1)
    entry["settings"] = {"gradient_checkpointing": args.gradient_checkpointing, **changes}
    return entry


def grpo_step(
    cfg: Config,
    policy_path: str,
    device: str,
    gflops: float,
    steps: int,
    warmup: int,
    workdir: Path,
    seed: int,
    **changes,
) -> dict:
    """The GRPO stage's trainer (same arguments and prompts) with a learned min-over-groups reward (random MaxMin
    heads on the profile's backbone) for warmup + steps optimizer steps, hooked."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from ..policy import load_tokenizer
    from ..stages.grpo import grpo_arguments
    from .steps import RecordingExtractor, StepTimer, grpo_step_flops, hook_grpo

    data = load_hh(cfg.data, cfg.hh_dir())
    prompts = take(data.train, cfg.data.n_grpo_prompts or cfg.data.n_preference_prompts)
    dataset = Dataset.from_list([{"prompt": to_messages(e.prompt), "prompt_id": e.prompt_id} for e in prompts])
    tokenizer = load_tokenizer(policy_path, cfg.policy)
    timer = StepTimer()
    reward, _ = random_heads_reward(cfg, workdir / "heads", len(cfg.gold.groups), seed, device)
    backbone = reward.extractors[0].model
    reward.extractors = [RecordingExtractor(e, timer) for e in reward.extractors]
    args = grpo_arguments(cfg, device, seed, workdir / "grpo", max_steps=warmup + steps + 1, **changes)
    trainer = GRPOTrainer(
        model=policy_path, reward_funcs=[reward], args=args, train_dataset=dataset, processing_class=tokenizer
    )
    hook_grpo(trainer, timer)
    timer.profile_ops(warmup + steps)
    trainer.train()
    measured = timer.steps[warmup : warmup + steps]
    completion = [statistics.fmean(x for part in s["completion_lengths"] for x in part) for s in measured]
    entry = _step_entry(
        f"one GRPO step: {args.per_device_train_batch_size} completions ({args.num_generations} per prompt) of "
        f"<= {args.max_completion_length} tokens, reward min over {len(cfg.gold.groups)} heads on "
        f"{cfg.reward_model.backbone}, policy {policy_path}",
        timer,
        warmup,
        steps,
        lambda s: grpo_step_flops(trainer.model, backbone, s),
        gflops,
    )
    entry["mean_completion_tokens"] = round(statistics.fmean(completion), 1)
    entry["settings"] = {"gradient_checkpointing": args.gradient_checkpointing, **changes}
    return entry
