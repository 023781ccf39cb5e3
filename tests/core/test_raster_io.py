"""Overlap windows, warping onto the grid, pixel area, SAR unit and optical scale detection."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.inputs.normalize import InputSpec, detect_sar_scale, optical_preparer, sar_preparer
from claire.claire_plugin.core.io import raster_io as rio
from claire.tests.fixtures.helpers import write_raster


def test_overlap_window_in_grid_pixels(tmp_path):
    a = write_raster(str(tmp_path / "a.tif"), np.zeros((1, 100, 120), np.float32))
    b = write_raster(str(tmp_path / "b.tif"), np.zeros((1, 50, 50), np.float32), origin=(500300.0, 4599500.0), res=20.0)
    with rasterio.open(a) as da, rasterio.open(b) as db:
        w = rio.overlap_window(da, db)
    assert (w.row_off, w.col_off, w.height, w.width) == (50, 30, 50, 90)


def test_no_overlap_and_missing_or_bad_files(tmp_path):
    a = write_raster(str(tmp_path / "a.tif"), np.zeros((1, 10, 10), np.float32))
    b = write_raster(str(tmp_path / "b.tif"), np.zeros((1, 10, 10), np.float32), origin=(510000.0, 4600000.0))
    with rasterio.open(a) as da, rasterio.open(b) as db:
        with pytest.raises(ClaireError, match="do not overlap"):
            rio.overlap_window(da, db)
    with pytest.raises(ClaireError, match="does not exist"):
        rio.open_raster(str(tmp_path / "none.tif"), "SAR")
    (tmp_path / "x.tif").write_text("not a raster")
    with pytest.raises(ClaireError, match="not a raster"):
        rio.open_raster(str(tmp_path / "x.tif"), "SAR")
    with pytest.raises(ClaireError, match="folder"):
        rio.open_raster(str(tmp_path), "SAR")


def test_warp_to_grid_is_lazy_float_with_nan_outside(tmp_path):
    grid = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 40, 40), np.uint16))
    src = write_raster(str(tmp_path / "s.tif"), np.full((1, 10, 10), 7, np.int16), origin=(500000.0, 4600000.0),
                  res=20.0, nodata=-1)
    with rasterio.open(grid) as g, rasterio.open(src) as s:
        vrt = rio.warp_to_grid(s, g, "nearest")
        assert (vrt.crs, vrt.transform, vrt.shape) == (g.crs, g.transform, g.shape)
        a = vrt.read(1)
        vrt.close()
    assert a.dtype == np.float32
    assert (a[:20, :20] == 7).all() and np.isnan(a[20:, :]).all() and np.isnan(a[:, 20:]).all()


def test_pixel_area_projected_and_geographic(tmp_path):
    p = write_raster(str(tmp_path / "p.tif"), np.zeros((1, 4, 4), np.uint8), res=20.0)
    from rasterio.transform import from_origin

    g = write_raster(str(tmp_path / "g.tif"), np.zeros((1, 4, 4), np.uint8), crs="EPSG:4326",
                transform=from_origin(10.0, 0.0002, 0.0001, 0.0001))
    with rasterio.open(p) as dp, rasterio.open(g) as dg:
        assert rio.pixel_area_m2(dp) == pytest.approx(400.0)
        assert rio.pixel_area_m2(dg) == pytest.approx(11.132 * 11.057, rel=0.01)


def test_sar_scale_detection():
    rng = np.random.default_rng(0)
    db = rng.normal(-14, 4, 1000).astype(np.float32)
    assert detect_sar_scale(db)[0] == "db"
    assert detect_sar_scale(10 ** (db / 10))[0] == "linear"  # power or amplitude: the values cannot tell
    assert detect_sar_scale(10 ** (db / 10), "sigma0_vv")[0] == "power"
    assert detect_sar_scale(10 ** (db / 10), "units=amplitude")[0] == "amplitude"
    assert detect_sar_scale(10 ** (db / 10), "vv backscatter in db")[0] == "db"


def test_preparers_follow_the_card():
    spec = InputSpec(bands=["VV"], units="dB", clip=(-40.0, 5.0), mean=[-10.0], std=[5.0])
    lin = np.array([[[0.1, 1.0]]], np.float32)  # -10 dB and 0 dB
    prep = sar_preparer(spec, 1, lin.ravel(), units="linear-power")
    assert prep.to_db == "power"
    np.testing.assert_allclose(prep(lin.copy()), [[[0.0, 2.0]]], atol=1e-5)
    ospec = InputSpec(bands=["B02"], units="reflectance", scale=1e-4, clip=(0.0, 1.0), mean=[0.1], std=[0.1])
    ints = optical_preparer(ospec, 1, "uint16", np.array([1000.0, 3000.0], np.float32))
    np.testing.assert_allclose(ints(np.array([[[3000.0]]], np.float32)), [[[2.0]]], atol=1e-5)
    floats = optical_preparer(ospec, 1, "float32", np.array([0.1, 0.3], np.float32))
    assert floats.scale == 1.0 and "already in reflectance" in floats.notes[0]
    np.testing.assert_allclose(floats(np.array([[[0.3]]], np.float32)), [[[2.0]]], atol=1e-5)


def test_same_file(tmp_path):
    p = tmp_path / "a.tif"
    p.write_bytes(b"x")
    assert rio.same_file(str(p), os.path.join(str(tmp_path), ".", "a.tif"))
    assert not rio.same_file(str(p), str(tmp_path / "b.tif"))


def test_fused_normalisation_equals_physical_then_standardise():
    from claire.claire_plugin.core.inputs.normalize import Preparer

    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 12000, (10, 20, 30)).astype(np.float32)
    p = Preparer(1e-4, 0.01, (0.0, 1.0), rng.random(10).astype(np.float32),
                 rng.random(10).astype(np.float32) + 0.1)
    np.testing.assert_allclose(p(x.copy()), p.standardise(p.physical(x.copy())), atol=1e-5)


class _Recorder:
    """A dataset that records the windows read from it."""

    def __init__(self, ds):
        self.ds, self.windows = ds, []
        self.block_shapes = ds.block_shapes

    def read(self, indexes, window=None, out_dtype="float32"):
        self.windows.append(window)
        return self.ds.read(indexes, window=window, out_dtype=out_dtype)


@pytest.mark.parametrize("block,most_blocks", [(128, 9), (512, 4), (96, 16), (None, None)])
def test_sample_reads_squares_that_each_lie_in_one_block(tmp_path, block, most_blocks):
    from rasterio.windows import Window

    data = np.arange(3 * 700 * 900, dtype=np.float32).reshape(3, 700, 900)
    prof = dict(driver="GTiff", width=900, height=700, count=3, dtype="float32", crs="EPSG:32631",
                transform=rasterio.transform.from_origin(500000, 4600000, 10, 10))
    if block:
        prof.update(tiled=True, blockxsize=block, blockysize=block, compress="deflate")
    path = str(tmp_path / "s.tif")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    region = Window(20, 30, 850, 640)
    with rasterio.open(path) as ds:
        rec = _Recorder(ds)
        values = rio.sample(rec, [1, 3], region)
        bh, bw = ds.block_shapes[0]
    assert values.shape == (2, 36 * 48 * 48)  # as many pixels as 6 x 6 windows of 48 px
    first = rec.windows[0]
    assert values[1, 0] == data[2, first.row_off, first.col_off]
    touched = set()
    for win in rec.windows:
        assert (win.width, win.height) == (96, 96)
        assert win.col_off >= 20 and win.row_off >= 30 and win.col_off + 96 <= 870 and win.row_off + 96 <= 670
        rows = range(win.row_off // bh, (win.row_off + 95) // bh + 1)
        cols = range(win.col_off // bw, (win.col_off + 95) // bw + 1)
        touched |= {(r, c) for r in rows for c in cols}
    if most_blocks:
        assert len(touched) <= most_blocks
    starts = sorted({w.row_off for w in rec.windows}), sorted({w.col_off for w in rec.windows})
    assert all(len(s) == 3 and s[-1] - s[0] > 400 for s in starts)  # spread over the region


def test_a_role_ending_in_raster_is_not_said_twice(tmp_path):
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.io.raster_io import open_raster

    with pytest.raises(ClaireError) as info:
        open_raster(str(tmp_path / "nope.tif"), "confidence raster")
    assert "the confidence raster '" in str(info.value) and "raster raster" not in str(info.value)


def test_a_file_named_truncated_is_not_called_damaged(tmp_path):
    """The damaged-file message follows what GDAL says, not words in the path."""
    from claire.claire_plugin.core.io.raster_io import open_raster

    folder = tmp_path / "truncated_corrupt"
    folder.mkdir()
    text = folder / "truncated.tif"
    text.write_text("not a raster\n")
    with pytest.raises(ClaireError) as info:
        open_raster(str(text), "optical")
    assert "is not a raster GDAL can read" in str(info.value) and "damaged" not in str(info.value)


def test_rasters_far_apart_in_two_crs_are_told_without_gdal_noise(tmp_path, capfd):
    """The reference's envelope reaches outside the optical projection's domain: one clear message, no
    'ERROR 1: Point outside of projection domain' printed by GDAL before it."""
    from claire.claire_plugin.core.io.raster_io import open_raster, overlap_window

    here = write_raster(tmp_path / "here.tif", np.ones((1, 20, 20), np.uint8), crs="EPSG:32736",
                        origin=(617300.0, 9625100.0))
    there = write_raster(tmp_path / "there.tif", np.ones((1, 20, 20), np.uint8), crs="EPSG:32722",
                         origin=(500000.0, 9000000.0))
    a, b = open_raster(str(here), "optical"), open_raster(str(there), "reference")
    try:
        with pytest.raises(ClaireError, match=r"do not overlap .*from EPSG:32722, in the optical's CRS"):
            overlap_window(a, b, "reference")
    finally:
        a.close()
        b.close()
    assert "ERROR 1" not in capfd.readouterr().err


def test_pixel_areas_are_ground_areas_in_polar_stereographic_and_on_the_ellipsoid_in_degrees(tmp_path):
    """QA (geography): polar stereographic areas were grid areas (6 % off at 62 degrees north), and degree pixels
    used the equator's degree lengths (1.3 % low at 78 degrees)."""
    import rasterio
    from pyproj import Geod, Transformer

    from claire.claire_plugin.core.io.raster_io import pixel_area_m2

    geod = Geod(ellps="WGS84")
    for epsg, lat in ((3413, 62.0), (3413, 85.0), (3031, -89.0), (4326, 45.0), (4326, 78.0), (32633, 50.0)):
        if epsg == 4326:
            x, y, res = 15.0, lat, 0.001
        else:
            x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(-45.0 if epsg == 3413 else 0.0, lat)
            res = 10.0
        path = write_raster(str(tmp_path / f"p{epsg}_{lat:g}.tif"), np.zeros((1, 20, 20), np.uint8),
                            crs=f"EPSG:{epsg}", origin=(x - 10 * res, y + 10 * res), res=res)
        with rasterio.open(path) as ds:
            to_geo = Transformer.from_crs(ds.crs, 4326, always_xy=True)
            b = ds.bounds
            lons, lats = to_geo.transform([b.left, b.right, b.right, b.left], [b.top, b.top, b.bottom, b.bottom])
            ground = abs(geod.polygon_area_perimeter(lons, lats)[0]) / 400.0
            assert pixel_area_m2(ds) == pytest.approx(ground, rel=2e-3), (epsg, lat, pixel_area_m2(ds), ground)


def test_pixel_areas_are_ground_areas_in_web_mercator_and_grid_areas_in_utm(tmp_path):
    """Copernicus Browser and web maps export in Web Mercator, whose 10 m grid pixels cover 41 m² of ground at 50°N:
    every area (the dock's hectares, the Olofsson estimates) came out 2.4 times too large."""
    import math

    import rasterio

    from claire.claire_plugin.core.io.raster_io import area_scale, pixel_area_m2

    at_50n = {3857: (1113194.9, 6446275.8), 3395: (1113194.9, 6413524.6), 32631: (500000.0, 5540000.0)}
    for epsg, origin in at_50n.items():
        path = write_raster(str(tmp_path / f"m{epsg}.tif"), np.zeros((1, 10, 10), np.uint8), crs=f"EPSG:{epsg}",
                            origin=origin)
        with rasterio.open(path) as ds:
            expect = 100.0 * math.cos(math.radians(50)) ** 2 if epsg != 32631 else 100.0
            assert pixel_area_m2(ds) == pytest.approx(expect, rel=5e-3), epsg  # cos^2: the sphere's scale
            assert (area_scale(ds) == 1.0) == (epsg == 32631)
