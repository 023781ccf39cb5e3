"""`claire suggest`: where to label next, the places where two maps of a `claire train` run (the network's and
the random forest's) disagree or the map's confidence is low, away from the labels already drawn."""
from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the `suggest` subcommand."""
    p = subparsers.add_parser("suggest", help="places to draw training polygons next: where two maps disagree or "
                              "the confidence is low, away from your labels")
    p.add_argument("--map", required=True, help="classified map (integer class raster)")
    p.add_argument("--second", default=None, help="a second classified map of the same grid, e.g. the random "
                   "forest's map of the same claire train run")
    p.add_argument("--confidence", default=None, help="the map's confidence raster (claire classify --confidence)")
    p.add_argument("--labels", default=None, help="the training labels (vector or label raster): their places "
                   "are skipped")
    p.add_argument("--field", default=None, help="class field of a labels vector")
    p.add_argument("--layer", default=None, help="layer of the labels file (needed when it holds several)")
    p.add_argument("--n", type=int, default=10, help="number of places (default 10)")
    p.add_argument("--square", type=int, default=16, help="square side in pixels (default 16: 160 m at 10 m)")
    p.add_argument("--output", required=True, help="GeoPackage of points (.gpkg), layer label_next")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the places as JSON")
    p.set_defaults(func=cmd_suggest)


def cmd_suggest(args: argparse.Namespace) -> int:
    """Find the places, write them, print them."""
    from ..core.io.atomic import require_suffix, write_json
    from ..core.io.writer import check_outputs
    from ..core.suggest import as_dict, check_places_output, suggest, summary_lines, write_places

    check_outputs([("places", args.output), ("places JSON", args.json)],  # every output, before any work
                  [("map", args.map), ("second map", args.second), ("confidence raster", args.confidence),
                   ("labels", args.labels)])
    require_suffix(args.json, (".json",), "places JSON")
    check_places_output(args.output)
    s = suggest(args.map, args.second, args.confidence, args.labels, args.field, args.layer, n=args.n,
                square=args.square)
    write_places(s, args.output)
    for line in summary_lines(s):
        print(line)
    print(f"written: {args.output} (draw polygons of the cover you see at each point, then train again)")
    if args.json:
        write_json(args.json, as_dict(s), "places JSON")
        print(f"written: {args.json}")
    return 0
