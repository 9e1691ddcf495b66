"""How a stage runs: its command line (`python -m sharedrep_utils.stages.<stage>`), and `launch`.

`launch(cfg, stage, **args)` is what the notebooks call: `stage.main` in this process when
`sweep.launcher` is none, else `accelerate launch ... -m sharedrep_utils.stages.<stage>` in a
subprocess first (the stages in EVERY_PROCESS; the others are single-device work and stay here).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from . import distributed
from .config import Config, ConfigError, load_config, parse_override, resolve_accelerate_config, to_dict

# Stages whose work is split across the processes of `accelerate launch`: SFT and GRPO through TRL's
# trainers (DDP / DeepSpeed), responses and evaluate by sharding the prompts (distributed.py).
EVERY_PROCESS = ("sft", "responses", "grpo", "evaluate")


def command_line(main: Callable, argv: list[str] | None = None, **needs: type) -> None:
    """`--profile P --set key=value ... [--seed S --proportion P --method M]` -> main(cfg, ...)."""
    parser = argparse.ArgumentParser(prog=main.__module__)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    for name, kind in needs.items():
        parser.add_argument(f"--{name}", type=kind, required=True)
    args = parser.parse_args(argv)
    try:
        overrides = dict(parse_override(item) for item in args.set)
        if args.run_dir:
            overrides["run_dir"] = args.run_dir
        cfg = load_config(args.profile, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    from .runs import MissingInput, StageBusy

    try:
        if distributed.active() and _stage_name() not in EVERY_PROCESS:
            # single-device work under a multi-process launch: the main process does it, the others wait
            if distributed.is_main():
                main(cfg, **{name: getattr(args, name) for name in needs})
        else:
            main(cfg, **{name: getattr(args, name) for name in needs})
        distributed.finish()
    except (ConfigError, MissingInput) as error:  # e.g. inputs not made yet: names the stage that makes them
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except StageBusy as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(3) from None


def _stage_name() -> str:
    """The stage module run with `python -m` (e.g. "grpo"), or "" when not run that way."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name.rsplit(".", 1)[-1] if spec is not None else ""


def launch(cfg: Config, stage: ModuleType, **args: Any) -> Any:
    """Run `stage.main(cfg, **args)` as `sweep.launcher` says and return its result.

    launcher none: in this process. launcher accelerate (stages in EVERY_PROCESS): first
    `accelerate launch [--config_file sweep.accelerate_config] [sweep.accelerate_args] -m <stage module>`
    in a subprocess, with this exact configuration written to a YAML profile; its output is echoed
    here (so an executed notebook records it). Then `stage.main` here finds the stage done and
    returns what it saved. Arguments that are None are not passed.
    """
    name = stage.__name__.rsplit(".", 1)[-1]
    if cfg.sweep.launcher == "accelerate" and name in EVERY_PROCESS:
        _run_accelerate(cfg, stage.__name__, {k: v for k, v in args.items() if v is not None})
    return stage.main(cfg, **args)


def accelerate_command(cfg: Config, module: str, profile_path: Path, args: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    config_file = resolve_accelerate_config(cfg.sweep.accelerate_config)
    if config_file is not None:
        command += ["--config_file", str(config_file)]
    command += [*cfg.sweep.accelerate_args, "-m", module, "--profile", str(profile_path)]
    for key, value in args.items():
        command += [f"--{key}", str(value)]
    return command


def _run_accelerate(cfg: Config, module: str, args: dict[str, Any]) -> None:
    run = cfg.run_path
    run.mkdir(parents=True, exist_ok=True)
    # the resolved configuration, so the launched processes see exactly what this one does
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=".launch-", dir=run, delete=False) as handle:
        yaml.safe_dump(to_dict(cfg), handle, sort_keys=False)
    profile_path = Path(handle.name)
    command = accelerate_command(cfg, module, profile_path, args)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])  # importable from any working directory
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    print("[launch] " + " ".join(command[1:]), flush=True)
    tail: list[str] = []
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        ) as process:  # same working directory: relative paths in the configuration mean the same
            for line in process.stdout:
                print(line, end="", flush=True)
                tail = (tail + [line.rstrip()])[-20:]
        code = process.returncode
    finally:
        profile_path.unlink(missing_ok=True)
    if code != 0:
        errors = [line for line in tail if line.startswith("error:")]
        reason = errors[-1] if errors else (tail[-1] if tail else "no output")
        raise RuntimeError(f"accelerate launch of {module} failed (exit code {code}): {reason}")
