"""`python -m sharedrep_utils bench --out FILE.json`: where the time goes, the kit's way against the naive way.

Each entry runs both ways in one process, alternating them (the order swaps every repeat, so neither
always runs warm or always runs first), and keeps the median of the repeats:

- gold_scoring / reward_scoring: length-sorted batches with dynamic padding vs every text padded to
  the model's whole context in input order (the upstream's way);
- reward_training: every head of one seed × proportion on features computed once vs a backbone pass
  per batch, per epoch, per head (measured on its first batches, extrapolated linearly);
- grpo_reward: one backbone pass for all group heads vs one pass per head (and 1 vs 2 groups);
- generation: length-sorted, left-padded batches vs every prompt left-padded to the policy's context;
- sweep: wall time and peak memory per stage from a sweep's `notebooks/sweep_log.json` (or, for an
  older run, from papermill's timings in the executed notebooks).

Ratios measured in one run are robust to other load on the machine; absolute times are not.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, TraitConfig
from .hh_data import Example, clean_response, format_scored_text, last_user_turn, load_hh, take, to_messages
from .text_batches import max_length_batches, padded_tokens

TARGETS = {
    "reward_training_over_featurisation": 1.3,  # at most
    "scoring_speedup_vs_max_length": 5.0,  # at least
    "grpo_reward_two_groups_over_one": 1.1,  # at most
    "smoke_sweep_seconds": 600.0,  # at most
}
ENTRIES = ("gold_scoring", "reward_scoring", "reward_training", "grpo_reward", "generation", "sweep")
QUICK = {"n_texts": 12, "n_pairs": 40, "n_generate": 4, "grpo_batch": 8, "repeats": 2}
FULL = {"n_texts": 64, "n_pairs": 256, "n_generate": 32, "grpo_batch": 64, "repeats": 3}  # minutes on 2 idle cores
NAIVE_TRAINING_BATCHES = 6  # batches per head the naive training runs; its full cost is extrapolated


# ---------------------------------------------------------------- measurement


def alternate(ways: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True) -> dict[str, Any]:
    """Median seconds per way over `repeats` rounds; the order rotates every round. Returns the runs too."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    names = list(ways)
    if warmup:  # first calls pay for lazy initialisation (kernels, allocator), which neither way should carry
        for name in names:
            ways[name]()
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            ways[name]()
            runs[name].append(time.perf_counter() - start)
    return {
        **{f"{name}_s": round(statistics.median(runs[name]), 4) for name in names},
        "runs_s": {name: [round(t, 4) for t in runs[name]] for name in names},
    }


def model_context(tokenizer, model) -> int:
    """The longest input the model takes: what the upstream pads every text to."""
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None
    candidates = [x for x in (positions, limit) if x]
    if not candidates:
        raise ValueError(f"Cannot tell the context length of {type(model).__name__}; it sets no position limit.")
    return min(candidates)


# ---------------------------------------------------------------- data


def bench_examples(cfg: Config, n: int) -> tuple[list[Example], str]:
    """HH train examples (the real sample when $SHAREDREP_HH_DIR is set), chosen and rejected as two responses."""
    data = load_hh(cfg.data, cfg.hh_dir())
    examples = take(data.train, n)
    if not examples:
        raise ValueError(f"No HH examples to benchmark on from {data.source}.")
    return examples, data.source


# ---------------------------------------------------------------- scoring


def naive_features(extractor, texts: list[str], pad_to: int) -> torch.Tensor:
    """FeatureExtractor's work done the upstream's way: input order, every text padded to the context."""
    from .reward_models import backbone_inputs, pool

    rm = extractor.rm
    out = torch.zeros(len(texts), extractor.dim)
    with torch.inference_mode():
        for idx, batch in max_length_batches(extractor.tokenizer, texts, rm.batch_size, rm.max_length, pad_to):
            batch = batch.to(extractor.device)
            inputs = backbone_inputs(extractor.model, batch["input_ids"], batch["attention_mask"])
            hidden = extractor.model(**inputs).last_hidden_state
            out[idx] = pool(hidden, batch["attention_mask"], rm.pooling).float().cpu()
    return out


def bench_reward_scoring(cfg: Config, examples: list[Example], repeats: int, device: str) -> dict:
    from .reward_models import FeatureExtractor

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


def naive_gold_scorers(cfg: Config, device: str) -> dict[str, Callable]:
    """Each trait scored as the upstream would: transformer traits padded to the model's context."""
    from .gold import SCORERS
    from .hub import resolve_model

    scorers = {}
    for name, trait in cfg.gold.traits.items():
        if trait.kind == "embedding_relevance":
            scorers[name] = _naive_relevance(trait, device)
        elif trait.kind == "sequence_classifier":
            scorers[name] = _naive_classifier(trait, device, resolve_model(trait.model))
        else:  # no padding involved (a lexicon, a linear classifier): the same call both ways
            scorers[name] = SCORERS[trait.kind](trait, device)
    return scorers


def _naive_relevance(trait: TraitConfig, device: str) -> Callable:
    from sentence_transformers import SentenceTransformer

    from .hub import resolve_model
    from .reward_models import pool

    model = SentenceTransformer(resolve_model(trait.model), device=device)
    backbone, tokenizer = model[0].auto_model.eval(), model.tokenizer
    pad_to = max(model_context(tokenizer, backbone), trait.max_length)

    @torch.inference_mode()
    def encode(texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), backbone.config.hidden_size)
        for idx, batch in max_length_batches(tokenizer, texts, trait.batch_size, trait.max_length, pad_to):
            batch = batch.to(device)
            out[idx] = pool(backbone(**batch).last_hidden_state, batch["attention_mask"], "mean").float().cpu()
        return torch.nn.functional.normalize(out, dim=1)

    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        q = encode([last_user_turn(p) for p in prompts])
        r = encode([x if x.strip() else " " for x in responses])
        return (q * r).sum(dim=1).double().numpy()

    score.pad_to, score.tokenizer = pad_to, tokenizer  # type: ignore[attr-defined]
    return score


def _naive_classifier(trait: TraitConfig, device: str, path: str) -> Callable:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    tokenizer.padding_side = "right"
    pad_to = max(model_context(tokenizer, model), trait.max_length)

    @torch.inference_mode()
    def score(prompts: list[str], responses: list[str]) -> np.ndarray:
        texts = [format_scored_text(trait.text_format, p, r) for p, r in zip(prompts, responses, strict=True)]
        out = np.zeros(len(texts))
        for idx, batch in max_length_batches(tokenizer, texts, trait.batch_size, trait.max_length, pad_to):
            out[idx] = model(**batch.to(device)).logits[:, 0].float().cpu().numpy()
        return out

    score.pad_to, score.tokenizer = pad_to, tokenizer  # type: ignore[attr-defined]
    return score


def bench_gold_scoring(cfg: Config, examples: list[Example], repeats: int, device: str) -> tuple[dict, dict]:
    """Returns the entry and the gold traits of (chosen, rejected), which reward_training reuses."""
    from .gold import GoldScorer

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

    from .groups import build_preferences

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


def naive_train_heads(
    extractor, texts_c: list[str], texts_r: list[str], group_ids, method, k, n_groups, hp, seed, max_batches: int
) -> int:
    """train_heads without the cache: the backbone runs on every batch's texts, every epoch. Stops after
    `max_batches` batches (the benchmark extrapolates); returns how many it ran."""
    from .reward_models import GroupHeads, pair_loss

    torch.manual_seed(seed)
    heads = GroupHeads(method, extractor.dim, n_groups, k, simplex=hp.simplex_mixing)
    optimizer = torch.optim.Adam(heads.parameters(), lr=hp.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    done = 0
    for _ in range(hp.num_epochs):
        order = torch.randperm(len(group_ids), generator=generator)
        for start in range(0, len(order), hp.batch_size):
            if done == max_batches:
                return done
            done += 1
            idx = order[start : start + hp.batch_size].tolist()
            chosen = extractor([texts_c[i] for i in idx]).clone()  # out of inference mode, for autograd
            rejected = extractor([texts_r[i] for i in idx]).clone()
            loss = pair_loss(heads, chosen, rejected, group_ids[idx], hp.tanh, hp.center_rewards_coefficient)
            optimizer.zero_grad()
            loss.backward()
            if getattr(hp, "max_grad_norm", 0) > 0:
                torch.nn.utils.clip_grad_norm_(heads.parameters(), hp.max_grad_norm)
            optimizer.step()
    return done


def bench_reward_training(
    cfg: Config,
    examples: list[Example],
    traits: dict,
    repeats: int,
    device: str,
    seed: int,
    proportion: float,
    naive_batches: int = NAIVE_TRAINING_BATCHES,
) -> dict:
    from .groups import split_pairs
    from .reward_models import FeatureExtractor, pair_tensors, train_heads
    from .stats import split_method

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


def bench_grpo_reward(cfg: Config, examples: list[Example], repeats: int, device: str, seed: int) -> dict:
    from .reward_models import FeatureExtractor, GroupHeads, MinOverGroupsReward, save_heads

    rm = cfg.reward_model
    extractor = FeatureExtractor(rm, device)
    prompts = [to_messages(e.prompt) for e in examples]
    completions = [[{"role": "assistant", "content": e.chosen}] for e in examples]
    groups = list(cfg.gold.groups)
    rewards, heads = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for u in (1, len(groups)):
            torch.manual_seed(seed)
            heads[u] = GroupHeads("maxmin", extractor.dim, u).eval()
            save_heads(heads[u], Path(tmp) / f"u{u}", groups[:u], rm, {})
            rewards[u] = MinOverGroupsReward(Path(tmp) / f"u{u}", rm, device, extractor=extractor)
    u = len(groups)
    texts = [format_scored_text(rm.text_format, e.prompt, clean_response(e.chosen)) for e in examples]

    def naive() -> list[float]:
        with torch.no_grad():
            per_head = [heads[u](extractor(texts))[:, g] for g in range(u)]  # one backbone pass per group head
        return torch.stack(per_head).min(dim=0).values.tolist()

    out: dict[str, list[float]] = {}
    timing = alternate(
        {
            "ours": lambda: out.__setitem__("ours", rewards[u](prompts, completions)),
            "one_group": lambda: rewards[1](prompts, completions),
            "naive": lambda: out.__setitem__("naive", naive()),
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
    from .policy import TINY, build_tiny_policy

    if policy_path:
        return policy_path
    if cfg.policy.model != TINY:
        return cfg.policy.model
    texts = [e.prompt + "\n\nAssistant: " + e.chosen for e in examples]
    return str(build_tiny_policy(cfg.policy, texts, workdir / "tiny-policy", seed))


def naive_generate(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, pad_to: int
) -> list[str]:
    """Greedy generation the upstream's way: input order, every prompt left-padded to `pad_to` tokens."""
    rendered = [
        tokenizer.apply_chat_template(to_messages(p), tokenize=False, add_generation_prompt=True) for p in prompts
    ]
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in rendered]
    tokenizer.padding_side = "left"
    out = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            ids = encoded[start : start + batch_size]
            width = max(pad_to, *(len(x) for x in ids))
            inputs = tokenizer.pad({"input_ids": ids}, padding="max_length", max_length=width, return_tensors="pt")
            generated = model.generate(
                **inputs.to(model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            out += [clean_response(t) for t in texts]
    return out


def bench_generation(cfg: Config, policy_path: str, examples: list[Example], repeats: int, device: str) -> dict:
    from .policy import generate, load_policy

    model, tokenizer = load_policy(policy_path, cfg.policy, device)
    ev = cfg.evaluation
    prompts = [e.prompt for e in examples]
    pad_to = model_context(tokenizer, model) - ev.max_new_tokens
    out: dict[str, list[str]] = {}
    timing = alternate(
        {
            "ours": lambda: out.__setitem__(
                "ours",
                [
                    r[0]
                    for r in generate(
                        model,
                        tokenizer,
                        prompts,
                        max_new_tokens=ev.max_new_tokens,
                        batch_size=ev.batch_size,
                        do_sample=False,
                    )
                ],
            ),
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


# ---------------------------------------------------------------- the sweep


def stage_of(label: str) -> str:
    """`04_grpo-seed42-gold` -> `04_grpo` (notebook names have no '-')."""
    return label.split("-", 1)[0]


def read_sweep_log(run_dir: Path) -> dict:
    """Per-step wall time and peak memory of a sweep, from `notebooks/sweep_log.json`, else papermill's timings."""
    notebooks = Path(run_dir) / "notebooks"
    log = notebooks / "sweep_log.json"
    if log.is_file():
        data = json.loads(log.read_text())
        steps, source = data["steps"], str(log)
        total = data.get("total_s")
    else:
        executed = sorted(notebooks.glob("*.ipynb"))
        if not executed:
            raise FileNotFoundError(f"{notebooks} holds neither sweep_log.json nor executed notebooks.")
        steps, spans = [], []
        for path in executed:
            meta = json.loads(path.read_text())["metadata"].get("papermill", {})
            if meta.get("duration") is None:
                continue
            steps.append(
                {"label": path.stem, "status": "ran", "wall_s": round(meta["duration"], 2), "peak_rss_mb": None}
            )
            spans.append((meta["start_time"], meta["end_time"]))
        from datetime import datetime

        first = min(datetime.fromisoformat(s) for s, _ in spans)
        last = max(datetime.fromisoformat(e) for _, e in spans)
        total, source = round((last - first).total_seconds(), 1), f"papermill metadata in {notebooks}"
    stages: dict[str, dict] = {}
    for step in steps:
        if step["status"] != "ran":
            continue
        s = stages.setdefault(stage_of(step["label"]), {"steps": 0, "wall_s": 0.0, "peak_rss_mb": None})
        s["steps"] += 1
        s["wall_s"] = round(s["wall_s"] + step["wall_s"], 2)
        if step.get("peak_rss_mb") is not None:
            s["peak_rss_mb"] = max(s["peak_rss_mb"] or 0.0, step["peak_rss_mb"])
    ran = sum(s["wall_s"] for s in stages.values())
    return {
        "source": source,
        "run_dir": str(run_dir),
        "total_s": total if total is not None else round(ran, 1),
        "steps_ran": sum(s["steps"] for s in stages.values()),
        "stages": stages,
        "dominant_stage": max(stages, key=lambda k: stages[k]["wall_s"]) if stages else None,
    }


SMOKE_SWEEP = ["--profile", "smoke", "--seeds", "42", "--proportions", "0.1", "--ks", "2", "16"]  # `make demo`


def run_smoke_sweep(run_dir: Path, sets: list[str] | None = None) -> float:
    """`make demo`'s sweep into `run_dir` in a child process; returns its wall time in seconds."""
    args = [sys.executable, "-m", "sharedrep_utils", "run", *SMOKE_SWEEP, "--run-dir", str(run_dir)]
    for item in sets or []:
        args += ["--set", item]
    start = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the smoke sweep failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return round(time.perf_counter() - start, 1)


# ---------------------------------------------------------------- the whole benchmark


def targets(entries: dict) -> list[dict]:
    """The issue's targets, each with its measured value and whether it is met."""
    rows = []

    def add(name: str, value: float | None, limit: float, at_most: bool) -> None:
        met = None if value is None else (value <= limit if at_most else value >= limit)
        rows.append({"target": name, "value": value, "limit": limit, "at_most": at_most, "met": met})

    if "reward_training" in entries:
        add(
            "reward_training_over_featurisation",
            entries["reward_training"]["ours_over_featurisation"],
            TARGETS["reward_training_over_featurisation"],
            True,
        )
    if "reward_scoring" in entries:
        add(
            "scoring_speedup_vs_max_length",
            entries["reward_scoring"]["speedup"],
            TARGETS["scoring_speedup_vs_max_length"],
            False,
        )
    if "grpo_reward" in entries:
        add(
            "grpo_reward_two_groups_over_one",
            entries["grpo_reward"]["two_groups_over_one"],
            TARGETS["grpo_reward_two_groups_over_one"],
            True,
        )
    if "sweep" in entries:
        add("smoke_sweep_seconds", entries["sweep"]["total_s"], TARGETS["smoke_sweep_seconds"], True)
    return rows


def run_benchmark(
    cfg: Config,
    *,
    quick: bool = False,
    repeats: int | None = None,
    policy_path: str | None = None,
    sweep_dir: Path | None = None,
    run_sweep: bool = False,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Every entry on the profile's models; reward training uses the profile's first sweep seed and proportion."""
    if only is not None and (unknown := sorted(set(only) - set(ENTRIES))):
        raise ValueError(f"Unknown benchmark entries {unknown}; allowed: {', '.join(ENTRIES)}.")
    seed, proportion = cfg.sweep.seeds[0], cfg.sweep.proportions[0]
    sizes = QUICK if quick else FULL
    repeats = repeats or sizes["repeats"]
    device = "cuda" if cfg.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
    started = time.time()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    examples, source = bench_examples(cfg, max(sizes["n_texts"], sizes["n_pairs"], sizes["n_generate"]))
    entries: dict[str, dict] = {}
    log(f"[bench] {len(examples)} HH examples from {source}; {repeats} repeats; device {device}")

    want = [name for name in ENTRIES if only is None or name in only]
    if "gold_scoring" in want:
        log("[bench] gold scoring ...")
        entries["gold_scoring"], _ = bench_gold_scoring(cfg, examples[: sizes["n_texts"]], repeats, device)
    if "reward_scoring" in want:
        log("[bench] reward scoring ...")
        entries["reward_scoring"] = bench_reward_scoring(cfg, examples[: sizes["n_texts"]], repeats, device)
    if "reward_training" in want:
        log("[bench] reward-model training ...")
        from .gold import GoldScorer

        pair_examples = examples[: sizes["n_pairs"]]
        scorer = GoldScorer(cfg.gold, device)
        first = scorer.traits([e.prompt for e in pair_examples], [e.chosen for e in pair_examples])
        second = scorer.traits([e.prompt for e in pair_examples], [e.rejected for e in pair_examples])
        traits = {name: (first[name], second[name]) for name in first}
        entries["reward_training"] = bench_reward_training(
            cfg, pair_examples, traits, repeats, device, seed, proportion
        )
    if "grpo_reward" in want:
        log("[bench] GRPO reward ...")
        # cheap and the one ratio near 1: more repeats for a steadier median
        entries["grpo_reward"] = bench_grpo_reward(cfg, examples[: sizes["grpo_batch"]], max(repeats, 5), device, seed)
    if "generation" in want:
        log("[bench] generation ...")
        with tempfile.TemporaryDirectory() as tmp:
            policy = bench_policy(cfg, policy_path, examples, Path(tmp), seed)
            entries["generation"] = bench_generation(cfg, policy, examples[: sizes["n_generate"]], repeats, device)
    if sweep_dir is not None and "sweep" in want:
        if run_sweep:
            log(f"[bench] running the smoke sweep into {sweep_dir} ...")
            run_smoke_sweep(sweep_dir)
        entries["sweep"] = read_sweep_log(sweep_dir)
    import resource

    return {
        "profile": cfg.profile,
        "data_source": source,
        "quick": quick,
        "repeats": repeats,
        "device": device,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_avg_1min_start": load_start,
            "load_avg_1min_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "note": "ours and naive ran alternately in one process; ratios are robust to other load on the "
        "machine, absolute seconds are not (the CPUs may be shared).",
        "bench_wall_s": round(time.time() - started, 1),
        "bench_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "entries": entries,
        "targets": targets(entries),
    }


def table_markdown(result: dict) -> str:
    """The benchmark as a Markdown table: medians, ratio, sizes; then the targets."""
    lines = ["| work | ours (s) | naive (s) | naive / ours | sizes |", "|---|---|---|---|---|"]
    e = result["entries"]
    for name in ("gold_scoring", "reward_scoring", "reward_training", "grpo_reward", "generation"):
        if name not in e:
            continue
        x = e[name]
        naive = x.get("naive_extrapolated_s", x["naive_s"])
        note = " (extrapolated)" if "naive_extrapolated_s" in x else ""
        lines.append(f"| {name} | {x['ours_s']:.3g} | {naive:.3g}{note} | {x['speedup']:g}x | {_sizes(name, x)} |")
    lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        sign = "<=" if t["at_most"] else ">="
        lines.append(f"| {t['target']} | {t['value']} | {sign} {t['limit']:g} | {'yes' if t['met'] else 'no'} |")
    if "sweep" in e:
        lines += ["", "| stage | steps | wall (s) | peak RSS (MB) |", "|---|---|---|---|"]
        for stage, s in e["sweep"]["stages"].items():
            lines.append(f"| {stage} | {s['steps']} | {s['wall_s']:.1f} | {s['peak_rss_mb'] or 'n/a'} |")
        lines.append(f"| total | {e['sweep']['steps_ran']} | {e['sweep']['total_s']:.1f} | |")
    return "\n".join(lines)


def _sizes(name: str, x: dict) -> str:
    s = x["sizes"]
    if name == "gold_scoring":
        inner = next((v for v in s.values() if isinstance(v, dict)), {})
        tokens, pad_to = inner.get("real_tokens", "?"), inner.get("naive_pad_to", "?")
        return f"{s['examples']} examples, {tokens} tokens (pad to {pad_to})"
    if name == "reward_scoring":
        return f"{s['texts']} texts, {s['real_tokens']} tokens (pad to {s['naive_pad_to']})"
    if name == "reward_training":
        return (
            f"{s['train_pairs']} pairs, {s['unique_texts']} unique texts, {s['real_tokens']} tokens; "
            f"ours / featurisation {x['ours_over_featurisation']}"
        )
    if name == "grpo_reward":
        return f"{s['texts']} completions, {s['real_tokens']} tokens; 2 groups / 1 group {x['two_groups_over_one']}"
    return (
        f"{s['prompts']} prompts, {s['prompt_tokens']} prompt tokens (pad to {s['naive_pad_to']}), "
        f"{s['max_new_tokens']} new"
    )


def write_result(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(out)
