"""Text a vector file holds in an encoding it does not name (QA round 16: a Windows Shapefile without its .cpg
file crashed training, suggest and grow-polygons with a UnicodeEncodeError traceback)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.core.errors import ClaireError
from claire.tests.fixtures.helpers import write_raster


def _cp1252_shapefile(folder, geometry: str) -> str:
    """A Shapefile whose class text is cp1252 bytes, with neither a .cpg file nor a code page in the DBF header."""
    from osgeo import ogr, osr

    path = os.path.join(folder, "labels.shp")
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    ds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(path)
    kind = ogr.wkbPolygon if geometry.startswith("POLYGON") else ogr.wkbPoint
    lyr = ds.CreateLayer("labels", srs, kind, options=["ENCODING=CP1252"])
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for name in ("forêt", "céréales"):
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetField("class", name)
        feat.SetGeometry(ogr.CreateGeometryFromWkt(geometry))
        lyr.CreateFeature(feat)
    lyr = ds = None
    os.remove(os.path.join(folder, "labels.cpg"))
    with open(os.path.join(folder, "labels.dbf"), "r+b") as fh:  # no language driver id either
        fh.seek(29)
        fh.write(b"\x00")
    return path


def test_training_labels_in_an_unnamed_code_page_are_refused_naming_the_fix(tmp_path):
    from claire.claire_plugin.core.training.labels import read_labels

    grid = write_raster(str(tmp_path / "grid.tif"), np.zeros((1, 40, 40), np.uint16))
    path = _cp1252_shapefile(str(tmp_path), "POLYGON ((500050 4599950,500150 4599950,500150 4599850,"
                                             "500050 4599850,500050 4599950))")
    with rasterio.open(grid) as g, pytest.raises(ClaireError) as err:
        read_labels(path, g, "class")
    text = str(err.value)
    assert "feature 0 of" in text and "'for\ufffdt'" in text and "labels.cpg" in text and "1252" in text
    assert "GeoPackage" in text


def test_points_in_an_unnamed_code_page_are_refused_by_the_accuracy_and_grow_polygons(tmp_path):
    from claire.claire_plugin.core.io.points import readable_text
    from claire.claire_plugin.core.training.grow_points import point_attributes

    path = _cp1252_shapefile(str(tmp_path), "POINT (500100 4599900)")
    with pytest.raises(ClaireError, match=r"field 'class' is in an encoding the file does not name"):
        point_attributes(path, None, "other")
    assert readable_text("forêt", 3, "class", path) == "forêt" and readable_text(7, 3, "class", path) == 7


def test_sample_points_in_an_unnamed_code_page_are_refused_by_the_map_accuracy(tmp_path):
    """map-accuracy printed 'for\\udceat' as a class it did not know."""
    from claire.claire_plugin.core.map_accuracy import evaluate_points

    classes = write_raster(str(tmp_path / "map.tif"), np.ones((1, 40, 40), np.uint8))
    path = _cp1252_shapefile(str(tmp_path), "POINT (500100 4599900)")
    with pytest.raises(ClaireError, match=r"feature 0 of .*'for\ufffdt' of field 'class' is in an encoding"):
        evaluate_points(classes, path, "class")
