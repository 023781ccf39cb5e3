"""The "magic wand": a training polygon grown from one clicked pixel over the optical raster.

The optical bands are read as the engine and the training read them (`training.scene.Scene`: band mapping,
radiometry, the checkpoint's normalisation), so a distance of 1 is one standard deviation of the network's
training data in every band. From the clicked pixel (its spectrum: the median of the valid 3 x 3 around it)
the region takes the pixels 4-connected to it whose RMS distance over the bands is at most the tolerance,
inside a square of `max_width` pixels centred on the click; pixels without optical or SAR data never join.
The default tolerance was measured on the bundled sites (tools/wand_check.py; docs/train_from_polygons.md):
a tolerance chosen per click as the most stable region on a ladder was no purer than the fixed default.
The region comes back as one polygon (holes kept: a tree in a field stays out) in the optical raster's CRS.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import ClaireError
from .scene import Scene

#: Default tolerance: RMS distance over the optical bands, in the checkpoint's standard deviations.
TOLERANCE = 0.15
#: The tolerances and widths every interface takes (the command line, Processing, the dock).
TOLERANCE_RANGE = (0.01, 10.0)
MAX_WIDTH = 41
MAX_WIDTH_RANGE = (3, 1001)
MIN_PIXELS = 4


def check_tolerance(tolerance: float, max_width: Optional[int] = None) -> None:
    """ClaireError unless the tolerance (and the width, when given) lie in the ranges every interface takes."""
    low, high = TOLERANCE_RANGE
    if not low <= tolerance <= high:
        raise ClaireError(f"the tolerance must be between {low:g} and {high:g} standard deviations (got "
                          f"{tolerance:g}); {TOLERANCE:g} is the default")
    if max_width is not None and not MAX_WIDTH_RANGE[0] <= int(max_width) <= MAX_WIDTH_RANGE[1]:
        raise ClaireError(f"the largest polygon width must be between {MAX_WIDTH_RANGE[0]} and {MAX_WIDTH_RANGE[1]} "
                          f"pixels (got {max_width}); {MAX_WIDTH} is the default")


@dataclass
class Region:
    """One grown region: its mask in the window (row0, col0), the tolerance used, and its polygon."""

    mask: np.ndarray
    row0: int
    col0: int
    tolerance: float
    truncated: bool  # the region reaches the edge of the max_width square
    left_out: int  # pixels that would have joined but lie in taken polygons
    wkt: str  # polygon in the optical raster's CRS

    @property
    def pixels(self) -> int:
        """Number of pixels in the region."""
        return int(self.mask.sum())


def normalisation_card(card: Optional[dict]) -> dict:
    """The card whose normalisation the wand measures distances in: `card` when it is a network's, else (none,
    a random forest's, an averaged model's) the bundled network's."""
    from ....models.card_schema import ENSEMBLE, FOREST
    from ....models.checkpoint import read_card
    from ...paths import DEFAULT_CHECKPOINT

    return card if card and card.get("arch") not in (FOREST, ENSEMBLE) else read_card(DEFAULT_CHECKPOINT)


def distance_to_seed(feats: np.ndarray, bad: np.ndarray, r: int, c: int) -> np.ndarray:
    """RMS distance over bands of every pixel of `feats` [C,H,W] to the median of the valid 3 x 3 around
    (r, c); +inf where `bad`."""
    r0, c0 = max(0, r - 1), max(0, c - 1)
    near = feats[:, r0:r + 2, c0:c + 2][:, ~bad[r0:r + 2, c0:c + 2]]
    seed = np.median(near, axis=1).astype(np.float32)
    d = np.sqrt(np.mean(np.square(feats - seed.reshape(-1, 1, 1)), axis=0))
    d[bad] = np.inf
    return d


def grow(dist: np.ndarray, r: int, c: int, tolerance: float) -> np.ndarray:
    """The pixels 4-connected to (r, c) whose distance is at most `tolerance` (the seed always joins)."""
    from scipy import ndimage

    within = np.isfinite(dist) & (dist <= tolerance)  # inf marks no data and taken pixels, whatever the tolerance
    within[r, c] = np.isfinite(dist[r, c])
    labels, _ = ndimage.label(within)
    return labels == labels[r, c] if labels[r, c] else np.zeros(dist.shape, bool)


class TakenPointError(ClaireError):
    """The point lies inside a polygon the region may not overlap."""


def saturated_pixels(scene: Scene, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Bool [h, w] of the window (inside the raster): pixels at an integer optical's largest value in a chosen band
    (Sentinel-2's 65535: saturated, no reflectance measured; the card's clip makes it look like bright ground)."""
    from ..io.raster_io import read_window

    dtype = np.dtype(scene.opt.dtypes[scene.oc.indices[0] - 1])
    if dtype.kind not in "ui":
        return np.zeros((h, w), bool)
    raw = read_window(scene.opt, scene.oc.indices, r0, c0, h, w, dtype.name)
    return (raw == np.iinfo(dtype).max).any(axis=0)


def _polygon_wkt(mask: np.ndarray, transform) -> str:
    """The mask (one 4-connected region) as a polygon WKT in the raster's coordinates."""
    from rasterio import features

    shapes = [geom for geom, value in features.shapes(mask.astype(np.uint8), mask=mask, connectivity=4,
                                                     transform=transform) if value == 1]
    rings = ["(" + ", ".join(f"{x!r} {y!r}" for x, y in ring) + ")" for ring in shapes[0]["coordinates"]]
    return "POLYGON (" + ", ".join(rings) + ")"


def pixel_of(scene: Scene, x: float, y: float) -> Tuple[int, int]:
    """Row and column of the optical pixel holding (x, y) in the optical raster's CRS; ClaireError outside."""
    col, row = ~scene.opt.transform * (x, y)
    r, c = int(np.floor(row)), int(np.floor(col))
    if not (0 <= r < scene.height and 0 <= c < scene.width):
        raise ClaireError("The point lies outside the optical raster: choose points on the scene you train on.")
    return r, c


def taken_pixels(taken: Sequence[str], shape: Tuple[int, int], transform) -> np.ndarray:
    """Pixels of a window (`shape`, `transform`) whose centre lies in one of the `taken` polygons (WKT, raster
    CRS): the rule by which training turns polygons into pixels."""
    from osgeo import ogr
    from rasterio import features

    shapes = []
    for wkt in taken:
        geom = ogr.CreateGeometryFromWkt(wkt)
        if geom is not None and not geom.IsEmpty():
            shapes.append((json.loads(geom.ExportToJson()), 1))
    if not shapes:
        return np.zeros(shape, bool)
    return features.rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool)


def grow_region(scene: Scene, x: float, y: float, tolerance: float = TOLERANCE, max_width: int = MAX_WIDTH,
                min_pixels: int = MIN_PIXELS, taken: Sequence[str] = ()) -> Region:
    """Grow a region from the pixel at (x, y) (optical raster CRS) around the pixels of the `taken` polygons
    (WKT, raster CRS), which never join. ClaireError when the point is outside the raster, its pixel has no
    data or is taken, or fewer than `min_pixels` pixels are within `tolerance`."""
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    check_tolerance(tolerance)
    r, c = pixel_of(scene, x, y)
    before, after = max(1, int(max_width) // 2), max(1, (int(max_width) - 1) // 2)  # the click's pixel between: W
    r0, c0 = max(0, r - before), max(0, c - before)
    h, w = min(scene.height, r + after + 1) - r0, min(scene.width, c + after + 1) - c0
    transform = window_transform(Window(c0, r0, w, h), scene.opt.transform)
    blocked = taken_pixels(taken, (h, w), transform)
    if blocked[r - r0, c - c0]:
        raise TakenPointError("The point is already inside a polygon of the training layer: choose a point "
                          "elsewhere, or delete that polygon first.")
    opt, _sar, bad = scene.read(r0, c0, h, w)
    if bad[r - r0, c - c0]:
        raise ClaireError("The pixel at the point has no optical or no SAR data (nodata, or outside the part the "
                          "two rasters share): choose a point inside the scene.")
    saturated = saturated_pixels(scene, r0, c0, h, w)
    if saturated[r - r0, c - c0]:
        raise ClaireError("The pixel at the point is saturated (the optical's largest value in a band: no surface "
                          "reflectance was measured there): choose a point elsewhere.")
    bad = bad | saturated  # never joins a polygon, as a pixel without data
    feats = scene.opt_prep.standardise(np.nan_to_num(opt, nan=0.0))
    dist = distance_to_seed(feats, bad, r - r0, c - c0)
    tol = float(tolerance)
    free = grow(dist, r - r0, c - c0, tol)
    dist[blocked] = np.inf
    mask = grow(dist, r - r0, c - c0, tol)
    n = int(mask.sum())
    if n < min_pixels:
        raise ClaireError(f"Only {n} pixel(s) lie within tolerance {tol:g} of the pixel at the point (at least "
                          f"{min_pixels} make a polygon): raise the tolerance, or choose a point inside a larger "
                          f"uniform area.")
    truncated = bool((mask[0].any() and r0 > 0) or (mask[-1].any() and r0 + h < scene.height)
                     or (mask[:, 0].any() and c0 > 0) or (mask[:, -1].any() and c0 + w < scene.width))
    return Region(mask=mask, row0=r0, col0=c0, tolerance=tol, truncated=truncated,
                  left_out=int((free & blocked).sum()), wkt=_polygon_wkt(mask, transform))
