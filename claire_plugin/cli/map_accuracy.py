"""`claire sample-points` and `claire map-accuracy`: a stratified random sample of a classified map for the
user to label, and the area-weighted accuracy of the labelled sample (Olofsson et al. 2014).

This is map accuracy, kept apart from the held-out-polygon score that `claire train` reports (model
validation).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ...models.quoting import shell_quote as quote
from ..core.area_estimate import AREA_UNITS


def register(subparsers: Any) -> None:
    """Add the `sample-points` and `map-accuracy` subcommands."""
    p = subparsers.add_parser("sample-points", help="stratified random sample of a classified map, to label "
                              "for an area-weighted accuracy assessment")
    p.add_argument("--map", required=True, help="classified map (integer class raster)")
    p.add_argument("--per-class", type=int, default=50,
                   help="points per map class (all pixels of smaller classes; default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same map + seed = same points)")
    p.add_argument("--output", required=True, help="GeoPackage of points (.gpkg) with an empty ref_class field")
    p.set_defaults(func=cmd_sample_points)

    q = subparsers.add_parser("map-accuracy", help="area-weighted error matrix, accuracies and class areas "
                              "with 95 %% confidence intervals from labelled sample points")
    q.add_argument("--map", required=True, help="classified map the points were drawn from")
    q.add_argument("--points", required=True, help="labelled points (any OGR point layer)")
    q.add_argument("--field", default="ref_class", help="field holding the reference class (default ref_class, "
                   "as sample-points writes it): a code of the map or, in a text field, one of its class names "
                   "(empty: skipped)")
    q.add_argument("--layer", default=None, help="layer of the points file (needed when it holds several)")
    q.add_argument("--json", default=None, metavar="PATH", help="also write the full result as JSON")
    q.add_argument("--area-unit", default="ha", choices=list(AREA_UNITS), help="unit of the areas (default ha)")
    q.set_defaults(func=cmd_map_accuracy)


def cmd_sample_points(args: argparse.Namespace) -> int:
    """Draw the sample and write the points."""
    from ..core.io.writer import check_outputs
    from ..core.map_accuracy import stratified_sample, write_points

    check_outputs([("sample points", args.output)], [("map", args.map)])  # before any work
    s = stratified_sample(args.map, per_class=args.per_class, seed=args.seed)
    write_points(s, args.output)
    per = ", ".join(f"{c}: {int((s.value == c).sum())}" for c in s.class_pixels)
    print(f"{len(s)} points ({per}) written to {args.output}; fill ref_class with the code of the class you see "
          f"(the map's codes: {s.legend()}), then run "
          f"claire map-accuracy --map {quote(args.map)} --points {quote(args.output)}")
    for note in s.notes:
        print(f"note: {note}")
    return 0


def cmd_map_accuracy(args: argparse.Namespace) -> int:
    """Evaluate the labelled points; print the table (and write JSON)."""
    from ..core.area_estimate import accuracy_table
    from ..core.io.atomic import require_suffix, write_json
    from ..core.io.writer import check_outputs
    from ..core.map_accuracy import evaluate_points

    check_outputs([("accuracy JSON", args.json)], [("map", args.map), ("labelled points", args.points)])
    require_suffix(args.json, (".json",), "accuracy JSON")
    result = evaluate_points(args.map, args.points, args.field, layer=args.layer)
    print(accuracy_table(result, args.area_unit, warnings=False))
    for w in result["warnings"]:
        print(f"claire: warning: {w}", file=sys.stderr)
    if args.json:
        write_json(args.json, result, "accuracy JSON")
        print(f"written: {args.json}")
    return 0
