"""Where one training step's time goes: timing hooks around TRL's and transformers' own methods (nothing is
re-implemented), against the step's arithmetic cost (its FLOPs at the machine's measured matmul rate).

`StepTimer` keeps exclusive time per category: a hooked method called inside another hooked method counts
towards its own category only, and `other` is what no hook covered (loop overhead, callbacks, the LR schedule),
so a step's categories sum to its wall time.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

OTHER = "other (trainer loop, callbacks, LR schedule)"


class StepTimer:
    """Per-step wall time split into exclusive categories. `start_step` / `end_step` bound a step;
    `measure(category)` times a region inside it (nested regions are subtracted from their parent)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.steps: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._open: list[list] = []  # [category, child seconds] of the regions open now
        self._profile_at: int | None = None  # the step run under torch.profiler (`profile_ops`)
        self._profiler = None
        self.op_profile: dict[str, float] | None = None

    @property
    def inside(self) -> list[str]:
        return [name for name, _ in self._open]

    def start_step(self) -> None:
        if self._current is not None:
            self.end_step()
        self._maybe_profile(starting=True)
        self._current = {"start": self.clock(), "categories": {}, "info": {}}

    def end_step(self) -> None:
        if self._current is None:
            return
        step, self._current = self._current, None
        total = self.clock() - step["start"]
        categories = step["categories"]
        categories[OTHER] = total - sum(categories.values())
        self.steps.append({"step_s": total, "categories": categories, **step["info"]})
        self._maybe_profile(starting=False)

    def note(self, key: str, value: Any) -> None:
        """Attach a value (e.g. token lengths) to the current step."""
        if self._current is not None:
            self._current["info"].setdefault(key, []).append(value)

    @contextlib.contextmanager
    def measure(self, category: str | None) -> Iterator[None]:
        if self._current is None or category is None:
            yield
            return
        self._current["categories"].setdefault(category, 0.0)  # listed in the order first entered
        start = self.clock()
        self._open.append([category, 0.0])
        try:
            yield
        finally:
            elapsed = self.clock() - start
            _, children = self._open.pop()
            cats = self._current["categories"] if self._current is not None else {}
            cats[category] = cats.get(category, 0.0) + elapsed - children
            if self._open:
                self._open[-1][1] += elapsed

    def profile_ops(self, step: int) -> None:
        """Run step number `step` (0-based) under torch.profiler; `op_profile` then says where its time went."""
        self._profile_at, self.op_profile = step, None

    def _maybe_profile(self, starting: bool) -> None:
        if self._profile_at is None:
            return
        if starting and len(self.steps) == self._profile_at:
            self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._profiler.__enter__()
        elif not starting and self._profiler is not None:
            profiler, self._profiler = self._profiler, None
            profiler.__exit__(None, None, None)
            self.op_profile = op_categories(profiler, self.steps[-1]["step_s"])

    def wrap(self, fn: Callable, category: str | Callable[[StepTimer], str | None]) -> Callable:
        """`fn` timed under `category` (or under what `category(timer)` says at call time; None: not timed)."""

        def timed(*args, **kwargs):
            name = category(self) if callable(category) else category
            with self.measure(name):
                return fn(*args, **kwargs)

        return timed

    def summary(self, skip: int = 0) -> dict[str, Any]:
        """Means over the steps after the first `skip` (warm-up): categories sum to the mean step."""
        steps = self.steps[skip:]
        if not steps:
            raise ValueError(f"No measured steps: {len(self.steps)} recorded, {skip} skipped as warm-up.")
        names = list(dict.fromkeys(n for s in steps for n in s["categories"] if n != OTHER)) + [OTHER]
        mean = {n: statistics.fmean(s["categories"].get(n, 0.0) for s in steps) for n in names}
        return {
            "steps_measured": len(steps),
            "step_s": round(statistics.fmean(s["step_s"] for s in steps), 4),
            "step_median_s": round(statistics.median(s["step_s"] for s in steps), 4),
            "steps_s": [round(s["step_s"], 4) for s in steps],
            "categories_s": {n: round(v, 4) for n, v in mean.items()},
        }


# ---------------------------------------------------------------- what the tensor ops cost

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmm_", "aten::_addmm_activation")


def op_categories(profiler, step_s: float) -> dict[str, float]:
    """One profiled step split by torch.profiler's own (self) CPU time per operator: matrix multiplies, attention
    kernels, every other tensor op (element-wise, reductions, copies, sampling), and what no tensor op covers
    (Python: the trainer, the generation loop, module calls; the profiler's own overhead counts here too)."""
    parts = {"matrix multiply": 0.0, "attention kernels": 0.0, "other tensor ops": 0.0}
    for event in profiler.key_averages():
        if not event.key.startswith("aten::"):
            continue
        seconds = event.self_cpu_time_total / 1e6
        if event.key in MATMUL_OPS:
            parts["matrix multiply"] += seconds
        elif "scaled_dot_product" in event.key or "flash_attention" in event.key:
            parts["attention kernels"] += seconds
        else:
            parts["other tensor ops"] += seconds
    parts["outside tensor ops (Python, dispatch)"] = max(0.0, step_s - sum(parts.values()))
    return {"step_s": round(step_s, 4), **{k: round(v, 4) for k, v in parts.items()}}


# ---------------------------------------------------------------- arithmetic


def linear_params(model: torch.nn.Module) -> int:
    """Multiply-accumulates per token of the model's linear layers (an LM head tied to the embedding counts:
    it is a matmul; embedding lookups are not)."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


def forward_flops(model: torch.nn.Module, lengths: list[int], causal: bool) -> float:
    """FLOPs of one forward pass over sequences of these real lengths: 2 per multiply-accumulate of every linear
    layer per token, plus attention scores and their weighted sum (4·L²·d per layer, halved when causal)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    per_token, layers, width = linear_params(model), config.num_hidden_layers, config.hidden_size
    attention = 2 if causal else 4
    return float(sum(2 * per_token * n + attention * layers * n * n * width for n in lengths))


def arithmetic(flops: float, gflops: float) -> float:
    return flops / (gflops * 1e9)


# ---------------------------------------------------------------- hooks on a trainer


def hook_trainer(trainer, timer: StepTimer) -> None:
    """Hooks every transformers Trainer has: a step runs from fetching its batches to the end of logging."""
    from transformers import TrainerCallback

    fetch = trainer.get_batch_samples

    def get_batch_samples(*args, **kwargs):
        timer.start_step()
        with timer.measure("data loading and collation"):
            return fetch(*args, **kwargs)

    trainer.get_batch_samples = get_batch_samples
    trainer.compute_loss = timer.wrap(trainer.compute_loss, "forward + loss (with the trainer's metrics)")
    trainer.accelerator.backward = timer.wrap(trainer.accelerator.backward, "backward")
    trainer._clip_grad_norm = timer.wrap(trainer._clip_grad_norm, "gradient clipping")
    log = trainer._maybe_log_save_evaluate

    def maybe_log(*args, **kwargs):
        with timer.measure("logging"):
            out = log(*args, **kwargs)
        timer.end_step()
        return out

    trainer._maybe_log_save_evaluate = maybe_log

    class OptimizerTimer(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.region = timer.measure("optimizer step")
            self.region.__enter__()

        def on_optimizer_step(self, args, state, control, **kwargs):
            self.region.__exit__(None, None, None)

    trainer.add_callback(OptimizerTimer())


def hook_grpo(trainer, timer: StepTimer) -> None:
    """GRPO's own parts: generation, reward, reference log-probabilities, the rest of scoring."""
    hook_trainer(trainer, timer)
    score = trainer._generate_and_score_completions

    def generate_and_score(*args, **kwargs):
        with timer.measure("scoring bookkeeping (advantages, metrics, decoding)"):
            out = score(*args, **kwargs)
        timer.note("prompt_lengths", out["prompt_mask"].sum(1).tolist())
        timer.note("completion_lengths", out["completion_mask"].sum(1).tolist())
        return out

    trainer._generate_and_score_completions = generate_and_score
    trainer._generate = timer.wrap(trainer._generate, "generation")
    trainer._calculate_rewards = timer.wrap(trainer._calculate_rewards, "reward")
    scoring = "scoring bookkeeping (advantages, metrics, decoding)"
    trainer._get_per_token_logps_and_entropies = timer.wrap(
        trainer._get_per_token_logps_and_entropies,
        lambda t: "reference log-probabilities" if t.inside[-1:] == [scoring] else None,
    )


def hook_sft(trainer, timer: StepTimer) -> None:
    """SFT: the real lengths (attention mask) of the batch each step trains on are noted for the FLOP count
    (where the loss is computed: accelerate's data loader collates one batch ahead)."""
    hook_trainer(trainer, timer)
    compute_loss = trainer.compute_loss

    def noting(model, inputs, *args, **kwargs):
        timer.note("lengths", inputs["attention_mask"].sum(1).tolist())
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = noting


class RecordingExtractor:
    """A FeatureExtractor that notes the real token length of every text it featurises (for the FLOP count)."""

    def __init__(self, extractor, timer: StepTimer):
        self.extractor, self.timer = extractor, timer

    def __getattr__(self, name):
        return getattr(self.extractor, name)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = self.extractor.tokenizer(texts, truncation=True, max_length=self.extractor.rm.max_length)["input_ids"]
        self.timer.note("reward_lengths", [len(x) for x in ids])
        return self.extractor(texts)


def _flat(values: list[list[int]]) -> list[int]:
    return [x for part in values for x in part]


def sft_step_flops(model, step: dict) -> float:
    """Forward and backward (3 forward passes' worth) over the step's real tokens."""
    return 3 * forward_flops(model, _flat(step.get("lengths", [])), causal=True)


def grpo_step_flops(policy, reward_model, step: dict) -> dict[str, float]:
    """Per part: generation (≈ one forward over prompt + completion with the KV cache), the reference model's
    forward, the policy's forward and backward, and the reward backbone's forward over the scored texts."""
    lengths = [p + c for p, c in zip(_flat(step["prompt_lengths"]), _flat(step["completion_lengths"]))]
    forward = forward_flops(policy, lengths, causal=True)
    parts = {"generation": forward, "reference": forward, "policy": 3 * forward}
    parts["reward"] = forward_flops(reward_model, _flat(step.get("reward_lengths", [])), causal=False)
    return parts
