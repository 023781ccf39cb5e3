"""Every output raster carries internal overviews, filled while its rows are written: QGIS draws a zoomed-out
whole-tile map from them instead of reading every pixel (without them it read the full map at each redraw)."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.core.io.writer import GridWriter, overview_factors
from claire.tests.fixtures.helpers import write_raster


@pytest.mark.parametrize("size, factors", [((200, 256), []), ((257, 10), [2]), ((1024, 1024), [2, 4]),
                                           ((10980, 10980), [2, 4, 8, 16, 32, 64]), ((300000, 5), [2, 4, 8, 16, 32, 64, 128, 256])])
def test_levels_stop_at_256_px_and_at_one_block(size, factors):
    assert overview_factors(*size) == factors


@pytest.mark.parametrize("dtype, nodata", [("uint8", 255), ("float32", -1.0)])
def test_overviews_hold_the_pixel_nearest_each_centre(tmp_path, dtype, nodata):
    height, width = 700, 1001  # neither a multiple of a block nor of any factor
    grid = write_raster(str(tmp_path / "grid.tif"), np.zeros((1, height, width), np.uint8))
    values = (np.arange(height)[:, None] * 7 + np.arange(width)[None] * 3) % 200
    out = str(tmp_path / "map.tif")
    with rasterio.open(grid) as g:
        w = GridWriter(out, g, dtype, nodata)
        for row0 in range(0, height, 100):  # rows arrive in pieces, as the engine's windows give them
            w.put(row0, 0, values[row0: row0 + 100].astype(dtype))
            w.complete_until(row0 + 100)
        w.close()
    import os
    os.replace(w.tmp, out)
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2, 4]
        assert np.array_equal(ds.read(1), values.astype(dtype))
    from osgeo import gdal
    ds = gdal.Open(out)
    band = ds.GetRasterBand(1)
    for i, f in enumerate([2, 4]):
        ov = band.GetOverview(i).ReadAsArray()
        rows = np.minimum(np.arange(ov.shape[0]) * f + f // 2, height - 1)
        cols = np.minimum(np.arange(ov.shape[1]) * f + f // 2, width - 1)
        assert ov.shape == (-(-height // f), -(-width // f))
        assert np.array_equal(ov, values[np.ix_(rows, cols)].astype(dtype)), f
