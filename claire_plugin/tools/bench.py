"""Benchmark of the engine on synthetic Sentinel-2 + Sentinel-1 pairs.

For each size N: a 13-band uint16 optical (UTM 33N, 10 m, N x N) and a 2-band float32 dB SAR on
EPSG:4326 at ~20 m; the engine classifies them with the default checkpoint in a fresh subprocess
(so the peak RSS, VmHWM, belongs to that size alone); then, in the same process, the model's bare
forward runs on the same number of tiles of the same size and batch. Reported: end-to-end seconds,
bare-forward seconds, their ratio, MPix/s and peak RSS.
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
from typing import Dict, List, Optional

import numpy as np

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
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
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
    with open("/proc/self/status") as f:
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


def _e2e(paths: Dict[str, str], out: str, checkpoint: Optional[str], batch: int, threads: Optional[int]):
    from ..core.engine import run
    from ..core.params import run_options

    c0, t0 = _cpu_s(), time.perf_counter()
    model, card, name = _load(checkpoint)
    params = run_options(batch_size=batch, device="auto", threads=threads).params(paths["optical"], paths["sar"], out)
    res = run(params, model, card)
    return time.perf_counter() - t0, _cpu_s() - c0, res, model, name


def _bare(model, dev, co: int, cs: int, tile: int, batch: int, n_tiles: int, timed: int):
    """(wall, CPU) seconds of the model alone on `n_tiles` random tiles, under the same allocator
    settings as the engine (core.memory)."""
    import torch

    from ..core.runtime.memory import reuse_freed_memory

    g = torch.Generator().manual_seed(0)
    o = torch.randn(batch, co, tile, tile, generator=g).to(dev)
    s = torch.randn(batch, cs, tile, tile, generator=g).to(dev)
    with torch.inference_mode(), reuse_freed_memory():
        model(o[:1], s[:1])  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        c1, t1 = _cpu_s(), time.perf_counter()
        done = 0
        while done < timed:
            n = min(batch, timed - done)
            model(o[:n], s[:n])
            done += n
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t1) * n_tiles / timed, (_cpu_s() - c1) * n_tiles / timed


def measure_one(folder: str, size: int, checkpoint: Optional[str], batch: int, threads: Optional[int],
                bare_tiles: Optional[int] = None, repeats: int = 1, layout: str = "plain") -> dict:
    """Classify the pair of `size` end to end, then time the bare forward on as many tiles (or on
    `bare_tiles` of them, scaled to the full count). With `repeats` > 1 both are measured again,
    alternating, and the fastest of each is kept (robust on a shared machine). Peak RSS is taken after
    the first end-to-end run of this fresh process. Everything runs on the engine's torch thread, so the
    bare forward runs under the same OpenMP conditions as the engine (core.torch_thread)."""
    from ..core.runtime.torch_thread import call

    return call(_measure_one, folder, size, checkpoint, batch, threads, bare_tiles, repeats, layout)


def _measure_one(folder: str, size: int, checkpoint: Optional[str], batch: int, threads: Optional[int],
                 bare_tiles: Optional[int], repeats: int, layout: str) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    paths = write_pair(folder, size, layout=layout)
    out = os.path.join(folder, f"classes_{size}.tif")
    rss_start = _vmhwm_mb()
    e2e, e2e_cpu, res, model, name = _e2e(paths, out, checkpoint, batch, threads)
    rss = _vmhwm_mb()
    st = res.stats
    tile, n_tiles = st["tile_size"], st["tiles"]
    dev = torch.device(res.device)
    co, cs = len(res.band_choice["optical"]["indices"]), len(res.band_choice["sar"]["indices"])
    timed = min(n_tiles, bare_tiles) if bare_tiles else n_tiles
    model = model.to(dev).eval()
    e2e_all, bare_all = [e2e], []
    e2e_cpu_min, bare_cpu_min = e2e_cpu, None
    internal = [st["seconds"] / st["forward_seconds"]] if st["forward_seconds"] else []
    for i in range(max(1, repeats)):
        bw, bc = _bare(model, dev, co, cs, tile, batch, n_tiles, timed)
        bare_all.append(bw)
        bare_cpu_min = bc if bare_cpu_min is None else min(bare_cpu_min, bc)
        if i < repeats - 1:
            w, c, r2, _, _ = _e2e(paths, out, checkpoint, batch, threads)
            e2e_all.append(w)
            e2e_cpu_min = min(e2e_cpu_min, c)
            internal.append(r2.stats["seconds"] / r2.stats["forward_seconds"])
    for p in (out, out + ".aux.xml"):
        if os.path.exists(p):
            os.remove(p)
    e2e, bare = min(e2e_all), min(bare_all)
    return {"size": size, "layout": layout, "pixels": size * size, "tiles": n_tiles, "tile_size": tile,
            "batch_size": batch,
            "device": res.device, "threads": torch.get_num_threads(), "model": name,
            "end_to_end_s": round(e2e, 2), "bare_forward_s": round(bare, 2),
            "ratio": round(e2e / bare, 3) if bare else None,
            "mpix_per_s": round(size * size / e2e / 1e6, 3), "peak_rss_mb": round(rss, 1),
            "rss_before_run_mb": round(rss_start, 1), "end_to_end_cpu_s": round(e2e_cpu_min, 2),
            "bare_forward_cpu_s": round(bare_cpu_min, 2), "bare_tiles_timed": timed,
            "cpu_ratio": round(e2e_cpu_min / bare_cpu_min, 3) if bare_cpu_min else None,
            "engine_forward_s": round(st["forward_seconds"], 2), "reader_threads": st.get("reader_threads"),
            "in_run_ratio": round(min(internal), 3) if internal else None,
            "end_to_end_runs_s": [round(v, 2) for v in e2e_all], "bare_forward_runs_s": [round(v, 2) for v in bare_all],
            "phases": st.get("phases", {})}


def machine() -> dict:
    """A short description of the machine the benchmark ran on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def run_bench(sizes: List[int], folder: Optional[str] = None, checkpoint: Optional[str] = None, batch: int = 4,
              threads: Optional[int] = None, log=print, bare_tiles: Optional[int] = None,
              repeats: Optional[int] = None, layout: str = "plain") -> dict:
    """Measure every size in its own subprocess; returns {"machine", "results", "targets"}."""
    own = folder is None
    folder = folder or tempfile.mkdtemp(prefix="claire-bench-")
    results = []
    try:
        for size in sizes:
            log(f"size {size}: writing the synthetic pair and classifying (fresh process)...")
            write_pair(folder, size, layout=layout)
            cmd = [sys.executable, "-m", __name__, "--one", str(size), "--folder", folder, "--batch", str(batch),
                   "--layout", layout]
            if checkpoint:
                cmd += ["--checkpoint", checkpoint]
            if threads:
                cmd += ["--threads", str(threads)]
            if bare_tiles:
                cmd += ["--bare-tiles", str(bare_tiles)]
            reps = repeats if repeats else (3 if size <= 2048 else 2 if size <= 4096 else 1)
            cmd += ["--repeats", str(reps)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark of size {size} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(row)
            log(f"  {row['end_to_end_s']} s end to end, {row['bare_forward_s']} s bare forward, ratio "
                f"{row['ratio']} (CPU-time ratio {row['cpu_ratio']}), {row['mpix_per_s']} MPix/s, peak RSS "
                f"{row['peak_rss_mb']} MB")
    finally:
        if own:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return {"machine": machine(), "results": results, "targets": targets(results)}


def targets(results: List[dict]) -> dict:
    """Check the targets: ratio <= 1.10, RSS(largest) <= 1.3 x RSS(smallest), 10980^2 <= 600 s."""
    if not results:
        return {}
    small, big = min(results, key=lambda r: r["size"]), max(results, key=lambda r: r["size"])
    full = big["end_to_end_s"] * (10980 ** 2) / big["pixels"]
    return {
        "max_ratio": max(r["ratio"] for r in results), "ratio_ok": all(r["ratio"] <= 1.10 for r in results),
        "rss_growth": round(big["peak_rss_mb"] / small["peak_rss_mb"] - 1.0, 3),
        "rss_ok": big["peak_rss_mb"] <= 1.3 * small["peak_rss_mb"],
        "s2_tile_estimate_s": round(full, 1), "s2_tile_ok": full <= 600.0,
        "estimate_from_size": big["size"],
    }


def format_table(report: dict) -> str:
    """Markdown table of the results."""
    lines = ["| size | tiles | end-to-end s | bare forward s | ratio | CPU-time ratio | MPix/s | peak RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        bare = f"{r['bare_forward_s']}" + ("" if r.get("bare_tiles_timed", r["tiles"]) >= r["tiles"]
                                          else f" (from {r['bare_tiles_timed']} tiles)")
        lines.append(f"| {r['size']}² | {r['tiles']} | {r['end_to_end_s']} | {bare} | {r['ratio']} "
                     f"| {r.get('cpu_ratio')} | {r['mpix_per_s']} | {r['peak_rss_mb']} |")
    return "\n".join(lines)


def format_phases(report: dict) -> str:
    """Markdown table of where each size's first end-to-end run spent its time (core.engine.phases): seconds
    per phase summed over threads, so phases on the reader and writer threads overlap the forward."""
    results = report["results"]
    names = sorted({k for r in results for k in r.get("phases", {})})
    if not names:
        return ""
    lines = ["| phase (thread-seconds) | " + " | ".join(f"{r['size']}²" for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(str(r.get("phases", {}).get(name, "-")) for r in results) + " |")
    lines.append("| end to end (wall) | " + " | ".join(str(r["end_to_end_s"]) for r in results) + " |")
    return "\n".join(lines)


def _main(argv: Optional[List[str]] = None) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--one", type=int, required=True)
    ap.add_argument("--folder", required=True)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bare-tiles", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--layout", default="plain", choices=sorted(LAYOUTS))
    a = ap.parse_args(argv)
    print(json.dumps(measure_one(a.folder, a.one, a.checkpoint, a.batch, a.threads, a.bare_tiles, a.repeats,
                                 a.layout)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
