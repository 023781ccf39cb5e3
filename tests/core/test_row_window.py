"""ClassifyParams.rows: a window of rows classified on its own equals the same rows of a full run."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.core.engine import classify
from claire.claire_plugin.core.engine.tiling import TileGrid, window
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.params import run_options
from claire.tests.fixtures.helpers import synthetic_scene, write_raster


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform


@pytest.mark.parametrize("sar_origin", [(500000.0, 4600000.0), (500000.0, 4599700.0)])
def test_row_windows_equal_the_full_run(tmp_path, tiny_checkpoint, sar_origin):
    optical, sar, _ = synthetic_scene(150, 70)
    opt = write_raster(str(tmp_path / "o.tif"), optical)
    # the second case: the SAR starts 30 rows lower, so the overlap region does not start at row 0
    s = write_raster(str(tmp_path / "s.tif"), sar[:, :110], origin=sar_origin, descriptions=["VV", "VH"])
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=16, threads=1)
    full = classify(options.params(opt, s, str(tmp_path / "full.tif"), confidence=str(tmp_path / "fullc.tif")))
    classes, transform = _read(full.output)
    conf, _ = _read(full.confidence)
    for start, stop in [(0, 50), (50, 97), (97, 150), (0, 150), (10, 11), (140, 150)]:
        part = classify(_with_rows(options.params(opt, s, str(tmp_path / f"p{start}.tif"),
                                                  confidence=str(tmp_path / f"c{start}.tif")), (start, stop)))
        got, t = _read(part.output)
        got_conf, _ = _read(part.confidence)
        assert got.shape == (stop - start, 70)
        assert np.array_equal(got, classes[start:stop]), (start, stop)
        assert np.array_equal(got_conf, conf[start:stop]), (start, stop)
        assert t == transform * rasterio.Affine.translation(0, start)


def _with_rows(params, rows):
    params.rows = rows
    return params


def test_row_window_grid_runs_the_tile_rows_that_keep_the_rows():
    grid = TileGrid(5, 0, 200, 64, 32, 16)
    bounds = grid.row_axis[1]
    for start, stop in [(0, 30), (30, 100), (100, 205), (60, 61)]:
        sub, keep, _ = window(grid, (start, stop))
        assert (sub.row_axis, sub.col_axis) == (grid.row_axis, grid.col_axis), "the same tiles as the full grid"
        a, b = sub.row_range
        assert bounds[a] <= keep[0] < bounds[a + 1] and bounds[b - 1] < keep[1] <= bounds[b]
        assert grid.row0 + keep[0] == max(start, grid.row0) and grid.row0 + keep[1] == min(stop, grid.row0 + 200)


def test_a_row_window_outside_the_raster_is_refused(tmp_path, tiny_checkpoint, raster_pair):
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=16, threads=1)
    params = _with_rows(options.params(raster_pair["optical"], raster_pair["sar"], str(tmp_path / "x.tif")), (60, 80))
    with pytest.raises(ClaireError, match="row window 60..80"):
        classify(params)
