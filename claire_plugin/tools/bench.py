"""Benchmark of the engine on synthetic Sentinel-2 + Sentinel-1 pairs.

For each size N: a 13-band uint16 optical (UTM 33N, 10 m, N x N) and a 2-band float32 dB SAR on
EPSG:4326 at ~20 m. For each size and each runtime asked for (core.runtime.compiled: eager, compiled, aot,
auto) a fresh subprocess (tools/bench_measure.py, so the peak RSS, VmHWM, belongs to that run alone) times
the runtime's one-time build/load, classifies the pair end to end with that runtime and times the bare
forward of the same runtime and of eager float32 on the same tiles and batches. Reported per row: end-to-end
seconds, both bare forwards, their ratios, MPix/s, peak RSS, the build/load seconds, and the share of pixels
where the runtime's map equals the eager run's (when eager ran too).
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...models.quoting import quoted

UTM = "EPSG:32633"
ORIGIN = (400000.0, 5200000.0)  # around 46.9 N, 13.7 E


#: Storage layouts of the synthetic pair: uncompressed 256 x 256 tiles, or as Sentinel-1/2 COGs are stored
#: (deflate with the horizontal predictor, 1024 x 1024 tiles).
LAYOUTS = {"plain": {}, "cog": {"compress": "deflate", "predictor": 2, "blockxsize": 1024, "blockysize": 1024}}


def write_pair(folder: str, size: int, seed: int = 0, layout: str = "plain") -> Dict[str, str]:
    """Write the synthetic optical + SAR pair of `size` (streamed in 256-row strips), stored as `layout`
    (LAYOUTS: the same pixels either way)."""
    if layout != "plain":
        return _copy_pair(folder, size, seed, layout)
    import rasterio
    from rasterio.transform import from_bounds, from_origin
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    opt_path = os.path.join(folder, f"optical_{size}.tif")
    sar_path = os.path.join(folder, f"sar_{size}.tif")
    if os.path.exists(opt_path) and os.path.exists(sar_path):
        return {"optical": opt_path, "sar": sar_path}
    rng = np.random.default_rng(seed)
    t = from_origin(ORIGIN[0], ORIGIN[1], 10.0, 10.0)
    base = np.array([1200, 1000, 900, 800, 1100, 1800, 2100, 2300, 2400, 600, 30, 1700, 1100], np.float32)
    prof = dict(driver="GTiff", width=size, height=size, count=13, dtype="uint16", crs=UTM, transform=t,
                tiled=True, blockxsize=256, blockysize=256, nodata=0)
    cols = np.arange(size, dtype=np.float32)
    with rasterio.open(opt_path + ".tmp.tif", "w", **prof) as dst:
        for r0 in range(0, size, 256):
            h = min(256, size - r0)
            rows = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            field = (np.sin(cols / 97.0) * np.cos(rows / 131.0) + np.sin((cols + rows) / 53.0)) * 0.5
            noise = rng.normal(0, 40, (13, h, size)).astype(np.float32)
            block = base[:, None, None] * (1.0 + 0.5 * field[None]) + noise
            dst.write(np.clip(block, 1, 10000).astype(np.uint16), window=Window(0, r0, size, h))
    os.replace(opt_path + ".tmp.tif", opt_path)
    b = transform_bounds(UTM, "EPSG:4326", ORIGIN[0], ORIGIN[1] - 10.0 * size, ORIGIN[0] + 10.0 * size, ORIGIN[1],
                         densify_pts=21)
    lat = math.radians((b[1] + b[3]) / 2)
    dy = 20.0 / 110574.0
    dx = 20.0 / (111320.0 * math.cos(lat))
    pad = 5
    west, south, east, north = b[0] - pad * dx, b[1] - pad * dy, b[2] + pad * dx, b[3] + pad * dy
    w, h = int(math.ceil((east - west) / dx)), int(math.ceil((north - south) / dy))
    ts = from_bounds(west, north - h * dy, west + w * dx, north, w, h)
    sprof = dict(driver="GTiff", width=w, height=h, count=2, dtype="float32", crs="EPSG:4326", transform=ts,
                 tiled=True, blockxsize=256, blockysize=256, nodata=float("nan"))
    scol = np.arange(w, dtype=np.float32)
    with rasterio.open(sar_path + ".tmp.tif", "w", **sprof) as dst:
        dst.set_band_description(1, "VV")
        dst.set_band_description(2, "VH")
        for r0 in range(0, h, 256):
            hh = min(256, h - r0)
            rows = np.arange(r0, r0 + hh, dtype=np.float32)[:, None]
            field = np.sin(scol / 49.0) * np.cos(rows / 65.0)
            vv = -12.0 + 4.0 * field + rng.normal(0, 1.0, (hh, w)).astype(np.float32)
            dst.write(np.stack([vv, vv - 6.0]).astype(np.float32), window=Window(0, r0, w, hh))
    os.replace(sar_path + ".tmp.tif", sar_path)
    return {"optical": opt_path, "sar": sar_path}


def _copy_pair(folder: str, size: int, seed: int, layout: str) -> Dict[str, str]:
    """The plain pair copied into `layout`."""
    from rasterio.shutil import copy

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {quoted(layout)}; use one of {', '.join(LAYOUTS)}")
    plain = write_pair(folder, size, seed)
    out = {}
    for role, src in plain.items():
        dst = src[:-4] + f"_{layout}.tif"
        if not os.path.exists(dst):
            copy(src, dst + ".tmp.tif", driver="GTiff", tiled=True, **LAYOUTS[layout])
            os.replace(dst + ".tmp.tif", dst)
        out[role] = dst
    return out


def _vmhwm_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    """CPU seconds (user + system) used by this process so far, all threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load(checkpoint: Optional[str]):
    """Default checkpoint, or (when it is missing) an untrained 'small' CLAIRE of the same shape."""
    from ..core.engine import load_model
    from ..paths import DEFAULT_CHECKPOINT

    path = checkpoint or DEFAULT_CHECKPOINT
    if os.path.exists(path):
        model, card = load_model(path)
        return model, card, os.path.basename(path)
    from ...models.registry import build_model

    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    config = {"num_classes": 9, "optical_channels": 10, "sar_channels": 2, "size": "small"}
    card = {"arch": "claire", "config": config, "nodata": 0, "tile_size": 256, "overlap": 32,
            "classes": [{"index": i, "value": i + 1, "name": f"class {i + 1}"} for i in range(9)],
            "inputs": {"optical": {"bands": bands, "units": "reflectance", "scale": 1e-4, "clip": [0, 1],
                                   "mean": [0.15] * 10, "std": [0.1] * 10},
                       "sar": {"bands": ["VV", "VH"], "units": "dB", "clip": [-40, 5],
                               "mean": [-12, -18], "std": [5, 5]}}}
    return build_model("claire", config).eval(), card, "untrained 'small' CLAIRE (default checkpoint missing)"


def _bare(model, dev, co: int, cs: int, tile: int, batch: int, n_tiles: int, timed: int, cloud: bool = False,
          features: bool = False, batches: Optional[List[int]] = None):
    """(wall, CPU) seconds of the model alone on `n_tiles` random tiles, fed in `batches` (default: full
    batches of `batch`, the last one short), timed on the first batches that hold `timed` tiles and scaled,
    after a warm-up batch, under the same allocator settings as the engine (core.runtime.memory); with a cloud
    probability input when `cloud`, asking for the familiarity features when `features`."""
    import torch

    from ..core.runtime.memory import reuse_freed_memory

    g = torch.Generator().manual_seed(0)
    o = torch.randn(batch, co, tile, tile, generator=g).to(dev)
    s = torch.randn(batch, cs, tile, tile, generator=g).to(dev)
    c = torch.rand(batch, 1, tile, tile, generator=g).to(dev) if cloud else None
    kw = {"return_features": True} if features else {}
    sizes = batches or [min(batch, n_tiles - i) for i in range(0, n_tiles, batch)]

    def forward(n: int) -> None:
        model(o[:n], s[:n], **kw, **({"cloud": c[:n]} if c is not None else {}))

    with torch.inference_mode(), reuse_freed_memory():
        forward(sizes[0])  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        c1, t1 = _cpu_s(), time.perf_counter()
        done = 0
        for n in sizes:
            if done >= timed:
                break
            forward(n)
            done += n
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t1) * n_tiles / done, (_cpu_s() - c1) * n_tiles / done


def reset_peak_rss() -> None:
    """Start the process's peak RSS (VmHWM) afresh from its current RSS (Linux 4.0+; elsewhere it stays)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
    except OSError:
        pass


def output_path(folder: str, size: int, runtime: str) -> str:
    """The class raster of the end-to-end run of `size` with `runtime`."""
    return os.path.join(folder, f"classes_{size}_{runtime}.tif")


def map_agreement(reference: str, other: str) -> Optional[float]:
    """Share of the reference map's valid pixels (not its nodata) where `other` has the same class, read in
    strips of rows; None when the reference has no valid pixel. Both rasters must share their grid."""
    import rasterio
    from rasterio.windows import Window

    same = valid = 0
    with rasterio.open(reference) as a, rasterio.open(other) as b:
        if (a.width, a.height) != (b.width, b.height):
            raise ValueError(f"{other} is {b.width} x {b.height}, {reference} {a.width} x {a.height}")
        for r0 in range(0, a.height, 1024):
            win = Window(0, r0, a.width, min(1024, a.height - r0))
            x, y = a.read(1, window=win), b.read(1, window=win)
            ok = x != a.nodata if a.nodata is not None else np.ones(x.shape, bool)
            same += int((x[ok] == y[ok]).sum())
            valid += int(ok.sum())
    return same / valid if valid else None


def machine() -> dict:
    """A short description of the machine the benchmark ran on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def run_bench(sizes: List[int], folder: Optional[str] = None, checkpoint: Optional[str] = None, batch: int = 0,
              threads: Optional[int] = None, log=print, bare_tiles: Optional[int] = None,
              repeats: Optional[int] = None, layout: str = "plain", runtimes: Sequence[str] = ("auto",),
              contention: bool = False) -> dict:
    """Measure every size with every runtime, each in its own subprocess (tools/bench_measure.py), and each
    runtime's map against the eager one where both ran; with `contention`, also each row's `claire classify`
    alone and beside one CPU-bound process (`contention_row`); returns {"machine", "results", "targets"}."""
    own = folder is None
    folder = folder or tempfile.mkdtemp(prefix="claire-bench-")
    results = []
    try:
        for size in sizes:
            log(f"size {size}: writing the synthetic pair...")
            write_pair(folder, size, layout=layout)
            reps = repeats if repeats else (3 if size <= 2048 else 2 if size <= 4096 else 1)
            rows = [_run_one(folder, size, rt, checkpoint, batch, threads, bare_tiles, reps, layout, log)
                    for rt in runtimes]
            _agreements(rows)
            if contention:
                for r in rows:
                    r.update(contention_row(folder, size, r["runtime"], checkpoint, batch, threads, layout, log))
            results += rows
    finally:
        if own:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return {"machine": machine(), "results": results, "targets": runtime_targets(results, runtimes)}


def _run_one(folder, size, runtime, checkpoint, batch, threads, bare_tiles, reps, layout, log) -> dict:
    """The row of `size` and `runtime` from a fresh process; when that process built the runtime's package,
    measured once more in another one (the build's leftovers would weigh on its peak RSS), keeping the
    build's seconds and note, with the cached package's load as `load_s`."""
    log(f"size {size}, runtime {runtime}: classifying (fresh process)...")
    cmd = [sys.executable, "-m", __name__, "--one", str(size), "--folder", folder, "--batch", str(batch),
           "--layout", layout, "--runtime", runtime, "--repeats", str(reps)]
    for flag, value in (("--checkpoint", checkpoint), ("--threads", threads), ("--bare-tiles", bare_tiles)):
        if value:
            cmd += [flag, str(value)]
    row = _subprocess_row(cmd, size, runtime)
    if row["build"] == "built":
        log(f"  built in {row['build_load_s']} s; measuring again in a fresh process, the package cached")
        again = _subprocess_row(cmd, size, runtime)
        again.update(load_s=again["build_load_s"], **{k: row[k] for k in ("build_load_s", "build", "runtime_note")})
        row = again
    log(f"  {row['end_to_end_s']} s end to end ({row['runtime_used']}), {row['bare_forward_s']} s bare forward, "
        f"{row['bare_eager_s']} s bare eager, ratios {row['ratio']} / {row['ratio_vs_eager']}, {row['mpix_per_s']} "
        f"MPix/s, peak RSS {row['peak_rss_mb']} MB, build/load {row['build_load_s']} s ({row['build']})")
    return row


def contention_row(folder: str, size: int, runtime: str, checkpoint: Optional[str], batch: int,
                   threads: Optional[int], layout: str, log=print) -> dict:
    """`claire classify` of the pair with `runtime`, alone and then beside one CPU-bound process
    (tools/busy_bench.classify_once, both niced alike): {"alone_s", "busy_s", "busy_over_alone"} (issue #22:
    at most 2)."""
    from .busy_bench import classify_once

    paths = write_pair(folder, size, layout=layout)
    extra = ["--runtime", runtime] + (["--batch-size", str(batch)] if batch else [])
    extra += (["--checkpoint", checkpoint] if checkpoint else []) + (["--threads", str(threads)] if threads else [])
    out = os.path.join(folder, f"contention_{size}_{runtime}.tif")
    runs = [classify_once(paths, out, busy, extra=extra) for busy in (False, True)]
    for p in (out, out + ".aux.xml", out + ".json", os.path.splitext(out)[0] + ".qml"):
        if os.path.exists(p):
            os.remove(p)
    bad = [r for r in runs if r["rc"] != 0]
    if bad:
        raise RuntimeError(f"the contention runs of size {size}, runtime {runtime} failed (exit {bad[0]['rc']})")
    alone, busy = runs[0]["seconds"], runs[1]["seconds"]
    log(f"  contention: {alone} s alone, {busy} s beside a busy process ({busy / alone:.2f}x)")
    return {"alone_s": alone, "busy_s": busy, "busy_over_alone": round(busy / alone, 3),
            "busy_threads": runs[1]["notes"]}


def _subprocess_row(cmd: List[str], size: int, runtime: str) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of size {size}, runtime {runtime} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _agreements(rows: List[dict]) -> None:
    """`agreement_with_eager` of each row: its map against the eager run's map of the same size (None when
    no eager run); the maps are removed afterwards."""
    eager = next((r["output"] for r in rows if r["runtime"] == "eager"), None)
    for r in rows:
        r["agreement_with_eager"] = round(map_agreement(eager, r["output"]), 6) if eager else None
    for r in rows:
        for p in (r["output"], r["output"] + ".aux.xml", os.path.splitext(r["output"])[0] + ".qml"):
            if os.path.exists(p):
                os.remove(p)


def runtime_targets(results: List[dict], runtimes: Sequence[str]) -> dict:
    """`targets` of the first runtime's rows (`auto` when it ran), with "runtime" and, when several ran,
    "by_runtime": every runtime's own."""
    runtimes = list(dict.fromkeys(runtimes))
    main = "auto" if "auto" in runtimes else runtimes[0]
    out = dict(targets([r for r in results if r.get("runtime", main) == main]), runtime=main)
    if len(runtimes) > 1:
        out["by_runtime"] = {rt: targets([r for r in results if r.get("runtime") == rt]) for rt in runtimes}
    return out


#: Issue #22's target: end to end <= this share of the bare eager float32 forward over the same pixels.
EAGER_RATIO_TARGET = 0.65
#: Issue #22's target: a run beside one busy process takes at most this many times its time alone.
BUSY_TARGET = 2.0


def targets(results: List[dict]) -> dict:
    """Check the targets: ratio <= 1.10, end to end <= 0.65 x the bare eager forward (rows that have it),
    RSS(largest) <= 1.3 x RSS(smallest), 10980^2 <= 600 s."""
    if not results:
        return {}
    small, big = min(results, key=lambda r: r["size"]), max(results, key=lambda r: r["size"])
    full = big["end_to_end_s"] * (10980 ** 2) / big["pixels"]
    out = {
        "max_ratio": max(r["ratio"] for r in results), "ratio_ok": all(r["ratio"] <= 1.10 for r in results),
        "rss_growth": round(big["peak_rss_mb"] / small["peak_rss_mb"] - 1.0, 3),
        "rss_ok": big["peak_rss_mb"] <= 1.3 * small["peak_rss_mb"],
        "s2_tile_estimate_s": round(full, 1), "s2_tile_ok": full <= 600.0,
        "estimate_from_size": big["size"],
    }
    vs_eager = [r["ratio_vs_eager"] for r in results if r.get("ratio_vs_eager") is not None]
    if vs_eager:
        out.update(max_ratio_vs_eager=max(vs_eager), ratio_vs_eager_ok=max(vs_eager) <= EAGER_RATIO_TARGET)
    busy = [r["busy_over_alone"] for r in results if r.get("busy_over_alone") is not None]
    if busy:
        out.update(max_busy_over_alone=max(busy), busy_ok=max(busy) <= BUSY_TARGET)
    return out


def _text(value, none: str = "n/a") -> str:
    return none if value is None else str(value)


def format_table(report: dict) -> str:
    """Markdown table of the results: per size and runtime, end to end, bare forward of the runtime and of
    eager float32, both ratios, MPix/s, peak RSS, agreement with the eager map and the one-time build/load."""
    lines = ["| size | runtime | tiles | end-to-end s | bare forward s | bare eager s | ratio | ratio vs eager "
             "| CPU-time ratio | MPix/s | peak RSS MB | agreement with eager | build/load s | busy / alone |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        part = "" if r.get("bare_tiles_timed", r["tiles"]) >= r["tiles"] else f" (from {r['bare_tiles_timed']} tiles)"
        runtime = r.get("runtime", "-")
        if r.get("runtime_used") not in (None, runtime):
            runtime += f" → {r['runtime_used']}"
        agree = r.get("agreement_with_eager")
        build = "-" if "build_load_s" not in r else f"{r['build_load_s']} ({r.get('build', 'none')})"
        lines.append(f"| {r['size']}² | {runtime} | {r['tiles']} | {r['end_to_end_s']} | {r['bare_forward_s']}{part} "
                     f"| {_text(r.get('bare_eager_s'), '-')} | {r['ratio']} | {_text(r.get('ratio_vs_eager'), '-')} "
                     f"| {r.get('cpu_ratio')} | {r['mpix_per_s']} | {r['peak_rss_mb']} "
                     f"| {'n/a' if agree is None else f'{100 * agree:.2f} %'} | {build} | {_busy(r)} |")
    return "\n".join(lines)


def _busy(r: dict) -> str:
    if r.get("busy_over_alone") is None:
        return "-"
    return f"{r['busy_over_alone']} ({r['alone_s']} / {r['busy_s']} s)"


def _label(r: dict) -> str:
    return f"{r['size']}²" + (f" {r['runtime']}" if r.get("runtime") else "")


def format_phases(report: dict) -> str:
    """Markdown table of where each row's first end-to-end run spent its time (core.engine.phases): seconds
    per phase summed over threads, so phases on the reader and writer threads overlap the forward."""
    results = report["results"]
    names = sorted({k for r in results for k in r.get("phases", {})})
    if not names:
        return ""
    lines = ["| phase (thread-seconds) | " + " | ".join(_label(r) for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(str(r.get("phases", {}).get(name, "-")) for r in results) + " |")
    lines.append("| end to end (wall) | " + " | ".join(str(r["end_to_end_s"]) for r in results) + " |")
    return "\n".join(lines)


def _main(argv: Optional[List[str]] = None) -> int:
    import argparse

    from ..core.params import RUNTIMES
    from .bench_measure import measure_one

    ap = argparse.ArgumentParser()
    ap.add_argument("--one", type=int, required=True)
    ap.add_argument("--folder", required=True)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bare-tiles", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--layout", default="plain", choices=sorted(LAYOUTS))
    ap.add_argument("--runtime", default="auto", choices=RUNTIMES)
    a = ap.parse_args(argv)
    print(json.dumps(measure_one(a.folder, a.one, a.checkpoint, a.batch, a.threads, a.bare_tiles, a.repeats,
                                 a.layout, a.runtime)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
