"""`make demo-train`: teach the model a scene it gets wrong, through real QGIS (qgis_process), as a user would.

The scene is the bundled BigEarthNet-MM patch of June 2017 farmland in Upper Austria (33UUP), unlike the
four sites the default checkpoint learned from: there the untuned model paints snow/ice and built area over
ripe fields. `resources/data/bigearthnet_mm/polygons_33UUP_87_48.geojson` holds the twelve rectangles we
drew by eye on its true-colour image (trees, crops, built area), as a user draws in the Train tab. The demo
stacks the separate band files into VRTs, classifies with the default checkpoint (`claire:classify`),
fine-tunes on the polygons with `claire:train` (held-out polygons, random forests beside it), classifies
with the new checkpoint, with the run's random forest and with the two averaged (both written beside it as
checkpoints), marks where to label next (`claire:suggest`: where the network and the forest disagree, away
from the polygons) and writes a side-by-side PNG: true colour with those places, before, after, forest,
averaged.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.training.polygons import ensemble_path_for, forest_path_for
from ..install import install
from ..paths import PACKAGE_ROOT as SOURCE
from ..paths import resource
from .demo import run_qgis_process

PATCH_S2 = "S2A_MSIL2A_20170613T101031_87_48"
PATCH_S1 = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
S2_BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]  # the default card's order
POLYGONS = resource("data", "bigearthnet_mm", "polygons_33UUP_87_48.geojson")


def stack_patch(out_dir: str) -> Dict[str, str]:
    """VRTs of the patch's separate band files: optical in the card's band order at 10 m, SAR VV VH."""
    from osgeo import gdal

    gdal.UseExceptions()
    root = resource("data", "bigearthnet_mm")
    s2 = [os.path.join(root, "BigEarthNet-S2-Example", PATCH_S2, f"{PATCH_S2}_{b}.tif") for b in S2_BANDS]
    s1 = [os.path.join(root, "BigEarthNet-S1-Example", PATCH_S1, f"{PATCH_S1}_{p}.tif") for p in ("VV", "VH")]
    paths = {"optical": os.path.join(out_dir, "optical.vrt"), "sar": os.path.join(out_dir, "sar.vrt")}
    gdal.BuildVRT(paths["optical"], s2, separate=True, resolution="highest").FlushCache()
    gdal.BuildVRT(paths["sar"], s1, separate=True).FlushCache()
    return paths


def colour_map(path: str) -> np.ndarray:
    """[H, W, 3] uint8 of a class raster through its own colour table (black where it has none)."""
    import rasterio

    with rasterio.open(path) as ds:
        classes = ds.read(1)
        try:
            table = ds.colormap(1)
        except ValueError:
            table = {}
    rgb = np.zeros(classes.shape + (3,), np.uint8)
    for value in np.unique(classes):
        rgb[classes == value] = table.get(int(value), (0, 0, 0, 255))[:3]
    return rgb


def true_colour(optical: str) -> np.ndarray:
    """[H, W, 3] uint8 true colour (B04 B03 B02, reflectance 0-0.18 stretched)."""
    import rasterio

    with rasterio.open(optical) as ds:
        rgb = ds.read([3, 2, 1]).astype(np.float32)
    return np.clip(rgb / 1800.0 * 255.0, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def side_by_side(panels: Sequence[np.ndarray], titles: Sequence[str], path: str, scale: int = 3,
                 legend: Sequence[Tuple[str, Tuple[int, int, int]]] = (),
                 marks: Optional[Dict[int, Sequence[Tuple[int, int, str]]]] = None) -> str:
    """One PNG with the panels next to each other, enlarged `scale` times, a title above each and a row of
    (name, colour) swatches below; `marks` {panel: [(row, col, label)]} are drawn as numbered magenta rings."""
    from PIL import Image, ImageDraw

    h, w = panels[0].shape[:2]
    gap, head, foot = 8, 18, (20 if legend else 0)
    sheet = Image.new("RGB", (len(panels) * (w * scale + gap) - gap, h * scale + head + foot), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (panel, title) in enumerate(zip(panels, titles)):
        x = i * (w * scale + gap)
        sheet.paste(Image.fromarray(panel).resize((w * scale, h * scale), Image.NEAREST), (x, head))
        draw.text((x + 2, 3), title, fill="black")
        for row, col, label in (marks or {}).get(i, ()):
            cx, cy, r = x + (col + 0.5) * scale, head + (row + 0.5) * scale, 3 * scale
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(255, 0, 255), width=2)
            ty = cy - r - 1 if cy - r - 12 > head else cy + r - 8  # below the ring at the panel's top edge
            draw.text((cx + r + 1, ty), label, fill=(255, 0, 255), stroke_width=2, stroke_fill="white")
    x, y = 2, head + h * scale + 5
    for name, colour in legend:
        draw.rectangle([x, y, x + 12, y + 10], fill=tuple(colour), outline="black")
        draw.text((x + 16, y), name, fill="black")
        x += 16 + int(draw.textlength(name)) + 14
    sheet.save(path)
    return path


def legend_of(*paths: str) -> List[Tuple[str, Tuple[int, int, int]]]:
    """(name, colour) of every class present in the class rasters, in value order, each name once."""
    import rasterio

    from ..core.accuracy import classes_from_gdal

    out: Dict[str, Tuple[int, int, int]] = {}
    for path in paths:
        with rasterio.open(path) as ds:
            present = set(np.unique(ds.read(1)).tolist())
            table = ds.colormap(1)
        for c in classes_from_gdal(path):
            if c["value"] in present and c["name"] not in out:
                out[c["name"]] = tuple(table[c["value"]][:3])
    return list(out.items())


def shares(path: str) -> Dict[str, float]:
    """Share of each named class in a class raster (names from its categories)."""
    import rasterio

    from ..core.accuracy import classes_from_gdal

    names = {c["value"]: c["name"] for c in classes_from_gdal(path)}
    with rasterio.open(path) as ds:
        values, counts = np.unique(ds.read(1, masked=True).compressed(), return_counts=True)
    total = counts.sum()
    return {names.get(int(v), str(v)): round(float(c) / float(total), 3) for v, c in zip(values, counts)}


def held_out_lines(report_path: str) -> List[str]:
    """The report's held-out table: macro-F1 / OA per arm, clear and with synthetic clouds."""
    with open(report_path, encoding="utf-8") as fh:
        report = json.load(fh)
    training = report.get("training") or {}
    run, asked = training.get("epochs"), (training.get("config") or {}).get("epochs")
    lines = []
    if run is not None and asked is not None and run < asked:  # the time budget stopped it (a busy machine)
        lines.append(f"note: the time budget stopped the training after {run} of {asked} epochs "
                     f"({training.get('seconds', 0):.0f} s; other programs were using the cores?), so these scores "
                     f"are below the README's, measured with all {asked}")
    lines.append(f"{'model':34s} {'clear macro-F1 / OA':>20s} {'60 % clouds':>16s}")
    for arm, conds in report["arms"].items():
        cells = [f"{m['macro_f1']:.3f} / {m['oa']:.3f}" for m in conds.values()]
        lines.append(f"{arm:34s} {cells[0]:>20s} {cells[-1]:>16s}")
    return lines


def place_marks(places: str, grid: str) -> List[Tuple[int, int, str]]:
    """(row, col, rank) of the points of a `label_next` layer on the grid of the raster `grid`."""
    import rasterio
    from osgeo import ogr

    from ..core.suggest import LAYER

    with rasterio.open(grid) as ds:
        inverse = ~ds.transform
    src = ogr.Open(places)
    out = []
    for feat in src.GetLayerByName(LAYER):
        col, row = inverse * (feat.GetGeometryRef().GetX(), feat.GetGeometryRef().GetY())
        out.append((int(row), int(col), str(feat.GetField("rank"))))
    src = None
    return out


def train_call(inputs: Dict[str, str], ckpt: str, report: str, minutes: float,
               epochs: Optional[int] = None) -> List[str]:
    """The `qgis_process` arguments of the demo's claire:train run (EPOCHS only when given)."""
    call = ["run", "claire:train", "--json", "--", f"OPTICAL={inputs['optical']}", f"SAR={inputs['sar']}",
            f"LABELS={POLYGONS}", "FIELD=class", f"MINUTES={minutes}", f"OUTPUT={ckpt}", f"REPORT={report}"]
    return call + ([f"EPOCHS={epochs}"] if epochs else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(SOURCE, "build"))
    parser.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of claire:train (default: its own, 12); the budget stops it earlier")
    args = parser.parse_args(argv)
    out_dir = os.path.join(args.build, "demo_train")
    config_root = os.path.join(args.build, "qgis-profile")
    os.makedirs(out_dir, exist_ok=True)
    install(os.path.join(config_root, "profiles", "default"))
    inputs = stack_patch(out_dir)
    before, after = os.path.join(out_dir, "before.tif"), os.path.join(out_dir, "after.tif")
    forest_map, both_map = os.path.join(out_dir, "forest.tif"), os.path.join(out_dir, "ensemble.tif")
    print("1/6 claire:classify with the default checkpoint ...", flush=True)
    run_qgis_process(["run", "claire:classify", "--json", "--", f"OPTICAL={inputs['optical']}",
                      f"SAR={inputs['sar']}", f"OUTPUT={before}"], config_root)
    print(f"2/6 claire:train on {os.path.basename(POLYGONS)} ({args.minutes:g} min budget) ...", flush=True)
    ckpt, report = os.path.join(out_dir, "farmland.safetensors"), os.path.join(out_dir, "report.json")
    run_qgis_process(train_call(inputs, ckpt, report, args.minutes, args.epochs), config_root)
    steps = (("3/6", "the new checkpoint", ckpt, after), ("4/6", "the run's random forest", forest_path_for(ckpt),
                                                           forest_map),
             ("5/6", "the network and forest averaged", ensemble_path_for(ckpt), both_map))
    for step, what, model, out in steps:
        print(f"{step} claire:classify with {what} ...", flush=True)
        run_qgis_process(["run", "claire:classify", "--json", "--", f"OPTICAL={inputs['optical']}",
                          f"SAR={inputs['sar']}", f"CHECKPOINT={model}", f"OUTPUT={out}"], config_root)
    places = os.path.join(out_dir, "label_next.gpkg")
    print("6/6 claire:suggest: where the network and the forest disagree, away from the polygons ...", flush=True)
    run_qgis_process(["run", "claire:suggest", "--json", "--", f"MAP={after}", f"SECOND={forest_map}",
                      f"LABELS={POLYGONS}", "FIELD=class", f"OUTPUT={places}"], config_root)
    marks = place_marks(places, after)
    maps = [before, after, forest_map, both_map]
    with open(report, encoding="utf-8") as fh:
        weight = (json.load(fh).get("ensemble_weight") or {}).get("chosen")
    averaged = "both averaged" + ("" if weight is None else f", forest's weight {weight:g}")
    png = side_by_side([true_colour(inputs["optical"])] + [colour_map(m) for m in maps],
                       ["true colour, where to label next", "default checkpoint", "trained on 12 polygons",
                        "random forest, same", averaged],
                       os.path.join(out_dir, "before_after.png"), legend=legend_of(*maps), marks={0: marks})
    print("\n".join(held_out_lines(report)))
    for name, m in zip(("before", "after", "forest", "averaged"), maps):
        print(f"classes {name + ':':9s} {shares(m)}")
    print(f"where to label next: {len(marks)} places, {places}")
    print(f"Side by side: {png}\nCheckpoint:   {ckpt}\nReport:       {report} (+ .html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
