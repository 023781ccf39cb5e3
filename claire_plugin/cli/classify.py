"""`claire classify`: optical + SAR -> land-cover GeoTIFF (plus optional confidence, reliance, summary)."""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Optional, Tuple

from ...models.quoting import quoted
from ..core.errors import ClaireError
from .options import SCHEDULER_HELP, add_run_options, run_options


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
                   help="also write the top-class probability as uint8 percent 0-100, rounded down (49.6 %% is "
                        "49, below the summary's 50 %% for low confidence, so a mean over it is about 0.5 below the "
                        "summary's; nodata 255)")
    p.add_argument("--reliance", default=None,
                   help="also write the SAR share of the fusion gate as uint8 percent 0-100, rounded down (nodata 255)")
    p.add_argument("--cloud", default=None,
                   help="also write the cloud probability (models.cloud: cloud, haze, shadow; no cirrus test, B10 is "
                        "not read; salt flats and white roofs read as cloud) as uint8 percent 0-100 (nodata 255); "
                        "100 where optical gaps were filled from SAR")
    p.add_argument("--unfamiliar", default=None,
                   help="also write how unlike the training data each pixel looks to the model, uint8 0-100 "
                        "(100 = at the card's threshold and above; nodata 255); needs a card with familiarity")
    p.add_argument("--extent", default=None, metavar="XMIN,YMIN,XMAX,YMAX",
                   help="classify only the pixels this rectangle touches, in the optical raster's CRS (a preview "
                        "of an area): the outputs cover it, with the same values as a run over the whole scene")
    p.add_argument("--reference", default=None, help="reference class raster: adds accuracy metrics to the summary")
    p.add_argument("--summary", default=None, help="write the run summary as JSON to this file")
    p.add_argument("--report", default=None,
                   help="write the explanation report: FILE.json and its Markdown twin FILE.md, or FILE.html and "
                        "FILE.json (either name given, both are written)")
    p.add_argument("--explainer", default=None, help="local folder of a language model for the report text")
    p.add_argument("--scheduler", default="", help=SCHEDULER_HELP + "; the scene is split into bands of rows")
    p.add_argument("--parts", type=int, default=None,
                   help="with --scheduler: bands of rows to split the scene into (default: 2 per worker)")
    p.add_argument("--vrt", action="store_true",
                   help="with --scheduler: write the output as a VRT over the bands' GeoTIFFs (kept in "
                        "<output stem>_parts/) instead of one GeoTIFF")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def parse_extent(text: Optional[str]) -> Optional[Tuple[float, ...]]:
    """--extent 'xmin,ymin,xmax,ymax' (commas, semicolons or spaces) -> four floats; empty -> None; anything else
    a ClaireError with an example (the order is checked by the engine)."""
    parts = [p for p in re.split(r"[,;\s]+", (text or "").strip()) if p]
    if not parts:
        return None
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise ClaireError(f"--extent {quoted(text)} is not four numbers; give xmin,ymin,xmax,ymax in the optical "
                          "raster's CRS, e.g. --extent 500000,4590000,505000,4595000")
    return values


def params_from_args(args: argparse.Namespace):
    """ClassifyParams from parsed arguments."""
    return run_options(args).params(
        args.optical, args.sar, args.output, confidence=args.confidence, reliance=args.reliance,
        cloud=args.cloud, unfamiliar=args.unfamiliar, reference=args.reference, extent=parse_extent(args.extent),
        summary_json=args.summary, report=args.report, explainer=args.explainer)


def format_table(summary: dict) -> str:
    """Per-class table: value, name, pixels, hectares, share, mean confidence, SAR share."""
    from ..core.engine.summary import reference_line, scene_line

    w = max([20] + [len(str(c["name"])) for c in summary["classes"]])  # whole names: CORINE's run to 80 letters
    rows = [f"{'value':>5}  {'class':<{w}} {'pixels':>12} {'area ha':>12} {'share':>7} {'conf':>6} {'SAR':>6}"]
    for c in summary["classes"]:
        conf = "-" if c["mean_confidence"] is None else f"{c['mean_confidence']:.2f}"
        sar = "-" if c["mean_sar_share"] is None else f"{c['mean_sar_share']:.2f}"
        rows.append(f"{c['value']:>5}  {c['name']:<{w}} {c['pixels']:>12} {c['area_ha']:>12.2f} "
                    f"{c['share']:>7.1%} {conf:>6} {sar:>6}")
    rows.append(scene_line(summary))
    m = summary.get("metrics")
    if m:
        rows.append(reference_line(m))
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    """Run the classification and print band choice, outputs and the class table."""
    from ..core.engine import classify

    if args.parts is not None and args.parts < 1:
        raise ClaireError(f"--parts {args.parts}: give 1 or more bands of rows (or leave it out: two per worker)")
    if args.scheduler:
        return run_split(args)
    if args.vrt or args.parts is not None:
        raise ClaireError("--vrt and --parts split a scene over a Dask cluster; give --scheduler too (e.g. "
                          "--scheduler local:2)")
    if args.explainer and not args.report:
        raise ClaireError("--explainer names the language model that writes the report's text; give --report "
                          "FILE.json (or .md / .html) too, or leave --explainer out")
    params = params_from_args(args)
    quiet = args.quiet
    state = {"last": -1}
    # on a terminal one line rewritten in place; in a log (cron, CI) a line every 10 %, no carriage returns
    tty = bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
    step = 5 if tty else 10

    def progress(fraction: float, message: str) -> None:
        if quiet or state.get("mute"):
            return
        pct = int(fraction * 100)
        if pct >= state["last"] + step or (fraction >= 1.0 and state["last"] < 100):
            state["last"] = pct
            try:
                if tty:
                    print(f"\r[{pct:3d}%] {message:<60}", end="", file=sys.stderr, flush=True)
                else:
                    print(f"[{pct:3d}%] {message}", file=sys.stderr, flush=True)
            except OSError:  # a log on a full disk: the run goes on, its progress unsaid (the end says what failed)
                state["mute"] = True

    try:
        result = classify(params, progress)
    except BaseException as exc:  # the progress line ended first: the message starts a line of its own
        if state["last"] >= 0 and tty:
            print(file=sys.stderr)
        if not quiet and isinstance(exc, ClaireError) and getattr(exc, "run_messages", None):
            if state["last"] < 0:
                print(file=sys.stderr)
            for m in exc.run_messages:  # what the run had planned (memory, tile, lanes, bands) helps read it
                print(f"claire: planned: {m}", file=sys.stderr)
        raise
    if state["last"] >= 0 and tty:  # the progress line ends before anything else is said
        print(file=sys.stderr)
    for m in result.messages:
        if m.startswith("warning:"):  # shown even with --quiet: the map may be poor; a line of its own to grep
            print(f"claire: {m}", file=sys.stderr)
    if not quiet:
        for m in result.messages:
            print(m)
        print(f"classes:    {result.output}")
        if result.confidence:
            print(f"confidence: {result.confidence}")
        if result.reliance:
            print(f"reliance:   {result.reliance}")
        for name in ("cloud", "unfamiliar"):
            if getattr(result, name):
                print(f"{name + ':':<12}{getattr(result, name)}")
        if result.summary_json:
            print(f"summary:    {result.summary_json}")
        if result.report:
            from ..core.explain.report import report_paths

            json_path, twin, _ = report_paths(args.report)
            print(f"report:     {json_path} and {twin}")
        print(format_table(result.summary))
    return 0


def run_split(args: argparse.Namespace) -> int:
    """`--scheduler`: the scene in bands of rows on the cluster, assembled into the output (core.cluster_scene)."""
    from ..core.cluster import executor_for, shared_path
    from ..core.cluster_scene import classify_scene

    unsupported = [flag for flag, value in (("--reliance", args.reliance), ("--reference", args.reference),
                                            ("--cloud", args.cloud), ("--unfamiliar", args.unfamiliar),
                                            ("--summary", args.summary), ("--report", args.report),
                                            ("--explainer", args.explainer),
                                            ("--extent", args.extent)) if value]
    if unsupported:
        raise ClaireError(f"{', '.join(unsupported)} cannot be combined with --scheduler yet (a split scene "
                          f"writes the classes and the confidence); run without --scheduler for those")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"claire: {message}", file=sys.stderr)

    for name in ("optical", "sar", "output", "confidence", "checkpoint"):  # workers run elsewhere
        setattr(args, name, shared_path(getattr(args, name)))
    with executor_for(args.scheduler, log) as executor:
        parts = args.parts or 2 * executor.workers
        result = classify_scene(run_options(args), args.optical, args.sar, args.output, executor, parts=parts,
                                confidence=args.confidence, vrt=args.vrt,
                                progress=lambda f, m: log(f"[{int(f * 100):3d}%] band done: {m}" if f else m))
    if not args.quiet:
        print(f"classes:    {result.output} ({len(result.bands)} bands of rows)")
        if result.confidence:
            print(f"confidence: {result.confidence}")
        if result.parts:
            print(f"parts:      {os.path.dirname(result.parts[0])}")
    return 0

