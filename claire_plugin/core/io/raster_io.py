"""Opening rasters safely, the optical/SAR overlap, and on-the-fly warping onto the optical grid."""
from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError


def numpy_dtype(name: str) -> np.dtype:
    """numpy's type for a rasterio band type name; GDAL's complex integers (CInt16 / CInt32, which numpy lacks, as
    'complex_int16') as complex64, the type rasterio reads them into."""
    try:
        return np.dtype(name)
    except TypeError:
        if str(name).startswith("complex"):
            return np.dtype("complex64")
        raise


def open_raster(path: str, role: str):
    """Open `path` (a file or any GDAL dataset name, see core.io.gdal_names) with rasterio, or raise
    ClaireError naming the file and what to do."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    from .gdal_names import folder_store_message, is_gdal_name, missing_message, subdatasets

    role = role[:-len(" raster")] if role.endswith(" raster") else role  # "the {role} raster" below
    if not path:
        raise ClaireError(f"no {role} raster given; pass the path of a GeoTIFF (or another GDAL raster)")
    problem = missing_message(path, role)
    if problem:
        raise ClaireError(problem)
    if not is_gdal_name(path) and os.path.isdir(path):
        raise ClaireError(folder_store_message(path, role))
    try:
        with warnings.catch_warnings():  # require_crs() says it clearly, with the fix
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except (RasterioIOError, OSError, ValueError) as exc:
        members = _archive_rasters(path)
        if members:
            raise ClaireError(f"the {role} file {quoted(path)} is an archive; give a raster inside it by its GDAL "
                              f"name, e.g. {_listing(members)}") from None
        if _DAMAGED.search(str(exc).replace(path, "")):  # GDAL 3.10 fails to open a cut-off TIFF (3.6: at the read)
            raise ClaireError(f"reading the raster {quoted(path)} failed ({exc}): the {role} file is truncated or "
                              f"damaged; copy or download it again") from None
        if path.lower().endswith(".dim"):
            data = os.path.splitext(path)[0] + ".data"
            raise ClaireError(f"the {role} file {quoted(path)} is the header of a SNAP BEAM-DIMAP product, which "
                              f"GDAL cannot read as one raster; stack the bands of {data} (e.g. gdalbuildvrt "
                              f"-separate out.vrt Sigma0_VV.img Sigma0_VH.img) and give that, or export a GeoTIFF "
                              f"from SNAP") from None
        raise ClaireError(f"the {role} file {quoted(path)} is not a raster GDAL can read ({exc}); give a GeoTIFF "
                          f"or another GDAL raster") from None
    if ds.count < 1 or ds.width < 1 or ds.height < 1:
        meta = ds.tags(ns="SUBDATASETS")
        ds.close()
        subs = subdatasets(meta)
        if subs:
            if role == "optical" and any(n.upper().startswith("SENTINEL2_") for n, _ in subs):
                raise ClaireError(f"the {role} file {quoted(path)} is a Sentinel-2 product, whose bands GDAL splits "
                                  f"by resolution (10m: B02 B03 B04 B08 only; 20m; 60m), while the checkpoint reads "
                                  f"bands of several; stack them first at 10 m: gdalbuildvrt -separate -resolution "
                                  f"highest s2.vrt R10m/*_B0[234]_10m.jp2 R20m/*_B0[567]_20m.jp2 R10m/*_B08_10m.jp2 "
                                  f"R20m/*_B8A_20m.jp2 R20m/*_B1[12]_20m.jp2 (in the granule's IMG_DATA), and for "
                                  f"processing baseline 04.00 or later add --optical-offset -1000")
            named = [f"{n} ({d})" if d else n for n, d in subs]
            raise ClaireError(f"the {role} file {quoted(path)} holds {len(subs)} rasters (subdatasets) and no bands of "
                              f"its own; give one of them as the {role} raster: {_listing(named)}")
        raise ClaireError(f"the {role} raster {quoted(path)} has no bands or no pixels; give a valid raster")
    return ds


def _listing(items: Sequence[str], most: int = 6) -> str:
    """Items joined for a message, with how many more there are."""
    shown = "; ".join(items[:most])
    return shown + (f"; and {len(items) - most} more" if len(items) > most else "")


#: What GDAL says when a file it recognised is cut off or corrupt (not: a format it does not know).
_DAMAGED = re.compile(r"TIFFReadDirectory|TIFFFetch|Failed to read|truncat|unexpected end|read error|corrupt", re.I)
_RASTER_EXT = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".nc", ".h5", ".hdf", ".dat", ".bil", ".envi")


def _archive_rasters(path: str) -> List[str]:
    """/vsizip/ or /vsitar/ names of the raster-looking members of a zip or tar archive; [] otherwise."""
    import tarfile
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names, prefix = z.namelist(), "/vsizip/"
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                names, prefix = t.getnames(), "/vsitar/"
        else:
            return []
    except (OSError, zipfile.BadZipFile, tarfile.TarError):
        return []
    full = os.path.abspath(path)
    return [f"{prefix}{full}/{n}" for n in names if n.lower().endswith(_RASTER_EXT)]


def require_crs(ds, role: str) -> None:
    """Raise ClaireError if the raster has no CRS (we cannot place it next to the other raster)."""
    if (ds.crs is None or not ds.crs.to_wkt()) and ds.gcps[0]:
        raise ClaireError(f"the {role} raster {quoted(ds.name)} is located only by ground control points, as a "
                          f"Sentinel-1 GRD/SLC in radar geometry is; put it on a map grid first (for Sentinel-1: "
                          f"SNAP Calibration then Range-Doppler Terrain Correction; for other rasters: "
                          f"gdalwarp -t_srs EPSG:<the other raster's> IN OUT, or Raster > Projections > Warp in "
                          f"QGIS)")
    no_crs, no_place = ds.crs is None or not ds.crs.to_wkt(), ds.transform.is_identity
    if no_crs and no_place:
        raise ClaireError(f"the {role} raster {quoted(ds.name)} has neither a coordinate reference system nor a "
                          f"geotransform (where its pixels lie); georeference it (Raster > Georeferencer in QGIS, "
                          f"or gdal_translate -a_srs EPSG:32633 -a_ullr ULX ULY LRX LRY IN OUT)")
    if no_crs:
        raise ClaireError(f"the {role} raster {quoted(ds.name)} has no coordinate reference system; assign one "
                          f"(e.g. gdal_edit.py -a_srs EPSG:32633 FILE, or Raster > Projections > Assign in QGIS)")
    if no_place:
        raise ClaireError(f"the {role} raster {quoted(ds.name)} has no georeferencing (identity transform); "
                          f"georeference it first (Raster > Georeferencer in QGIS, or gdal_edit.py -a_ullr ULX ULY "
                          f"LRX LRY FILE)")


def overlap_window(grid_ds, other_ds, other_role: str = "SAR"):
    """Window of `grid_ds` (in its pixels) covered by `other_ds`; ClaireError when they do not overlap.
    Any affine grid works: south-up (positive pixel height), rotated or sheared; the window is the
    pixels whose footprint meets the part of the other raster's envelope inside the grid's."""
    from rasterio.warp import transform_bounds

    try:
        with _quiet_gdal():  # points of the envelope outside the projection's domain: said below, not printed
            b = transform_bounds(other_ds.crs, grid_ds.crs, *envelope(other_ds), densify_pts=21)
    except Exception as exc:  # noqa: BLE001 - PROJ errors come in several types
        raise ClaireError(f"cannot transform the {other_role} extent into the optical CRS ({exc}): the two "
                          f"rasters are far apart (they cannot overlap), or one's CRS is wrong; check that they "
                          f"cover the same place and both rasters' CRS") from None
    if not all(math.isfinite(v) for v in b):
        raise ClaireError(f"the {other_role} extent cannot be expressed in the optical CRS: the two rasters are far "
                          f"apart (they cannot overlap), or one's CRS is wrong; check that they cover the same place "
                          f"and both rasters' CRS")
    g = envelope(grid_ds)
    b = _unwrap_longitudes(b, g, grid_ds.crs)
    left, right = max(b[0], g[0]), min(b[2], g[2])
    bottom, top = max(b[1], g[1]), min(b[3], g[3])
    if left >= right or bottom >= top:
        same = "in the same CRS" if other_ds.crs == grid_ds.crs else f"from {other_ds.crs}, in the optical's CRS"
        g, b = (tuple(round(v, 3) for v in bounds) for bounds in (g, b))
        raise ClaireError(f"the optical and {other_role} rasters do not overlap (optical bounds {g} in {grid_ds.crs}; "
                          f"{other_role} bounds {b} {same}); give rasters of the same place")
    win = _pixels_meeting(grid_ds, left, bottom, right, top)
    if win is None:
        raise ClaireError(f"the optical and {other_role} rasters overlap by less than one optical pixel; "
                          f"give rasters of the same place")
    return win


@contextlib.contextmanager
def _quiet_gdal():
    """GDAL's own error printing off for the block (its errors still reach the caller as exceptions)."""
    try:
        from osgeo import gdal
    except ImportError:
        yield
        return
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()


#: Scenes of up to this many optical pixels have their processing region cut to where either raster has data
#: (`data_window`); larger ones would pay a full read of the optical's mask (and the SAR's under it) and feel a
#: frame only in the windows that touch it.
DATA_WINDOW_MAX_PIXELS = 4096 * 4096
#: The masks are read at full resolution and reduced to at most this many cells a side for it.
DATA_MASK_SIDE = 1024


def _any_reduced(ds, f: int, valid, area: Tuple[int, int, int, int]) -> np.ndarray:
    """Bool [ceil(h / f), ceil(w / f)]: whether any pixel of each f x f cell of `area` (row, col, h, w of `ds`) has
    data (`valid(window)`: the bool mask of a window at full resolution), whole blocks of the file at a time. GDAL's
    reduced read samples one pixel per cell and lost a patch narrower than f (QA round 22: two data columns of an
    1100 px scene mapped as nodata); one reduced read of the whole raster also decompressed each block again for
    every output row once a block row outgrew GDAL's cache (minutes instead of a second)."""
    from rasterio.windows import Window

    top, left, height, width = area
    bh, bw = ds.block_shapes[0]
    step_r, step_c = max(f, bh // f * f), max(f, bw // f * f)  # whole blocks, in whole steps of f
    parts = []
    for r0 in range(top, top + height, step_r):
        h = min(step_r, top + height - r0)
        row = []
        for c0 in range(left, left + width, step_c):
            w = min(step_c, left + width - c0)
            m = np.zeros((math.ceil(h / f) * f, math.ceil(w / f) * f), bool)
            m[:h, :w] = valid(Window(c0, r0, w, h))
            row.append(m.reshape(m.shape[0] // f, f, m.shape[1] // f, f).any(axis=(1, 3)))
        parts.append(np.concatenate(row, axis=-1))
    return np.concatenate(parts, axis=-2)


def _valid_box(ds, window=None) -> Optional[Tuple[int, int, int, int]]:
    """(row0, col0, row1, col1) of `ds`'s pixels (within `window`, default all) around those with data in any band
    (its dataset mask, or without a declared nodata its pixels 0 or NaN in its first and last bands; judged on cells
    of f x f pixels, at most DATA_MASK_SIDE a side), or None when none has, or every pixel of the raster has (a
    window with data everywhere is its own box)."""
    area = (0, 0, ds.height, ds.width) if window is None else (
        int(window.row_off), int(window.col_off), int(window.height), int(window.width))
    f = max(1, math.ceil(max(area[2], area[3]) / DATA_MASK_SIDE))
    try:
        with _quiet_gdal():
            m = _any_reduced(ds, f, lambda w: ds.dataset_mask(window=w) > 0, area)
            if m.all() and ds.nodata is None and np.dtype(ds.dtypes[0]).kind != "c":
                # no declared nodata: the fills the engine takes as none (0 in every band, as Sentinel-2 and clips
                # write them, or NaN), judged on the first and last bands
                idx = sorted({1, ds.count})

                def filled(w) -> np.ndarray:
                    a = ds.read(idx, window=w, out_dtype=np.float32)
                    return ~((a == 0) | ~np.isfinite(a)).all(axis=0)

                m = _any_reduced(ds, f, filled, area)
    except Exception:  # noqa: BLE001 - unreadable here (a VRT's missing source): the run's own reads say why
        return None
    if not m.any():
        return None
    if m.all():  # data everywhere: no frame to leave out, or (a window) data over all of it
        return None if window is None else (area[0], area[1], area[0] + area[2], area[1] + area[3])
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]  # cells holding data: no margin needed
    top, left, height, width = area
    return (top + int(rows[0]) * f, left + int(cols[0]) * f, top + min(height, (int(rows[-1]) + 1) * f),
            left + min(width, (int(cols[-1]) + 1) * f))


def data_window(grid_ds, other_ds, region):
    """The part of `region` (a window of `grid_ds`) around the pixels where either raster has data, when that is
    smaller, else None: a nodata frame in both (a reprojection's, or a clip larger than the data) then stays out
    of the model's windows, which it otherwise read as a cloud over zero backscatter (a 20 px frame changed 13 %
    of a small scene's map). Scenes over DATA_WINDOW_MAX_PIXELS, or whose other raster holds more under them, are
    left as they are."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    if grid_ds.width * grid_ds.height > DATA_WINDOW_MAX_PIXELS:
        return None
    try:  # only the other raster's part over the grid is read (a whole SAR scene can be far larger)
        theirs_area = overlap_window(other_ds, grid_ds, "optical")
    except ClaireError:
        return None
    if theirs_area.width * theirs_area.height > DATA_WINDOW_MAX_PIXELS:  # a far finer SAR: as large a read
        return None
    mine, theirs = _valid_box(grid_ds), _valid_box(other_ds, theirs_area)
    if mine is None or theirs is None:
        return None
    t = other_ds.transform
    xs, ys = zip(*(t * (c, r) for c in (theirs[1], theirs[3]) for r in (theirs[0], theirs[2])))
    try:
        with _quiet_gdal():
            b = transform_bounds(other_ds.crs, grid_ds.crs, min(xs), min(ys), max(xs), max(ys), densify_pts=21)
    except Exception:  # noqa: BLE001 - left as it is: overlap_window has said what it could
        return None
    b = _unwrap_longitudes(b, envelope(grid_ds), grid_ds.crs)
    other = _pixels_meeting(grid_ds, *b) if all(math.isfinite(v) for v in b) else None
    if other is None:
        return None
    r0 = max(int(region.row_off), min(mine[0], int(other.row_off)))
    c0 = max(int(region.col_off), min(mine[1], int(other.col_off)))
    r1 = min(int(region.row_off + region.height), max(mine[2], int(other.row_off + other.height)))
    c1 = min(int(region.col_off + region.width), max(mine[3], int(other.col_off + other.width)))
    if r1 <= r0 or c1 <= c0:
        return None
    cut = Window(c0, r0, c1 - c0, r1 - r0)
    same = (r0, c0, r1 - r0, c1 - c0) == (int(region.row_off), int(region.col_off), int(region.height),
                                           int(region.width))
    return None if same else cut


def _pixels_meeting(grid_ds, left: float, bottom: float, right: float, top: float):
    """Window of the pixels of `grid_ds` whose footprint meets the rectangle (in its CRS), clipped to the
    raster; None when it holds no whole pixel."""
    from rasterio.windows import Window

    inv = ~grid_ds.transform
    cols, rows = zip(*(inv * (x, y) for x in (left, right) for y in (bottom, top)))
    r0 = max(0, int(math.floor(min(rows) + 1e-6)))
    c0 = max(0, int(math.floor(min(cols) + 1e-6)))
    r1 = min(grid_ds.height, int(math.ceil(max(rows) - 1e-6)))
    c1 = min(grid_ds.width, int(math.ceil(max(cols) - 1e-6)))
    if r1 <= r0 or c1 <= c0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def extent_window(grid_ds, extent: Sequence[float], role: str = "optical"):
    """Window of `grid_ds` (in its pixels) that the extent (xmin, ymin, xmax, ymax in its CRS) touches;
    ClaireError naming the raster's bounds when the extent is empty or lies outside it."""
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in extent)
    except (TypeError, ValueError):
        raise ClaireError(f"the extent (--extent) {quoted(extent)} is not four numbers; give xmin,ymin,xmax,ymax "
                          f"in the {role} raster's CRS ({grid_ds.crs})") from None
    if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)) or xmin >= xmax or ymin >= ymax:
        raise ClaireError(f"the extent (--extent) {xmin:g},{ymin:g},{xmax:g},{ymax:g} is empty; give xmin < xmax and "
                          f"ymin < ymax in the {role} raster's CRS ({grid_ds.crs})")
    g = envelope(grid_ds)
    win = None
    if max(xmin, g[0]) < min(xmax, g[2]) and max(ymin, g[1]) < min(ymax, g[3]):
        win = _pixels_meeting(grid_ds, xmin, ymin, xmax, ymax)
    if win is None:
        bounds = ", ".join(f"{v:g}" for v in g)
        raise ClaireError(f"the extent (--extent) {xmin:g},{ymin:g},{xmax:g},{ymax:g} lies outside the {role} "
                          f"raster (its bounds {bounds} in {grid_ds.crs}); give an extent inside it, in that CRS")
    return win


def envelope(ds) -> Tuple[float, float, float, float]:
    """(left, bottom, right, top) of the raster's four corners, with left < right and bottom < top whatever
    the transform (rasterio's `bounds` has bottom > top for a south-up raster and ignores rotation)."""
    t = ds.transform
    xs, ys = zip(*(t * (c, r) for c in (0, ds.width) for r in (0, ds.height)))
    return min(xs), min(ys), max(xs), max(ys)


def _unwrap_longitudes(b, g, crs) -> Tuple[float, float, float, float]:
    """In a geographic grid CRS, `b` shifted by 360 degrees when that makes it meet `g` (one raster written
    in 0..360 longitudes, the other in -180..180); across the antimeridian, transform_bounds returns
    left > right, which is unwrapped to right + 360 first."""
    if crs is None or not crs.is_geographic:
        return tuple(b)
    left, bottom, right, top = b
    if left > right:
        right += 360.0
    for shift in (0.0, 360.0, -360.0):
        if left + shift < g[2] and right + shift > g[0]:
            return left + shift, bottom, right + shift, top
    return left, bottom, right, top


def warp_to_grid(src, grid_ds, resampling: str = "bilinear", scaled: bool = False):
    """`src` resampled onto `grid_ds`'s CRS, transform and size, window by window (core.io.warp.GridWarp:
    float32, NaN where there is no data; with `scaled`, the file's declared scale and offset applied). Nothing is
    reprojected up front, so memory does not grow with the raster."""
    from .warp import GridWarp

    return GridWarp(src, grid_ds, resampling, scaled=scaled)


def check_complete(path: str, role: str) -> Tuple[int, int]:
    """(height, width) of a raster that opens and whose last block reads; ClaireError naming the file otherwise
    (a file that is no raster, or one cut off, e.g. by an interrupted copy)."""
    with open_raster(path, role) as ds:
        bh, bw = ds.block_shapes[0] if ds.block_shapes else (1, ds.width)
        row, col = (ds.height - 1) // bh * bh, (ds.width - 1) // bw * bw
        read_window(ds, list(range(1, ds.count + 1)), row, col, ds.height - row, ds.width - col, dtype=ds.dtypes[0])
        return ds.height, ds.width


def read_window(ds, indexes: Sequence[int], row0: int, col0: int, height: int, width: int,
                dtype: str = "float32") -> np.ndarray:
    """Read bands `indexes` of window (row0, col0, height, width) as `dtype`, clipped to the raster.

    Returns an array [C, h, w] covering only the part inside the raster.
    """
    from rasterio.windows import Window

    return read_pixels(ds, indexes, Window(col0, row0, width, height), dtype)


def read_pixels(ds, indexes: Sequence[int], window, dtype: str = "float32") -> np.ndarray:
    """Bands `indexes` of `window` as `dtype`; every read of input pixels goes through here. Signed bytes are
    read in their own type first (GDAL before 3.7 stores them as bytes flagged SIGNEDBYTE and gives 236 for
    -20 when asked for floats). A read GDAL cannot do (a truncated or damaged file, a VRT source gone
    missing) is a ClaireError naming the file."""
    from rasterio.errors import RasterioIOError

    dtypes = tuple(getattr(ds, "dtypes", None) or ())  # test doubles may have none
    signed_bytes = any(dtypes[i - 1] == "int8" for i in indexes if i <= len(dtypes))
    try:
        if signed_bytes:
            return ds.read(list(indexes), window=window).astype(dtype)
        return ds.read(list(indexes), window=window, out_dtype=dtype)
    except RasterioIOError as exc:
        cause = str(exc.__cause__ or exc).strip() or str(exc)
        raise ClaireError(f"reading the raster {quoted(getattr(ds, 'name', '?'))} failed ({cause}): the file is "
                          f"truncated or damaged, or a file it refers to is missing; copy or download it "
                          f"again (or rebuild the VRT)") from None


def sample(ds, indexes: Sequence[int], window, grid: int = 6, size: int = 48, cluster: int = 2) -> np.ndarray:
    """Values of up to grid x grid small windows (size x size) inside `window`, as float32 [C, N].

    The windows come in squares of cluster x cluster (read at once) spread over `window`, each square
    starting on a block boundary of `ds` where that keeps it inside: GDAL decodes whole blocks, so 36
    scattered windows of a COG with 1024 x 1024 tiles decoded 36 blocks (2.0 s at 4096²; docs/benchmark.md),
    nine squares at most nine. Bounded memory whatever the raster size (a decimated read of a WarpedVRT
    would warp the whole window at full resolution first).
    """
    from rasterio.windows import Window

    h, w = int(window.height), int(window.width)
    r0, c0 = int(window.row_off), int(window.col_off)
    n = max(1, grid // max(1, cluster))
    sh, sw = min(size * cluster, h), min(size * cluster, w)
    shapes = getattr(ds, "block_shapes", None)
    bh, bw = shapes[indexes[0] - 1] if shapes else (0, 0)
    rows = _square_starts(r0, h, sh, n, bh)
    cols = _square_starts(c0, w, sw, n, bw)
    parts = [read_pixels(ds, indexes, Window(c, r, sw, sh)).reshape(len(indexes), -1)
             for r in rows for c in cols]
    return np.concatenate(parts, axis=1)


def _square_starts(start: int, length: int, side: int, n: int, block: int) -> List[int]:
    """Up to `n` starts of squares of `side` spread over [start, start + length), each moved back to the
    first pixel of its block when the square then still fits in that block and in the range (and no other
    square starts there)."""
    spread = sorted({int(v) for v in np.linspace(start, start + length - side, min(n, max(1, length // side)))})
    if block < side:  # blocks smaller than a square (or unknown: 0)
        return spread
    out: List[int] = []
    for p in spread:
        first = max(p // block * block, start)
        ok = first + side <= (p // block + 1) * block and first + side <= start + length and first not in out
        out.append(first if ok else p)
    return out


def has_valid_data(ds, indexes: Sequence[int], window, nodata: Optional[float] = None, step: int = 512) -> bool:
    """Whether `ds` has a pixel in `window` with every band valid (finite and, with `nodata`, not every
    band equal to it). Scans step x step windows and stops at the first valid pixel: the bounded-memory
    fallback when the sparse `sample` found nothing."""
    from rasterio.windows import Window

    r0, c0 = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    for r in range(r0, r0 + h, step):
        for c in range(c0, c0 + w, step):
            a = read_pixels(ds, indexes, Window(c, r, min(step, c0 + w - c), min(step, r0 + h - r)))
            ok = np.isfinite(a).all(axis=0)
            if nodata is not None and np.isfinite(nodata):
                ok &= ~(a == np.float32(nodata)).all(axis=0)
            if ok.any():
                return True
    return False


#: WGS 84's semi-major axis (m) and squared eccentricity.
_WGS84_A, _WGS84_E2 = 6378137.0, 6.69437999014e-3
#: A projection's area scale at the scene's centre is applied from this far from 1 (Mercator, polar
#: stereographic, conic projections far from their standard parallels); UTM and its like (within 0.2 %) keep their
#: grid areas, as GIS users measure them.
AREA_SCALE_TOLERANCE = 0.01


def degree_lengths_m(lat_deg: float) -> Tuple[float, float]:
    """(metres per degree of longitude, per degree of latitude) on the WGS 84 ellipsoid at latitude `lat_deg`."""
    lat = math.radians(lat_deg)
    w = 1.0 - _WGS84_E2 * math.sin(lat) ** 2
    prime = _WGS84_A / math.sqrt(w)
    meridional = _WGS84_A * (1.0 - _WGS84_E2) / w ** 1.5
    return math.radians(1.0) * prime * math.cos(lat), math.radians(1.0) * meridional


def pixel_area_m2(ds) -> float:
    """Area of one pixel on the ground in square metres: geographic CRS, from the ellipsoid's degree lengths at the
    raster's centre latitude; projected, the grid's square metres times `area_scale` (Web Mercator at 50 degrees
    north would otherwise count 2.4 times its area, polar stereographic 6 % off at 62 degrees)."""
    t = ds.transform
    area = abs(t.a * t.e - t.b * t.d)
    crs = ds.crs
    if crs is not None and crs.is_geographic:
        lon_m, lat_m = degree_lengths_m((ds.bounds.top + ds.bounds.bottom) / 2.0)
        return area * lon_m * lat_m
    factor = 1.0
    try:
        if crs is not None:
            factor = float(crs.linear_units_factor[1])
    except Exception:  # noqa: BLE001 - CRS without linear units: assume metres
        factor = 1.0
    return area * factor * factor * area_scale(ds)


def area_scale(ds) -> float:
    """Ground area over grid area at the centre of a raster in a projected CRS (the Jacobian of the projection's
    inverse there, on the WGS 84 ellipsoid), when it is more than AREA_SCALE_TOLERANCE from 1; else 1.0 (and for
    geographic CRSs, or one PROJ cannot invert)."""
    crs = ds.crs
    if crs is None or crs.is_geographic:
        return 1.0
    try:
        from rasterio.warp import transform

        b = ds.bounds
        x, y = (b.left + b.right) / 2.0, (b.top + b.bottom) / 2.0
        d = max(abs(b.right - b.left), abs(b.top - b.bottom)) / 100.0 or 1.0
        lons, lats = transform(crs, "EPSG:4326", [x, x + d, x], [y, y, y + d])
        dlon = [((lo - lons[0] + 180.0) % 360.0) - 180.0 for lo in lons[1:]]  # across the antimeridian too
        dlat = [la - lats[0] for la in lats[1:]]
        lon_m, lat_m = degree_lengths_m(float(lats[0]))
        factor = float(crs.linear_units_factor[1]) if crs.linear_units_factor else 1.0
        ground = abs(dlon[0] * dlat[1] - dlon[1] * dlat[0]) * lon_m * lat_m
        scale = ground / (d * d * factor * factor)
    except Exception:  # noqa: BLE001 - a CRS PROJ cannot read: grid area, as before
        return 1.0
    if not math.isfinite(scale) or scale <= 0 or abs(scale - 1.0) <= AREA_SCALE_TOLERANCE:
        return 1.0
    return scale


def metadata_text(ds, indexes: Sequence[int]) -> str:
    """Band names (`band_labels`: descriptions, or a VRT's source file names, Sigma0_VV.img), units and tags of
    `ds` as one lowercase string (for unit detection)."""
    parts = band_metadata_texts(ds, indexes)
    parts.extend(f"{k}={v}" for k, v in ds.tags().items() if _UNIT_KEYS.search(k))
    return " ".join(parts).lower()


def sar_names(ds, indexes: Sequence[int], path: str) -> List[str]:
    """The names that may say what a SAR raster holds: the chosen bands' names (`band_labels`) and the file name."""
    names = band_labels(ds)[0]
    return [str(names[i - 1]) for i in indexes if names[i - 1]] + [os.path.basename(str(path))]


def band_metadata_texts(ds, indexes: Sequence[int]) -> List[str]:
    """Per band of `indexes`, its own name, unit and unit tags as one lowercase string (metadata_text without the
    dataset's tags): what each band says of its unit."""
    names = band_labels(ds)[0]
    out = []
    for i in indexes:
        parts = [str(names[i - 1] or "")]
        try:
            parts.append(str(ds.units[i - 1] or ""))
        except Exception:  # noqa: BLE001
            pass
        parts.extend(f"{k}={v}" for k, v in ds.tags(i).items() if _UNIT_KEYS.search(k))
        out.append(" ".join(parts).lower())
    return out


def band_labels(ds) -> Tuple[List[Optional[str]], str]:
    """(names of the bands, where they come from) for core.inputs.bands.choose_bands: the band descriptions,
    or, for a VRT whose bands each read one different file (gdalbuildvrt -separate), the file names, which
    say which band each is (…_B8A_20m.jp2) where descriptions are empty."""
    descriptions = list(ds.descriptions)
    if any(descriptions):
        return descriptions, "band descriptions"
    sources = vrt_band_sources(ds)
    if sources and len(set(sources)) == len(sources) == ds.count:
        return [os.path.splitext(s)[0] for s in sources], "the VRT's source file names"
    mosaic = vrt_source_descriptions(ds)
    if mosaic:
        return mosaic, "the band descriptions of the VRT's source files"
    return descriptions, "band descriptions"


def _vrt_root(ds):
    """The parsed XML of a VRT file dataset (None for another driver, a VRT in memory, or one over 8 MB)."""
    import xml.etree.ElementTree as ET

    path = getattr(ds, "name", "")
    if getattr(ds, "driver", "") != "VRT" or not os.path.isfile(path) or os.path.getsize(path) > 8 << 20:
        return None
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None


#: GDAL drivers whose blocks are slow to decode (a whole JPEG 2000 tile for a 48 px window).
SLOW_DRIVERS = ("JP2OpenJPEG", "JP2ECW", "JP2KAK", "JPEG2000", "JP2MrSID")


def slow_to_sample(ds) -> bool:
    """Whether sampling `ds` decodes slow blocks: JPEG 2000 (a Sentinel-2 SAFE's bands), directly or as the
    sources of a VRT. The dock's fit check leaves such a raster's sample to the run."""
    if getattr(ds, "driver", "") in SLOW_DRIVERS:
        return True
    root = _vrt_root(ds)
    if root is None:
        return False
    return any(str(e.text or "").strip().lower().endswith((".jp2", ".j2k")) for e in root.iter("SourceFilename"))


def vrt_source_descriptions(ds, most_files: int = 64) -> List[str]:
    """For a VRT mosaic of files that name their bands (gdalbuildvrt over an export cut in pieces drops the
    names), each band's description as all its sources give it ([] when it is no VRT file, a source names its
    band otherwise than another, or has no name, or there are more than `most_files` files)."""
    import rasterio

    root = _vrt_root(ds)
    if root is None:
        return []
    path = ds.name
    bands = []
    for band in root.findall("VRTRasterBand"):
        refs = []
        for source in band:
            name = source.find("SourceFilename")
            if name is None or not name.text:
                continue
            file = name.text
            if name.get("relativeToVRT") == "1":
                file = os.path.join(os.path.dirname(path), file)
            refs.append((file, int(source.findtext("SourceBand") or 1)))
        bands.append(refs)
    files = {f for refs in bands for f, _ in refs}
    if not files or len(files) > most_files or len(bands) != ds.count:
        return []
    named: Dict[str, Tuple[str, ...]] = {}
    try:
        for f in files:
            with rasterio.open(f) as src:
                named[f] = src.descriptions
    except (rasterio.errors.RasterioIOError, OSError):
        return []
    out = []
    for refs in bands:
        seen = {named[f][b - 1] if 0 < b <= len(named[f]) else None for f, b in refs}
        if len(seen) != 1 or not next(iter(seen)):
            return []
        out.append(next(iter(seen)))
    return out


def vrt_band_sources(ds) -> List[str]:
    """Base names of the one source file of each band of a VRT file ([] when it is no VRT file, or a band
    has not exactly one source)."""
    root = _vrt_root(ds)
    if root is None:
        return []
    names = []
    for band in root.findall("VRTRasterBand"):
        files = [e.text or "" for e in band.iter("SourceFilename")]
        if len(files) != 1:
            return []
        names.append(os.path.basename(files[0].replace("\\", "/")))
    return names


_UNIT_KEYS = re.compile(r"unit|scale|db|backscatter|calib|polari|measure|quantity", re.I)


def same_file(a: Optional[str], b: Optional[str]) -> bool:
    """True when two paths name the same file (existing or not); a GDAL dataset name (a page of a file,
    a member of an archive) counts as the file on disk that holds it."""
    from .gdal_names import local_files

    if not a or not b:
        return False
    return any(_same_path(fa, fb) for fa in local_files(a) for fb in local_files(b))


#: File systems that do not tell `Map.tif` from `map.tif` (Windows; macOS by default).
CASE_INSENSITIVE = sys.platform in ("win32", "darwin")


def _same_path(a: str, b: str) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    a, b = os.path.abspath(a), os.path.abspath(b)
    return a.casefold() == b.casefold() if CASE_INSENSITIVE else a == b


