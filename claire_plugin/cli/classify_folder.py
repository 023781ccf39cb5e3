"""`claire classify-folder`: classify every optical/SAR pair of two folders, carrying on past failures.

The command-line twin of the Processing algorithm `claire:classify_folder`; both run `core.batch`.
Exit status: 0 when every pair was classified, 1 when at least one pair failed (the others are written),
2 for a usage error (no pairs at all, missing folder...).
"""
from __future__ import annotations

import argparse
import os
import sys

from ..core.batch import SUMMARY_CSV, SUMMARY_JSON
from .options import SCHEDULER_HELP, add_run_options, run_options


def register(subparsers) -> None:
    """Add the `classify-folder` subcommand."""
    p = subparsers.add_parser(
        "classify-folder", help="classify every optical + SAR pair of two folders (paired by file name)",
        description="Pair the rasters of an optical and a SAR folder by name and classify each pair into "
                    "<optical name>_landcover.tif in the output folder. A failing pair is reported and the "
                    "others are still classified; files without a partner are listed. A summary "
                    f"({SUMMARY_JSON} and {SUMMARY_CSV}) is written to the output folder. Exit status 1 when "
                    "a pair failed.")
    p.add_argument("--optical-folder", required=True, help="folder of optical rasters (not recursive)")
    p.add_argument("--sar-folder", required=True, help="folder of SAR rasters")
    p.add_argument("--output-folder", required=True, help="folder for the outputs (created when missing)")
    p.add_argument("--pairing", default="", help="pairing rule: empty (identical names), OPT->SAR replacements "
                                                 "such as _S2->_S1, regex:PATTERN with a (?P<key>...) group, or, "
                                                 "for a time series, nearest:DAYS[:PATTERN] (the SAR of the nearest "
                                                 "date at most DAYS apart, within each key)")
    add_run_options(p)
    p.add_argument("--confidence", action="store_true", help="also write <optical name>_confidence.tif per pair")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip pairs whose outputs (the map, and the confidence with --confidence) already exist "
                        "complete, with this run's classes and made from the same input files (a map of another "
                        "model's classes, or of a scene delivered again, is classified again)")
    p.add_argument("--scheduler", default="", help=SCHEDULER_HELP)
    p.add_argument("--quiet", action="store_true", help="print only failures and the final line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Pair, classify each pair, report failures and unmatched files; 1 when any pair failed."""
    from ..core.batch import check_pairing, classify_pairs
    from ..core.cluster import executor_for
    from ..core.io.pairing import pair_folders

    if args.scheduler:  # workers run in other processes, maybe elsewhere: they are given absolute paths
        from ..core.cluster import shared_path

        for name in ("optical_folder", "sar_folder", "output_folder", "checkpoint"):
            setattr(args, name, shared_path(getattr(args, name)))
    options = run_options(args)
    pairing = pair_folders(args.optical_folder, args.sar_folder, args.pairing)
    check_pairing(pairing, args.optical_folder, args.sar_folder, args.pairing)
    for u in pairing.unmatched:
        print(f"claire: warning: unmatched {u.side} file {os.path.basename(u.path)}: {u.reason}", file=sys.stderr)

    written = []

    def on_pair(i: int, n: int, record: dict, result) -> None:
        if record["status"] == "ok":
            written.append(record["output"])
        label = f"[{i + 1}/{n}] {os.path.basename(record['optical'])} + {os.path.basename(record['sar'])}"
        for said in record.get("warnings") or []:  # shown even with --quiet, as a single run shows them
            print(f"claire: warning: {label}: {said}", file=sys.stderr)
        if record["status"] == "failed":
            print(f"claire: error: {label}: {record['reason']}", file=sys.stderr)
        elif not args.quiet:
            print(f"{label}: wrote {record['output']}" + (f" ({record['note']})" if record.get("note") else "")
                  if record["status"] == "ok" else f"{label}: {record['status']} ({record['reason']})")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"claire: {message}", file=sys.stderr)

    try:
        with executor_for(args.scheduler, log) as executor:
            summary = classify_pairs(pairing, options, args.output_folder, optical_folder=args.optical_folder,
                                     sar_folder=args.sar_folder, rule=args.pairing, confidence=args.confidence,
                                     skip_existing=args.skip_existing, on_pair=on_pair, executor=executor)
    except KeyboardInterrupt as exc:  # claire's main says it; the pairs done before are complete files
        from ..core.io.atomic import committed
        from ..core.io.pairing import OUTPUT_SUFFIX

        # a pair committed as the interruption came is complete too, though its result never came back
        written = sorted(set(written) | {p for p in committed() if p.endswith(f"{OUTPUT_SUFFIX}.tif")})
        if written:
            exc.claire_outcome = (f"the {len(written)} pair(s) classified before are complete in "  # type: ignore
                                  f"{args.output_folder} (no batch summary was written); run the same command "
                                  f"with --skip-existing to classify the rest")
        raise
    failed = summary.count("failed")
    skipped = summary.count("skipped")
    print(f"claire: {summary.count('ok')} of {len(summary.results)} pair(s) classified"
          + (f", {skipped} skipped (complete from before)" if skipped else "")
          + f", {failed} failed, {len(summary.unmatched)} unmatched file(s); summary: {summary.json_path}",
          file=sys.stderr)
    return 1 if failed else 0
