"""The catalogue of bad inputs (issue 7), shared by the CLI tests (tests/core/test_bad_inputs.py) and the
Processing tests (tests/qgis/test_bad_inputs_alg.py), plus the tools both use: folder snapshots (hashes of
every file), output checks, the evil pickle, and the observation log that docs/bad_inputs.md is made from.

Import it as `import bad_input_cases` (tests/conftest.py puts tests/ on sys.path). Set CLAIRE_BAD_INPUTS_LOG=/path/log.jsonl while running the tests to
record what each case printed; `python tests/bad_input_cases.py /path/log.jsonl` renders the
table pasted into docs/bad_inputs.md.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from helpers import make_tiny_checkpoint, write_raster
from helpers import TINY_CLASSES as CLASSES

CLASS_VALUES = {c["value"] for c in CLASSES}
NODATA = 0
ROWS, COLS = 40, 50
ORIGIN = (500000.0, 4600000.0)
RES = 10.0


# ------------------------------------------------------------------ rasters and checkpoints
write_tif = write_raster


def scene(rows: int = ROWS, cols: int = COLS, seed: int = 0):
    """12-band L2A-like int16 reflectance x 10000 and VV/VH dB float32 with three land-cover zones."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    zone = np.where(xx < cols // 3, 0, np.where(yy > rows // 2, 2, 1))
    refl = np.array([400, 1800, 2400])[zone]
    db = np.array([[-22.0, -28.0], [-11.0, -17.0], [-4.0, -10.0]])[zone]
    optical = np.stack([np.clip(refl + 60 * b + rng.normal(0, 50, zone.shape), 1, 10000) for b in range(12)])
    sar = np.moveaxis(db, -1, 0) + rng.normal(0, 0.7, (2, rows, cols))
    return optical.astype(np.int16), sar.astype(np.float32)


def make_checkpoint(path, colors: bool = True, seed: int = 0) -> str:
    """A tiny random CLAIRE checkpoint (10 S2 bands + VV/VH dB, four classes, tile 64, overlap 16)."""
    return make_tiny_checkpoint(path, colors=colors, seed=seed)


class Evil:
    """Unpickling this creates the file `marker` (it calls open(marker, 'w')): a harmless stand-in for
    code a stranger's pickle would run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle_bytes(marker: str, protocol: int = 4) -> bytes:
    """Pickle bytes whose loading creates `marker`."""
    import pickle

    return pickle.dumps(Evil(marker), protocol=protocol)


# ------------------------------------------------------------------ snapshots
class DiskFills:
    """Stands in for the GridWriter's rasterio dataset: each write lands, then the disk is full."""

    def __init__(self, ds) -> None:
        self._ds = ds

    def write(self, *a, **k):
        self._ds.write(*a, **k)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._ds, name)


def batch_folders(tmp: Path, names_opt, names_sar, broken=()):
    """tmp/in/optical and tmp/in/sar holding the named files; names in `broken` are text, not rasters."""
    opt_dir, sar_dir = tmp / "in" / "optical", tmp / "in" / "sar"
    opt_dir.mkdir()
    sar_dir.mkdir()
    optical, sar = scene(24, 30)
    for n in names_opt:
        if n in broken:
            (opt_dir / n).write_text("not a raster\n")
        else:
            write_tif(opt_dir / n, optical)
    for n in names_sar:
        write_tif(sar_dir / n, sar, descriptions=["VV", "VH"])
    return opt_dir, sar_dir


def snapshot(root) -> Dict[str, str]:
    """{relative path: sha256} of every file under `root` (hidden files and sidecars included)."""
    out = {}
    root = Path(root)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def output_sidecars(output: str) -> set:
    """Files a successful run may add next to its output (GDAL category names, QGIS style)."""
    return {output, output + ".aux.xml", os.path.splitext(output)[0] + ".qml"}


# ------------------------------------------------------------------ the catalogue
@dataclass
class Case:
    """One bad (or odd) input. `build(tmp, checkpoint)` writes the files and returns the run's arguments:
    optical, sar, output, checkpoint and optionally optical_bands, sar_bands, tile_size, overlap, batch_size, and
    `nodata_mask` (bool [rows, cols] where the output must be nodata; None: do not check)."""

    id: str
    title: str
    expect: str  # "error" or "works"
    build: Callable[[Path, str], dict]
    problem: str = ""  # regex: the message names the problem
    fix: str = ""  # regex: the message names the fix
    note: str = ""
    cli_only: bool = False
    #: In QGIS 3.22 a raster parameter given as text must be an existing file, so GDAL dataset names
    #: (/vsizip/..., GTIFF_DIR:...) reach an algorithm as loaded layers, as they do from the dialog.
    as_layers: bool = False


def _pair(tmp: Path, ck: str, **over) -> dict:
    opt, sar = scene()
    d = dict(optical=write_tif(tmp / "in" / "optical.tif", opt),
             sar=write_tif(tmp / "in" / "sar.tif", sar, descriptions=["VV", "VH"]),
             output=str(tmp / "out" / "landcover.tif"), checkpoint=ck, nodata_mask=np.zeros((ROWS, COLS), bool))
    d.update(over)
    return d


def _no_overlap(tmp, ck):
    d = _pair(tmp, ck)
    _, sar = scene()
    d["sar"] = write_tif(tmp / "in" / "sar_far.tif", sar, origin=(600000.0, 4600000.0), descriptions=["VV", "VH"])
    return d


def _small_overlap(tmp, ck):
    d = _pair(tmp, ck)
    _, sar = scene()
    # the SAR starts 3 columns before the optical's right edge and 2 rows above its bottom edge
    origin = (ORIGIN[0] + (COLS - 3) * RES, ORIGIN[1] - (ROWS - 2) * RES)
    d["sar"] = write_tif(tmp / "in" / "sar_corner.tif", sar, origin=origin, descriptions=["VV", "VH"])
    mask = np.ones((ROWS, COLS), bool)
    mask[ROWS - 2:, COLS - 3:] = False
    d["nodata_mask"] = mask
    return d


def _different_crs(tmp, ck):
    from rasterio.warp import transform_bounds

    d = _pair(tmp, ck)
    left, bottom, right, top = transform_bounds("EPSG:32631", "EPSG:4326", ORIGIN[0], ORIGIN[1] - ROWS * RES,
                                                ORIGIN[0] + COLS * RES, ORIGIN[1])
    res = 5e-5  # about 5 m, with a margin of 10 pixels around the optical footprint
    rows, cols = int((top - bottom) / res) + 20, int((right - left) / res) + 20
    rng = np.random.default_rng(1)
    sar = (np.array([-12.0, -18.0])[:, None, None] + rng.normal(0, 1, (2, rows, cols))).astype(np.float32)
    d["sar"] = write_tif(tmp / "in" / "sar_wgs84.tif", sar, crs="EPSG:4326", origin=(left - 10 * res, top + 10 * res),
                         res=res, descriptions=["VV", "VH"])
    return d


def _no_crs(tmp, ck):
    d = _pair(tmp, ck)
    _, sar = scene()
    d["sar"] = write_tif(tmp / "in" / "sar_nocrs.tif", sar, crs=None, descriptions=["VV", "VH"])
    return d


def _pixel_size(tmp, ck):
    d = _pair(tmp, ck)
    _, sar = scene(ROWS // 2 + 2, COLS // 2 + 2)
    # 20 m SAR pixels covering the optical footprint with one SAR pixel of margin
    d["sar"] = write_tif(tmp / "in" / "sar_20m.tif", sar, origin=(ORIGIN[0] - 20, ORIGIN[1] + 20), res=20.0,
                         descriptions=["VV", "VH"])
    return d


def _few_bands(tmp, ck):
    d = _pair(tmp, ck)
    opt, _ = scene()
    d["optical"] = write_tif(tmp / "in" / "optical_rgb.tif", opt[1:4])
    return d


def _band_index(tmp, ck):
    return _pair(tmp, ck, sar_bands=[1, 5])


def _sar_all_nan(tmp, ck):
    d = _pair(tmp, ck)
    d["sar"] = write_tif(tmp / "in" / "sar_nan.tif", np.full((2, ROWS, COLS), np.nan, np.float32),
                         descriptions=["VV", "VH"])
    return d


def _sar_band_nan(tmp, ck):
    d = _pair(tmp, ck)
    _, sar = scene()
    sar[1] = np.nan
    d["sar"] = write_tif(tmp / "in" / "sar_vh_nan.tif", sar, descriptions=["VV", "VH"])
    return d


def _optical_all_nodata(tmp, ck):
    d = _pair(tmp, ck)
    d["optical"] = write_tif(tmp / "in" / "optical_empty.tif", np.zeros((12, ROWS, COLS), np.uint16), nodata=0)
    return d


def _sar_part_nan(tmp, ck):
    d = _pair(tmp, ck)
    _, sar = scene()
    mask = np.zeros((ROWS, COLS), bool)
    mask[5:15, 10:30] = True
    sar[0][mask] = np.nan
    sar[1, 30, 40] = np.nan  # one band only is enough to make the pixel invalid
    mask[30, 40] = True
    d["sar"] = write_tif(tmp / "in" / "sar_holes.tif", sar, descriptions=["VV", "VH"])
    d["nodata_mask"] = mask
    return d


def _optical_holes(tmp, ck):
    d = _pair(tmp, ck)
    opt, _ = scene()
    mask = np.zeros((ROWS, COLS), bool)
    mask[20:35, 0:12] = True
    mask[0, 0] = True
    opt[:, mask] = 0
    d["optical"] = write_tif(tmp / "in" / "optical_holes.tif", opt, nodata=0)
    d["nodata_mask"] = mask
    return d


def _uint16_max(tmp, ck):
    d = _pair(tmp, ck)
    opt = np.full((12, ROWS, COLS), np.iinfo(np.uint16).max, np.uint16)
    d["optical"] = write_tif(tmp / "in" / "optical_saturated.tif", opt)
    return d


def _offset_optical(tmp, ck, name: str, tags: dict) -> dict:
    """The scene's optical stored the baseline-04.00 way (DN + 1000) with the given metadata."""
    d = _pair(tmp, ck)
    opt, _ = scene()
    d["optical"] = write_tif(tmp / "in" / name, (opt.astype(np.int32) + 1000).astype(np.uint16), tags=tags)
    return d


def _positive_add_offset(tmp, ck):
    return _offset_optical(tmp, ck, "optical_offset_tag.tif", {"BOA_ADD_OFFSET": "1000"})


def _baseline_tag(tmp, ck):
    return _offset_optical(tmp, ck, "optical_pb0510.tif", {"PROCESSING_BASELINE": "05.10"})


def _truncated(tmp, ck):
    p = tmp / "in" / "truncated.safetensors"
    data = Path(ck).read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return _pair(tmp, str(p))


def _corrupted(tmp, ck):
    p = tmp / "in" / "corrupted.safetensors"
    data = bytearray(Path(ck).read_bytes())
    data[8:40] = b"\xff" * 32  # garbage inside the JSON header
    p.write_bytes(bytes(data))
    return _pair(tmp, str(p))


def _pickle(tmp, ck):
    p = tmp / "in" / "model.safetensors"
    marker = tmp / "pwned"
    p.write_bytes(evil_pickle_bytes(str(marker)))
    return _pair(tmp, str(p), marker=str(marker))


def _no_colours(tmp, ck):
    return _pair(tmp, make_checkpoint(tmp / "in" / "nocolours.safetensors", colors=False), palette=True)


def _out_is_input(tmp, ck):
    d = _pair(tmp, ck)
    d["output"] = d["optical"]
    return d


def _out_folder_missing(tmp, ck):
    return _pair(tmp, ck, output=str(tmp / "out" / "missing_folder" / "landcover.tif"))


def _tile_lt_overlap(tmp, ck):
    return _pair(tmp, ck, tile_size=32, overlap=40)


def _too_big_for_memory(tmp, ck):
    return _pair(tmp, ck, tile_size=8192, overlap=0, batch_size=64)


def _tile_gt_raster(tmp, ck):
    return _pair(tmp, ck, tile_size=256, overlap=0)


def _one_pixel(tmp, ck):
    opt, sar = scene(1, 1)
    return _pair(tmp, ck, optical=write_tif(tmp / "in" / "optical_1px.tif", opt),
                 sar=write_tif(tmp / "in" / "sar_1px.tif", sar, descriptions=["VV", "VH"]),
                 nodata_mask=np.zeros((1, 1), bool))


def _text_file(tmp, ck):
    d = _pair(tmp, ck)
    p = tmp / "in" / "notes.tif"
    p.write_text("this is not a raster\n")
    d["optical"] = str(p)
    return d


def _missing_file(tmp, ck):
    d = _pair(tmp, ck)
    d["sar"] = str(tmp / "in" / "no_such_sar.tif")
    return d


def _zip_members(tmp, ck):
    import zipfile

    d = _pair(tmp, ck)
    archive = tmp / "in" / "pair.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for key in ("optical", "sar"):
            z.write(d[key], os.path.basename(d[key]))
    for key in ("optical", "sar"):
        name = os.path.basename(d[key])
        os.remove(d[key])  # only the archive is left, so nothing can read the loose file instead
        d[key] = f"/vsizip/{archive}/{name}"
    return d


def _pages(tmp, ck) -> dict:
    """The optical and the SAR as pages 1 and 2 of one multi-page GeoTIFF (GTIFF_DIR:n:file)."""
    from osgeo import gdal

    d = _pair(tmp, ck)
    stack = tmp / "in" / "stack.tif"
    gdal.Translate(str(stack), d["optical"])
    gdal.Translate(str(stack), d["sar"], creationOptions=["APPEND_SUBDATASET=YES"])
    for k, key in enumerate(("optical", "sar"), 1):
        os.remove(d[key])
        d[key] = f"GTIFF_DIR:{k}:{stack}"
    return d


def _out_is_page_file(tmp, ck):
    d = _pages(tmp, ck)
    d["output"] = str(tmp / "in" / "stack.tif")
    return d


def _archive_given(tmp, ck):
    d = _zip_members(tmp, ck)
    d["optical"] = str(tmp / "in" / "pair.zip")
    return d


def _subdatasets_only(tmp, ck):
    from osgeo import gdal

    d = _pair(tmp, ck)
    rgb = write_tif(tmp / "rgb.tif", np.full((3, ROWS, COLS), 90, np.uint8))
    gpkg = tmp / "in" / "two_tables.gpkg"
    gdal.Translate(str(gpkg), rgb, format="GPKG", creationOptions=["RASTER_TABLE=spring"])
    gdal.Translate(str(gpkg), rgb, format="GPKG", creationOptions=["RASTER_TABLE=autumn", "APPEND_SUBDATASET=YES"])
    os.remove(rgb)
    d["optical"] = str(gpkg)
    return d


def _gcp_only_sar(tmp, ck):
    import warnings

    import rasterio
    from rasterio.control import GroundControlPoint

    d = _pair(tmp, ck)
    _, sar = scene()
    path = tmp / "in" / "sar_radar_geometry.tif"
    gcps = [GroundControlPoint(r, c, 14.0 + 0.0006 * c, 45.0 - 0.0004 * r) for r in (0, ROWS) for c in (0, COLS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=COLS, height=ROWS, count=2, dtype="float32") as ds:
            ds.write(sar)
            ds.gcps = (gcps, rasterio.crs.CRS.from_epsg(4326))
    d["sar"] = str(path)
    return d


CASES: List[Case] = [
    Case("no_overlap", "rasters that do not overlap", "error", _no_overlap, r"do not overlap", r"same place"),
    Case("small_overlap", "overlap smaller than one tile (3 x 2 px)", "works", _small_overlap,
         note="the tile reaching past the overlap is padded; only the overlap is classified, the rest is nodata"),
    Case("different_crs", "different CRS (SAR in EPSG:4326, optical in UTM)", "works", _different_crs,
         note="SAR warped onto the optical grid window by window"),
    Case("no_crs", "a raster with no CRS", "error", _no_crs, r"no coordinate reference system", r"assign one"),
    Case("pixel_size", "different pixel sizes (SAR 20 m, optical 10 m)", "works", _pixel_size,
         note="SAR resampled (bilinear) onto the optical grid"),
    Case("few_bands", "optical with fewer bands than the checkpoint needs (3 of 10)", "error", _few_bands,
         r"has 3 band\(s\) but the checkpoint needs 10", r"give a raster with those bands"),
    Case("band_index", "a band index out of range (SAR bands 1,5 of 2)", "error", _band_index,
         r"band index 5 is out of range", r"fix (--sar-bands$|SAR_BANDS$)"),
    Case("sar_all_nan", "SAR all NaN", "error", _sar_all_nan, r"SAR raster has no valid values",
         r"check the SAR file and its nodata value"),
    Case("sar_band_nan", "SAR with one band (VH) all NaN", "error", _sar_band_nan, r"SAR raster has no valid values",
         r"check the SAR file and its nodata value"),
    Case("optical_all_nodata", "optical all nodata", "error", _optical_all_nodata,
         r"optical raster has no valid values", r"check the optical file and its nodata value"),
    Case("sar_part_nan", "SAR partly NaN", "works", _sar_part_nan,
         note="nodata exactly where a SAR band is NaN"),
    Case("optical_holes", "optical nodata holes", "works", _optical_holes,
         note="nodata exactly where every optical band equals the raster's nodata value"),
    Case("uint16_max", "uint16 optical at the type's maximum (65535)", "works", _uint16_max,
         note="values clipped to the card's range; every pixel classified"),
    Case("positive_add_offset", "optical declaring BOA_ADD_OFFSET = +1000 (ESA's is -1000)", "error",
         _positive_add_offset, r"ADD_OFFSET of \+1000", r"(--optical-offset|OPTICAL_OFFSET) -1000 or (--optical-offset|OPTICAL_OFFSET) 0"),
    Case("baseline_tag", "Sentinel-2 of processing baseline 05.10 (DN + 1000, PROCESSING_BASELINE tag)", "works",
         _baseline_tag, note="offset -1000 applied from the tag and reported; every pixel classified"),
    Case("truncated_ckpt", "a truncated checkpoint", "error", _truncated, r"truncated", r"download the file again"),
    Case("corrupted_ckpt", "a corrupted checkpoint (garbage in the header)", "error", _corrupted,
         r"corrupted", r"download the file again"),
    Case("pickle_ckpt", "a checkpoint carrying a pickle payload", "error", _pickle, r"pickle",
         r"only loads \.safetensors.*Convert it in a trusted environment",
         note="refused from its first bytes; the payload (which would create a file) never runs"),
    Case("no_colours", "a checkpoint without class colours", "works", _no_colours,
         note="a distinct palette is generated"),
    Case("out_is_input", "the output path equal to an input path", "error", _out_is_input,
         r"is also an input raster", r"choose a different output file name"),
    Case("out_folder_missing", "an output folder that does not exist", "error", _out_folder_missing,
         r"folder .* does not exist", r"create it or choose another path"),
    Case("tile_lt_overlap", "tile size smaller than the overlap (32 < 40)", "error", _tile_lt_overlap,
         r"tile size 32 must be more than twice the overlap 40", r"use a smaller (--overlap|OVERLAP) \(e\.g\. 4\) or a larger (--tile-size|TILE_SIZE)"),
    Case("too_big_for_memory", "tile size x batch size larger than the memory (8192 px x 64)", "error",
         _too_big_for_memory, r"tile 8192 px x batch 64 needs about [\d.]+ GB of CPU memory, but only",
         r"use (--tile-size|TILE_SIZE) \d+ and (--batch-size|BATCH_SIZE) 1, or close other programs"),
    Case("tile_gt_raster", "tile size larger than the raster (256 > 40 x 50)", "works", _tile_gt_raster,
         note="the single tile is padded"),
    Case("one_pixel", "a 1 x 1 pixel raster pair", "works", _one_pixel,
         note="decided: works (edge padding to one tile); a 0-pixel raster cannot be written as a GeoTIFF"),
    Case("text_file", "a text file given as a raster", "error", _text_file, r"not a raster",
         r"give a GeoTIFF"),
    Case("missing_file", "a missing file", "error", _missing_file, r"does not exist", r"check the path"),
    Case("zip_members", "optical and SAR inside a zip archive, given as /vsizip/ names", "works", _zip_members,
         note="GDAL dataset names are inputs like files; the archive is read, never changed", as_layers=True),
    Case("gtiff_pages", "optical and SAR as pages of one multi-page GeoTIFF (GTIFF_DIR:n:file)", "works", _pages,
         note="subdataset names are inputs like files", as_layers=True),
    Case("out_is_page_file", "the output path equal to the file holding both input pages", "error",
         _out_is_page_file, r"is also an input raster", r"choose a different output file name", as_layers=True),
    Case("archive_given", "a zip archive given as the optical raster", "error", _archive_given, r"is an archive",
         r"give a raster inside it by its GDAL name, e\.g\. /vsizip/.*pair\.zip/optical\.tif"),
    Case("subdatasets_only", "a file holding two rasters (subdatasets) and no bands of its own", "error",
         _subdatasets_only, r"holds 2 rasters \(subdatasets\)", r"give one of them .*GPKG:.*:spring"),
    Case("gcp_only_sar", "SAR located only by ground control points (radar geometry)", "error", _gcp_only_sar,
         r"only by ground control points", r"Terrain Correction"),
]


def case_ids() -> List[str]:
    return [c.id for c in CASES]


def by_id(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


# ------------------------------------------------------------------ checks
def check_works(args: dict, output: str) -> None:
    """The output is on the optical grid, uint8 with nodata 0, values in the classes, nodata as expected."""
    import rasterio

    with rasterio.open(args["optical"]) as opt, rasterio.open(output) as out:
        assert (out.crs, out.transform, out.shape) == (opt.crs, opt.transform, opt.shape)
        assert out.dtypes[0] == "uint8" and out.nodata == NODATA
        values = out.read(1)
    assert set(np.unique(values).tolist()) <= CLASS_VALUES | {NODATA}
    mask = args.get("nodata_mask")
    if mask is not None:
        np.testing.assert_array_equal(values == NODATA, mask)
    if args.get("palette"):
        from osgeo import gdal

        band = gdal.Info(output, format="json")["bands"][0]
        entries = band["colorTable"]["entries"]
        colours = [tuple(entries[v][:3]) for v in sorted(CLASS_VALUES)]
        assert len(set(colours)) == len(colours), colours
        assert all(entries[v][3] == 255 for v in CLASS_VALUES)
        assert [band["categories"][v] for v in sorted(CLASS_VALUES)] == [c["name"] for c in CLASSES]


def check_message(case: Case, message: str) -> None:
    """The message names the problem and the fix, and is no traceback."""
    assert re.search(case.problem, message, re.S), f"{case.id}: problem {case.problem!r} not in {message!r}"
    assert re.search(case.fix, message, re.S), f"{case.id}: fix {case.fix!r} not in {message!r}"
    assert "Traceback" not in message and 'File "' not in message, message


# ------------------------------------------------------------------ observation log -> docs table
def record(interface: str, case_id: str, outcome: str, message: str, tmp=None) -> None:
    """Append what a case showed to $CLAIRE_BAD_INPUTS_LOG (no-op when unset)."""
    log = os.environ.get("CLAIRE_BAD_INPUTS_LOG")
    if not log:
        return
    text = " ".join(message.split())
    if tmp is not None:
        text = text.replace(str(tmp), "<tmp>")
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"interface": interface, "case": case_id, "outcome": outcome, "message": text}) + "\n")


#: Cases tested outside the parametrised catalogue (they need monkeypatching or folders).
EXTRA_TITLES = {
    "disk_full": ("the disk filling up during the write (ENOSPC after a block reached the file)", "error", ""),
    "cancel": ("cancel in the middle of a run (Ctrl+C in the CLI, the feedback's cancel in QGIS)", "error", ""),
    "batch_empty": ("batch: an empty optical folder (a stray .txt only)", "error", ""),
    "batch_unmatched": ("batch: unmatched files (b.tif optical only, c.tif SAR only)", "works",
                        "reported, the matched pair classified"),
    "batch_broken": ("batch: one broken pair (a text file named b.tif) among good ones", "works",
                     "reported, the other pairs classified"),
}


def render(log_path: str) -> str:
    """Markdown table (one row per case and interface) from an observation log."""
    rows = [json.loads(line) for line in Path(log_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    titles = {c.id: (c.title, c.expect, c.note) for c in CASES}
    titles.update(EXTRA_TITLES)
    order = {c: i for i, c in enumerate(case_ids() + list(EXTRA_TITLES))}
    seen = {}
    for r in rows:
        seen[(r["case"], r["interface"])] = r
    lines = ["| case | expected | interface | observed outcome | message / result |", "|---|---|---|---|---|"]
    for (cid, iface), r in sorted(seen.items(), key=lambda kv: (order.get(kv[0][0], 999), kv[0][0], kv[0][1])):
        title, expect, note = titles.get(cid, (cid, "", ""))
        msg = r["message"].replace("|", "\\|")
        if r["outcome"] == "works" and note:
            msg = f"{note}. {msg}" if msg else note
        lines.append(f"| {title} | {expect} | {iface} | {r['outcome']} | {msg} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.stdout.write(render(sys.argv[1]))
