"""The plugin's OGR/GDAL work leaves GDAL's Python error mode as it found it: QGIS and other plugins share the
osgeo modules and expect the mode they chose (core.io.gdal_mode)."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from claire.claire_plugin.core.io.gdal_mode import gdal_exceptions
from claire.claire_plugin.core.map_accuracy import evaluate_points, stratified_sample, write_points
from claire.claire_plugin.core.training.label_raster import is_raster
from claire.tests.fixtures.helpers import write_raster

MODULES = (gdal, ogr, osr)


@pytest.fixture
def modes():
    """Exceptions off in every module for the test, the original modes back afterwards."""
    was_on = _all_off()
    yield
    _all_off()
    for m in reversed(was_on):
        m.UseExceptions()


def _all_off() -> list:
    """Turn every module's exceptions off, in whatever order GDAL's stack of handlers allows; the modules that
    were on, in the order they were turned off."""
    off = []
    for _ in MODULES:
        for m in MODULES:
            if m.GetUseExceptions():
                try:
                    m.DontUseExceptions()
                    off.append(m)
                except RuntimeError:
                    continue
    return off


def _state():
    return [bool(m.GetUseExceptions()) for m in MODULES]


def test_the_block_raises_and_gives_the_mode_back(modes):
    with gdal_exceptions():
        assert _state() == [True, True, True]
        with pytest.raises(RuntimeError):
            gdal.Open("/nonexistent/raster.tif")
    assert _state() == [False, False, False]
    assert gdal.Open("/nonexistent/raster.tif") is None  # the caller's mode: None, no exception
    ogr.UseExceptions()  # GDAL 3.6: ogr alone; 3.10: the modules' modes are one
    chosen = _state()
    with gdal_exceptions():
        pass
    assert _state() == chosen and chosen[1]  # a mode someone turned on stays on


def test_sample_points_accuracy_and_label_checks_leave_the_mode(modes, tmp_path):
    data = np.ones((20, 20), np.uint8)
    data[:, 10:] = 2
    m = write_raster(str(tmp_path / "map.tif"), data)
    pts = str(tmp_path / "pts.gpkg")
    write_points(stratified_sample(m, per_class=4), pts)
    assert _state() == [False, False, False]
    ds = ogr.Open(pts, 1)
    layer = ds.GetLayer(0)
    for feature in layer:
        feature.SetField("ref_class", 1)
        layer.SetFeature(feature)
    layer = ds = None
    evaluate_points(m, pts, "ref_class")
    assert _state() == [False, False, False]
    assert is_raster(m) and not is_raster(pts)
    assert _state() == [False, False, False]



def test_someone_else_changing_the_modes_inside_the_block_does_not_fail_it(modes):
    """Another thread's code (a plugin in QGIS's main thread while a training runs in a task) may change the
    modes meanwhile: the block still ends without an error."""
    with gdal_exceptions():
        osr.DontUseExceptions()
        ogr.DontUseExceptions()
    assert not gdal.GetUseExceptions()
