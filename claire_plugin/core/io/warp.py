"""Resampling a raster onto another raster's grid, one window at a time.

`GridWarp(src, grid_ds)` answers `read(indexes, window=...)` with float32 values of `src` on the pixels of
`grid_ds` (CRS, transform, size), NaN where `src` has no data or does not reach. Nothing is reprojected up
front and nothing is kept between windows, so memory does not depend on the raster size.

Why not GDAL's WarpedVRT: on a two-core machine it cost 2-7 ms of CPU per 256 x 256 tile for two SAR
bands (docs/benchmark.md), about a third of the default model's forward. Here, per window:

1. target pixel centres on a coarse lattice (every `step` pixels, both edges included) are transformed
   into the source CRS with PROJ (one GDAL coordinate transformation per warper) and into source
   pixel coordinates; the lattice is bilinearly interpolated to every pixel. Like GDAL's approximate
   transformer, the lattice is refined until the interpolation error at the middle of every cell and
   cell edge is below `max_error` source pixels (an affine relation, e.g. the same CRS, is
   interpolated exactly);
2. only the source window those coordinates touch is read;
3. values are sampled with torch's `grid_sample`, bilinear (or nearest) with nodata-aware weights: no-data
   neighbours get no weight and the others are renormalised, as GDAL's warper does (a window without
   no-data is sampled directly, clamped at its edges: the same values); a target pixel whose centre
   falls outside the source raster is NaN.

A source already on the grid (same CRS and pixel size, whole-pixel offset) is read directly.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..inputs.units import NOISE_NEGATIVE_FLOOR
from .raster_io import envelope, read_pixels

#: Largest coordinate interpolation error accepted, in source pixels (GDAL's default is 0.125).
MAX_ERROR = 0.05
#: dB read where a band is -inf (linear 0) and another is not: below any card's clip (-40 dB), so read as its floor.
DB_FLOOR = -100.0
#: Most source pixels read at once when a window is downsampled (4 Mpx: 48 MB for two bands and the weight).
MAX_PIECE_PIXELS = 4 * 1024 * 1024


class GridWarp:
    """Window-by-window bilinear/nearest resampling of `src` onto `grid_ds`'s pixel grid."""

    def __init__(self, src, grid_ds, resampling: str = "bilinear", step: int = 32,
                 max_error: float = MAX_ERROR, scaled: bool = False) -> None:
        if resampling not in ("bilinear", "nearest"):
            raise ValueError(f"resampling must be 'bilinear' or 'nearest', not {quoted(resampling)}")
        self.src = src
        self.crs, self.transform = grid_ds.crs, grid_ds.transform
        self.width, self.height = grid_ds.width, grid_ds.height
        self.shape = (self.height, self.width)
        self.count = src.count
        self.nodata = float("nan")
        self.resampling = resampling
        self.step = max(1, int(step))
        self.max_error = float(max_error)
        self.same_crs = src.crs == grid_ds.crs
        self._inv = ~src.transform
        self._offset = self._whole_pixel_offset()
        self._mask_band = has_dataset_mask(src)
        #: bands GDAL calls alpha: read as data (a 2-band 16-bit SAR whose VH is flagged alpha), no mask for them
        self._alpha_bands = alpha_bands(src) if self._mask_band else set()
        #: the SAR's unit once known (set_sar_units): True linear, False dB, None not SAR or not yet; its fill values
        #: are no data (`sar_fill_to_nan`: 0 in every band is a border the file does not declare, in either unit)
        self.sar_linear: Optional[bool] = None
        #: band -> (scale, offset) declared by the file (GDAL's scale / offset: value = raw x scale + offset), applied
        #: to what is read when `scaled` (a SAR stored as int16 dB x 100 with scale 0.01); class codes are not scaled
        self._scaling = {i + 1: (float(sc), float(of)) for i, (sc, of) in enumerate(zip(src.scales, src.offsets))
                         if sc != 1.0 or of != 0.0} if scaled else {}
        self._ct = None  # GDAL coordinate transformation, made on first use (False: use rasterio's)
        # a geographic source across the antimeridian: PROJ answers -179.99 where the raster says 180.01
        self._lon_centre = None
        if src.crs is not None and src.crs.is_geographic:
            left, _, right, _ = envelope(src)
            self._lon_centre = (left + right) / 2.0
            if self.same_crs:  # the same CRS, but one raster in 0..360 or across +180, the other across -180
                g_left, _, g_right, _ = envelope(grid_ds)
                if abs((g_left + g_right) / 2.0 - self._lon_centre) > 180.0:
                    self._offset = None
                else:
                    self._lon_centre = None

    # -- the part of rasterio's dataset interface the engine uses ------------------------------------
    def read(self, indexes=None, window=None, out_dtype="float32") -> np.ndarray:
        """Values [C, h, w] (or [h, w] for a single int index) of `window` on the grid, NaN = no data."""
        single = isinstance(indexes, int)
        idx = [indexes] if single else list(indexes or range(1, self.count + 1))
        if window is None:
            r0, c0, h, w = 0, 0, self.height, self.width
        else:
            r0, c0 = int(window.row_off), int(window.col_off)
            h, w = int(window.height), int(window.width)
        out = self._read(idx, r0, c0, h, w).astype(out_dtype, copy=False)
        return out[0] if single else out

    def close(self) -> None:
        """Nothing to release (the source dataset belongs to the caller)."""

    # -- internals -----------------------------------------------------------------------------------
    def _whole_pixel_offset(self) -> Optional[Tuple[int, int]]:
        if not self.same_crs:
            return None
        a = self._inv * self.transform
        if not (math.isclose(a.a, 1.0, abs_tol=1e-9) and math.isclose(a.e, 1.0, abs_tol=1e-9)
                and abs(a.b) < 1e-9 and abs(a.d) < 1e-9):
            return None
        dx, dy = round(a.c), round(a.f)
        if abs(a.c - dx) > 1e-6 or abs(a.f - dy) > 1e-6:
            return None
        return int(dy), int(dx)

    def _read(self, idx: Sequence[int], r0: int, c0: int, h: int, w: int) -> np.ndarray:
        if h <= 0 or w <= 0:
            return np.zeros((len(idx), max(h, 0), max(w, 0)), np.float32)
        if self._offset is not None:
            return self._read_direct(idx, r0 + self._offset[0], c0 + self._offset[1], h, w)
        return self._sample(idx, r0, c0, h, w)

    def _read_source(self, idx: Sequence[int], r0: int, c0: int, h: int, w: int) -> np.ndarray:
        """Source pixels of the window, float32 with NaN for no data; the window must lie inside."""
        from rasterio.windows import Window

        win = Window(c0, r0, w, h)
        a = read_pixels(self.src, idx, win)
        nd = self.src.nodata
        if nd is not None and not math.isnan(nd):
            a[a == np.float32(nd)] = np.nan
        if self._mask_band and not self._alpha_bands & set(idx):
            a[:, masked_out(self.src, idx[0], win)] = np.nan
        for k, i in enumerate(idx):
            if i in self._scaling:
                scale, offset = self._scaling[i]
                a[k] = a[k] * np.float32(scale) + np.float32(offset)
        sar_fill_to_nan(a, self.sar_linear)
        return a

    def set_sar_units(self, linear: Optional[bool]) -> None:
        """What no data is once the SAR's unit is known: pixels 0 in every band (a fill), and in dB pixels -inf
        in every band. Negative linear values (thermal-noise subtraction leaves them where the signal is below the
        noise), a linear 0 beside a value, and a dB -inf beside a value are the lowest backscatter (the card's
        clip), not holes. None: a dataset's digital numbers, where 0 is a value (normalize.sar_fill_units)."""
        self.sar_linear = None if linear is None else bool(linear)

    def _read_direct(self, idx: Sequence[int], r0: int, c0: int, h: int, w: int) -> np.ndarray:
        out = np.full((len(idx), h, w), np.nan, np.float32)
        ra, rb = max(r0, 0), min(r0 + h, self.src.height)
        ca, cb = max(c0, 0), min(c0 + w, self.src.width)
        if ra < rb and ca < cb:
            out[:, ra - r0: rb - r0, ca - c0: cb - c0] = self._read_source(idx, ra, ca, rb - ra, cb - ca)
        return out

    def _exact(self, rows: np.ndarray, cols: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Source pixel coordinates (x, y; pixel centres at k + 0.5) of grid pixel centres (rows, cols)."""
        xs, ys = self.transform * (cols + 0.5, rows + 0.5)
        if not self.same_crs:
            xs, ys = self._project(np.ravel(xs), np.ravel(ys))
            xs, ys = xs.reshape(np.shape(rows)), ys.reshape(np.shape(rows))
        elif self._lon_centre is not None:  # the source's longitudes: a whole turn away from the grid's
            xs = (np.asarray(xs) - self._lon_centre + 180.0) % 360.0 - 180.0 + self._lon_centre
        sx, sy = self._inv * (xs, ys)
        return np.asarray(sx, np.float64), np.asarray(sy, np.float64)

    def _lattice(self, r0: int, c0: int, h: int, w: int):
        """(row positions [gh], col positions [gw], source x [gh, gw], source y [gh, gw]) of a lattice of
        the window's pixel centres whose bilinear interpolation is within `max_error` of PROJ everywhere."""
        step = self.step if not self.same_crs else max(h, w)  # affine: the corners are exact
        while True:
            if step <= 1:
                rr, cc = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
            else:
                rr = np.linspace(0, h - 1, max(2, -(-(h - 1) // step) + 1)) if h > 1 else np.zeros(1)
                cc = np.linspace(0, w - 1, max(2, -(-(w - 1) // step) + 1)) if w > 1 else np.zeros(1)
            R, C = np.meshgrid(rr + r0, cc + c0, indexing="ij")
            sx, sy = self._exact(R, C)
            if step <= 1:
                return rr, cc, sx, sy
            if not (np.isfinite(sx).all() and np.isfinite(sy).all()):
                step = 1  # PROJ failed somewhere: transform every pixel
                continue
            if self.same_crs:
                return rr, cc, sx, sy
            err = _midpoint_error(rr + r0, cc + c0, sx, sy, self._exact)
            if err <= self.max_error:
                return rr, cc, sx, sy
            step //= 2

    def _project(self, xs: np.ndarray, ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Grid CRS -> source CRS with PROJ; NaN where a point cannot be transformed. One GDAL
        transformer is kept per warper (rasterio.warp.transform sets up a new one on every call, 15x
        slower for the few points of a lattice)."""
        if self._ct is None:
            self._ct = _transformer(self.crs, self.src.crs)
        try:
            if self._ct is False:
                from rasterio.warp import transform as proj

                px, py = proj(self.crs, self.src.crs, xs, ys)
                px, py = np.asarray(px, np.float64), np.asarray(py, np.float64)
            else:
                pts = np.asarray(self._ct.TransformPoints(np.stack([xs, ys], axis=1)), np.float64)
                px, py = pts[:, 0], pts[:, 1]
        except Exception:  # noqa: BLE001 - points PROJ cannot transform have no source value
            px = py = np.full(np.size(xs), np.nan)
        bad = ~(np.isfinite(px) & np.isfinite(py))
        if bad.any():
            px, py = px.copy(), py.copy()
            px[bad] = py[bad] = np.nan
        if self._lon_centre is not None:  # the longitudes the source raster uses, e.g. 179.99..180.01
            px = (px - self._lon_centre + 180.0) % 360.0 - 180.0 + self._lon_centre
        return px, py

    def source_span(self, r0: int, c0: int, h: int, w: int) -> Tuple[float, float]:
        """(rows, columns) of the source that the window's pixels fall on (the bounding box, in source
        pixels: a window of a rotated grid spans more source rows than its height)."""
        if self._offset is not None:
            return float(h), float(w)
        _, _, sx, sy = self._lattice(r0, c0, h, w)
        ok = np.isfinite(sx) & np.isfinite(sy)
        if not ok.any():
            return float(h), float(w)
        return float(np.ptp(sy[ok])) + 2.0, float(np.ptp(sx[ok])) + 2.0

    def source_coords(self, r0: int, c0: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
        """Source pixel coordinates [h, w] (x, y; pixel centres at k + 0.5) of the window's pixel centres."""
        rr, cc, sx, sy = self._lattice(r0, c0, h, w)
        ar, ac = _interp_matrix(rr, h), _interp_matrix(cc, w)
        return ar @ sx @ ac.T, ar @ sy @ ac.T

    def _sample(self, idx: Sequence[int], r0: int, c0: int, h: int, w: int) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        C = len(idx)
        W, H = self.src.width, self.src.height
        rr, cc, sx, sy = self._lattice(r0, c0, h, w)
        kx, ky = self._pool_factors(rr, cc, sx, sy)
        # a bilinear patch lies within its corners' range: the lattice bounds every pixel's coordinates;
        # the source window starts on a multiple of the pooling factor so every window pools alike
        xa = max(0, int(math.floor(np.min(sx) - 0.5 * kx)) - kx) // kx * kx
        xb = min(W, int(math.floor(np.max(sx) + 0.5 * kx)) + kx)
        ya = max(0, int(math.floor(np.min(sy) - 0.5 * ky)) - ky) // ky * ky
        yb = min(H, int(math.floor(np.max(sy) + 0.5 * ky)) + ky)
        if xa >= xb or ya >= yb:
            return np.full((C, h, w), np.nan, np.float32)
        if kx > 1 or ky > 1:  # average kx x ky source pixels first (what GDAL's widened kernel does)
            plain, stack = False, self._pooled(idx, ya, xa, yb, xb, kx, ky)
        else:
            raw = self._read_source(idx, ya, xa, yb - ya, xb - xa)
            # every source pixel valid: clamping to the window's edge pixels ("border") gives the
            # renormalised weights, without a weight channel to sample and divide by
            plain = self.resampling == "nearest" or bool(np.isfinite(raw).all())
            stack = torch.from_numpy(raw if plain else _weighted(raw))
        hs, ws = stack.shape[1:]
        # grid_sample's align_corners=False coordinates: -1 and 1 are the outer edges of the window
        ax, bx = 2.0 / (kx * ws), -2.0 * xa / (kx * ws) - 1.0
        ay, by = 2.0 / (ky * hs), -2.0 * ya / (ky * hs) - 1.0
        ar = torch.from_numpy(_interp_matrix(rr, h).astype(np.float32))
        act = torch.from_numpy(_interp_matrix(cc, w).T.astype(np.float32))
        grid = torch.empty((1, h, w, 2), dtype=torch.float32)
        grid[0, ..., 0] = ar @ torch.from_numpy((sx * ax + bx).astype(np.float32)) @ act
        grid[0, ..., 1] = ar @ torch.from_numpy((sy * ay + by).astype(np.float32)) @ act
        mode = "nearest" if self.resampling == "nearest" else "bilinear"
        padding = "border" if plain and mode == "bilinear" else "zeros"
        res = F.grid_sample(stack[None], grid, mode=mode, padding_mode=padding, align_corners=False)[0]
        if plain:
            vals, bad = res, None
        else:
            weight = res[C]
            bad = weight <= 1e-6
            vals = res[:C].div_(weight.clamp_min_(1e-6))
        # pixel centres outside the source raster [0, W) x [0, H) have no value (as with GDAL, which also leaves a
        # centre exactly on the far edge out), even next to its edge; the lattice bounds every pixel's coordinates,
        # so most windows need no test
        if not (np.min(sx) >= 0 and np.max(sx) < W and np.min(sy) >= 0 and np.max(sy) < H):
            gxf, gyf = grid[0, ..., 0], grid[0, ..., 1]
            outside = (gxf < bx) | (gxf >= W * ax + bx) | (gyf < by) | (gyf >= H * ay + by)
            bad = outside if bad is None else bad | outside
        if bad is not None and bool(bad.any()):
            vals[:, bad] = float("nan")
        return vals.numpy()

    def _pooled(self, idx: Sequence[int], ya: int, xa: int, yb: int, xb: int, kx: int, ky: int):
        """Source rows ya..yb, columns xa..xb averaged over ky x kx pixels (premultiplied values and their
        weight, C + 1 channels), read in pieces of whole pooling cells of at most MAX_PIECE_PIXELS: a SAR
        100 times finer than the grid never holds a tile's full-resolution footprint in memory."""
        import torch
        import torch.nn.functional as F

        cells = max(1, MAX_PIECE_PIXELS // (kx * ky))
        across = max(1, min(-(-(xb - xa) // kx), int(math.sqrt(cells))))
        down = max(1, cells // across)
        rows = []
        for r in range(ya, yb, down * ky):
            parts = []
            for c in range(xa, xb, across * kx):
                raw = self._read_source(idx, r, c, min(down * ky, yb - r), min(across * kx, xb - c))
                parts.append(F.avg_pool2d(torch.from_numpy(_weighted(raw))[None], (ky, kx), ceil_mode=True)[0])
            rows.append(torch.cat(parts, dim=2))
        pooled = torch.cat(rows, dim=1)
        C = len(idx)
        weight = pooled[C:]
        stack = torch.cat([pooled[:C] / weight.clamp_min(1e-12), (weight > 0).to(pooled.dtype)])
        stack[:C] *= stack[C:]
        return stack

    def _pool_factors(self, rr, cc, sx, sy) -> Tuple[int, int]:
        """Source pixels per grid pixel along x and y, rounded down (1 when not downsampling or nearest)."""
        if self.resampling != "bilinear":
            return 1, 1
        fx = fy = 1.0
        if len(cc) > 1:
            dc = cc[-1] - cc[0]
            fx = max(fx, float(np.max(np.abs(sx[:, -1] - sx[:, 0]))) / dc)
            fy = max(fy, float(np.max(np.abs(sy[:, -1] - sy[:, 0]))) / dc)
        if len(rr) > 1:
            dr = rr[-1] - rr[0]
            fx = max(fx, float(np.max(np.abs(sx[-1] - sx[0]))) / dr)
            fy = max(fy, float(np.max(np.abs(sy[-1] - sy[0]))) / dr)
        # rotation spreads a pixel's footprint over both axes; the larger extent sets the factor
        return max(1, int(fx + 1e-6)), max(1, int(fy + 1e-6))


def _weighted(raw: np.ndarray) -> np.ndarray:
    """[C + 1, h, w]: the values with no-data pixels set to 0, and a last channel of weights (1 valid, 0 not),
    so that no-data neighbours get no weight in a resampling."""
    ok = np.isfinite(raw).all(axis=0)
    out = np.empty((raw.shape[0] + 1,) + raw.shape[1:], np.float32)
    out[:-1] = raw
    out[-1] = ok
    if not ok.all():
        out[:-1][:, ~ok] = 0.0
    return out


def _midpoint_error(rr, cc, sx, sy, exact) -> float:
    """Largest distance (source pixels) between the lattice's bilinear interpolation and the exact
    transform at the middle of every lattice cell and of its edges (NaN when PROJ fails there)."""
    mr, mc = (rr[:-1] + rr[1:]) / 2, (cc[:-1] + cc[1:]) / 2
    worst = 0.0
    for rows, cols, ix, iy in (
            (mr, mc, _mid(_mid(sx, 0), 1), _mid(_mid(sy, 0), 1)),  # cell centres
            (mr, cc, _mid(sx, 0), _mid(sy, 0)),  # middles of the vertical edges
            (rr, mc, _mid(sx, 1), _mid(sy, 1))):  # middles of the horizontal edges
        if not (len(rows) and len(cols)):
            continue
        R, C = np.meshgrid(rows, cols, indexing="ij")
        ex, ey = exact(R, C)
        worst = max(worst, float(np.max(np.hypot(ix - ex, iy - ey))))
    return worst


def _mid(a: np.ndarray, axis: int) -> np.ndarray:
    """Means of neighbouring values along `axis`."""
    return (a[1:] + a[:-1]) / 2 if axis == 0 else (a[:, 1:] + a[:, :-1]) / 2


def _interp_matrix(pos: np.ndarray, n: int) -> np.ndarray:
    """[n, len(pos)] weights that linearly interpolate values at sorted positions `pos` (first 0, last
    n - 1) to the positions 0..n-1; the identity when `pos` is every position."""
    g = len(pos)
    m = np.zeros((n, g), np.float64)
    if g == 1:
        m[:, 0] = 1.0
        return m
    x = np.arange(n, dtype=np.float64)
    k = np.clip(np.searchsorted(pos, x, side="right") - 1, 0, g - 2)
    f = (x - pos[k]) / (pos[k + 1] - pos[k])
    m[np.arange(n), k] = 1.0 - f
    m[np.arange(n), k + 1] += f
    return m


def _transformer(src_crs, dst_crs):
    """osr.CoordinateTransformation from `src_crs` to `dst_crs` (x/y = easting/northing or lon/lat
    order, as rasterio uses), or False when GDAL's Python bindings are missing."""
    try:
        from osgeo import osr
    except ImportError:
        return False
    refs = []
    for crs in (src_crs, dst_crs):
        ref = osr.SpatialReference()
        ref.ImportFromWkt(crs.to_wkt())
        ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        refs.append(ref)
    return osr.CoordinateTransformation(*refs)


def sar_fill_to_nan(a: np.ndarray, linear: Optional[bool]) -> None:
    """In place, SAR values [C, h, w] that are fills as NaN, once the unit is known (`linear`; None: not yet, nothing
    done): 0 in every band (a GRD's border); in linear units a value below any thermal noise (an undeclared fill);
    in dB -inf in every band, and -inf beside a value as the lowest backscatter (DB_FLOOR). A negative linear value
    above the noise floor, or a 0 beside a value, is backscatter below the noise, not a hole."""
    if linear is None:
        return
    a[:, (a == 0).all(axis=0)] = np.nan
    if linear:
        a[:, (a < NOISE_NEGATIVE_FLOOR).any(axis=0)] = np.nan
        return
    low = np.isneginf(a)  # 10 log10(0)
    if low.any():
        a[:, low.all(axis=0)] = np.nan
        a[np.isneginf(a)] = np.float32(DB_FLOOR)


def masked_out(src, band: int, window) -> np.ndarray:
    """Bool [h, w]: the pixels of `window` that `src`'s dataset mask (see has_dataset_mask) marks as no data."""
    return src.read_masks(band, window=window) == 0


def alpha_bands(src) -> set:
    """The 1-based bands GDAL calls alpha (empty where it cannot say: a damaged file's reads say why)."""
    try:
        return {i + 1 for i, c in enumerate(src.colorinterp) if c.name == "alpha"}
    except Exception:  # noqa: BLE001
        return set()


def has_dataset_mask(src, bands: Sequence[int] = ()) -> bool:
    """Whether GDAL has a per-dataset mask (or alpha band) for `src`: its masked pixels are no data (as QGIS and
    GDAL show them), read with `src.read_masks`. An alpha band among the `bands` read as data is no mask: GDAL
    flags the 4th band of a 4-band 8-bit GeoTIFF as alpha, which in WHU-OPT-SAR's red, green, blue, near-infrared
    images is the near-infrared (its 0 would be 'no data')."""
    try:
        from rasterio.enums import MaskFlags

        flags = src.mask_flag_enums[0]
        if MaskFlags.alpha in flags:
            return not alpha_bands(src) & set(bands)
        return MaskFlags.per_dataset in flags
    except Exception:  # noqa: BLE001
        return False
