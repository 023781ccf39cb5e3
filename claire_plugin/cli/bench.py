"""`claire bench`: end-to-end vs bare-forward speed and peak memory on synthetic pairs (see bench.py)."""
from __future__ import annotations

import argparse
import json
import os
from typing import List

from ...models.quoting import quoted
from ..core.errors import ClaireError
from ..core.params import RUNTIMES
from .dev_tools import dev_tool

#: The largest benchmark pair's side (its synthetic inputs are written to disk first).
MAX_BENCH_SIZE = 20000

LAYOUT_NAMES = ("cog", "plain")  # tools/bench.py's LAYOUTS, named here so that --help works without the tools


def register(subparsers) -> None:
    """Add the `bench` subcommand."""
    p = subparsers.add_parser(
        "bench", help="benchmark the engine on synthetic Sentinel-2 + Sentinel-1 pairs",
        description="For each size and runtime: write a 13-band uint16 optical (UTM, 10 m) and a 2-band dB SAR "
                    "(EPSG:4326, ~20 m), time the runtime's one-time build/load, classify the pair end to end with "
                    "it in a fresh process, then time the bare forward of that runtime and of eager float32 on the "
                    "same tiles. Prints seconds, both ratios, MPix/s, peak RSS and the agreement of each runtime's "
                    "map with the eager one (when eager is among the runtimes).")
    p.add_argument("--sizes", default="1024,4096,8192", help="square sizes in pixels (default 1024,4096,8192)")
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the bundled one)")
    p.add_argument("--batch-size", type=int, default=0, help="tiles per forward pass (default 0: the engine's choice)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--bare-tiles", type=int, default=None,
                   help="time the bare forward on this many tiles and scale to the full count (default: all)")
    p.add_argument("--repeats", type=int, default=None,
                   help="alternate end-to-end and bare-forward runs this many times and keep the fastest of each "
                        "(default: 3 up to 2048 px, 2 up to 4096 px, else 1)")
    p.add_argument("--folder", default=None, help="keep the synthetic rasters in this folder (default: temporary)")
    p.add_argument("--layout", default="plain", choices=LAYOUT_NAMES,
                   help="how the pair is stored: plain = uncompressed 256 x 256 tiles (default); cog = deflate "
                        "with 1024 x 1024 tiles, as Sentinel-1/2 COGs are")
    p.add_argument("--runtimes", default="auto",
                   help=f"comma-separated runtimes to measure, each in its own rows: {', '.join(RUNTIMES)} "
                        "(default: auto); add eager to get each map's agreement with the eager one")
    p.add_argument("--contention", action="store_true",
                   help="also classify each pair alone and beside one CPU-bound process (`claire classify`, fresh "
                        "processes) and report busy / alone (issue #22 target: at most 2)")
    p.add_argument("--whole-tile", action="store_true",
                   help="one whole Sentinel-2 tile: a 10980 x 10980 pair end to end (bare forward timed on 400 tiles "
                        "unless --bare-tiles says otherwise), with the time per phase")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table (and the targets)."""
    bench = dev_tool("bench", "bench")
    if args.whole_tile:
        args.sizes, args.repeats = "10980", args.repeats or 1
        args.bare_tiles = args.bare_tiles or 400
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise ClaireError(f"--sizes {quoted(args.sizes)} is not a list of integers; e.g. --sizes 1024,4096") from None
    if not sizes or min(sizes) < 64 or max(sizes) > MAX_BENCH_SIZE:
        raise ClaireError(f"--sizes needs sizes from 64 to {MAX_BENCH_SIZE} pixels (a whole Sentinel-2 tile is "
                          f"10980; each size first writes a synthetic pair to disk, several GB at the largest), "
                          f"e.g. --sizes 1024,4096,8192")
    runtimes = parse_runtimes(args.runtimes)
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
    if args.folder:
        os.makedirs(args.folder, exist_ok=True)
    report = bench.run_bench(sizes, folder=args.folder, checkpoint=args.checkpoint, batch=args.batch_size,
                             threads=args.threads, bare_tiles=args.bare_tiles, repeats=args.repeats, layout=args.layout,
                             runtimes=runtimes, contention=args.contention)
    print(bench.format_table(report))
    print(bench.format_phases(report))
    print(json.dumps(report["targets"], indent=2))
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, GPU {m['gpu']}, torch {m['torch']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        print(f"results: {args.json}")
    return 0


def parse_runtimes(text: str) -> List[str]:
    """The runtimes of `--runtimes` (comma-separated, each once, in order); ClaireError for an unknown one."""
    names = list(dict.fromkeys(n.strip().lower() for n in (text or "").split(",") if n.strip()))
    bad = [n for n in names if n not in RUNTIMES]
    if bad or not names:
        raise ClaireError(f"--runtimes {quoted(text)}: {'unknown ' + ', '.join(bad) if bad else 'none given'}; use "
                          f"some of {', '.join(RUNTIMES)}, e.g. --runtimes eager,auto")
    return names
