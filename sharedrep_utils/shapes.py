"""Real dimensions, random weights: what one step of each paper-profile stage costs on this device.

TinyLlama-1.1B-Chat's and gpt2-large's architectures are built from their published configurations
(written in standins.py, nothing downloaded) with random weights, and each item is one unit of the paper
profile's work at its batch sizes and lengths:

- sft_step: TinyLlama forward + backward + AdamW step, sft.per_device_train_batch_size × sft.max_length;
- generation: TinyLlama sampling as the responses stage does, generation.batch_size prompts × 2 responses,
  generation.max_new_tokens each;
- grpo_step: generation of grpo.per_device_train_batch_size completions (num_generations per prompt) of
  grpo.max_completion_length tokens, the reward's gpt2-large features, the reference model's forward and the
  policy's forward + backward + AdamW (model calls standing in for one GRPOTrainer step);
- gold_scoring: gpt2-large GPT2ForSequenceClassification forward, a gold trait's batch_size × max_length;
- featurisation: gpt2-large GPT2Model forward, reward_model.batch_size × max_length.

Per item: wall seconds of the step (model building excluded) and peak memory (CUDA: max_memory_allocated,
weights included; CPU: peak resident memory of this process above its level before the model was built,
sampled every few ms). On the kit's own terms per device: on a GPU training steps use the profile's bf16
autocast over fp32 weights and SFT its activation checkpointing, generation runs in bf16 (as `load_policy`);
on a CPU everything is fp32. Before each item its memory and time are estimated (parameter counts,
FLOPs, this machine's measured matmul rate and memory bandwidth); an item over `max_memory_gb` or
`max_seconds` is skipped, and the result says so and why.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import math
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .standins import GPT2_LARGE_CONFIG, TINYLLAMA_CONFIG

ITEMS = ("sft_step", "generation", "grpo_step", "gold_scoring", "featurisation")
PROMPT_TOKENS = 64  # assumed prompt length (tokens, chat template included); HH single-turn prompts are shorter


def architectures(scale: float = 1.0) -> dict[str, dict[str, Any]]:
    """{"policy": LlamaConfig kwargs, "gpt2": GPT2Config kwargs}: the real ones, or widths and depths times
    `scale` (heads kept a divisor of the width, TinyLlama's 8:1 grouped-query ratio kept) for quick tests."""
    llama, gpt2 = dict(TINYLLAMA_CONFIG), dict(GPT2_LARGE_CONFIG)
    if scale == 1.0:
        return {"policy": llama, "gpt2": gpt2}
    heads = max(8, round(llama["num_attention_heads"] * scale / 8) * 8)
    llama.update(
        num_attention_heads=heads,
        num_key_value_heads=heads // 8,
        hidden_size=heads * max(4, 2 * round(llama["hidden_size"] * scale / heads / 2)),  # RoPE: even head dim
        intermediate_size=max(8, round(llama["intermediate_size"] * scale)),
        num_hidden_layers=max(1, round(llama["num_hidden_layers"] * scale)),
        vocab_size=max(256, round(llama["vocab_size"] * scale)),
    )
    n_head = max(2, round(gpt2["n_head"] * scale))
    gpt2.update(
        n_head=n_head,
        n_embd=n_head * max(4, round(gpt2["n_embd"] * scale / n_head)),
        n_layer=max(1, round(gpt2["n_layer"] * scale)),
        vocab_size=max(256, round(gpt2["vocab_size"] * scale)),
    )
    eos = gpt2["vocab_size"] - 1  # GPT-2's <|endoftext|> is its last token
    gpt2.update(bos_token_id=eos, eos_token_id=eos)
    return {"policy": llama, "gpt2": gpt2}


@dataclass
class Item:
    name: str
    what: str
    sizes: dict[str, int]
    flops: float = 0.0  # arithmetic of the step
    decode_steps: int = 0  # generation steps, each reading all weights once
    weight_bytes_read: float = 0.0  # bytes of weights read per decode step
    memory_bytes: float = 0.0  # estimate of the peak
    extra: dict[str, Any] = field(default_factory=dict)


def _params(kind: str, arch: dict[str, Any]) -> int:
    return _count(kind, json.dumps(arch, sort_keys=True))


@functools.lru_cache
def _count(kind: str, arch_json: str) -> int:
    from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaForCausalLM

    arch = json.loads(arch_json)
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**arch)) if kind == "policy" else GPT2Model(GPT2Config(**arch))
    return sum(p.numel() for p in model.parameters())


def sizes_for(cfg: Config, prompt_tokens: int = PROMPT_TOKENS) -> dict[str, dict[str, int]]:
    """Each item's sizes in the profile (the first size is the batch, which `reduced` lowers first)."""
    trait = next(iter(cfg.gold.traits.values()))
    return {
        "sft_step": {"batch": cfg.sft.per_device_train_batch_size, "tokens": cfg.sft.max_length},
        # the responses stage: generation.batch_size prompts, 2 samples each
        "generation": {
            "sequences": 2 * cfg.generation.batch_size,
            "prompt_tokens": prompt_tokens,
            "new_tokens": cfg.generation.max_new_tokens,
        },
        "grpo_step": {
            "completions": cfg.grpo.per_device_train_batch_size,
            "prompt_tokens": prompt_tokens,
            "new_tokens": cfg.grpo.max_completion_length,
        },
        "gold_scoring": {"batch": trait.batch_size, "tokens": trait.max_length},
        "featurisation": {"batch": cfg.reward_model.batch_size, "tokens": cfg.reward_model.max_length},
    }


def build_item(name: str, sizes: dict[str, int], cfg: Config, scale: float = 1.0, device: str = "cpu") -> Item:
    """One item at `sizes`, with its FLOPs and memory estimate."""
    arch = architectures(scale)
    llama, gpt2 = arch["policy"], arch["gpt2"]
    n_policy, n_gpt2 = _params("policy", llama), _params("gpt2", gpt2)
    d, layers, vocab = llama["hidden_size"], llama["num_hidden_layers"], llama["vocab_size"]
    gd, glayers = gpt2["n_embd"], gpt2["n_layer"]
    gpu = device.startswith("cuda")
    half = 2 if gpu else 4  # bytes per activation / generation weight: bf16 on a GPU, fp32 on a CPU

    def fwd(n_params: int, n_layers: int, width: int, batch: int, seq: int) -> float:
        return 2.0 * n_params * batch * seq + 4.0 * n_layers * width * batch * seq * seq

    def train_act(batch: int, seq: int, checkpointing: bool) -> float:
        per_layer = batch * seq * half * (12 * d + 4 * llama["intermediate_size"]) + (
            0 if gpu else 4 * batch * llama["num_attention_heads"] * seq * seq  # CPU attention keeps its probabilities
        )
        stored = per_layer * (1 if checkpointing else layers) + (
            batch * seq * d * half * layers if checkpointing else 0
        )
        return stored + 3 * batch * seq * vocab * 4  # logits, log-softmax and their gradient in fp32

    if name == "sft_step":
        b, s = sizes["batch"], sizes["tokens"]
        checkpointing = gpu and bool(cfg.sft.trainer_kwargs.get("activation_checkpointing"))
        item = Item(
            name,
            "TinyLlama-1.1B forward + backward + AdamW step" + (", activation checkpointing" if checkpointing else ""),
            sizes,
            flops=(4 if checkpointing else 3) * fwd(n_policy, layers, d, b, s),
            memory_bytes=16.0 * n_policy + train_act(b, s, checkpointing),
        )
    elif name == "generation":
        seqs, p, new = sizes["sequences"], sizes["prompt_tokens"], sizes["new_tokens"]
        kv = 2 * layers * llama["num_key_value_heads"] * (d // llama["num_attention_heads"]) * half
        item = Item(
            name,
            f"TinyLlama-1.1B sampling, {seqs} sequences (the responses stage: 2 per prompt), all {new} new tokens",
            sizes,
            flops=fwd(n_policy, layers, d, seqs, p) + 2.0 * n_policy * seqs * new,
            decode_steps=new,
            weight_bytes_read=n_policy * half,
            memory_bytes=n_policy * half + seqs * (p + new) * kv + 2 * seqs * vocab * 4,
        )
    elif name == "grpo_step":
        c, p, new = sizes["completions"], sizes["prompt_tokens"], sizes["new_tokens"]
        g = cfg.grpo
        item = Item(
            name,
            f"GRPO step: {c} completions ({g.num_generations} per prompt) of {new} tokens generated, gpt2-large "
            "reward features, reference forward, policy forward + backward + AdamW",
            sizes,
            flops=2.0 * n_policy * c * new
            + fwd(n_gpt2, glayers, gd, c, p + new)
            + 4 * fwd(n_policy, layers, d, c, p + new),
            decode_steps=new,
            weight_bytes_read=n_policy * 4,
            memory_bytes=16.0 * n_policy + 4.0 * n_policy + 4.0 * n_gpt2 + train_act(c, p + new, False),
        )
    elif name in ("gold_scoring", "featurisation"):
        b, s = sizes["batch"], sizes["tokens"]
        what = (
            "gpt2-large GPT2ForSequenceClassification forward (one gold trait)"
            if name == "gold_scoring"
            else f"gpt2-large GPT2Model forward, {cfg.reward_model.pooling}-token features"
        )
        item = Item(
            name, what, sizes, flops=fwd(n_gpt2, glayers, gd, b, s), memory_bytes=4.0 * n_gpt2 + 4.0 * b * s * gd * 6
        )
    else:
        raise ValueError(f"Unknown shapes item {name!r}; allowed: {', '.join(ITEMS)}.")
    item.extra["params"] = {"policy": n_policy, "gpt2": n_gpt2}
    return item


def plan(cfg: Config, scale: float = 1.0, prompt_tokens: int = PROMPT_TOKENS, device: str = "cpu") -> list[Item]:
    """The five items at the profile's sizes, with their FLOPs and memory estimates."""
    return [build_item(name, sizes, cfg, scale, device) for name, sizes in sizes_for(cfg, prompt_tokens).items()]


def reduced(item: Item, fits, cfg: Config, scale: float, device: str) -> Item | None:
    """The largest smaller version of `item` that `fits` (halving the batch to 1, then new tokens to 16), or None."""
    sizes = dict(item.sizes)
    batch_key = next(iter(sizes))
    while True:
        if sizes[batch_key] > 1:
            sizes[batch_key] = max(1, sizes[batch_key] // 2)
        elif sizes.get("new_tokens", 0) > 16:
            sizes["new_tokens"] = max(16, sizes["new_tokens"] // 2)
        else:
            return None
        smaller = build_item(item.name, sizes, cfg, scale, device)
        if fits(smaller):
            return smaller


# --- the machine -----------------------------------------------------------------------------------------


def machine(device: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "device": device,
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(("MemTotal", "MemAvailable")):
                key = "memory_total_gb" if line.startswith("MemTotal") else "memory_available_gb"
                info[key] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1))
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def calibrate(device: str) -> dict[str, float]:
    """This device's fp32 matmul rate (GFLOP/s) and copy bandwidth (GB/s), a second or two each."""
    n = 1024 if device == "cpu" else 4096
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    x, y = torch.ones(64 * 2**20 // 4, device=device), torch.empty(64 * 2**20 // 4, device=device)
    rates, bandwidths = [], []
    for _ in range(3):
        _sync(device)
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        _sync(device)
        rates.append(4 * 2 * n**3 / (time.perf_counter() - start) / 1e9)
        start = time.perf_counter()
        for _ in range(4):
            y.copy_(x)
        _sync(device)
        bandwidths.append(4 * 2 * x.numel() * 4 / (time.perf_counter() - start) / 1e9)
    return {"matmul_gflops": round(max(rates), 1), "copy_gb_s": round(max(bandwidths), 1)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def estimate_seconds(item: Item, rates: dict[str, float]) -> float:
    """FLOPs at the measured matmul rate (a model reaches about half of it), plus one read of the weights
    per decode step at the measured bandwidth."""
    compute = item.flops / (0.5 * rates["matmul_gflops"] * 1e9)
    reads = item.decode_steps * item.weight_bytes_read / (rates["copy_gb_s"] * 1e9)
    return compute + reads


class PeakMemory:
    """Peak memory of a block: CUDA's max_memory_allocated, or on a CPU this process's resident memory
    sampled every 2 ms, above its level at the start."""

    def __init__(self, device: str):
        self.device, self.peak = device, 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss() - self.base)

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss() - self.base)


# --- the items -----------------------------------------------------------------------------------------


def _policy(arch: dict[str, Any], device: str, dtype=torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device(device):  # built (and initialised) where it runs: seconds on a GPU
        return LlamaForCausalLM(LlamaConfig(**arch)).to(dtype=dtype)


def _gpt2(arch: dict[str, Any], device: str, classifier: bool):
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2Model

    config = GPT2Config(**arch, num_labels=1, pad_token_id=arch["eos_token_id"])
    with torch.device(device):
        return (GPT2ForSequenceClassification(config) if classifier else GPT2Model(config)).eval()


def _autocast(device: str, cfg_kwargs: dict[str, Any]):
    if device.startswith("cuda") and cfg_kwargs.get("bf16", True) and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _train_step(model, optimizer, ids: torch.Tensor, device: str, trainer_kwargs: dict[str, Any]) -> None:
    with _autocast(device, trainer_kwargs):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _generate(model, prompts: torch.Tensor, new_tokens: int, do_sample: bool = True) -> torch.Tensor:
    return model.generate(
        input_ids=prompts,
        attention_mask=torch.ones_like(prompts),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,  # a random model would stop at random; every sequence runs to full length
        do_sample=do_sample,
        top_k=None,
        pad_token_id=0,
    )


def run_item(item: Item, cfg: Config, device: str, scale: float, repeats: int = 1) -> dict[str, Any]:
    """Build the item's model(s) on `device`, run its step (`repeats` times after one warm-up on a GPU) and
    return {"seconds": median step time, "peak_memory_gb": ...}."""
    arch = architectures(scale)
    generator = torch.Generator().manual_seed(0)

    def tokens(batch: int, length: int, vocab: int) -> torch.Tensor:
        return torch.randint(3, vocab, (batch, length), generator=generator).to(device)

    gpu = device.startswith("cuda")
    with PeakMemory(device) as memory:
        torch.manual_seed(0)
        if item.name == "sft_step":
            model = _policy(arch["policy"], device).train()
            if gpu and cfg.sft.trainer_kwargs.get("activation_checkpointing"):
                model.gradient_checkpointing_enable()
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.sft.learning_rate)
            ids = tokens(item.sizes["batch"], item.sizes["tokens"], arch["policy"]["vocab_size"])

            def step():
                _train_step(model, optimizer, ids, device, cfg.sft.trainer_kwargs)

        elif item.name == "generation":
            model = _policy(arch["policy"], device, torch.bfloat16 if gpu else torch.float32).eval()
            prompts = tokens(item.sizes["sequences"], item.sizes["prompt_tokens"], arch["policy"]["vocab_size"])

            def step():
                with torch.inference_mode():
                    _generate(model, prompts, item.sizes["new_tokens"])

        elif item.name == "grpo_step":
            model = _policy(arch["policy"], device).train()
            reference = _policy(arch["policy"], device).eval()
            reward = _gpt2(arch["gpt2"], device, classifier=False)
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.grpo.learning_rate)
            prompts = tokens(item.sizes["completions"], item.sizes["prompt_tokens"], arch["policy"]["vocab_size"])
            gpt2_vocab = arch["gpt2"]["vocab_size"]

            def step():
                with torch.no_grad():
                    model.eval()
                    ids = _generate(model, prompts, item.sizes["new_tokens"])
                    model.train()
                    reward(input_ids=ids.clamp(max=gpt2_vocab - 1))  # stands in for the reward texts' tokens
                    with _autocast(device, cfg.grpo.trainer_kwargs):
                        reference(input_ids=ids)
                _train_step(model, optimizer, ids, device, cfg.grpo.trainer_kwargs)

        else:  # gold_scoring, featurisation
            model = _gpt2(arch["gpt2"], device, classifier=item.name == "gold_scoring")
            ids = tokens(item.sizes["batch"], item.sizes["tokens"], arch["gpt2"]["vocab_size"])

            def step():
                with torch.inference_mode():
                    model(input_ids=ids, attention_mask=torch.ones_like(ids))

        times = []
        for i in range(repeats + (1 if gpu else 0)):
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            if not (gpu and i == 0):
                times.append(time.perf_counter() - start)
    return {"seconds": round(sorted(times)[len(times) // 2], 3), "peak_memory_gb": round(memory.peak / 2**30, 2)}


def run_isolated(item: Item, cfg: Config, device: str, scale: float) -> dict[str, Any]:
    """`run_item` in a fresh process; a process killed (e.g. out of memory) raises RuntimeError."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(run_item, item, cfg, device, scale).result()
        except BrokenProcessPool:
            raise RuntimeError(f"the process measuring {item.name} died (out of memory?)") from None


def pick(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch sees no GPU; use --device cpu or auto.")
    return device


def measure_all(
    cfg: Config,
    device: str = "auto",
    only: list[str] | None = None,
    max_seconds: float = 600.0,
    max_memory_gb: float | None = None,
    scale: float = 1.0,
    prompt_tokens: int = PROMPT_TOKENS,
    log=print,
    isolate: bool = False,
) -> dict[str, Any]:
    """Every item (or `only` these) at the profile's sizes: measured, or skipped with the reason.

    isolate: each item in a fresh process (spawned), so one item's freed memory, kept by the allocator,
    cannot hide part of the next one's peak; what the command line does."""
    device = pick(device)
    info = machine(device)
    if max_memory_gb is None:  # leave room for everything else on the machine
        available = info.get("gpu_memory_gb") if device.startswith("cuda") else info.get("memory_available_gb")
        max_memory_gb = 0.8 * available if available else float("inf")
    rates = calibrate(device)
    log(f"[shapes] {device}: {rates['matmul_gflops']} GFLOP/s fp32 matmul, {rates['copy_gb_s']} GB/s copy; "
        f"limits per item {max_seconds:g} s (estimated), {max_memory_gb:.1f} GB")  # fmt: skip
    rows = []

    def fits(item: Item) -> bool:
        return item.memory_bytes / 2**30 <= max_memory_gb and estimate_seconds(item, rates) <= max_seconds

    for item in plan(cfg, scale, prompt_tokens, device):
        if only and item.name not in only:
            continue
        row = {
            "item": item.name,
            "what": item.what,
            "sizes": item.sizes,
            "tflops": round(item.flops / 1e12, 3),
            "estimated_seconds": round(estimate_seconds(item, rates), 1),
            "estimated_memory_gb": round(item.memory_bytes / 2**30, 2),
        }
        run = item
        if not fits(item):
            over = (
                f"needs about {row['estimated_memory_gb']:.0f} GB, over the {max_memory_gb:.0f} GB limit"
                if item.memory_bytes / 2**30 > max_memory_gb
                else f"about {row['estimated_seconds']:.0f} s, over --max-seconds {max_seconds:g}"
            )
            run = reduced(item, fits, cfg, scale, device)
            if run is None:
                row.update(status="skipped", reason=f"{over}; no smaller batch fits either")
            else:
                smaller = ", ".join(f"{k} {v}" for k, v in run.sizes.items() if v != item.sizes[k])
                row.update(reason=f"{over}: measured at {smaller}, seconds scaled up by the estimates' ratio",
                           measured_sizes=run.sizes)  # fmt: skip
        if run is not None:
            log(f"[shapes] {item.name}: running {run.sizes} (estimated {estimate_seconds(run, rates):.0f} s, "
                f"{run.memory_bytes / 2**30:.1f} GB) ...")  # fmt: skip
            try:
                measured = run_isolated(run, cfg, device, scale) if isolate else run_item(run, cfg, device, scale)
                ratio = estimate_seconds(item, rates) / estimate_seconds(run, rates)
                row.update(
                    status="measured" if run is item else "measured smaller",
                    seconds=round(measured["seconds"] * ratio, 3),
                    measured_seconds=measured["seconds"],
                    peak_memory_gb=measured["peak_memory_gb"],
                )
            except (torch.OutOfMemoryError, RuntimeError) as error:
                row.update(status="failed", reason=str(error).splitlines()[0])
            finally:
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
        log(f"[shapes] {item.name}: {row['status']}" + (f", {row['seconds']} s, peak {row['peak_memory_gb']} GB"
            if "seconds" in row else "") + (f" ({row['reason']})" if row.get("reason") else ""))  # fmt: skip
        rows.append(row)
    result = {
        "profile": cfg.profile,
        "scale": scale,
        "prompt_tokens": prompt_tokens,
        "machine": info,
        "calibration": rates,
        "limits": {"max_seconds": max_seconds, "max_memory_gb": round(max_memory_gb, 1)},
        "architectures": architectures(scale),
        "items": rows,
    }
    result["projection"] = project(result, cfg)
    if not device.startswith("cuda"):
        result["gpu_projection"] = gpu_projection(cfg)
    return result


# --- from one step to the whole sweep ------------------------------------------------------------------

# The paper sweep's counts (docs/paper-scale.md): HH train has ≈ 43K single-turn dialogues for SFT;
# 10K preference prompts × 2 responses; 2 seeds × 5 proportions × 4 learned policies + 2 gold = 42 GRPO
# policies; 43 evaluated policies (+ SFT); 2,000 evaluation prompts.
SWEEP = {"sft_examples": 43_000, "grpo_policies": 42, "eval_policies": 43}


def step_counts(cfg: Config) -> dict[str, float]:
    """How many of each item the full sweep runs (one process; items, not wall time)."""
    d, g, ev = cfg.data, cfg.grpo, cfg.evaluation
    gen = cfg.generation
    n_traits = len(cfg.gold.traits)
    trait = next(iter(cfg.gold.traits.values()))
    prompts_per_grpo_step = g.per_device_train_batch_size / g.num_generations
    grpo_prompts = d.n_grpo_prompts or d.n_preference_prompts
    sft_examples = d.n_sft or SWEEP["sft_examples"]
    eval_sequences = SWEEP["eval_policies"] * d.n_eval_prompts
    return {
        "sft_step": math.ceil(sft_examples / cfg.sft.per_device_train_batch_size) * cfg.sft.num_train_epochs,
        # responses: one item = generation.batch_size prompts × 2; evaluation: one item per batch of
        # evaluation.batch_size greedy sequences (generation is bound by its per-token steps, not the batch)
        "generation": d.n_preference_prompts / gen.batch_size
        + eval_sequences / ev.batch_size * ev.max_new_tokens / max(gen.max_new_tokens, 1),
        "grpo_step": SWEEP["grpo_policies"] * grpo_prompts * g.num_train_epochs / prompts_per_grpo_step,
        "gold_scoring": n_traits * (2 * d.n_preference_prompts + eval_sequences) / trait.batch_size,
        "featurisation": 2 * d.n_preference_prompts / cfg.reward_model.batch_size,
    }


def project(result: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """Device-hours of the full paper sweep: each measured item's seconds × how many the sweep runs.

    Assumptions (kept in the output): measured items run at their full padded sizes (real batches are
    shorter: dynamic padding, early stops), so this is an upper bound for them; generation in the
    responses, GRPO and evaluation stages is transformers' generate (vLLM, on by default in GRPO when
    installed, is faster), and an evaluation batch costs one generation item; no overlap, one process, no
    start-up or model loading; an item not measured on this device is counted from its estimate (marked)."""
    counts = step_counts(cfg)
    rows, total = [], 0.0
    for row in result["items"]:
        if "seconds" in row:
            seconds, basis = row["seconds"], "measured" if row["status"] == "measured" else "scaled"
        else:
            seconds, basis = row["estimated_seconds"], "estimated"
        hours = counts[row["item"]] * seconds / 3600
        total += hours
        rows.append({"item": row["item"], "count": round(counts[row["item"]]), "seconds_each": seconds,
                     "basis": basis, "hours": round(hours, 1)})  # fmt: skip
    return {
        "device": result["machine"]["device"],
        "rows": rows,
        "total_hours": round(total, 1),
        "assumptions": project.__doc__.split("Assumptions (kept in the output): ", 1)[1].replace("\n    ", " "),
    }


# Assumed rates of one A100/H100-class GPU when no GPU measurement is at hand (what `gpu_projection` uses)
GPU_ASSUMPTIONS = {
    "bf16_tflops": 300.0,  # training and generation prefill under bf16: ~30% of an H100's 989 dense TFLOP/s
    "fp32_tflops": 33.0,  # gold scoring and features run in fp32 (no TF32 by default): ~50% of 67 TFLOP/s
    "decode_ms_transformers": 25.0,  # one decoding step of transformers' generate, 1.1B Llama, batch <= 64
    "decode_ms_vllm": 5.0,  # the same with vLLM (GRPO's use_vllm)
}


def gpu_projection(cfg: Config, assumptions: dict[str, float] | None = None) -> dict[str, Any]:
    """GPU-hours of the full paper sweep from each item's FLOPs at assumed GPU rates plus per-token decoding
    time (generation is bound by per-step overhead, not FLOPs), times the sweep's step counts. For when only
    a CPU was measured; a GPU run of `sharedrep shapes` gives the same table from measured seconds."""
    a = {**GPU_ASSUMPTIONS, **(assumptions or {})}
    counts, rows = step_counts(cfg), []
    items = {item.name: item for item in plan(cfg, device="cuda")}
    rm_flops = build_item("featurisation", {"batch": 1, "tokens": 1}, cfg, device="cuda").flops
    for name, item in items.items():
        decode = item.decode_steps * a["decode_ms_transformers"] / 1000
        if name in ("gold_scoring", "featurisation"):
            seconds = item.flops / (a["fp32_tflops"] * 1e12)
        elif name == "grpo_step":
            tokens = item.sizes["completions"] * (item.sizes["prompt_tokens"] + item.sizes["new_tokens"])
            reward = rm_flops * tokens  # the gpt2-large reward pass, in fp32
            seconds = decode + reward / (a["fp32_tflops"] * 1e12) + (item.flops - reward) / (a["bf16_tflops"] * 1e12)
        else:
            seconds = decode + item.flops / (a["bf16_tflops"] * 1e12)
        rows.append({"item": name, "count": round(counts[name]), "seconds_each": round(seconds, 3),
                     "hours": round(counts[name] * seconds / 3600, 1)})  # fmt: skip
    grpo = next(r for r in rows if r["item"] == "grpo_step")
    vllm_step = (
        grpo["seconds_each"]
        - items["grpo_step"].decode_steps * (a["decode_ms_transformers"] - a["decode_ms_vllm"]) / 1000
    )
    return {
        "rows": rows,
        "total_hours": round(sum(r["hours"] for r in rows), 1),
        "grpo_hours_with_vllm": round(counts["grpo_step"] * vllm_step / 3600, 1),
        "assumptions": a,
    }


def table_markdown(result: dict[str, Any]) -> str:
    info = result["machine"]
    where = info.get("gpu") or info.get("cpu", "cpu")
    lines = [
        f"Measured on {info['device']} ({where}, {info.get('cores')} cores, {result['calibration']['matmul_gflops']} "
        f"GFLOP/s fp32 matmul), {info['date']}, torch {info['torch']}; random weights, scale {result['scale']}.",
        "",
        "| item | sizes | TFLOP | estimated s | estimated GB | measured s | peak GB | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["items"]:
        sizes = " × ".join(f"{k} {v}" for k, v in row["sizes"].items())
        if row["status"] == "measured smaller":
            small = " × ".join(f"{k} {v}" for k, v in row["measured_sizes"].items())
            seconds = f"{row['measured_seconds']:g} at {small} (≈ {row['seconds']:g} full)"
        else:
            seconds = f"{row['seconds']:g}" if "seconds" in row else "—"
        peak = f"{row['peak_memory_gb']:g}" if "peak_memory_gb" in row else "—"
        note = row.get("reason", "").split(":")[0] if row["status"] != "skipped" else row.get("reason", "")
        lines.append(
            f"| {row['item']} | {sizes} | {row['tflops']:g} | {row['estimated_seconds']:g} | "
            f"{row['estimated_memory_gb']:g} | {seconds} | {peak} | {row['status']}{': ' + note if note else ''} |"
        )
    projection = result.get("projection")
    if projection:
        lines += ["", f"Full paper sweep on this {projection['device']}, one process: "
                  f"≈ {projection['total_hours']:,.1f} hours (" + "; ".join(
                      f"{r['item']} {r['count']:,} × {r['seconds_each']:g} s {r['basis']} = {r['hours']:,.1f} h"
                      for r in projection["rows"]) + ")."]  # fmt: skip
    gpu = result.get("gpu_projection")
    if gpu:
        a = gpu["assumptions"]
        parts = "; ".join(
            f"{r['item']} {r['count']:,} × {r['seconds_each']:g} s = {r['hours']:,.1f} h" for r in gpu["rows"]
        )
        lines += [
            "",
            f"Projected on one GPU instead (assumed {a['bf16_tflops']:g} TFLOP/s bf16, {a['fp32_tflops']:g} fp32, "
            f"{a['decode_ms_transformers']:g} ms per generated token step): ≈ {gpu['total_hours']:,.0f} GPU-hours "
            f"({parts}); GRPO with vLLM ({a['decode_ms_vllm']:g} ms per step) ≈ {gpu['grpo_hours_with_vllm']:,.0f} h "
            "instead.",
        ]
    return "\n".join(lines)


def write_result(result: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    path.with_suffix(".md").write_text(table_markdown(result) + "\n")
