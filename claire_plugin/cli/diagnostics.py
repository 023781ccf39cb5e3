"""`claire diagnostics [--json]`: print the support report (versions, devices, checkpoint)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the `diagnostics` subcommand to the `claire` command line."""
    p = subparsers.add_parser(
        "diagnostics", help="print versions, devices, the device chosen and the checkpoint's validity",
        description="Print a report to paste into a bug report: versions (Python, torch, CUDA, rasterio/GDAL, "
                    "transformers), devices found, the device a run would use and why, checkpoint validity.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--checkpoint", default=None, help="checkpoint to check (default: the bundled one)")
    p.add_argument("--device", default="auto", help="device a run would ask for (default: auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 1 when a required package is missing or the checkpoint is invalid."""
    from ..core.diagnostics import collect, format_report, to_json

    report = collect(checkpoint=args.checkpoint, device=args.device)
    print(to_json(report) if args.json else format_report(report), end="" if not args.json else "\n")
    return 0 if not report["missing"] and report["checkpoint"]["valid"] else 1
