"""`claire grow-polygons`: training polygons grown from labelled points over the optical raster (the Train tab's
magic wand for a whole point layer; core.training.grow_points)."""
from __future__ import annotations

import argparse
from typing import Any

from ...models.quoting import shell_quote as quote
from ..core.training.wand import MAX_WIDTH, TOLERANCE


def register(subparsers: Any) -> None:
    """Add the `grow-polygons` subcommand."""
    from ..core.inputs.units import SAR_UNITS

    p = subparsers.add_parser("grow-polygons", help="training polygons grown from labelled points over the optical "
                              "raster (region growing)")
    p.add_argument("--optical", required=True, help="optical raster the polygons are grown over")
    p.add_argument("--sar", required=True, help="SAR raster of the scene (pixels without SAR never join)")
    p.add_argument("--points", required=True, help="labelled points (any OGR point layer)")
    p.add_argument("--field", required=True, help="field of the points holding the class; copied to the polygons")
    p.add_argument("--layer", default=None, help="layer of the points file (needed when it holds several)")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help="RMS distance over the optical bands, in the "
                   f"checkpoint's standard deviations, within which pixels join (default {TOLERANCE:g})")
    p.add_argument("--max-width", type=int, default=MAX_WIDTH, help="side of the square each polygon stays in, in "
                   f"pixels (default {MAX_WIDTH})")
    p.add_argument("--checkpoint", default=None, help="checkpoint whose normalisation measures the distances "
                   "(default: the bundled one)")
    p.add_argument("--sar-units", default="auto", choices=list(SAR_UNITS),
                   help="unit of the SAR values (default auto: from the file's metadata and values)")
    p.add_argument("--output", required=True, help="GeoPackage (.gpkg) of the polygons, layer training")
    p.set_defaults(func=cmd_grow_polygons)


def cmd_grow_polygons(args: argparse.Namespace) -> int:
    """Grow, write, say what was made and skipped."""
    from ..core.io.writer import check_outputs
    from ..core.training.grow_points import check_grown_output, grow_from_points, summary_lines, write_grown

    check_outputs([("polygons", args.output)], [("optical raster", args.optical), ("SAR raster", args.sar),
                                                ("points", args.points), ("checkpoint", args.checkpoint)])
    check_grown_output(args.output)
    grown = grow_from_points(args.optical, args.sar, args.points, args.field, args.layer, args.checkpoint,
                             args.tolerance, args.max_width, sar_units=args.sar_units)
    write_grown(grown, args.output)
    for line in summary_lines(grown, args.tolerance):
        print(line)
    print(f"written: {args.output} (check the polygons on the imagery, then: claire train --labels "
          f"{quote(args.output)} --field {quote(args.field)} ...)")
    return 0
