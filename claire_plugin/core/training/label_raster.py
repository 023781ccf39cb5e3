"""Training labels from a label raster: class codes resampled (nearest) onto the optical grid, block by block.

Codes 0 and 255 and the raster's nodata are unlabelled (ignored). Each connected patch of one class within
a block is one group for the split (a patch crossing a block edge becomes two groups; the split's buffer
keeps their pixels apart).
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Optional

import numpy as np

from ..errors import ClaireError
from ..io.gdal_mode import with_gdal_exceptions
from .labels import IGNORE, ClassInfo, LabelPixels, LabelSet, check_class_counts

BLOCK = 1024


@with_gdal_exceptions
def is_raster(path: str) -> bool:
    """Whether GDAL opens `path` as a raster (and not as a vector)."""
    from osgeo import gdal

    if not os.path.exists(path):
        raise ClaireError(f"the labels {path!r} do not exist; give the path of a vector layer or label raster")
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER)
    except RuntimeError:
        return False
    ok = ds is not None and ds.RasterCount > 0
    ds = None
    return ok


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_label_raster(path: str, grid, classes: Optional[List[ClassInfo]], max_pixels_per_polygon: int,
                      seed: int, check_counts: bool = True) -> LabelSet:
    """Labels from the first band of raster `path` on `grid`'s pixels (see the module docstring)."""
    from scipy import ndimage

    from ..io import raster_io as rio

    ds = rio.open_raster(path, "label")
    try:
        rio.require_crs(ds, "label")
        rio.overlap_window(grid, ds, "label")
        warped = rio.warp_to_grid(ds, grid, "nearest")
        nodata = ds.nodata
        parts: List[LabelPixels] = []
        group_class: Dict[int, int] = {}
        lookup = None if classes is None else {c.code: c.index for c in classes}
        codes_seen: set = set()
        rng = np.random.default_rng(seed)
        for r0 in range(0, grid.height, BLOCK):
            for c0 in range(0, grid.width, BLOCK):
                h, w = min(BLOCK, grid.height - r0), min(BLOCK, grid.width - c0)
                a = warped.read([1], window=_window(r0, c0, h, w))[0]
                ok = np.isfinite(a) & (a != 0) & (a != IGNORE)
                if nodata is not None and np.isfinite(nodata):
                    ok &= a != np.float32(nodata)
                for code in np.unique(a[ok]).astype(np.int64):
                    if not 0 < code < 255:
                        raise ClaireError(f"the label raster {path!r} holds code {code}, outside 1..254; "
                                          f"renumber the classes")
                    codes_seen.add(int(code))
                    if lookup is not None and int(code) not in lookup:
                        continue
                    comp, n = ndimage.label(ok & (a == code))
                    _add_components(parts, group_class, comp, n, int(code), r0, c0, rng, max_pixels_per_polygon)
    finally:
        ds.close()
    if classes is None:
        classes = [ClassInfo(i, c, f"class {c}") for i, c in enumerate(sorted(codes_seen))]
    if not codes_seen:
        raise ClaireError(f"the label raster {path!r} has no labelled pixel over the optical raster (0, 255 and "
                          f"nodata are unlabelled); check that it covers the optical raster")
    index = {c.code: c.index for c in classes}
    pixels = LabelPixels.concat(parts)
    pixels.cls = _to_index(pixels.cls, index)  # the parts hold class codes
    group_class = {g: index[code] for g, code in group_class.items()}
    source = {"path": path, "kind": "raster", "field": None, "sha256": _file_hash(path), "hash_of": "the file"}
    out = LabelSet(pixels, classes, group_class, {g: [g] for g in group_class}, source)
    if check_counts:
        check_class_counts(out)
    return out


def _window(r0: int, c0: int, h: int, w: int):
    from rasterio.windows import Window

    return Window(c0, r0, w, h)


def _to_index(codes: np.ndarray, index: Dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for code, i in index.items():
        lut[code] = i
    return lut[codes]


def _add_components(parts: List[LabelPixels], group_class: Dict[int, int], comp: np.ndarray, n: int, code: int,
                    r0: int, c0: int, rng: np.random.Generator, cap: int) -> None:
    """One group per connected component; pixels stored with their class *code* (mapped to indices later)."""
    rows, cols = np.nonzero(comp)
    lab = comp[rows, cols]
    order = np.argsort(lab, kind="stable")
    rows, cols, lab = rows[order], cols[order], lab[order]
    starts = np.searchsorted(lab, np.arange(1, n + 2))
    for k in range(n):
        a, b = starts[k], starts[k + 1]
        sel = np.arange(a, b)
        if sel.size > cap:
            sel = np.sort(rng.choice(sel, cap, replace=False))
        g = len(group_class)
        group_class[g] = code
        parts.append(LabelPixels((rows[sel] + r0).astype(np.int32), (cols[sel] + c0).astype(np.int32),
                                 np.full(sel.size, code, np.uint8), np.full(sel.size, g, np.int32)))
