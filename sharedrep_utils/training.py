"""Arguments shared by the TRL trainers (SFT, GRPO): device, precision, logging, seeds."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import torch

_GPU_ONLY = ("bf16", "fp16", "tf32", "activation_checkpointing", "gradient_checkpointing", "use_vllm")

# TRL 1.16 still calls transformers' deprecated gradient_checkpointing_* aliases on every step;
# the warning is theirs, not actionable here, and floods the executed notebooks.
warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)


def trainer_arguments(device: str, seed: int, output_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for a TRL *Config: the profile's `trainer_kwargs` plus what every stage sets.

    On a CPU, GPU-only options (bf16, fp16, tf32, activation/gradient checkpointing, GRPO's use_vllm)
    are dropped with one line saying so; TRL turns bf16 and gradient checkpointing on by default, which
    a CPU cannot run or does not need, so both are switched off there. On a
    GPU, use_vllm without vLLM installed, and bf16 on a GPU without bf16, fall back with one line each
    (to transformers' generate, and to fp16). Neither precision given: bf16 where the GPU has it.
    """
    kwargs = dict(extra)
    if device == "cpu":
        dropped = [k for k in _GPU_ONLY if kwargs.pop(k, False)]
        if dropped:
            print(f"[sharedrep] CPU run: ignoring GPU-only options {', '.join(dropped)}.")
        # TRL turns gradient checkpointing on by default: on a CPU, where memory is not what limits, it only
        # recomputes every layer's forward in the backward pass (about a third more compute per step)
        kwargs.update(use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False)
        return _with_defaults(output_dir, seed, kwargs)
    if kwargs.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        kwargs["use_vllm"] = False
        print("[sharedrep] vLLM is not installed: GRPO generates with transformers instead (pip install vllm).")
    bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kwargs.get("bf16") and not bf16_ok:
        kwargs.update(bf16=False, fp16=True)
        print("[sharedrep] this GPU has no bf16: training in fp16 instead.")
    elif "bf16" not in kwargs and "fp16" not in kwargs:
        kwargs["bf16"] = bf16_ok
    return _with_defaults(output_dir, seed, kwargs)


def _with_defaults(output_dir: Path, seed: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "output_dir": str(output_dir),
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **kwargs,
    }
