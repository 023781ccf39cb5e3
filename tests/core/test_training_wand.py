"""The magic wand (core.training.wand): a region grown from one pixel over the optical raster, as one polygon
in the raster's CRS."""
from __future__ import annotations

import json

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.wand import distance_to_seed, grow, grow_region
from claire.tests.fixtures.helpers import tiny_card, write_raster

ORIGIN = (500000.0, 4600000.0)  # write_raster's default: 10 m pixels, north up
FIELD = (10, 30, 12, 32)  # rows 10..29, cols 12..31 (20 x 20 px)
HOLE = (18, 21, 20, 23)  # a 3 x 3 block of another cover inside the field


def _scene_arrays(rows: int = 60, cols: int = 70, seed: int = 0):
    """Crops-like background, a darker field with a bright block inside; noise sd 30 DN."""
    rng = np.random.default_rng(seed)
    level = np.full((rows, cols), 1800.0)
    r0, r1, c0, c1 = FIELD
    level[r0:r1, c0:c1] = 600.0
    h0, h1, k0, k1 = HOLE
    level[h0:h1, k0:k1] = 2600.0
    opt = np.stack([level + 40 * b + rng.normal(0, 30, level.shape) for b in range(12)]).astype(np.int16)
    sar = np.stack([np.full((rows, cols), -12.0), np.full((rows, cols), -18.0)]).astype(np.float32)
    return opt, sar


@pytest.fixture
def wand_scene(tmp_path):
    opt, sar = _scene_arrays()
    opt[:, 50:, 60:] = 0  # a nodata corner
    s = Scene(write_raster(tmp_path / "o.tif", opt, nodata=0),
              write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]), tiny_card())
    yield s
    s.close()


def _xy(row: float, col: float):
    return ORIGIN[0] + 10.0 * col, ORIGIN[1] - 10.0 * row


def test_a_click_in_a_field_gives_the_field_without_its_hole(wand_scene):
    from osgeo import ogr

    reg = grow_region(wand_scene, *_xy(12.5, 14.5))
    r0, r1, c0, c1 = FIELD
    h0, h1, k0, k1 = HOLE
    expected = np.zeros((60, 70), bool)
    expected[r0:r1, c0:c1] = True
    expected[h0:h1, k0:k1] = False
    got = np.zeros((60, 70), bool)
    got[reg.row0:reg.row0 + reg.mask.shape[0], reg.col0:reg.col0 + reg.mask.shape[1]] = reg.mask
    assert (got == expected).all()
    assert reg.pixels == 400 - 9 and not reg.truncated
    geom = ogr.CreateGeometryFromWkt(reg.wkt)
    assert geom.GetGeometryCount() == 2  # the outer ring and the hole
    assert geom.GetArea() == pytest.approx((400 - 9) * 100.0)
    x0, x1, y0, y1 = geom.GetEnvelope()
    assert (x0, x1) == pytest.approx((ORIGIN[0] + 120.0, ORIGIN[0] + 320.0))
    assert (y0, y1) == pytest.approx((ORIGIN[1] - 300.0, ORIGIN[1] - 100.0))


def test_a_larger_tolerance_takes_more_and_every_pixel_stays_within_it(wand_scene):
    from claire.claire_plugin.core.training.wand import distance_to_seed

    sizes = []
    for tol in (0.1, 0.3, 6.0):
        reg = grow_region(wand_scene, *_xy(12.5, 14.5), tolerance=tol, max_width=201)
        sizes.append(reg.pixels)
        opt, _s, bad = wand_scene.read(reg.row0, reg.col0, *reg.mask.shape)
        feats = wand_scene.opt_prep.standardise(np.nan_to_num(opt, nan=0.0))
        dist = distance_to_seed(feats, bad, 12 - reg.row0, 14 - reg.col0)
        assert dist[reg.mask].max() <= tol
    assert sizes[0] == 391 and sizes[1] == 391  # the field is 0.6 std away from the background
    assert sizes[2] > 3000  # a tolerance above every difference takes every valid pixel it reaches


def test_the_max_width_square_is_an_edge_the_raster_border_is_not(wand_scene):
    reg = grow_region(wand_scene, *_xy(20.5, 5.5), max_width=9)  # background, away from the borders
    assert reg.mask.shape == (9, 9) and reg.truncated
    corner = grow_region(wand_scene, *_xy(0.5, 0.5), max_width=9)  # the raster's corner: two sides are its border
    assert corner.mask.shape == (5, 5) and corner.mask.all() and corner.truncated  # the other two the square's
    whole = grow_region(wand_scene, *_xy(0.5, 35.5), max_width=201)  # the square holds the whole raster
    assert whole.mask.shape == (60, 70) and whole.mask[0].all() and not whole.truncated


def test_nodata_pixels_never_join(wand_scene):
    reg = grow_region(wand_scene, *_xy(45.5, 55.5), tolerance=0.5, max_width=41)
    rows, cols = np.nonzero(reg.mask)
    assert not ((rows + reg.row0 >= 50) & (cols + reg.col0 >= 60)).any()
    assert reg.pixels > 100


@pytest.mark.parametrize("where, kwargs, words", [
    ((-3.0, 5.0), {}, "outside the optical raster"),
    ((55.5, 65.5), {}, "no optical or no SAR data"),
    ((12.5, 14.5), {"tolerance": 0.0}, "must be between 0.01 and 10"),
    ((12.5, 14.5), {"tolerance": 0.01}, "raise the tolerance"),
    ((12.5, 14.5), {"tolerance": 0.001}, "between 0.01 and 10 standard deviations"),
])
def test_clicks_that_cannot_make_a_polygon_say_why(wand_scene, where, kwargs, words):
    with pytest.raises(ClaireError, match=words):
        grow_region(wand_scene, *_xy(*where), **kwargs)


def test_wand_check_clicks_lie_inside_one_class_patches():
    from claire.claire_plugin.tools.wand_check import clicks

    lulc = np.full((40, 40), 2, np.uint8)
    lulc[:, 20:] = 5
    lulc[10:13, 5:8] = 1  # a 3 x 3 patch: no pixel is 2 px inside it
    got = clicks(lulc, per_class=7, seed=1)
    assert sorted({v for _, _, v in got}) == [2, 5]
    assert sum(v == 2 for _, _, v in got) == 7 and sum(v == 5 for _, _, v in got) == 7
    for r, c, v in got:
        assert (lulc[max(0, r - 2):r + 3, max(0, c - 2):c + 3] == v).all()
        assert 2 <= r < 38 and 2 <= c < 38


def test_pixels_of_taken_polygons_never_join_and_are_counted(wand_scene):
    from claire.tests.fixtures.vectors import box_wkt

    r0, r1, c0, c1 = FIELD
    taken = [box_wkt(r0, c0, r1, 22)]  # the field's left half (cols 12..21)
    reg = grow_region(wand_scene, *_xy(12.5, 28.5), taken=taken)
    rows, cols = np.nonzero(reg.mask)
    assert (cols + reg.col0 >= 22).all() and reg.pixels == (r1 - r0) * (c1 - 22) - 3  # less the hole's right column
    assert reg.left_out == (r1 - r0) * 10 - 6  # the left half less the hole's two columns there
    with pytest.raises(ClaireError, match="already inside a polygon"):
        grow_region(wand_scene, *_xy(12.5, 14.5), taken=taken)


def _points(tmp_path, rows_cols_values, name="points.gpkg", crs="EPSG:32631"):
    from rasterio.crs import CRS

    from claire.claire_plugin.core.io.points import write_point_layer

    records = [(*_xy(r, c), {"class": v}) for r, c, v in rows_cols_values]
    values = [v for _r, _c, v in rows_cols_values]
    kind = ("int" if all(isinstance(v, int) for v in values)
            else "real" if all(isinstance(v, (int, float)) for v in values) else "str")
    return write_point_layer(str(tmp_path / name), "points", CRS.from_string(crs).to_wkt(), [("class", kind)],
                             records, "test points")


@pytest.fixture
def wand_pair(tmp_path):
    opt, sar = _scene_arrays()
    opt[:, 50:, 60:] = 0
    return (write_raster(tmp_path / "o.tif", opt, nodata=0),
            write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]))


def test_points_grow_into_polygons_that_never_overlap(tmp_path, wand_pair, tiny_checkpoint):
    from osgeo import ogr

    from claire.claire_plugin.core.training.grow_points import grow_from_points, write_grown

    pts = _points(tmp_path, [(12.5, 14.5, 4), (14.5, 16.5, 4), (45.5, 5.5, 2), (-9.5, 3.5, 2), (55.5, 65.5, 2),
                             (40.5, 22.5, 2)])
    grown = grow_from_points(*wand_pair, pts, "class", checkpoint=tiny_checkpoint, max_width=21)
    assert [fid for _w, _v, fid, _p in grown.polygons] == [1, 3, 6]
    assert [fid for fid, _why in grown.skipped] == [2, 4, 5]
    reasons = dict(grown.skipped)
    # QA round 16: not the wand's "delete that polygon first", which speaks of a training layer to edit
    assert reasons[2] == "it lies inside the polygon grown from an earlier point" and "outside the optical raster" in reasons[4]
    assert "no optical or no SAR data" in reasons[5]
    assert grown.per_class() == {"4": 1, "2": 2}
    out = write_grown(grown, str(tmp_path / "grown.gpkg"))
    ds = ogr.Open(out)
    feats = list(ds.GetLayerByName("training"))
    assert [f.GetField("class") for f in feats] == [4, 2, 2] and [f.GetField("source_fid") for f in feats] == [1, 3, 6]
    field = ds.GetLayerByName("training").GetLayerDefn().GetFieldDefn(0)
    assert field.GetType() == ogr.OFTInteger
    a, b = feats[1].GetGeometryRef(), feats[2].GetGeometryRef()  # background squares sharing rows 35..50, cols 12..15
    assert a.Intersection(b).GetArea() == pytest.approx(0.0)
    assert [f.GetField("pixels") for f in feats[1:]] == [21 * 16, 21 * 21 - 16 * 4]
    assert feats[0].GetField("pixels") == 13 * 13 - 9  # the field's part in the 21 px square, less the hole


def test_grown_polygons_keep_text_classes_and_the_cli_writes_them(tmp_path, wand_pair, tiny_checkpoint, capsys):
    from osgeo import ogr

    from claire.claire_plugin.cli.main import main

    pts = _points(tmp_path, [(12.5, 14.5, "crops"), (45.5, 5.5, "trees")])
    out = str(tmp_path / "grown.gpkg")
    args = ["grow-polygons", "--optical", wand_pair[0], "--sar", wand_pair[1], "--points", pts, "--field", "class",
            "--checkpoint", tiny_checkpoint, "--output"]
    assert main(args + [out]) == 0
    said = capsys.readouterr().out
    assert "2 polygon(s) grown at tolerance 0.15 (crops: 1, trees: 1); 0 point(s) skipped" in said
    ds = ogr.Open(out)
    lyr = ds.GetLayerByName("training")
    assert lyr.GetLayerDefn().GetFieldDefn(0).GetType() == ogr.OFTString
    assert [f.GetField("class") for f in lyr] == ["crops", "trees"]
    assert main(args + [pts]) != 0 and "is also an input (the points" in capsys.readouterr().err
    assert main(args + [str(tmp_path / "t.gpkg"), "--tolerance", "0"]) != 0
    assert "tolerance must be between 0.01 and 10" in capsys.readouterr().err and not (tmp_path / "t.gpkg").exists()
    assert main(args + [str(tmp_path / "t.gpkg"), "--field", "nope"]) != 0
    assert "no field 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("values, ftype", [((4.0, 2.0), "OFTInteger"), ((4.5, 2.0), None)])
def test_grown_polygons_keep_real_classes_as_numbers(tmp_path, wand_pair, tiny_checkpoint, values, ftype):
    """A Real class field (codes such as 4.0) was written as text ("4.0"), which training then read as a class
    name and a join on the codes missed; codes that are not whole (4.5) are refused, as training refuses them
    (QA round 20: they were written, then refused by `claire train`)."""
    from osgeo import ogr

    from claire.claire_plugin.core.training.grow_points import grow_from_points, write_grown

    pts = _points(tmp_path, [(12.5, 14.5, values[0]), (45.5, 5.5, values[1])])
    if ftype is None:
        with pytest.raises(ClaireError, match="holds numbers that are not whole \\(e.g. 4.5\\)"):
            grow_from_points(*wand_pair, pts, "class", checkpoint=tiny_checkpoint, max_width=21)
        return
    grown = grow_from_points(*wand_pair, pts, "class", checkpoint=tiny_checkpoint, max_width=21)
    ds = ogr.Open(write_grown(grown, str(tmp_path / "grown.gpkg")))
    lyr = ds.GetLayerByName("training")
    assert lyr.GetLayerDefn().GetFieldDefn(0).GetType() == getattr(ogr, ftype)
    assert [f.GetField("class") for f in lyr] == list(values)
    lyr = ds = None


def test_growing_from_polygons_or_from_nothing_says_what_to_do(tmp_path, wand_pair, tiny_checkpoint):
    from claire.claire_plugin.core.training.grow_points import grow_from_points, write_grown
    from claire.tests.fixtures.vectors import box_wkt

    poly = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}},
            "features": [{"type": "Feature", "properties": {"class": 1},
                          "geometry": json.loads(ogr_json(box_wkt(2, 2, 6, 6)))}]}
    path = tmp_path / "polys.geojson"
    path.write_text(json.dumps(poly))
    with pytest.raises(ClaireError, match="holds polygons, not points"):
        grow_from_points(*wand_pair, str(path), "class", checkpoint=tiny_checkpoint)
    pts = _points(tmp_path, [(-9.5, 3.5, 2)], name="outside.gpkg")
    grown = grow_from_points(*wand_pair, pts, "class", checkpoint=tiny_checkpoint)
    with pytest.raises(ClaireError, match="no point gave a polygon.*outside the optical raster"):
        write_grown(grown, str(tmp_path / "none.gpkg"))
    assert not (tmp_path / "none.gpkg").exists()


def ogr_json(wkt: str) -> str:
    from osgeo import ogr

    return ogr.CreateGeometryFromWkt(wkt).ExportToJson()


def test_points_in_another_crs_land_on_the_same_pixels(tmp_path, wand_pair, tiny_checkpoint):
    from osgeo import osr
    from rasterio.crs import CRS

    from claire.claire_plugin.core.io.points import write_point_layer
    from claire.claire_plugin.core.training.grow_points import grow_from_points

    utm = _points(tmp_path, [(12.5, 14.5, 4)], name="utm.gpkg")
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(32631)
    dst.ImportFromEPSG(4326)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _z = osr.CoordinateTransformation(src, dst).TransformPoint(*_xy(12.5, 14.5))
    ll = write_point_layer(str(tmp_path / "ll.gpkg"), "points", CRS.from_epsg(4326).to_wkt(), [("class", "int")],
                           [(lon, lat, {"class": 4})], "test points")
    a = grow_from_points(*wand_pair, utm, "class", checkpoint=tiny_checkpoint)
    b = grow_from_points(*wand_pair, ll, "class", checkpoint=tiny_checkpoint)
    assert a.polygons[0][0] == b.polygons[0][0] and a.polygons[0][3] == 391


def test_grown_polygons_keep_the_points_other_fields(tmp_path, wand_pair, tiny_checkpoint):
    """A survey layer's macroclass and notes travel to the polygons grown from its points (a point's own
    `pixels` field is not copied over the polygon's)."""
    from osgeo import ogr
    from rasterio.crs import CRS

    from claire.claire_plugin.core.io.points import write_point_layer
    from claire.claire_plugin.core.training.grow_points import grow_from_points, write_grown

    rows = [(12.5, 14.5, "crops", "vegetation", 0.5), (45.5, 5.5, "trees", "vegetation", None)]
    records = [(*_xy(r, c), {"class": v, "mc": m, "depth_m": d, "pixels": 99}) for r, c, v, m, d in rows]
    pts = write_point_layer(str(tmp_path / "survey.gpkg"), "points", CRS.from_string("EPSG:32631").to_wkt(),
                            [("class", "str"), ("mc", "str"), ("depth_m", "real"), ("pixels", "int")], records,
                            "test points")
    grown = grow_from_points(*wand_pair, pts, "class", checkpoint=tiny_checkpoint, max_width=21)
    assert grown.extra_fields == [("mc", "str"), ("depth_m", "real")]
    ds = ogr.Open(write_grown(grown, str(tmp_path / "grown.gpkg")))
    lyr = ds.GetLayerByName("training")
    got = [(f.GetField("class"), f.GetField("mc"), f.GetField("depth_m"), f.GetField("pixels")) for f in lyr]
    assert [g[:3] for g in got] == [("crops", "vegetation", 0.5), ("trees", "vegetation", None)]
    assert all(g[3] != 99 and g[3] > 0 for g in got)
    assert lyr.GetLayerDefn().GetFieldDefn(lyr.GetLayerDefn().GetFieldIndex("depth_m")).GetType() == ogr.OFTReal
    lyr = None
    ds = None


def test_an_infinite_tolerance_never_takes_nodata_or_another_polygons_pixels(tmp_path, wand_pair, tiny_checkpoint,
                                                                              capsys):
    """No data and the pixels of polygons grown before are marked infinitely far: `--tolerance inf` took them
    (polygons overlapping, nodata inside); the growth never does, and inf is refused."""
    from claire.claire_plugin.cli.main import main
    from claire.claire_plugin.core.training.wand import grow

    dist = np.array([[0.0, np.inf], [0.5, 2.0]], np.float32)
    assert grow(dist, 0, 0, np.inf).tolist() == [[True, False], [True, True]]
    pts = _points(tmp_path, [(12.5, 14.5, "crops")])
    code = main(["grow-polygons", "--optical", wand_pair[0], "--sar", wand_pair[1], "--points", pts, "--field",
                 "class", "--checkpoint", tiny_checkpoint, "--tolerance", "inf", "--output", str(tmp_path / "g.gpkg")])
    assert code == 2 and "between 0.01 and 10 standard deviations (got inf)" in capsys.readouterr().err


def test_one_part_multipoints_grow_and_a_training_layer_of_ones_own_is_never_replaced(tmp_path, wand_pair,
                                                                                        tiny_checkpoint, capsys):
    from osgeo import ogr

    from claire.claire_plugin.cli.main import main

    x, y = _xy(12.5, 14.5)
    pts = tmp_path / "multi.geojson"
    pts.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name":
                   "EPSG:32631"}}, "features": [{"type": "Feature", "properties": {"class": "crops"},
                   "geometry": {"type": "MultiPoint", "coordinates": [[x, y]]}}]}))
    args = ["grow-polygons", "--optical", wand_pair[0], "--sar", wand_pair[1], "--points", str(pts), "--field",
            "class", "--checkpoint", tiny_checkpoint, "--output"]
    out = str(tmp_path / "grown.gpkg")
    assert main(args + [out]) == 0 and "1 polygon(s) grown" in capsys.readouterr().out
    assert main(args + [out]) == 0  # an earlier grown layer is replaced
    mine = str(tmp_path / "mine.gpkg")  # hand-drawn polygons in a layer named as the grown one
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(mine)
    lyr = ds.CreateLayer("training", None, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetField("class", "trees")
    feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON (({x} {y}, {x + 30} {y}, {x + 30} {y - 30}, {x} {y}))"))
    lyr.CreateFeature(feat)
    feat = lyr = ds = None
    from pathlib import Path

    before = Path(mine).read_bytes()
    assert main(args + [mine]) == 2 and "already holds layer" in capsys.readouterr().err
    assert Path(mine).read_bytes() == before


# Mutation audit (QA round 14, third wave): rules no other test pinned, each shown to fail on its mutant.
def test_a_pixel_exactly_at_the_tolerance_joins():  # W1
    dist = np.array([[0.0, 1.0, 2.0]], np.float32)
    assert grow(dist, 0, 0, 1.0).tolist() == [[True, True, False]]


def test_the_seed_is_the_median_of_its_3x3_not_the_clicked_pixel():  # W3
    feats = np.ones((1, 5, 5), np.float32)
    feats[0, 2, 2] = 5.0                      # an outlier under the click
    d = distance_to_seed(feats, np.zeros((5, 5), bool), 2, 2)
    assert d[0, 0] == 0.0 and d[2, 2] == 4.0


def test_a_region_of_exactly_the_least_pixel_count_is_a_polygon(wand_scene):  # W4
    n = grow_region(wand_scene, *_xy(12.5, 14.5)).pixels
    assert grow_region(wand_scene, *_xy(12.5, 14.5), min_pixels=n).pixels == n
    with pytest.raises(ClaireError, match=f"Only {n} pixel"):
        grow_region(wand_scene, *_xy(12.5, 14.5), min_pixels=n + 1)


def test_saturated_pixels_never_join_a_polygon(tmp_path):
    """QA round 16: a 30 x 30 block at 65535 in every band (Sentinel-2's saturated value) became a training polygon of
    its own, trained on without a note (the card's clip made it look like bright ground)."""
    opt, sar = _scene_arrays()
    opt = opt.astype(np.uint16)
    opt[:, 12:16, 14:18] = 65535  # inside the field
    s = Scene(write_raster(tmp_path / "o.tif", opt), write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]),
              tiny_card())
    try:
        reg = grow_region(s, *_xy(25.5, 25.5))
        rows, cols = np.nonzero(reg.mask)
        taken = set(zip((rows + reg.row0).tolist(), (cols + reg.col0).tolist()))
        assert not taken & {(r, c) for r in range(12, 16) for c in range(14, 18)} and len(taken) > 100
        with pytest.raises(ClaireError, match="is saturated"):
            grow_region(s, *_xy(13.5, 15.5))
    finally:
        s.close()
