"""`python -m sharedrep_utils run ...` (also the console script `sharedrep`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import ConfigError, available_profiles, load_config, parse_override


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sharedrep", description="SharedRep-RLHF vs MaxMin-RLHF reproduction kit.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the sweep: the numbered notebooks through papermill")
    run.add_argument("--profile", default="smoke", help=f"one of {', '.join(available_profiles())} or a YAML path")
    run.add_argument("--seeds", type=int, nargs="+", help="sweep seeds (default: the profile's)")
    run.add_argument("--proportions", type=float, nargs="+", help="minority proportions in (0, 1)")
    run.add_argument("--ks", type=int, nargs="+", help="SharedRep ranks K >= 1")
    run.add_argument("--methods", nargs="+", help="reward-model methods: maxmin sharedrep uniform")
    run.add_argument("--run-dir", help="run directory (default: runs/<profile>)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any profile value, e.g. --set grpo.beta=0.1 (repeatable)",
    )
    run.add_argument("--notebooks", type=Path, default=None, help="directory of the numbered notebooks")
    return parser


def overrides_from(args: argparse.Namespace) -> dict:
    overrides = dict(parse_override(item) for item in args.set)
    for flag, key in [
        ("seeds", "sweep.seeds"),
        ("proportions", "sweep.proportions"),
        ("ks", "reward_model.ks"),
        ("methods", "reward_model.methods"),
        ("run_dir", "run_dir"),
    ]:
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = overrides_from(args)
        cfg = load_config(args.profile, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from .sweep import NOTEBOOKS, run_sweep  # heavy imports only once the input is known to be good

    start = time.time()
    try:
        report = run_sweep(cfg, overrides, notebooks=args.notebooks or NOTEBOOKS)
    except Exception as error:  # a failing notebook: say which, point at its executed copy
        print(
            f"error: {type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}",
            file=sys.stderr,
        )
        print(f"see the executed notebooks in {cfg.run_path / 'notebooks'}", file=sys.stderr)
        return 1
    ran = sum(1 for _, status, _ in report if status == "ran")
    print(
        f"sweep finished in {time.time() - start:.1f}s: {ran} stage(s) ran, {len(report) - ran} skipped; "
        f"results in {cfg.run_path / 'results'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
