"""Geometry the engine handles (issue 19 C): south-up, rotated grids, the antimeridian, and bounded memory
whatever the ratio of pixel sizes."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from claire.claire_plugin.core.io import raster_io as rio
from claire.claire_plugin.core.io import warp
from claire.tests.fixtures.helpers import write_raster

ORIGIN = (500000.0, 4600000.0)


def test_overlap_window_of_south_up_and_rotated_grids(tmp_path):
    north = write_raster(tmp_path / "n.tif", np.ones((1, 40, 50), np.float32))
    south = write_raster(tmp_path / "s.tif", np.ones((1, 40, 50), np.float32),
                         transform=Affine(10, 0, ORIGIN[0], 0, 10, ORIGIN[1] - 400))
    half = write_raster(tmp_path / "h.tif", np.ones((1, 20, 50), np.float32))  # the northern half
    rotated = write_raster(tmp_path / "r.tif", np.ones((1, 40, 50), np.float32),
                           transform=Affine.translation(*ORIGIN) * Affine.rotation(90) * Affine.scale(10, -10))
    with rasterio.open(north) as n, rasterio.open(south) as s, rasterio.open(half) as h, rasterio.open(rotated) as r:
        assert rio.envelope(s) == rio.envelope(n) == (ORIGIN[0], ORIGIN[1] - 400, ORIGIN[0] + 500, ORIGIN[1])
        w = rio.overlap_window(s, h)
        assert (w.row_off, w.height, w.col_off, w.width) == (20, 20, 0, 50)  # the north is at the bottom
        with pytest.raises(Exception, match="do not overlap"):
            rio.overlap_window(r, n)  # rotated by 90 degrees around the origin: entirely to the west


def _fiji_pair(tmp_path, lon0: float):
    from rasterio.warp import transform

    xs, ys = transform("EPSG:4326", "EPSG:32760", [180.0], [-16.8])
    grid = write_raster(tmp_path / "grid.tif", np.zeros((1, 40, 50), np.uint16), crs="EPSG:32760",
                        origin=(round(xs[0]) - 250, round(ys[0]) + 200))
    cols = np.tile(np.arange(200, dtype=np.float32), (200, 1))[None]
    sar = write_raster(tmp_path / f"sar{lon0}.tif", cols, crs="EPSG:4326", origin=(lon0, -16.795), res=5e-5)
    return grid, sar


def test_antimeridian_sar_in_either_longitude_convention(tmp_path):
    out = []
    for lon0 in (179.995, -180.005):  # the same raster written as 179.995..180.005 and as -180.005..-179.995
        grid, sar = _fiji_pair(tmp_path, lon0)
        with rasterio.open(grid) as g, rasterio.open(sar) as s:
            rio.overlap_window(g, s)
            out.append(warp.GridWarp(s, g).read([1]))
    assert np.isfinite(out[0]).all() and out[0].min() < 95 and out[0].max() > 105  # both sides of 180
    np.testing.assert_allclose(out[0], out[1], atol=1e-3)


def test_fine_sar_is_read_in_bounded_pieces_with_the_same_values(tmp_path, monkeypatch):
    """SAR 100 x finer than the grid: no read is larger than MAX_PIECE_PIXELS, values as from one read."""
    grid = write_raster(tmp_path / "g.tif", np.zeros((1, 6, 7), np.uint16))
    rng = np.random.default_rng(0)
    fine = rng.normal(-12, 3, (2, 600, 700)).astype(np.float32)
    fine[:, 100:180, 300:420] = np.nan  # a hole: no-data pixels get no weight
    sar = write_raster(tmp_path / "s.tif", fine, res=0.1)
    with rasterio.open(grid) as g, rasterio.open(sar) as s:
        whole = warp.GridWarp(s, g).read([1, 2])
        sizes, read = [], warp.GridWarp._read_source

        def spy(self, idx, r0, c0, h, w):
            sizes.append(h * w)
            return read(self, idx, r0, c0, h, w)

        monkeypatch.setattr(warp, "MAX_PIECE_PIXELS", 30000)
        monkeypatch.setattr(warp.GridWarp, "_read_source", spy)
        pieces = warp.GridWarp(s, g).read([1, 2])
    assert len(sizes) > 10 and max(sizes) <= 30000
    np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-5)
    expected = np.nanmean(fine[0].reshape(6, 100, 7, 100), axis=(1, 3))
    np.testing.assert_allclose(whole[0], expected, atol=0.05)  # each grid pixel: the mean of its 100 x 100


def test_rotated_optical_grid_gets_sar_values_exactly_where_its_pixels_lie_on_the_sar(tmp_path):
    """An optical on a grid rotated by 20 degrees: the SAR resampled onto it is valid exactly at the pixel
    centres inside the SAR raster, and the overlap window holds all of them."""
    opt = write_raster(tmp_path / "o.tif", np.ones((1, 40, 50), np.uint16),
                       transform=Affine.translation(*ORIGIN) * Affine.rotation(20) * Affine.scale(10, -10))
    sar = write_raster(tmp_path / "s.tif", np.full((2, 40, 50), -12.0, np.float32))
    with rasterio.open(opt) as o, rasterio.open(sar) as s:
        values = warp.GridWarp(s, o).read([1, 2])
        rows, cols = np.mgrid[0:40, 0:50]
        xs, ys = o.transform * (cols + 0.5, rows + 0.5)
        left, bottom, right, top = s.bounds
        inside = (xs > left) & (xs < right) & (ys > bottom) & (ys < top)
        win = rio.overlap_window(o, s)
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(np.isfinite(values).all(axis=0), inside)
    r, c = np.nonzero(inside)
    assert win.row_off <= r.min() and r.max() < win.row_off + win.height
    assert win.col_off <= c.min() and c.max() < win.col_off + win.width
