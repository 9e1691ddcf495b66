"""`python -m sharedrep_utils run ...` (also the console script `sharedrep`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .config import HH_DIR_ENV, ConfigError, available_profiles, load_config, parse_override
from .runs import LOCK_WAIT_ENV

EXIT_BAD_INPUT = 2  # bad parameters: nothing was run or written
EXIT_BUSY = 3  # another process is running a stage this sweep needs


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`error: ...`) and exit status 2, like every bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message}\n")


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where the default is "the profile's" (None) or nothing (a flag)."""

    def _get_help_string(self, action):
        if action.default in (None, False, []):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sharedrep", description="SharedRep-RLHF vs MaxMin-RLHF reproduction kit.")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser(
        "run",
        help="run the sweep: the numbered notebooks through papermill",
        description="Run the sweep: every numbered notebook through papermill, once per seed x proportion x "
        "policy it needs, skipping each stage whose manifest says it is done.",
        formatter_class=_Defaults,
        epilog="example: sharedrep run --profile smoke --seeds 42 123 --proportions 0.05 0.1 --ks 2 "
        "--set grpo.beta=0.1 --run-dir runs/mine",
    )
    add_selection(run)
    run.add_argument("--notebooks", type=Path, default=None, help="numbered notebooks' directory (default: the kit's)")
    run.add_argument(
        "--launcher",
        choices=["none", "accelerate"],
        help="run SFT, responses, GRPO and evaluate in the notebook (none) or via `accelerate launch`",
    )
    run.add_argument(
        "--accelerate-config",
        metavar="PATH_OR_NAME",
        help="accelerate config file for --launcher accelerate: a path, or 1gpu, ddp, zero2 (configs/accelerate/)",
    )
    run.add_argument(
        "--lock-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="when another sweep is running a stage this one needs: wait this long for it (-1: as long as it "
        f"takes); default ${LOCK_WAIT_ENV} or 0, i.e. stop at once, naming the busy stage, with exit status 3",
    )
    add_executor_options(run)
    plan = commands.add_parser(
        "plan",
        help="print the sweep's graph: every stage run, what it waits for, which are done",
        description="Print every stage run the sweep would execute with the same flags as `run`, what each waits "
        "for, and which are already done. Runs nothing, writes nothing.",
        formatter_class=_Defaults,
        epilog="example: sharedrep plan --profile small",
    )
    add_selection(plan)
    bench = commands.add_parser("bench", help="benchmark the kit's way against the naive way (JSON + table)")
    bench.add_argument("--out", type=Path, required=True, help="JSON file to write")
    bench.add_argument("--profile", default="smoke", help=f"one of {', '.join(available_profiles())} or a YAML path")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats: seconds, for tests")
    bench.add_argument("--repeats", type=int, default=None, help="repeats per entry (median is kept)")
    bench.add_argument("--policy", default=None, help="policy to generate with (default: the profile's, built here)")
    bench.add_argument("--sweep-dir", type=Path, default=None, help="a sweep's run directory to report per stage")
    bench.add_argument("--run-sweep", action="store_true", help="run the smoke sweep into --sweep-dir first")
    bench.add_argument("--only", nargs="+", default=None, help="entries to run (default all): " + ", ".join(ENTRIES))
    diff = commands.add_parser(
        "diff",
        help="settings that differ between two profiles",
        description="Print every setting (dotted key) whose value differs between two profiles, one per line.",
        epilog="example: sharedrep diff paper paper-upstream   (every departure from the upstream code: "
        "docs/deviations.md)",
    )
    diff.add_argument("a", help=f"a profile ({', '.join(available_profiles())}) or a YAML path")
    diff.add_argument("b", help="the profile to compare it with")
    compare = commands.add_parser(
        "compare",
        help="which files of two runs are byte-identical (same numbers?)",
        description="For every evaluation file, the sampled responses, each preference set and each results table "
        "of two run directories: byte-identical or not, and for evaluation files the share of prompts whose "
        "completion is the same text.",
        epilog="example: sharedrep compare runs/smoke-serial runs/smoke-jobs2 --out same.csv   (exit 0: every file "
        "identical; 1: some differ or are in one run only; 2: bad input)",
    )
    compare.add_argument("a", type=Path, help="a run directory")
    compare.add_argument("b", type=Path, help="the run directory to compare it with")
    compare.add_argument("--out", type=Path, default=None, help="also write the table as CSV here")
    add_paper_path_commands(commands)
    return parser


def add_selection(parser: argparse.ArgumentParser) -> None:
    """What the sweep runs: the same flags for `run` and `plan`."""
    parser.add_argument("--profile", default="smoke", help=f"one of {', '.join(available_profiles())} or a YAML path")
    parser.add_argument("--seeds", type=int, nargs="+", help="sweep seeds (default: the profile's)")
    parser.add_argument(
        "--proportions", type=float, nargs="+", help="minority proportions in (0, 1) (default: the profile's)"
    )
    parser.add_argument("--ks", type=int, nargs="+", help="SharedRep ranks K >= 1 (default: the profile's)")
    parser.add_argument(
        "--methods", nargs="+", help="reward-model methods: maxmin sharedrep uniform (default: the profile's)"
    )
    parser.add_argument("--run-dir", help="run directory (default: runs/<profile>)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any profile value, e.g. --set grpo.beta=0.1 (repeatable)",
    )


EXECUTORS = ("local", "slurm")
# --slurm-* flags -> the profile's slurm: settings they override
SLURM_FLAGS = {
    "slurm_partition": "slurm.partition",
    "slurm_gpus": "slurm.gpus_per_job",
    "slurm_cpus": "slurm.cpus_per_job",
    "slurm_mem_gb": "slurm.mem_gb",
    "slurm_time_min": "slurm.time_min",
    "slurm_account": "slurm.account",
}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; give 1 or more")
    return value


def add_executor_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where stage runs execute: this machine, or one SLURM job each (submitit; resources from the "
        "profile's slurm: section and the --slurm-* flags)",
    )
    run.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="local: up to N independent stage runs at once, each in its own process (cores split between them, "
        "or one GPU each); 1 = one after another in one kernel",
    )
    run.add_argument(
        "--gpus-per-job", type=_positive, default=1, metavar="G", help="local, on GPUs: visible GPUs per job"
    )
    run.add_argument("--no-wait", action="store_true", help="slurm: queue the jobs and return without following them")
    run.add_argument("--slurm-partition", metavar="NAME", help="slurm: partition (default: the cluster's)")
    run.add_argument("--slurm-gpus", type=int, metavar="N", help="slurm: GPUs per job")
    run.add_argument("--slurm-cpus", type=int, metavar="N", help="slurm: CPUs per job")
    run.add_argument("--slurm-mem-gb", type=float, metavar="GB", help="slurm: memory per job")
    run.add_argument("--slurm-time-min", type=int, metavar="MIN", help="slurm: time limit per job")
    run.add_argument("--slurm-account", metavar="NAME", help="slurm: account to charge")
    run.add_argument(
        "--slurm-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="slurm: any other sbatch option, e.g. --slurm-opt qos=high (repeatable)",
    )


# the benchmark's entry names, without importing torch for `--help` or bad input
ENTRIES = (
    "gold_scoring",
    "reward_scoring",
    "reward_training",
    "grpo_reward",
    "generation",
    "grpo_step",
    "sft_step",
    "sweep",
)


def bench_main(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.profile, dict(parse_override(item) for item in args.set))
        if args.repeats is not None and args.repeats < 1:
            raise ConfigError(f"--repeats {args.repeats} is not allowed; give 1 or more.")
        if args.only and (unknown := sorted(set(args.only) - set(ENTRIES))):
            raise ConfigError(f"--only {' '.join(unknown)} is not a benchmark entry; allowed: {', '.join(ENTRIES)}.")
        if args.run_sweep and args.sweep_dir is None:
            raise ConfigError("--run-sweep needs --sweep-dir (where the sweep writes its run).")
        if args.sweep_dir is not None and not args.run_sweep and not (args.sweep_dir / "notebooks").is_dir():
            raise ConfigError(f"--sweep-dir {str(args.sweep_dir)!r} has no notebooks/; give a finished run.")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .bench import run_benchmark, table_markdown, write_result

    result = run_benchmark(
        cfg,
        quick=args.quick,
        repeats=args.repeats,
        policy_path=args.policy,
        sweep_dir=args.sweep_dir,
        run_sweep=args.run_sweep,
        only=args.only,
    )
    write_result(result, args.out)
    print(table_markdown(result))
    print(f"wrote {args.out}")
    return 0


def diff_main(args: argparse.Namespace) -> int:
    """`sharedrep diff A B`: one line per differing setting, `key: A-value -> B-value` (values as YAML reads them)."""
    from .config import config_diff

    try:
        rows = config_diff(args.a, args.b)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    width = max((len(key) for key, _, _ in rows), default=0)
    for key, left, right in rows:
        print(f"{key:<{width}}  {_show(left)} -> {_show(right)}")
    print(f"{len(rows)} setting(s) differ between {args.a} and {args.b}.")
    return 0


def compare_main(args: argparse.Namespace) -> int:
    """`sharedrep compare A B`: a row per compared file, then how many of each kind are byte-identical. Exit 0
    when every file is in both runs and identical, 1 when not, 2 on bad input."""
    import pandas as pd

    from .run_compare import compare_runs, verdict

    try:
        if args.out is not None and not args.out.parent.is_dir():
            raise FileNotFoundError(f"--out {str(args.out)!r}: folder {str(args.out.parent)!r} does not exist.")
        table = compare_runs(args.a, args.b)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 80):
        print(table.to_string(index=False))
    print(verdict(table))
    if args.out is not None:
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0 if table["identical"].all() else 1  # as diff and cmp: 1 when the runs differ


def _show(value) -> str:
    """A value as YAML would read it back (strings bare unless they need quotes), or (not set)."""
    import json

    from .config import ABSENT

    if value is ABSENT:
        return repr(value)
    return value if isinstance(value, str) and value and value.strip() == value else json.dumps(value)


def overrides_from(args: argparse.Namespace) -> dict:
    overrides = dict(parse_override(item) for item in args.set)
    for flag, key in [
        ("seeds", "sweep.seeds"),
        ("proportions", "sweep.proportions"),
        ("ks", "reward_model.ks"),
        ("methods", "reward_model.methods"),
        ("run_dir", "run_dir"),
        ("launcher", "sweep.launcher"),
        ("accelerate_config", "sweep.accelerate_config"),
        *SLURM_FLAGS.items(),
    ]:
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    for item in getattr(args, "slurm_opt", []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--slurm-opt {item!r} is not KEY=VALUE; give e.g. --slurm-opt qos=high.")
        overrides[f"slurm.extra.{key.strip().removeprefix('--')}"] = value
    config_file = overrides.get("sweep.accelerate_config")
    if config_file and Path(config_file).is_file():  # notebooks run inside notebooks/: make it absolute
        overrides["sweep.accelerate_config"] = str(Path(config_file).resolve())
    for key, value in overrides.items():  # likewise any local path (a model, data.hh_dir) given relative to here
        if key != "run_dir" and isinstance(value, str) and value and not Path(value).is_absolute():
            if Path(value).exists():
                overrides[key] = str(Path(value).resolve())
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # no command: what there is to do, not an error
        parser.print_help()
        return 0
    if args.command == "bench":
        return bench_main(args)
    if args.command == "diff":
        return diff_main(args)
    if args.command == "compare":
        return compare_main(args)
    if args.command in PAPER_PATH_COMMANDS:
        return paper_path_main(args)
    if args.command == "plan":
        return plan_main(args)
    try:
        overrides = overrides_from(args)
        cfg = load_config(args.profile, overrides)
        notebooks = args.notebooks or _default_notebooks()
        if not (notebooks / "01_sft.ipynb").is_file():
            raise ConfigError(f"--notebooks {str(notebooks)!r} has no 01_sft.ipynb; give the kit's notebooks/.")
        check_executor(args, cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.lock_wait is not None:
        os.environ[LOCK_WAIT_ENV] = f"{args.lock_wait:g}"  # read by the stages in every notebook's kernel
    hh_env = os.environ.get(HH_DIR_ENV)
    if hh_env and Path(hh_env).is_dir():  # read again in every kernel, whose working directory is notebooks/
        os.environ[HH_DIR_ENV] = str(Path(hh_env).resolve())
    from .sweep import run_sweep  # heavy imports only once the input is known to be good

    start = time.time()
    try:
        # a YAML profile by its absolute path: the notebooks would read its bare name as a packaged profile
        profile = str(Path(args.profile).resolve()) if Path(args.profile).suffix else None
        report = run_sweep(cfg, overrides, notebooks=notebooks, profile=profile, jobs=args.jobs,
                           gpus_per_job=args.gpus_per_job, executor=args.executor, wait=not args.no_wait)  # fmt: skip
    except Exception as error:  # a failing notebook: say what failed, point at its executed copy
        from .notebook_run import failure

        name, message = failure(error)
        label = getattr(error, "label", None)
        print(f"error: {label + ': ' if label else ''}{name}: {message}", file=sys.stderr)
        executed = sorted(notebooks_of(cfg.run_path), key=lambda p: p.stat().st_mtime)
        notebook = getattr(error, "notebook", None) or (executed[-1] if executed else cfg.run_path / "notebooks")
        print(f"see {notebook}", file=sys.stderr)
        if getattr(error, "log_file", None):
            print(f"SLURM log: {error.log_file}", file=sys.stderr)
        return EXIT_BUSY if name == "StageBusy" else 1
    ran = sum(1 for _, status, _ in report if status == "ran")
    if args.executor == "slurm" and args.no_wait:
        print(f"{len(report) - ran} stage run(s) done already; the rest queued on SLURM (logs in "
              f"{cfg.run_path / 'slurm'})")  # fmt: skip
        return 0
    print(
        f"sweep finished in {time.time() - start:.1f}s: {ran} stage(s) ran, {len(report) - ran} skipped; "
        f"results in {cfg.run_path / 'results'}"
    )
    return 0


def check_executor(args: argparse.Namespace, cfg) -> None:
    """Executor options that cannot work, before anything is written: flags for the other executor, no sbatch,
    resources SLURM would reject (asked with `sbatch --test-only`, which submits nothing)."""
    if args.executor == "slurm":
        if args.jobs != 1 or args.gpus_per_job != 1:
            raise ConfigError("--jobs and --gpus-per-job are for --executor local; on SLURM every stage run is its "
                              "own job (set slurm.gpus_per_job / --slurm-gpus).")  # fmt: skip
        from .slurm import check_resources, check_sbatch

        check_sbatch()
        check_resources(cfg.slurm)
    elif args.no_wait:
        raise ConfigError("--no-wait is for --executor slurm; a local sweep runs in this process.")


def plan_main(args: argparse.Namespace) -> int:
    """`sharedrep plan`: the graph `run` would execute, with what is done already. Writes nothing."""
    try:
        overrides = overrides_from(args)
        cfg = load_config(args.profile, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .graph import build_graph, describe
    from .sweep import base_parameters

    profile = str(Path(args.profile).resolve()) if Path(args.profile).suffix else None
    print(f"profile {cfg.profile}, run directory {cfg.run_path}")
    for line in describe(build_graph(cfg, base_parameters(cfg, overrides, profile))):
        print(line)
    return 0


def _default_notebooks() -> Path:
    return Path(__file__).resolve().parent.parent / "notebooks"


def notebooks_of(run: Path) -> list[Path]:
    """Executed notebooks (drafts being written live in notebooks/.drafts-*/, which this glob does not reach)."""
    return list((run / "notebooks").glob("*.ipynb"))



# --- the paper path without the hub: stand-ins, their dry run, real dimensions (standins.py, shapes.py) ----

PAPER_PATH_COMMANDS = ("standins", "paper-dryrun", "shapes")
SHAPE_ITEMS = ("sft_step", "generation", "grpo_step", "gold_scoring", "featurisation")  # shapes.ITEMS, cheaply


def add_paper_path_commands(commands) -> None:
    standins = commands.add_parser("standins", help="build same-class stand-ins of the paper's hub models (offline)")
    standins.add_argument("--out", type=Path, required=True, help="directory to write the four checkpoints into")
    standins.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    dryrun = commands.add_parser(
        "paper-dryrun", help="the paper profile end to end on the stand-ins (offline, CPU, minutes)"
    )
    dryrun.add_argument("--run-dir", type=Path, default=Path("runs/paper-dryrun"), help="run directory")
    dryrun.add_argument("--launcher", choices=["none", "accelerate"], help="as for `run`")
    dryrun.add_argument(
        "--profile", default="paper", choices=["paper", "paper-upstream"], help="the paper profile to run"
    )
    dryrun.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed on to `run`")
    dryrun.add_argument("--executor", choices=EXECUTORS, help="as for `run`")
    dryrun.add_argument("--jobs", type=_positive, help="as for `run`")
    shapes = commands.add_parser(
        "shapes", help="TinyLlama-1.1B / gpt2-large at real dimensions, random weights: time and memory per step"
    )
    shapes.add_argument("--profile", default="paper", help="batch sizes and lengths from this profile")
    shapes.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")
    shapes.add_argument("--out", type=Path, default=None, help="JSON file to write (a .md table goes beside it)")
    shapes.add_argument("--only", nargs="+", default=None, help="items (default all): " + " ".join(SHAPE_ITEMS))
    shapes.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to measure")
    shapes.add_argument("--max-seconds", type=float, default=600.0, help="skip an item estimated to take longer")
    shapes.add_argument("--max-memory-gb", type=float, default=None, help="skip an item estimated to need more")
    shapes.add_argument("--scale", type=float, default=1.0, help="shrink widths and depths (tests: e.g. 0.05)")
    shapes.add_argument("--in-process", action="store_true", help="measure every item in this process (tests)")


def paper_path_main(args: argparse.Namespace) -> int:
    if args.command == "standins":
        from .standins import build_standins

        for role, path in build_standins(args.out, seed=args.seed).items():
            print(f"{role}: {path}")
        return 0
    if args.command == "paper-dryrun":
        from .standins import paper_dryrun

        extra = [x for item in args.set for x in ("--set", item)]
        extra += ["--launcher", args.launcher] if args.launcher else []
        extra += ["--executor", args.executor] if args.executor else []
        extra += ["--jobs", str(args.jobs)] if args.jobs else []
        return paper_dryrun(args.run_dir, main, extra, profile=args.profile)
    try:
        cfg = load_config(args.profile, dict(parse_override(item) for item in args.set))
        if args.only and (unknown := sorted(set(args.only) - set(SHAPE_ITEMS))):
            raise ConfigError(f"--only {' '.join(unknown)} is not a shapes item; allowed: {', '.join(SHAPE_ITEMS)}.")
        if not 0 < args.scale <= 1:
            raise ConfigError(f"--scale {args.scale} is outside (0, 1].")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .shapes import measure_all, table_markdown, write_result

    result = measure_all(
        cfg,
        device=args.device,
        only=args.only,
        max_seconds=args.max_seconds,
        max_memory_gb=args.max_memory_gb,
        scale=args.scale,
        isolate=not args.in_process,
    )
    print(table_markdown(result))
    if args.out is not None:
        write_result(result, args.out)
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
