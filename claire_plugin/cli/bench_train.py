"""`claire bench-train`: polygon training on the bundled TerraMesh sites (see tools/bench_train.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def register(subparsers) -> None:
    """Add the `bench-train` subcommand."""
    p = subparsers.add_parser(
        "bench-train", help="measure training from polygons on the bundled TerraMesh sites",
        description="For each site with at least two classes, draw N small square polygons per class inside "
                    "homogeneous areas of its LULC map, run `claire train --labels` in a fresh process (polygon "
                    "split) and print macro-F1 / OA of the untuned checkpoint, the fine-tuned network and random "
                    "forests with and without SAR, clear and with 60 % synthetic clouds, with wall time and peak RSS.")
    p.add_argument("--sites", default="282D_485L_3_3,38D_378R_2_3,433D_629L_3_1",
                   help="bundled sites (comma-separated; default: the three with several classes)")
    p.add_argument("--n", default="5,10,20", help="polygons per class (comma-separated)")
    p.add_argument("--seeds", default="0,1", help="seeds (comma-separated)")
    p.add_argument("--size", type=int, default=6, help="polygon side in pixels")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (default 4)")
    p.add_argument("--steps-per-epoch", type=int, default=10, help="steps per epoch (default 10)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    p.add_argument("--minutes", type=float, default=None, help="training time budget per run (instead of epochs)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of every run (default: `claire train`'s, which depends on the classes)")
    p.add_argument("--scene-size", type=int, default=None,
                   help="instead of the sites: one SIZE x SIZE scene tiled from all four sites (all eight classes)")
    p.add_argument("--checkpoint", default=None,
                   help="base checkpoint every run fine-tunes and scores untuned (default: the bundled one)")
    p.add_argument("--unseen", action="store_true",
                   help="per site, a base trained by the bundled checkpoint's recipe on the other sites only "
                        "(written to FOLDER once and reused): untuned and fine-tuned on a site the base never saw")
    p.add_argument("--folder", default=None, help="keep polygons, checkpoints and reports here (default: temporary)")
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run every (site, N, seed), print the markdown table."""
    from .dev_tools import dev_tool

    tool = dev_tool("bench_train", "bench-train")
    run_one, table, mosaic_scene, train_on = tool.run_one, tool.table, tool.mosaic_scene, tool.train_on
    summary = tool.summary
    folder = args.folder or tempfile.mkdtemp(prefix="claire-bench-train-")
    os.makedirs(folder, exist_ok=True)
    extra = ["--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps_per_epoch), "--batch-size",
             str(args.batch_size), "--threads", str(args.threads)]
    if args.minutes:
        extra[:2] = ["--minutes", str(args.minutes)]
    if args.lr is not None:
        extra += ["--lr", repr(float(args.lr))]
    sites = [s for s in args.sites.split(",") if s]
    scene = None
    if args.unseen and (args.scene_size or args.checkpoint):
        print("claire bench-train: error: --unseen trains a base per bundled site; it cannot be combined with "
              "--scene-size or --checkpoint", file=sys.stderr)
        return 2
    if args.checkpoint and not os.path.exists(args.checkpoint):
        print(f"claire bench-train: error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    if args.scene_size:
        scene = mosaic_scene(folder, args.scene_size)
        sites = [f"mosaic{args.scene_size}"]
    results = []
    for site in sites:
        base = tool.base_without(site, folder, args.threads) if args.unseen else args.checkpoint
        for n in [int(v) for v in args.n.split(",") if v]:
            for seed in [int(v) for v in args.seeds.split(",") if v]:
                if scene:
                    r = train_on(site, scene["optical"], scene["sar"], scene["lulc"], n, seed, folder, extra,
                                 args.size, base)
                else:
                    r = run_one(site, n, seed, folder, extra, args.size, base)
                if r is not None:
                    results.append(r)
                    print(table([r]).splitlines()[-1], flush=True)
                    if args.json:
                        with open(args.json, "w", encoding="utf-8") as fh:
                            json.dump(results, fh, indent=2)
    print(table(results))
    print()
    print(summary(results))
    return 0
