"""`claire bench-train`: polygon training measured on the bundled TerraMesh sites.

For each site, N small square polygons per class are drawn (seeded) inside homogeneous areas of its LULC
map; `claire train --labels` then runs in a fresh process per (site, N, seed) - held-out polygon split,
fine-tuned network, untuned checkpoint and random forests with and without SAR, clear and with 60 %
synthetic clouds - and its wall time and peak RSS are measured. The LULC maps are model output (ESRI
LULC), and the bundled checkpoint was trained on the left 75 % of these very sites: its untuned scores
here are optimistic, and none of these numbers is a map accuracy. `--unseen` fine-tunes, per site, a base
trained by the same recipe on the other sites only (`base_without`): the untuned scores of a scene from
elsewhere, as a user's area is; `--checkpoint` fine-tunes any given base. Each network's map of the whole site
is also scored against the LULC map on every pixel of the trained classes outside the training polygons
and their buffer ("whole map"); `summary` gives the mean and spread over seeds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..core.training.datasets import ESRI_CLASSES
from ..core.training.scorecard import ARM_CHECKPOINT
from ..paths import resource

NAMES = {v: n for v, n, _ in ESRI_CLASSES}


def square_polygons(lulc: np.ndarray, n: int, size: int, seed: int, min_classes: int = 2) -> List[tuple]:
    """Up to `n` squares of `size` px per class, each inside a patch of one class with a 1 px margin, no two
    closer than `size` px; classes with fewer than 3 squares are left out. [(row, col, value)]."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    taken = np.zeros(lulc.shape, bool)
    out: List[tuple] = []
    for value in sorted(NAMES):
        inner = ndimage.binary_erosion(lulc == value, np.ones((size + 2, size + 2), bool), border_value=0)
        rows, cols = np.nonzero(inner)
        picked: List[tuple] = []
        for i in rng.permutation(rows.size):
            r, c = int(rows[i]) - size // 2, int(cols[i]) - size // 2
            if r < 0 or c < 0 or taken[max(0, r - size):r + 2 * size, max(0, c - size):c + 2 * size].any():
                continue
            picked.append((r, c, value))
            taken[r:r + size, c:c + size] = True
            if len(picked) == n:
                break
        if len(picked) >= 3:
            out += picked
    return out if len({v for _, _, v in out}) >= min_classes else []


def write_polygons(path: str, squares: Sequence[tuple], size: int, transform, crs_wkt: str) -> str:
    """A GeoPackage of the squares with a text field `class` (the LULC class names)."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("polygons", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for r, c, v in squares:
        pts = [transform * (c + dc, r + dr) for dr, dc in ((0, 0), (0, size), (size, size), (size, 0), (0, 0))]
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("class", NAMES[v])
        f.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON ((" + ", ".join(f"{x} {y}" for x, y in pts) + "))"))
        lyr.CreateFeature(f)
        f = None
    lyr = None
    ds = None
    return path


#: `make checkpoint`'s recipe of the bundled checkpoint (Makefile; a test keeps the two equal), less its
#: reproducible mode, float16 storage, data folder and output: what `--unseen` trains without the site.
BUNDLED_RECIPE = ("--arch", "claire", "--size", "small", "--layout", "terramesh-levels", "--context", "local",
                  "--cloud-gate", "--holdout", "0.25", "--epochs", "60", "--steps-per-epoch", "20", "--batch-size", "8",
                  "--crop", "128", "--seed", "0", "--device", "cpu")
KINDS = ("LULC", "S1RTC", "S2L1C", "S2L2A")


def base_without(site: str, folder: str, threads: int = 2) -> str:
    """The bundled checkpoint's recipe trained on the other bundled sites only (`claire train` in a fresh
    process): a base that has never seen `site`, so that its untuned scores there are those of a scene from
    elsewhere. Written once to FOLDER/base_without_SITE.safetensors and reused."""
    import shutil

    out = os.path.join(folder, f"base_without_{site}.safetensors")
    if os.path.exists(out):
        return out
    root, data = resource("data", "terramesh"), os.path.join(folder, f"data_without_{site}")
    shutil.rmtree(data, ignore_errors=True)
    for kind in KINDS:
        os.makedirs(os.path.join(data, kind))
        for name in os.listdir(os.path.join(root, kind)):
            if not name.startswith(site):
                shutil.copy(os.path.join(root, kind, name), os.path.join(data, kind, name))
    cmd = [sys.executable, "-m", "claire.claire_plugin.cli.main", "train", *BUNDLED_RECIPE, "--data", data,
           "--threads", str(threads), "--note", f"bench-train --unseen: the bundled recipe without {site}",
           "--output", out]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"training the base without {site} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out


def run_one(site: str, n: int, seed: int, folder: str, extra: Sequence[str], size: int = 6,
            base: Optional[str] = None) -> Optional[Dict]:
    """Draw the polygons on one bundled site, run `claire train --labels` in a fresh process (see train_on)."""
    root = resource("data", "terramesh")
    paths = {k: os.path.join(root, k, f"{site}.tif") for k in ("S2L2A", "S1RTC", "LULC")}
    return train_on(site, paths["S2L2A"], paths["S1RTC"], paths["LULC"], n, seed, folder, extra, size, base)


def train_on(name: str, optical: str, sar: str, lulc: str, n: int, seed: int, folder: str,
             extra: Sequence[str], size: int = 6, base: Optional[str] = None) -> Optional[Dict]:
    """Polygons drawn from `lulc`, `claire train --labels` in a fresh process (fine-tuning `base`, None: the
    bundled checkpoint); its report + wall time + peak RSS."""
    import rasterio

    with rasterio.open(lulc) as ds:
        squares = square_polygons(ds.read(1), n, size, seed)
        transform, crs = ds.transform, ds.crs.to_wkt()
    if not squares:
        return None
    stem = os.path.join(folder, f"{name}_n{n}_s{seed}")
    write_polygons(stem + ".gpkg", squares, size, transform, crs)
    cmd = [sys.executable, "-m", "claire.claire_plugin.cli.main", "train", "--optical", optical, "--sar", sar,
           "--labels", stem + ".gpkg", "--field", "class", "--seed", str(seed), "--output",
           stem + ".safetensors", "--report", stem + ".json", *extra] + (["--checkpoint", base] if base else [])
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read() if proc.stderr else ""
    if status != 0:
        return {"site": name, "n": n, "seed": seed, "base": os.path.basename(base) if base else "bundled",
                "error": err.strip().splitlines()[-1:]}
    wall = round(time.time() - t0, 1)
    with open(stem + ".json", encoding="utf-8") as fh:
        report = json.load(fh)
    training = [sq for i, sq in enumerate(squares) if i + 1 not in set(report["validation_feature_ids"])]
    maps = {"untuned": base, "finetuned": stem + ".safetensors"}
    maps.update({arm: report[key] for arm, key in ARM_CHECKPOINT.items() if report.get(key)})
    whole = map_scores(optical, sar, lulc, training, size, float(report["split"]["buffer_px"]),
                       [c["name"] for c in report["classes"]], maps, stem, extra)
    return {"site": name, "n": n, "seed": seed, "base": os.path.basename(base) if base else "bundled", "wall_s": wall,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "polygons": len(squares),
            "classes": [c["name"] for c in report["classes"]], "epochs": report["training"]["epochs"],
            "arms": {a: {c: {"macro_f1": m["macro_f1"], "oa": m["oa"]} for c, m in conds.items()}
                     for a, conds in report["arms"].items()},
            "leakage_rf_pixel_split_macro_f1": report["leakage"]["pixel_split"]["macro_f1"],
            "sar_only": {a: {"macro_f1": m["macro_f1"], "oa": m["oa"]}
                         for a, m in ((report.get("sar_only") or {}).get("arms") or {}).items()},
            "forest_weight": (report.get("ensemble_weight") or {}).get("chosen"),
            "finetuned_minus_rf_ci95": {c: ((report.get("spread") or {}).get(c) or {}).get("differences", {}).get(
                "finetuned - rf_optical_sar") for c in ("clear", "clouds_60pct")},
            "whole_map": whole}


def outside_training(lulc: np.ndarray, training: Sequence[tuple], size: int, buffer_px: float) -> np.ndarray:
    """Pixels farther than `buffer_px` from every training square (the honest part of a whole-map score)."""
    near = np.zeros(lulc.shape, bool)
    b = int(np.ceil(buffer_px))
    for r, c, _ in training:
        near[max(0, r - b):r + size + b, max(0, c - b):c + size + b] = True
    return ~near


def map_scores(optical: str, sar: str, lulc_path: str, training: Sequence[tuple], size: int, buffer_px: float,
               classes: Sequence[str], checkpoints: Dict[str, Optional[str]], stem: str,
               extra: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Macro-F1 / OA of each checkpoint's map (`claire classify`, None: the bundled one) against the LULC
    map on every pixel of the trained classes outside the training squares and their buffer. A predicted
    class that is not one of `classes` counts as wrong."""
    import rasterio

    from ...models.checkpoint import read_card
    from ...models.metrics import confusion_matrix, macro_f1, metrics_from_confusion
    from ..paths import DEFAULT_CHECKPOINT

    with rasterio.open(lulc_path) as ds:
        lulc = ds.read(1)
    index = {name: i for i, name in enumerate(classes)}
    ref = np.full(lulc.shape, -1, np.int64)
    for value, name in NAMES.items():
        if name in index:
            ref[lulc == value] = index[name]
    ref[~outside_training(lulc, training, size, buffer_px)] = -1
    threads = list(extra[extra.index("--threads"):extra.index("--threads") + 2]) if "--threads" in extra else []
    out = {}
    for arm, ckpt in checkpoints.items():
        path = f"{stem}_{arm}_map.tif"
        cmd = [sys.executable, "-m", "claire.claire_plugin.cli.main", "classify", "--optical", optical, "--sar",
               sar, "--output", path, *threads] + (["--checkpoint", ckpt] if ckpt else [])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        card = read_card(ckpt or DEFAULT_CHECKPOINT)
        lut = np.full(256, len(classes), np.int64)  # anything else: the "other" column
        for c in card["classes"]:
            if c["name"] in index:
                lut[int(c["value"])] = index[c["name"]]
        with rasterio.open(path) as ds:
            pred = lut[ds.read(1)]
        keep = ref >= 0
        cm = confusion_matrix(pred[keep], ref[keep], len(classes) + 1)
        m = metrics_from_confusion(cm, [*classes, "other"])
        out[arm] = {"macro_f1": round(macro_f1(m), 4), "oa": round(m["oa"], 4), "pixels": int(keep.sum())}
    return out


def _site_cell(r: Dict[str, Any]) -> str:
    """The site, and the base when it is not the bundled checkpoint."""
    base = r.get("base", "bundled")
    return r["site"] if base == "bundled" else f"{r['site']} (base: {base.removesuffix('.safetensors')})"


def _whole(r: Dict[str, Any], arm: str) -> str:
    m = (r.get("whole_map") or {}).get(arm)
    return "-" if m is None else f"{m['macro_f1']:.3f} / {m['oa']:.3f}"


def summary(results: Sequence[Dict[str, Any]]) -> str:
    """Markdown table: per site and N, the mean and spread (min-max) over seeds of the held-out macro-F1 of
    each arm and condition, the whole-map macro-F1 of the networks, and how often fine-tuned beat untuned."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in results:
        if "error" not in r:
            groups.setdefault((_site_cell(r), r["n"]), []).append(r)
    arms = ("untuned", "finetuned", "rf_optical_sar", "ensemble")
    cols = [(a, c) for c in ("clear", "clouds_60pct") for a in arms]
    head = ("| site | N | seeds | " + " | ".join(f"{a} {c.replace('_60pct', '')}" for a, c in cols) + " | " +
            " | ".join(f"whole map {a}" for a in arms) + " | fine-tuned - RF+SAR clear / clouds | forest weights |"
            " runs ahead / behind RF+SAR beyond the held-out spread, clear |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def cell(vals: List[float]) -> str:
        return f"{np.mean(vals):.3f} ({min(vals):.2f}-{max(vals):.2f})" if vals else "-"

    for (site, n), rs in sorted(groups.items()):
        held = [cell([r["arms"][a][c]["macro_f1"] for r in rs if a in r["arms"]]) for a, c in cols]
        whole = [cell([r["whole_map"][a]["macro_f1"] for r in rs if a in (r.get("whole_map") or {})]) for a in arms]
        gaps = [np.mean([r["arms"]["finetuned"][c]["macro_f1"] - r["arms"]["rf_optical_sar"][c]["macro_f1"]
                         for r in rs]) * 100 for c in ("clear", "clouds_60pct")]
        weights = ", ".join(f"{r['forest_weight']:g}" for r in rs if r.get("forest_weight") is not None) or "-"
        lines.append(f"| {site} | {n} | {len(rs)} | " + " | ".join(held + whole) +
                     f" | {gaps[0]:+.1f} / {gaps[1]:+.1f} points | {weights} | {beyond_spread(rs)} |")
    return "\n".join(lines)


def beyond_spread(runs: Sequence[Dict[str, Any]], cond: str = "clear") -> str:
    """"A / B of N": runs whose 95 % interval of fine-tuned minus the forest with SAR (whole held-out polygons
    resampled) lies above 0 / below 0; "-" when no run has one."""
    cis = [(r.get("finetuned_minus_rf_ci95") or {}).get(cond) for r in runs]
    cis = [c for c in cis if c and None not in c]
    if not cis:
        return "-"
    return f"{sum(c[0] > 0 for c in cis)} / {sum(c[1] < 0 for c in cis)} of {len(cis)}"


def mosaic_scene(folder: str, size: int, seed: int = 0) -> Dict[str, str]:
    """A `size` x `size` scene tiled from the four bundled sites (random site, rotation and flip per 224 px
    block, seeded): real Sentinel-2 L2A / Sentinel-1 values and all eight LULC classes on one grid, written
    block by block as tiled, compressed GeoTIFFs. Paths of the optical, SAR and LULC rasters."""
    import rasterio
    from rasterio.windows import Window

    root = resource("data", "terramesh")
    sites = sorted(f[:-4] for f in os.listdir(os.path.join(root, "LULC")) if f.endswith(".tif"))
    blocks = []
    for site in sites:
        arrays = []
        for kind in ("S2L2A", "S1RTC", "LULC"):
            with rasterio.open(os.path.join(root, kind, f"{site}.tif")) as ds:
                arrays.append(ds.read())
                if kind == "LULC":
                    profile, transform = ds.profile, ds.transform
        blocks.append(arrays)
    side = blocks[0][2].shape[-1]
    rng = np.random.default_rng(seed)
    out = {k: os.path.join(folder, f"mosaic{size}_{k}.tif") for k in ("optical", "sar", "lulc")}
    specs = {"optical": (blocks[0][0].shape[0], "int16", 0), "sar": (2, "float32", None), "lulc": (1, "uint8", 0)}
    dsts = {}
    for key, (count, dtype, nodata) in specs.items():
        prof = dict(profile, width=size, height=size, count=count, dtype=dtype, nodata=nodata, tiled=True,
                    blockxsize=256, blockysize=256, compress="deflate", transform=transform)
        dsts[key] = rasterio.open(out[key], "w", **prof)
    try:
        for r0 in range(0, size, side):
            for c0 in range(0, size, side):
                arrays = blocks[int(rng.integers(len(blocks)))]
                k, flip = int(rng.integers(4)), bool(rng.integers(2))
                h, w = min(side, size - r0), min(side, size - c0)
                for key, a in zip(("optical", "sar", "lulc"), arrays):
                    a = np.rot90(a, k, axes=(1, 2))
                    a = a[:, :, ::-1] if flip else a
                    dsts[key].write(np.ascontiguousarray(a[:, :h, :w]).astype(specs[key][1]),
                                    window=Window(c0, r0, w, h))
    finally:
        for d in dsts.values():
            d.close()
    return out


def _sar_alone(r: Dict[str, Any]) -> str:
    """The run's held-out macro-F1 from SAR alone: fine-tuned network / forest on SAR ('-' where not scored)."""
    alone = r.get("sar_only") or {}
    return " / ".join("-" if a not in alone else f"{alone[a]['macro_f1']:.3f}" for a in ("finetuned", "rf_sar"))


def table(results: Sequence[Dict[str, Any]]) -> str:
    """Markdown table: one row per run, macro-F1 / OA per arm and condition."""
    arms = ["untuned", "finetuned", "rf_optical_sar", "rf_optical", "ensemble"]
    mapped = ("untuned", "finetuned", "rf_optical_sar", "ensemble")
    head = "| site | N | seed | " + " | ".join(f"{a} clear | {a} clouds" for a in arms) + \
        " | RF pixel-split (leaky) | " + " | ".join(f"whole map {a}" for a in mapped) + \
        " | SAR alone: finetuned / RF SAR | forest weight | wall s | CPU s | peak RSS MB |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {_site_cell(r)} | {r['n']} | {r['seed']} | error: {r['error']} |")
            continue
        cells = []
        for a in arms:
            for cond in ("clear", "clouds_60pct"):
                m = r["arms"].get(a, {}).get(cond)
                cells.append("-" if m is None else f"{m['macro_f1']:.3f} / {m['oa']:.3f}")
        lines.append(f"| {_site_cell(r)} | {r['n']} | {r['seed']} | " + " | ".join(cells) +
                     f" | {r['leakage_rf_pixel_split_macro_f1']:.3f} | " +
                     " | ".join(_whole(r, a) for a in mapped) + f" | {_sar_alone(r)}" +
                     f" | {'-' if r.get('forest_weight') is None else format(r['forest_weight'], 'g')}"
                     f" | {r['wall_s']} | {r.get('cpu_s', '-')} | "
                     f"{r['peak_rss_mb']} |")
    return "\n".join(lines)
