"""Stage entry points: one `main(cfg, ...)` per stage, called by the notebooks, the sweep, and
`accelerate launch -m sharedrep_utils.stages.<stage>` alike.

Each stage also has `params(cfg, ...)`: the parameters its manifest hashes, including the hashes
of the stages it reads, so a changed upstream stage makes this one run again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..config import ConfigError, load_config, parse_override


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
    main(cfg, **{name: getattr(args, name) for name in needs})
