"""The engine beside a busy core: `claire classify` on a synthetic pair alone and beside one CPU-bound
process, alternating, and the bare forward per tile at a given thread count (docs/benchmark.md, "A busy
machine").

    python -m claire.claire_plugin.tools.busy_bench forward --threads 2
    python -m claire.claire_plugin.tools.busy_bench classify --size 2048 --repeats 2 [--python OTHER_PY]

`classify` runs each repetition as: alone, then beside `python3 -c "while True: pass"` (niced like the
run); `--pythonpath` runs another checkout of the package (e.g. an exported older commit) the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence


def forward(threads: int, batches: int = 10) -> dict:
    """Median and range of the bare forward per tile (ms), default checkpoint, batch 4 of 256 px."""
    import torch

    from ..core.engine.runner import load_model
    from ..core.runtime.memory import reuse_freed_memory

    torch.set_num_threads(threads)
    model, _ = load_model(None)
    o, s = torch.randn(4, 10, 256, 256), torch.randn(4, 2, 256, 256)
    times = []
    with torch.inference_mode(), reuse_freed_memory():
        model(o, s)
        for _ in range(batches):
            t = time.perf_counter()
            model(o, s)
            times.append((time.perf_counter() - t) / 4 * 1000)
    return {"threads": threads, "median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1),
            "max_ms": round(max(times), 1), "load1": round(os.getloadavg()[0], 2),
            "omp_env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}


def classify_once(paths: dict, out: str, busy: bool, pythonpath: Optional[str] = None,
                  extra: Sequence[str] = ()) -> dict:
    """`claire classify` on `paths` in a fresh process (`extra`: more options), alone or beside one CPU-bound
    process (`busy`), both `nice -n 10`: seconds, exit code, load average at the start, thread notes."""
    other = subprocess.Popen(["nice", "-n", "10", sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
        summary = out + ".json"
        cmd = ["nice", "-n", "10", sys.executable, "-c",
               "import sys; from claire.claire_plugin.cli.main import main; sys.exit(main())", "classify",
               "--optical", paths["optical"], "--sar", paths["sar"], "--output", out, "--summary", summary, "--quiet",
               *extra]
        load = os.getloadavg()[0]
        t = time.perf_counter()
        rc = subprocess.run(cmd, env=env, capture_output=True).returncode
        seconds = time.perf_counter() - t
    finally:
        if other is not None:
            other.kill()
            other.wait()
    notes = []
    if rc == 0 and os.path.exists(summary):
        with open(summary, encoding="utf-8") as f:
            notes = [m for m in json.load(f).get("messages", []) if m.startswith("threads")]
    return {"busy": busy, "rc": rc, "seconds": round(seconds, 1), "load1": round(load, 2), "notes": notes}


def classify_runs(size: int, repeats: int, folder: str, pythonpath: Optional[str] = None) -> List[dict]:
    """`claire classify` on the synthetic pair of `size`: alone, then beside a busy process, `repeats` times."""
    from .bench import write_pair

    paths = write_pair(folder, size)
    rows = []
    for rep in range(repeats):
        for busy in (False, True):
            row = classify_once(paths, os.path.join(folder, f"busy_bench_{size}.tif"), busy, pythonpath)
            rows.append({"repeat": rep + 1, **row})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("forward")
    f.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("classify")
    c.add_argument("--size", type=int, default=2048)
    c.add_argument("--repeats", type=int, default=2)
    c.add_argument("--folder", default=None)
    c.add_argument("--pythonpath", default=None, help="PYTHONPATH of the checkout to run (default: this one)")
    a = ap.parse_args(argv)
    if a.what == "forward":
        print(json.dumps(forward(a.threads)))
    else:
        classify_runs(a.size, a.repeats, a.folder or tempfile.mkdtemp(prefix="claire-busy-"), a.pythonpath)
    return 0


if __name__ == "__main__":
    sys.exit(main())
