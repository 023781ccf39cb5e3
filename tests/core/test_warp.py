"""core.warp.GridWarp against a slow, obvious oracle (PROJ on every pixel, 2 x 2 bilinear in numpy) and
against GDAL's WarpedVRT."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from claire.claire_plugin.core.io.warp import GridWarp
from claire.tests.fixtures.helpers import write_raster

UTM = "EPSG:32631"


def oracle(src, grid, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Bilinear value of every band at each grid pixel centre, NaN-aware weights, NaN outside."""
    from rasterio.warp import transform

    R, C = np.meshgrid(np.arange(h) + r0 + 0.5, np.arange(w) + c0 + 0.5, indexing="ij")
    xs, ys = grid.transform * (C.ravel(), R.ravel())
    if src.crs != grid.crs:
        xs, ys = transform(grid.crs, src.crs, xs, ys)
    sx, sy = ~src.transform * (np.asarray(xs), np.asarray(ys))
    data = src.read(out_dtype="float64")
    if src.nodata is not None:
        data[data == src.nodata] = np.nan
    ok = np.isfinite(data).all(axis=0)
    out = np.full((src.count, h * w), np.nan)
    for p, (x, y) in enumerate(zip(sx, sy)):
        if not (0 <= x < src.width and 0 <= y < src.height):  # GDAL's: a centre on the far edge is outside
            continue
        j, i = math.floor(x - 0.5), math.floor(y - 0.5)
        fx, fy = x - 0.5 - j, y - 0.5 - i
        acc, wsum = np.zeros(src.count), 0.0
        for di, dj, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            ii, jj = i + di, j + dj
            if 0 <= ii < src.height and 0 <= jj < src.width and ok[ii, jj] and wt > 0:
                acc += wt * data[:, ii, jj]
                wsum += wt
        if wsum > 1e-6:
            out[:, p] = acc / wsum
    return out.reshape(src.count, h, w)


def _sar(path, rows, cols, crs, origin, res, holes=0.0, seed=0, nodata=None):
    rng = np.random.default_rng(seed)
    a = (-12.0 + 3.0 * rng.normal(size=(2, rows, cols))).astype(np.float32)
    if holes:
        a[0, rng.random((rows, cols)) < holes] = np.nan if nodata is None else nodata
    return write_raster(path, a, crs=crs, origin=origin, res=res, nodata=nodata)


@pytest.mark.parametrize("holes", [0.15, 0.0])  # with no-data (weighted) and without (plain sampling)
@pytest.mark.parametrize("window", [(0, 0, 37, 41), (5, 9, 20, 33), (36, 40, 1, 1), (30, 30, 20, 20)])
def test_geographic_source_matches_the_oracle_with_holes_and_edges(tmp_path, window, holes):
    from rasterio.warp import transform_bounds

    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 40, 45), np.uint16))
    left, bottom, right, top = transform_bounds(UTM, "EPSG:4326", 500000.0, 4600000.0 - 400, 500000.0 + 450, 4600000.0)
    res = 1.6e-4  # about 13 x 18 m: coarser than the grid
    src = _sar(str(tmp_path / "s.tif"), int((top - bottom) / res) + 2, int((right - left) / res) + 1,
               "EPSG:4326", (left + 2 * res, top), res, holes=holes)  # starts inside the grid: NaN on the west
    with rasterio.open(grid) as g, rasterio.open(src) as s:
        r0, c0, h, w = window
        h, w = min(h, g.height - r0), min(w, g.width - c0)
        got = GridWarp(s, g).read([1, 2], window=Window(c0, r0, w, h))
        want = oracle(s, g, r0, c0, h, w)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], atol=5e-3)


def test_same_grid_is_read_as_is_and_shifted_grid_by_whole_pixels(tmp_path):
    data = np.arange(2 * 30 * 30, dtype=np.float32).reshape(2, 30, 30)
    data[1, 3, 4] = -9999
    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 30, 30), np.uint16))
    same = write_raster(str(tmp_path / "a.tif"), data, nodata=-9999)
    shifted = write_raster(str(tmp_path / "b.tif"), data, origin=(500000.0 + 50, 4600000.0 - 30), nodata=-9999)
    with rasterio.open(grid) as g, rasterio.open(same) as a, rasterio.open(shifted) as b:
        got = GridWarp(a, g).read([1, 2])
        want = data.copy()
        want[1, 3, 4] = np.nan
        np.testing.assert_array_equal(got, want)
        sh = GridWarp(b, g).read([1, 2], window=Window(2, 1, 20, 10))
    assert np.isnan(sh[:, :2]).all() and np.isnan(sh[:, :, :3]).all()  # grid rows < 3, cols < 5: no source
    np.testing.assert_array_equal(sh[:, 2:, 3:], want[:, :8, :17])


def test_upsampled_source_agrees_with_gdal_warpedvrt(tmp_path):
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 64, 64), np.uint16))
    src = _sar(str(tmp_path / "s.tif"), 40, 40, UTM, (499900.0, 4600100.0), 20.0)
    with rasterio.open(grid) as g, rasterio.open(src) as s:
        got = GridWarp(s, g).read([1, 2])
        with WarpedVRT(s, crs=g.crs, transform=g.transform, width=g.width, height=g.height,
                       resampling=Resampling.bilinear, nodata=float("nan"), dtype="float32") as v:
            gdal = v.read()
    np.testing.assert_allclose(got, gdal, atol=1e-4)


@pytest.mark.parametrize("dx,dy", [(5.0, 5.0), (5.0, 0.0), (0.0, 5.0)])
def test_a_centre_on_the_sources_far_edge_has_no_value_as_with_gdal(tmp_path, dx, dy):
    """QA round 22: a grid shifted half a pixel has its last column's and row's centres exactly on the source's
    right and bottom edges: GDAL leaves them out, the engine gave them the edge values (319 pixels)."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    src = _sar(str(tmp_path / "s.tif"), 17, 15, UTM, (500000.0, 4600000.0), 10.0)
    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 17, 15), np.uint16),
                        origin=(500000.0 + dx, 4600000.0 - dy))
    with rasterio.open(grid) as g, rasterio.open(src) as s:
        got = GridWarp(s, g).read([1, 2])
        with WarpedVRT(s, crs=g.crs, transform=g.transform, width=g.width, height=g.height,
                       resampling=Resampling.bilinear, nodata=float("nan"), dtype="float32") as v:
            gdal = v.read()
    rows, cols = (slice(None, -1) if dy else slice(None)), (slice(None, -1) if dx else slice(None))
    assert np.isnan(got[:, -1, :]).all() == bool(dy) and np.isnan(got[:, :, -1]).all() == bool(dx)
    assert np.isfinite(got[:, rows, cols]).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(gdal))
    np.testing.assert_allclose(got[np.isfinite(got)], gdal[np.isfinite(gdal)], atol=1e-4)


def test_downsampling_averages_the_source_pixels_first(tmp_path):
    speckle = np.array([[1, -1, 2], [-2, 4, -1], [0, -2, -1]], np.float32)  # zero mean, centre 4
    fine = np.kron(np.arange(100, dtype=np.float32).reshape(10, 10), np.ones((3, 3), np.float32))
    fine += np.tile(speckle, (10, 10))
    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 10, 10), np.uint16))
    src = write_raster(str(tmp_path / "s.tif"), np.stack([fine, fine]), res=10.0 / 3)
    with rasterio.open(grid) as g, rasterio.open(src) as s:
        got = GridWarp(s, g).read([1, 2])
    # plain bilinear would return each block's centre pixel (value + 4)
    np.testing.assert_allclose(got[0], np.arange(100, dtype=np.float32).reshape(10, 10), atol=1e-3)


def test_nearest_keeps_class_values_and_nan_outside(tmp_path):
    labels = np.random.default_rng(1).integers(1, 6, (25, 25)).astype(np.uint16)
    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 60, 60), np.uint16))
    src = write_raster(str(tmp_path / "s.tif"), labels, res=20.0, nodata=0)
    with rasterio.open(grid) as g, rasterio.open(src) as s:
        got = GridWarp(s, g, "nearest").read(1)
    np.testing.assert_array_equal(got[:50, :50], np.kron(labels, np.ones((2, 2))))
    assert np.isnan(got[50:]).all() and np.isnan(got[:, 50:]).all()


@pytest.mark.parametrize("window", [(0, 0, 200, 200), (7, 3, 1, 150), (5, 9, 120, 1)])
def test_lattice_is_refined_where_the_transform_bends(tmp_path, window):
    """A polar stereographic grid (10 km pixels) over a geographic source bends strongly: a lattice
    every 64 px is 20 source pixels off, the refined one within the 0.05 px tolerance."""
    from rasterio.transform import from_origin

    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 200, 200), np.uint16), crs="EPSG:3413",
                   transform=from_origin(500000.0, -500000.0, 10000.0, 10000.0))
    src = write_raster(str(tmp_path / "s.tif"), np.zeros((1, 900, 3600), np.float32), crs="EPSG:4326",
                  transform=from_origin(-180.0, 90.0, 0.1, 0.1))
    r0, c0, h, w = window
    with rasterio.open(grid) as g, rasterio.open(src) as s:
        warp = GridWarp(s, g, step=64)
        sx, sy = warp.source_coords(r0, c0, h, w)
        R, C = np.meshgrid(np.arange(h) + r0, np.arange(w) + c0, indexing="ij")
        ex, ey = warp._exact(R, C)
        coarse = GridWarp(s, g, step=64, max_error=1e9).source_coords(r0, c0, h, w)
    assert np.hypot(sx - ex, sy - ey).max() < 0.05
    if h > 100 and w > 100:
        assert np.hypot(coarse[0] - ex, coarse[1] - ey).max() > 1.0  # the case does need refining


def test_dataset_mask_marks_no_data_without_a_nodata_value(tmp_path):
    from rasterio.transform import from_origin

    path = str(tmp_path / "masked.tif")
    data = np.full((2, 20, 20), -10.0, np.float32)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=2, dtype="float32", crs=UTM,
                           transform=from_origin(500000.0, 4600000.0, 10.0, 10.0)) as dst:
            dst.write(data)
            mask = np.full((20, 20), 255, np.uint8)
            mask[5:8, 2:6] = 0
            dst.write_mask(mask)
    # the grid starts one pixel east of the source: read directly, shifted by one column
    write_grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 20, 20), np.uint16), crs=UTM,
                              origin=(500010.0, 4600000.0))
    with rasterio.open(write_grid) as g, rasterio.open(path) as s:
        assert s.nodata is None
        got = GridWarp(s, g).read([1, 2])
    want_nan = np.zeros((20, 20), bool)
    want_nan[5:8, 1:5] = True
    want_nan[:, 19] = True  # beyond the source's east edge
    np.testing.assert_array_equal(np.isnan(got[0]), want_nan)
    np.testing.assert_array_equal(got[:, ~want_nan], -10.0)


def test_scaled_reads_apply_the_files_scale_offset_and_linear_zeros_are_no_data(tmp_path):
    """`scaled`: GDAL's scale and offset applied after nodata (int16 dB x 100, scale 0.01); not for other rasters
    (class codes). Linear SAR (`set_sar_units(True)`): 0 and below are no data, also at the edge of a bilinear warp."""
    from osgeo import gdal

    raw = np.full((1, 20, 20), -1500, np.int16)
    raw[0, 5, 5] = -32768
    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 20, 20), np.uint16))
    path = write_raster(str(tmp_path / "s.tif"), raw, nodata=-32768)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(1).SetScale(0.01)
    ds.GetRasterBand(1).SetOffset(-0.5)
    ds = None
    with rasterio.open(grid) as g, rasterio.open(path) as s:
        got = GridWarp(s, g, scaled=True).read([1])
        plain = GridWarp(s, g).read([1])
    assert np.isnan(got[0, 5, 5]) and np.isnan(plain[0, 5, 5])
    np.testing.assert_allclose(got[0, 0], -15.5, rtol=1e-6)
    assert plain[0, 0, 0] == -1500.0
    lin = np.full((1, 20, 20), 0.05, np.float32)
    lin[0, :, :4] = 0.0
    lpath = write_raster(str(tmp_path / "l.tif"), lin, origin=(500000.0 + 3, 4600000.0 - 2))  # off the grid
    with rasterio.open(grid) as g, rasterio.open(lpath) as s:
        w = GridWarp(s, g)
        w.set_sar_units(linear=True)
        vals = w.read([1])
    assert np.isnan(vals[0, :, :4]).all() and np.allclose(vals[0, 1:, 5:19], 0.05)


def test_db_pixels_zero_in_every_band_are_no_data(tmp_path):
    """An export without a no-data value writes its fill as 0 in every band: in dB that is no backscatter (0 dB in
    both polarisations), so it is no data, not a bright target; a 0 in one band only is a value."""
    db = np.stack([np.full((20, 20), -12.0, np.float32), np.full((20, 20), -19.0, np.float32)])
    db[:, :, :4] = 0.0
    db[1, 10, 10] = 0.0
    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 20, 20), np.uint16))
    path = write_raster(str(tmp_path / "d.tif"), db)
    with rasterio.open(grid) as g, rasterio.open(path) as s:
        w = GridWarp(s, g)
        before = w.read([1, 2])
        w.set_sar_units(linear=False)
        vals = w.read([1, 2])
    assert not np.isnan(before).any()
    assert np.isnan(vals[:, :, :4]).all() and not np.isnan(vals[:, :, 4:]).any()
    assert vals[1, 10, 10] == 0.0 and vals[0, 10, 10] == -12.0


def test_dataset_mask_marks_no_data_beside_a_nodata_value(tmp_path):
    """QA round 16: with a nodata value declared the SAR's internal mask was not read (its pixels came through)."""
    from rasterio.transform import from_origin

    path = str(tmp_path / "masked_nd.tif")
    data = np.full((2, 20, 20), -10.0, np.float32)
    data[:, 0, 0] = -9999.0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=2, dtype="float32", crs=UTM,
                           transform=from_origin(500000.0, 4600000.0, 10.0, 10.0), nodata=-9999.0) as dst:
            dst.write(data)
            mask = np.full((20, 20), 255, np.uint8)
            mask[5:8, 2:6] = 0
            dst.write_mask(mask)
    with rasterio.open(path) as s:
        got = GridWarp(s, s).read([1, 2])
    want_nan = np.zeros((20, 20), bool)
    want_nan[5:8, 2:6] = True
    want_nan[0, 0] = True
    np.testing.assert_array_equal(np.isnan(got[0]), want_nan)


def test_a_sar_band_gdal_calls_alpha_is_read_as_data_not_as_a_mask(tmp_path):
    """QA round 16 (second review): a 2-band 16-bit SAR whose 2nd band GDAL flags alpha masked VV wherever VH is 0."""
    from rasterio.transform import from_origin

    path = str(tmp_path / "sar_alpha.tif")
    data = np.full((2, 20, 20), 1200, np.uint16)
    data[1, :, :8] = 0
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=2, dtype="uint16", crs=UTM,
                       transform=from_origin(500000.0, 4600000.0, 10.0, 10.0), alpha="YES") as dst:
        dst.write(data)
    with rasterio.open(path) as s:
        assert s.colorinterp[1].name == "alpha"
        got = GridWarp(s, s).read([1, 2])
    assert not np.isnan(got).any()
