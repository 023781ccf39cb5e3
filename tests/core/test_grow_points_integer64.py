"""QA round 15 (mutation audit, fourth wave): a point layer's 64-bit integer field (every INTEGER column of a
GeoPackage is OGR Integer64) was written as a 32-bit field into the grown polygons: a survey's plot id 20230517001
became 2147483647 (two plots, one id), with only GDAL's overflow warning on stderr. Integer64 stays Integer64.
"""
import numpy as np
from osgeo import ogr, osr

from claire.claire_plugin.core.training.grow_points import grow_from_points, write_grown
from claire.tests.fixtures.helpers import write_raster


def test_a_64_bit_plot_id_survives_growing(tmp_path):
    rng = np.random.default_rng(0)
    level = np.full((60, 70), 1800.0)
    level[10:30, 12:32] = 600.0
    opt = np.stack([level + 40 * b + rng.normal(0, 30, level.shape) for b in range(12)]).astype(np.int16)
    sar = np.stack([np.full((60, 70), -12.0), np.full((60, 70), -18.0)]).astype(np.float32)
    o = write_raster(tmp_path / "o.tif", opt, nodata=0)
    s = write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    path = str(tmp_path / "survey.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("points", srs, ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("plot_id", ogr.OFTInteger64))
    for (row, col), value, plot in (((12.5, 14.5), "crops", 20230517001), ((45.5, 5.5), "trees", 20230517002)):
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetField("class", value)
        feat.SetField("plot_id", plot)
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(500000.0 + 10.0 * col, 4600000.0 - 10.0 * row)
        feat.SetGeometry(point)
        lyr.CreateFeature(feat)
    feat = lyr = ds = None
    out = write_grown(grow_from_points(o, s, path, "class", max_width=21), str(tmp_path / "grown.gpkg"))
    ds = ogr.Open(out)
    lyr = ds.GetLayerByName("training")
    assert [f.GetField("plot_id") for f in lyr] == [20230517001, 20230517002]
    lyr = ds = None
