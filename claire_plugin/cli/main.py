"""`claire` command line: one dispatcher; each subcommand module registers its own parser.

Every module listed in `_COMMANDS` exposes `register(subparsers)`, which adds its subparser(s) and sets
`func=callable(args) -> int` on each.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import (
    bench,
    bench_robustness,
    bench_train,
    classify,
    classify_folder,
    diagnostics,
    evaluate,
    explain,
    fusion_table,
    info,
    map_accuracy,
    train,
)

# Subcommand modules in the order their commands appear in `claire --help`.
_COMMANDS = [classify, classify_folder, train, evaluate, map_accuracy, fusion_table, info, bench, bench_robustness,
             bench_train, explain, diagnostics]


#: Commands that read georeferenced rasters: a missing PROJ database is reported first (core.runtime.environment).
_READ_RASTERS = {"classify", "classify-folder", "train", "evaluate", "map-accuracy", "sample-points"}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available area's subcommands."""
    parser = argparse.ArgumentParser(
        prog="claire",
        description="CLAIRE: optical + SAR land-cover classification (QGIS-free command line).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMANDS:
        module.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; user errors print one clear line and exit with status 2."""
    from ..core.errors import USER_ERRORS

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        if args.command in _READ_RASTERS:
            from ..core.runtime.environment import proj_problem

            if proj_problem():
                print(f"claire: warning: {proj_problem()}", file=sys.stderr)
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"claire: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("claire: interrupted; no output was written.", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        from ..deps import missing_package_hint

        hint = missing_package_hint(exc)
        if not hint:
            raise
        print(f"claire: error: {hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
