"""Throughput of the classify-folder batch in this process and on LocalClusters of 1 and 2 worker processes.

    python -m claire.claire_plugin.tools.cluster_bench --copies 3 --repeat 2 --workers 0,1,2

The folder is the bundled TerraMesh pairs (224 x 224 px, real Sentinel-2 L2A + Sentinel-1 RTC) linked
`--copies` times under other names. Configurations are run in turn, round after round (alternating, so a
neighbour's load on a shared machine spreads over all of them); each run reports the cluster start (worker
processes spawned and connected) and the batch itself (first task to last result, torch import in the
workers included) separately. Prints a Markdown table; `--json` also writes the raw timings.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Dict, List

from ..paths import resource


def make_folder(root: str, copies: int) -> tuple:
    """(optical folder, SAR folder) with `copies` links to each bundled TerraMesh pair."""
    src = resource("data", "terramesh")
    opt_dir, sar_dir = os.path.join(root, "s2"), os.path.join(root, "s1")
    os.makedirs(opt_dir)
    os.makedirs(sar_dir)
    for name in sorted(os.listdir(os.path.join(src, "S2L2A"))):
        for k in range(copies):
            os.symlink(os.path.join(src, "S2L2A", name), os.path.join(opt_dir, f"c{k}_{name}"))
            os.symlink(os.path.join(src, "S1RTC", name), os.path.join(sar_dir, f"c{k}_{name}"))
    return opt_dir, sar_dir


def run_once(workers: int, opt_dir: str, sar_dir: str, out_dir: str, threads: int) -> Dict[str, float]:
    """One batch: `workers` 0 = this process, else a LocalCluster of that many worker processes."""
    from ..core.batch import classify_pairs
    from ..core.cluster import executor_for
    from ..core.io.pairing import pair_folders
    from ..core.params import run_options

    shutil.rmtree(out_dir, ignore_errors=True)
    pairing = pair_folders(opt_dir, sar_dir, "")
    options = run_options(threads=threads)
    t0 = time.perf_counter()
    with executor_for(f"local:{workers}" if workers else "") as executor:
        t1 = time.perf_counter()
        summary = classify_pairs(pairing, options, out_dir, executor=executor)
        t2 = time.perf_counter()
    failed = summary.count("failed", "cancelled")
    if failed:
        raise RuntimeError(f"{failed} pair(s) did not finish: {summary.results}")
    n = len(summary.results)
    return {"workers": workers, "pairs": n, "start_s": t1 - t0, "batch_s": t2 - t1, "pairs_per_min": 60 * n / (t2 - t1)}


def table(runs: List[Dict[str, float]]) -> str:
    """Markdown: per configuration, the median start, batch time and pairs per minute over the rounds."""
    rows = ["| where | runs | pairs | cluster start s | batch s (median, min-max) | pairs/min |",
            "|---|---|---|---|---|---|"]
    for w in sorted({r["workers"] for r in runs}):
        mine = [r for r in runs if r["workers"] == w]
        batch = [r["batch_s"] for r in mine]
        where = "this process" if w == 0 else f"local:{w} ({w} worker process{'es' if w > 1 else ''})"
        start = statistics.median(r["start_s"] for r in mine)
        rows.append(f"| {where} | {len(mine)} | {mine[0]['pairs']} | {start:.1f} "
                    f"| {statistics.median(batch):.1f} ({min(batch):.1f}-{max(batch):.1f}) "
                    f"| {statistics.median(r['pairs_per_min'] for r in mine):.1f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="links per bundled pair (4 pairs each)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the configurations")
    parser.add_argument("--workers", default="0,1,2", help="configurations: 0 = this process, N = local:N")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--json", default=None, help="also write the raw timings here")
    args = parser.parse_args(argv)
    configs = [int(w) for w in args.workers.split(",")]
    runs: List[Dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="claire_cluster_bench_") as root:
        opt_dir, sar_dir = make_folder(root, args.copies)
        for round_no in range(args.repeat):
            order = configs if round_no % 2 == 0 else configs[::-1]
            for w in order:
                runs.append(run_once(w, opt_dir, sar_dir, os.path.join(root, "out"), args.threads))
                print(json.dumps(runs[-1]), flush=True)
    print(table(runs))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(runs, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
