"""`claire classify`: optical + SAR -> land-cover GeoTIFF (plus optional confidence, reliance, summary)."""
from __future__ import annotations

import argparse
import sys

from .options import add_run_options, run_options


def register(subparsers) -> None:
    """Add the `classify` subcommand."""
    p = subparsers.add_parser(
        "classify", help="classify an optical + SAR raster pair into a land-cover GeoTIFF",
        description="Fuse an optical raster and a SAR raster into a land-cover map on the optical grid. The SAR "
                    "is warped onto the optical grid on the fly; only their overlap is classified. Outputs are "
                    "tiled, compressed GeoTIFFs written to a temporary name and renamed when complete.")
    p.add_argument("--optical", required=True, help="optical raster (e.g. Sentinel-2 band stack)")
    p.add_argument("--sar", required=True, help="SAR raster (e.g. Sentinel-1 VV,VH in dB or linear), any CRS")
    p.add_argument("--output", required=True, help="class raster to write (uint8 GeoTIFF)")
    add_run_options(p)
    p.add_argument("--confidence", default=None,
                   help="also write the top-class probability as uint8 percent 0-100 (nodata 255)")
    p.add_argument("--reliance", default=None,
                   help="also write the SAR share of the fusion gate as uint8 percent 0-100 (nodata 255)")
    p.add_argument("--reference", default=None, help="reference class raster: adds accuracy metrics to the summary")
    p.add_argument("--summary", default=None, help="write the run summary as JSON to this file")
    p.add_argument("--report", default=None, help="write the explanation report (JSON) to this file")
    p.add_argument("--explainer", default=None, help="local folder of a language model for the report text")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def params_from_args(args: argparse.Namespace):
    """ClassifyParams from parsed arguments."""
    return run_options(args).params(
        args.optical, args.sar, args.output, confidence=args.confidence, reliance=args.reliance,
        reference=args.reference, summary_json=args.summary, report=args.report, explainer=args.explainer)


def format_table(summary: dict) -> str:
    """Per-class table: value, name, pixels, hectares, share, mean confidence, SAR share."""
    rows = [f"{'value':>5}  {'class':<20} {'pixels':>12} {'area ha':>12} {'share':>7} {'conf':>6} {'SAR':>6}"]
    for c in summary["classes"]:
        conf = "-" if c["mean_confidence"] is None else f"{c['mean_confidence']:.2f}"
        sar = "-" if c["mean_sar_share"] is None else f"{c['mean_sar_share']:.2f}"
        rows.append(f"{c['value']:>5}  {c['name'][:20]:<20} {c['pixels']:>12} {c['area_ha']:>12.2f} "
                    f"{c['share']:>7.1%} {conf:>6} {sar:>6}")
    rows.append(f"valid pixels {summary['valid_pixels']}, nodata {summary['nodata_pixels']}, "
                f"cloud-like {summary['cloud_like_share']:.1%}, optical invalid {summary['optical_invalid_share']:.1%}")
    m = summary.get("metrics")
    if m:
        rows.append(f"vs reference: OA {m['oa']:.3f}, mIoU {m['miou']:.3f}, kappa {m['kappa']:.3f}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    """Run the classification and print band choice, outputs and the class table."""
    from ..core.engine import classify

    params = params_from_args(args)
    quiet = args.quiet
    state = {"last": -1}

    def progress(fraction: float, message: str) -> None:
        if quiet:
            return
        pct = int(fraction * 100)
        if pct >= state["last"] + 5 or fraction >= 1.0:
            state["last"] = pct
            print(f"\r[{pct:3d}%] {message:<60}", end="", file=sys.stderr, flush=True)

    result = classify(params, progress)
    if not quiet:
        print(file=sys.stderr)
        for m in result.messages:
            print(m)
        print(f"classes:    {result.output}")
        if result.confidence:
            print(f"confidence: {result.confidence}")
        if result.reliance:
            print(f"reliance:   {result.reliance}")
        if result.summary_json:
            print(f"summary:    {result.summary_json}")
        if result.report:
            print(f"report:     {result.report}")
        print(format_table(result.summary))
    return 0
