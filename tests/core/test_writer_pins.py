"""Mutation audit, fourth wave (QA round 15): what the writer and the style put in a map (category names with
nodata above every class, nodata where no block wrote, the class tags inside the TIFF, a stale sidecar removed, an
opaque palette by value with nearest-neighbour resampling). Each test was shown to fail on its mutant."""
import xml.etree.ElementTree as ET

import numpy as np
import rasterio

from claire.claire_plugin.core.io.qml import palette_style, style_classes
from claire.claire_plugin.core.io.writer import GridWriter, set_classes
from claire.tests.fixtures.helpers import write_raster


def _written(tmp_path, nodata, block, dtype="uint8"):
    grid = write_raster(str(tmp_path / "grid.tif"), np.zeros((1, 300, 40), np.uint8))
    with rasterio.open(grid) as g:
        w = GridWriter(str(tmp_path / "out.tif"), g, dtype, nodata)
        w.put(0, 0, block)
        w.close()
    return w.tmp


def test_the_colour_table_draws_classes_opaque_and_nodata_not_at_all(tmp_path):
    path = _written(tmp_path, 0, np.ones((300, 40), np.uint8))
    set_classes(path, 0, [{"value": 1, "name": "water"}, {"value": 2, "name": "trees"}],
                {1: (0, 0, 255), 2: (0, 128, 0)})
    with rasterio.open(path) as ds:
        cmap = ds.colormap(1)
    assert cmap[1] == (0, 0, 255, 255) and cmap[2] == (0, 128, 0, 255)
    assert cmap[0][3] == 0  # nodata transparent


def test_category_names_name_the_nodata_value_even_above_every_class(tmp_path):
    """A model trained on labels that use code 0 writes nodata 255 (models.checkpoint.nodata_for)."""
    from osgeo import gdal

    from claire.claire_plugin.core.io.pam import pam_on

    path = _written(tmp_path, 255, np.ones((300, 40), np.uint8))
    set_classes(path, 255, [{"value": 0, "name": "water"}, {"value": 1, "name": "trees"}],
                {0: (0, 0, 255), 1: (0, 128, 0)})
    with pam_on():
        info = gdal.Info(path)  # as gdalinfo prints them (the band API reads PAM lazily on GDAL 3.6)
    assert "0: water" in info and "1: trees" in info and "255: nodata" in info


def test_pixels_no_block_covers_are_nodata(tmp_path):
    """Rows past the blocks put (a map whose last rows are outside the overlap) are written as nodata, in every
    block row and after the buffer has been recycled."""
    grid = write_raster(str(tmp_path / "grid.tif"), np.zeros((1, 900, 40), np.uint8))
    with rasterio.open(grid) as g:
        w = GridWriter(str(tmp_path / "out.tif"), g, "uint8", 255)
        w.put(0, 0, np.ones((100, 40), np.uint8))
        w.complete_until(300)
        w.put(300, 0, np.ones((10, 40), np.uint8))
        w.put(850, 0, np.ones((10, 40), np.uint8))  # past the buffer: it grows
        w.close()
    with rasterio.open(w.tmp) as ds:
        a = ds.read(1)
        assert ds.nodata == 255
    assert (a[:100] == 1).all() and (a[100:300] == 255).all() and (a[300:310] == 1).all()
    assert (a[310:850] == 255).all() and (a[850:860] == 1).all() and (a[860:] == 255).all()


def test_a_map_copied_without_its_sidecar_still_names_its_classes(tmp_path):
    """The class_<value> tags inside the TIFF name the classes where the .aux.xml did not follow the file."""
    import os

    from claire.claire_plugin.core.accuracy import classes_from_gdal

    path = _written(tmp_path, 0, np.ones((300, 40), np.uint8))
    set_classes(path, 0, [{"value": 1, "name": "water"}, {"value": 2, "name": "trees"}],
                {1: (0, 0, 255), 2: (0, 128, 0)})
    os.remove(path + ".aux.xml")
    assert [(c["value"], c["name"]) for c in classes_from_gdal(path)] == [(1, "water"), (2, "trees")]


def test_a_stale_sidecar_goes_when_the_new_output_has_none(tmp_path):
    """An earlier file's .aux.xml (its category names, QGIS's statistics) would describe the new raster."""
    import os

    from claire.claire_plugin.core.io.writer import commit

    out = tmp_path / "conf.tif"
    out.write_bytes(b"old")
    (tmp_path / "conf.tif.aux.xml").write_text("<PAMDataset><PAMRasterBand band=\"1\"><CategoryNames>"
                                               "<Category>water</Category></CategoryNames></PAMRasterBand>"
                                               "</PAMDataset>")
    grid = write_raster(str(tmp_path / "grid.tif"), np.zeros((1, 30, 30), np.uint8))
    with rasterio.open(grid) as g:
        w = GridWriter(str(out), g, "uint8", 255)
        w.put(0, 0, np.full((30, 30), 80, np.uint8))
        w.close()
    commit([w])
    assert out.read_bytes()[:2] in (b"II", b"MM") and not os.path.exists(str(out) + ".aux.xml")


def test_the_style_draws_each_class_opaque_in_its_colour_by_value_with_nearest_resampling():
    classes = style_classes([{"value": 5, "name": "built area"}, {"value": 1, "name": "water"}],
                            {1: (65, 155, 223), 5: (196, 40, 27)})
    root = ET.fromstring(palette_style(classes).split("\n", 1)[1])
    entries = [(e.get("value"), e.get("label"), e.get("color"), e.get("alpha")) for e in root.iter("paletteEntry")]
    assert entries == [("1", "water", "#419bdf", "255"), ("5", "built area", "#c4281b", "255")]
    res = next(root.iter("resampling"))
    assert res.get("zoomedInResamplingMethod") == res.get("zoomedOutResamplingMethod") == "nearestNeighbour"
