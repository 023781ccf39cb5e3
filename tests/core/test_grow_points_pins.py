"""QA round 15 (mutation audit, fourth wave) of core/training/grow_points.py: survivors pinned.

- a point layer's own `fid` attribute (a shapefile's or GeoJSON's field, not the GeoPackage's FID column) is not
  copied into the grown GeoPackage, whose FID column is `fid`;
- the class field named in another case than the user typed it (`--field class` on a `Class` field) is not
  copied a second time;
- a multipoint of several points is skipped with the reason, not grown from its first point;
- the summary lists the first 20 skipped points, and "... and N more" counts the rest;
- a GeoPackage INTEGER (OGR Integer64) field of the points stays an integer in the grown layer;
- "no point gave a polygon" names the first three reasons; progress reaches 1 at the last point.
"""
import json

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.training.grow_points import GrownPolygons, grow_from_points, summary_lines, write_grown
from claire.tests.fixtures.helpers import write_raster

ORIGIN = (500000.0, 4600000.0)  # write_raster's default: 10 m pixels, north up


def _xy(row, col):
    return ORIGIN[0] + 10.0 * col, ORIGIN[1] - 10.0 * row


@pytest.fixture
def pair(tmp_path):
    """A 60 x 70 px crops-like scene with a darker 20 x 20 field at rows 10..29, cols 12..31."""
    rng = np.random.default_rng(0)
    level = np.full((60, 70), 1800.0)
    level[10:30, 12:32] = 600.0
    opt = np.stack([level + 40 * b + rng.normal(0, 30, level.shape) for b in range(12)]).astype(np.int16)
    sar = np.stack([np.full((60, 70), -12.0), np.full((60, 70), -18.0)]).astype(np.float32)
    return (write_raster(tmp_path / "o.tif", opt, nodata=0),
            write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]))


def _geojson(tmp_path, features, name="pts.geojson"):
    path = tmp_path / name
    path.write_text(json.dumps({"type": "FeatureCollection",
                                "crs": {"type": "name", "properties": {"name": "EPSG:32631"}},
                                "features": [{"type": "Feature", "properties": p, "geometry": g}
                                             for p, g in features]}))
    return str(path)


def _point(row, col):
    return {"type": "Point", "coordinates": list(_xy(row, col))}


def _fields(path):
    from osgeo import ogr

    ds = ogr.Open(path)
    lyr = ds.GetLayerByName("training")
    defn = lyr.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    rows = [{n: f.GetField(n) for n in names} for f in lyr]
    lyr = ds = None
    return names, rows


def test_a_points_own_fid_attribute_is_not_copied_into_the_geopackage(tmp_path, pair):
    """Survey points exported with a `fid` column (two points both fid 7): copying it into the GeoPackage would
    make it the FID column's twin (GDAL refuses values that differ from the feature ids)."""
    pts = _geojson(tmp_path, [({"class": "crops", "fid": 7, "note": "a"}, _point(12.5, 14.5)),
                              ({"class": "trees", "fid": 7, "note": "b"}, _point(45.5, 5.5))])
    grown = grow_from_points(*pair, pts, "class", max_width=21)
    assert [name for name, _kind in grown.extra_fields] == ["note"]
    names, rows = _fields(write_grown(grown, str(tmp_path / "grown.gpkg")))
    assert names == ["class", "source_fid", "pixels", "note"]
    assert [r["class"] for r in rows] == ["crops", "trees"]


def test_the_class_field_in_another_case_is_written_once(tmp_path, pair):
    """`--field class` on a layer whose field is `Class`: the polygons get one class field."""
    pts = _geojson(tmp_path, [({"Class": "crops", "note": "a"}, _point(12.5, 14.5)),
                              ({"Class": "trees", "note": "b"}, _point(45.5, 5.5))])
    grown = grow_from_points(*pair, pts, "class", max_width=21)
    assert [name for name, _kind in grown.extra_fields] == ["note"]
    names, rows = _fields(write_grown(grown, str(tmp_path / "grown.gpkg")))
    assert [n.lower() for n in names].count("class") == 1
    assert [r[names[0]] for r in rows] == ["crops", "trees"]


def test_a_multipoint_of_several_points_is_skipped_with_the_reason(tmp_path, pair):
    x1, y1 = _xy(12.5, 14.5)
    x2, y2 = _xy(45.5, 5.5)
    pts = _geojson(tmp_path, [({"class": "crops"}, {"type": "MultiPoint", "coordinates": [[x1, y1], [x2, y2]]}),
                              ({"class": "trees"}, _point(45.5, 5.5))])
    grown = grow_from_points(*pair, pts, "class", max_width=21)
    assert [v for _w, v, _f, _p in grown.polygons] == ["trees"]
    assert len(grown.skipped) == 1 and "a multipoint of several points" in grown.skipped[0][1]


def test_the_summary_lists_twenty_reasons_and_counts_the_rest():
    grown = GrownPolygons(skipped=[(k, f"reason {k}") for k in range(1, 22)] + [(22, "reason 21")])
    lines = summary_lines(grown, 0.15)
    assert lines[0] == "0 polygon(s) grown at tolerance 0.15 (none); 22 point(s) skipped"
    listed = [line for line in lines if line.startswith("skipped feature")]
    assert len(listed) == 20 and listed[-1] == "skipped feature 20: reason 20"
    assert lines[-1] == "... and 2 more point(s) for 1 other reason(s)"
    assert len(summary_lines(GrownPolygons(skipped=[(k, f"r{k}") for k in range(20)]), 0.15)) == 21  # no "and 0 more"


def test_points_skipped_for_one_reason_are_said_once():
    """QA (round 18, left then): 300 points outside the raster printed the same sentence 20 times, then "... and
    280 more"; a user saw neither how many shared the reason nor the other reasons."""
    far = "it lies outside the optical raster"
    grown = GrownPolygons(skipped=[(k, far) for k in range(1, 13)] + [(40, "a multipoint"), (41, far)])
    lines = summary_lines(grown, 0.15)
    assert lines[1:] == ["skipped features 1, 2, 3, 4, 5, 6, 7, 8, ... (13 points): " + far,
                         "skipped feature 40: a multipoint"]
    with pytest.raises(ClaireError, match=r"^no point gave a polygon \(features 1, 2, .* \(13 points\): it lies "
                                          r"outside the optical raster; feature 40: a multipoint\)"):
        write_grown(grown, "/nonexistent/never.gpkg")
    assert summary_lines(GrownPolygons(skipped=[(3, far), (5, far)]), 0.15)[1] == "skipped features 3, 5: " + far


@pytest.mark.parametrize("plots", [(40000, 12), (20230517001, 20230517002)])
def test_a_geopackage_integer_field_stays_an_integer(tmp_path, pair, plots):
    """A GeoPackage's INTEGER columns are OGR Integer64: a survey's plot number travels as an integer, not text;
    and one beyond 32 bits keeps its value (it was written as a 32-bit field: 20230517001 became 2147483647, two
    plots one id, with only GDAL's overflow warning on stderr)."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    path = str(tmp_path / "survey.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("points", srs, ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("plot", ogr.OFTInteger64))
    for (row, col), value, plot in (((12.5, 14.5), "crops", plots[0]), ((45.5, 5.5), "trees", plots[1])):
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetField("class", value)
        feat.SetField("plot", plot)
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(*_xy(row, col))
        feat.SetGeometry(point)
        lyr.CreateFeature(feat)
    feat = lyr = ds = None
    grown = grow_from_points(*pair, path, "class", max_width=21)
    assert grown.extra_fields == [("plot", "int64")]
    out = write_grown(grown, str(tmp_path / "grown.gpkg"))
    ds = ogr.Open(out)
    lyr = ds.GetLayerByName("training")
    defn = lyr.GetLayerDefn()
    assert defn.GetFieldDefn(defn.GetFieldIndex("plot")).GetType() == ogr.OFTInteger64
    assert [f.GetField("plot") for f in lyr] == list(plots)
    lyr = ds = None


def test_no_polygon_names_the_first_three_reasons(tmp_path):
    grown = GrownPolygons(skipped=[(1, "first"), (2, "second"), (3, "third"), (4, "fourth")])
    with pytest.raises(ClaireError) as info:
        write_grown(grown, str(tmp_path / "none.gpkg"))
    said = str(info.value)
    assert "feature 1: first; feature 2: second; feature 3: third)" in said and "fourth" not in said
    assert not (tmp_path / "none.gpkg").exists()


def test_progress_reaches_one_at_the_last_point(tmp_path, pair):
    pts = _geojson(tmp_path, [({"class": "crops"}, _point(12.5, 14.5)), ({"class": "trees"}, _point(45.5, 5.5))])
    seen = []
    grow_from_points(*pair, pts, "class", max_width=21, progress=lambda f, text: seen.append((f, text)))
    assert seen == [(0.5, "1 polygon(s) from 1 point(s)"), (1.0, "2 polygon(s) from 2 point(s)")]


def test_class_codes_that_are_not_whole_are_refused_as_training_refuses_them(tmp_path, pair):
    """QA round 20: grow-polygons wrote classes 1.5 / 4.5 that `claire train` then refused."""
    pts = _geojson(tmp_path, [({"class": 1.5}, _point(20, 20)), ({"class": 2}, _point(45, 50))])
    with pytest.raises(ClaireError, match="field 'class' holds numbers that are not whole \\(e.g. 1.5\\)"):
        grow_from_points(*pair, pts, "class")


def test_a_date_field_is_no_class_field(tmp_path, pair):
    """QA round 20: a field of dates was taken as class names (2024/01/01, ...) by grow-polygons and training."""
    from osgeo import ogr

    pts = _geojson(tmp_path, [({"class": "2024-01-01"}, _point(20, 20)), ({"class": "2024-01-02"}, _point(45, 50))])
    ds = ogr.Open(pts)
    lyr = ds.GetLayer(0)
    assert lyr.GetLayerDefn().GetFieldDefn(0).GetType() == ogr.OFTDate  # as OGR reads such a GeoJSON
    lyr = ds = None
    with pytest.raises(ClaireError, match=r"the field .class. of .* holds dates, not classes: .* \(its fields are class\)"):
        grow_from_points(*pair, pts, "class")
