"""Where to label next (core.suggest): squares where two maps disagree or the confidence is low, away from labels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.suggest import as_dict, suggest, summary_lines, write_places
from claire.tests.fixtures.helpers import write_raster

X0, Y0 = 500000.0, 4600000.0  # write_raster's origin, 10 m pixels


def _named_map(path, data, names):
    """A class raster with `class_<value>` band tags (what classes_from_gdal reads)."""
    import rasterio

    write_raster(str(path), data)
    with rasterio.open(str(path), "r+") as ds:
        ds.update_tags(1, **{f"class_{v}": n for v, n in names.items()})
    return str(path)


def _maps(tmp_path, block=(slice(32, 48), slice(16, 32))):
    a = np.ones((64, 64), np.uint8)
    a[:, 40:] = 2
    b = a.copy()
    b[block] = 3
    m = _named_map(tmp_path / "map.tif", a, {1: "crops", 2: "trees", 3: "built area"})
    o = _named_map(tmp_path / "forest.tif", b, {1: "crops", 2: "trees", 3: "built area"})
    return a, b, m, o


def test_the_disagreeing_square_comes_first_and_says_what_each_map_says(tmp_path):
    a, b, m, o = _maps(tmp_path)
    s = suggest(m, o, n=5)
    assert len(s.places) == 1  # no other square is in doubt at all
    p = s.places[0]
    assert (p.rank, p.doubt) == (1, 1.0)
    assert 32 <= p.row < 48 and 16 <= p.col < 32
    assert (s.name(p.map_value), s.name(p.other_value, True)) == ("crops", "built area")
    assert (p.x, p.y) == (X0 + (p.col + 0.5) * 10, Y0 - (p.row + 0.5) * 10)
    assert s.disagreement == pytest.approx(256 / 4096)
    assert s.pairs() == [("crops", "built area", 1)]
    assert any("crops vs built area" in line for line in summary_lines(s))
    assert any("only 1 of 5" in n for n in s.notes)


def test_the_point_sits_where_the_doubt_is_densest(tmp_path):
    a, b, m, o = _maps(tmp_path, (slice(37, 43), slice(20, 26)))  # 6 x 6 inside the square rows 32.., cols 16..
    s = suggest(m, o, n=1, min_doubt=0.1)
    p = s.places[0]
    assert 37 <= p.row < 43 and 20 <= p.col < 26
    assert p.doubt == pytest.approx(36 / 256)


def test_pixels_near_the_labels_are_skipped(tmp_path):
    a, b, m, o = _maps(tmp_path)
    b[0:16, 0:16] = 3  # a second disagreement, far from the labels
    o = _named_map(tmp_path / "forest2.tif", b, {1: "crops", 2: "trees", 3: "built area"})
    poly = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}},
            "features": [{"type": "Feature", "properties": {"class": "crops"}, "geometry": {
                "type": "Polygon", "coordinates": [[[X0 + 200, Y0 - 380], [X0 + 280, Y0 - 380], [X0 + 280, Y0 - 460],
                                                    [X0 + 200, Y0 - 460], [X0 + 200, Y0 - 380]]]}}]}
    lab = tmp_path / "labels.geojson"
    lab.write_text(json.dumps(poly))
    s = suggest(m, o, labels=str(lab), field_name="class", n=5, spacing=2)
    assert [(p.row // 16, p.col // 16) for p in s.places] == [(0, 0)]
    # without the labels both squares are found (two squares apart)
    both = suggest(m, o, n=5, spacing=2)
    assert sorted((p.row // 16, p.col // 16) for p in both.places) == [(0, 0), (2, 1)]
    # the share counts pixels away from the labels only: the 8 x 8 polygon and 8 px around it (24 x 24)
    assert (both.disagreement, s.disagreement) == (pytest.approx(512 / 4096), pytest.approx(256 / (4096 - 576)))
    assert "pixels within 8 px of them are skipped" in " ".join(s.notes)
    # a polygon just left of a disagreeing square leaves the rest of it to suggest, its point away from the polygon
    beside = {"type": "FeatureCollection", "crs": poly["crs"], "features": [{
        "type": "Feature", "properties": {"class": "crops"}, "geometry": {"type": "Polygon", "coordinates": [[
            [X0 + 80, Y0 - 320], [X0 + 120, Y0 - 320], [X0 + 120, Y0 - 480], [X0 + 80, Y0 - 480], [X0 + 80, Y0 - 320]]]}}]}
    lab2 = tmp_path / "beside.geojson"
    lab2.write_text(json.dumps(beside))
    got = {(p.row // 16, p.col // 16): p for p in suggest(m, o, labels=str(lab2), field_name="class", n=2,
                                                           spacing=2).places}
    assert set(got) == {(0, 0), (2, 1)} and got[(2, 1)].col >= 12 + 8 and got[(2, 1)].doubt == 1.0


def test_places_keep_their_spacing(tmp_path):
    a, b, m, o = _maps(tmp_path, (slice(0, 64), slice(0, 32)))  # two columns of squares all in doubt
    s = suggest(m, o, n=10, spacing=3)
    cells = [(p.row // 16, p.col // 16) for p in s.places]
    assert len(cells) >= 2
    for i, c in enumerate(cells):
        for d in cells[:i]:
            assert max(abs(c[0] - d[0]), abs(c[1] - d[1])) >= 3


def test_confidence_alone_ranks_by_doubt_and_agreeing_pixels_add_their_doubt(tmp_path):
    a, b, m, o = _maps(tmp_path)
    conf = np.full((64, 64), 90, np.uint8)
    conf[0:16, 48:64] = 30
    conf[60:64, 0:4] = 255  # nodata
    c = write_raster(str(tmp_path / "conf.tif"), conf, nodata=255)
    s = suggest(m, confidence=c, n=1)
    p = s.places[0]
    assert (p.row // 16, p.col // 16) == (0, 3) and p.doubt == pytest.approx(0.7) and p.confidence == 30
    assert p.other_value is None
    both = suggest(m, o, c, n=2, spacing=2, min_doubt=0.05)
    assert [(q.row // 16, q.col // 16) for q in both.places] == [(2, 1), (0, 3)]
    assert both.places[0].doubt == pytest.approx(1.0)
    assert both.mean_doubt == pytest.approx(np.mean(np.where(a != b, 1.0, 1 - conf / 100.0)[conf != 255]), rel=1e-4)


def test_bad_inputs_get_clear_errors(tmp_path):
    a, b, m, o = _maps(tmp_path)
    with pytest.raises(ClaireError, match="second classified map .* or the map's confidence"):
        suggest(m)
    small = write_raster(str(tmp_path / "small.tif"), np.ones((32, 64), np.uint8))
    with pytest.raises(ClaireError, match="not on the grid of the map .* classify both from the same optical"):
        suggest(m, small)
    shifted = write_raster(str(tmp_path / "shift.tif"), b, origin=(X0 + 10, Y0))
    with pytest.raises(ClaireError, match="not on the grid"):
        suggest(m, shifted)
    floats = write_raster(str(tmp_path / "f.tif"), a.astype(np.float32))
    with pytest.raises(ClaireError, match="not class codes"):
        suggest(floats, o)
    with pytest.raises(ClaireError, match="not class codes"):
        suggest(m, floats)  # the second map is a classified map too
    optical = write_raster(str(tmp_path / "optical.tif"), np.stack([a.astype(np.uint16) * 900] * 4))
    with pytest.raises(ClaireError, match="classified map '.*optical.tif' has 4 bands; a classified map has one"):
        suggest(optical, o)
    with pytest.raises(ClaireError, match="second map '.*optical.tif' has 4 bands"):
        suggest(m, optical)
    with pytest.raises(ClaireError, match="number of places"):
        suggest(m, o, n=0)
    with pytest.raises(ClaireError, match="square"):
        suggest(m, o, square=2)


def test_two_maps_that_agree_everywhere_suggest_nothing_and_say_so(tmp_path):
    a, b, m, o = _maps(tmp_path)
    s = suggest(m, m, n=5)
    assert s.places == [] and s.disagreement == 0.0
    assert any("no square of 16 px is in doubt on 20 % or more of its pixels: nothing to suggest" in n
               for n in s.notes)
    assert not any("only 0" in n for n in s.notes)


def test_places_are_written_as_a_point_layer(tmp_path):
    from osgeo import ogr

    a, b, m, o = _maps(tmp_path)
    s = suggest(m, o, n=3)
    out = write_places(s, str(tmp_path / "next.gpkg"))
    ds = ogr.Open(out)
    lyr = ds.GetLayerByName("label_next")
    feats = list(lyr)
    assert len(feats) == 1
    f = feats[0]
    assert (f.GetField("rank"), f.GetField("doubt"), f.GetField("map_name"), f.GetField("other_name")) == \
        (1, 100, "crops", "built area")
    assert f.IsFieldNull("confidence")
    assert (f.GetGeometryRef().GetX(), f.GetGeometryRef().GetY()) == (s.places[0].x, s.places[0].y)
    assert "32631" in lyr.GetSpatialRef().ExportToWkt()
    d = as_dict(s)
    assert d["places"][0]["map_name"] == "crops" and json.dumps(d)
    with pytest.raises(ClaireError, match=r"\.gpkg"):
        write_places(s, str(tmp_path / "next.shp"))


def test_cli_suggest(tmp_path, capsys):
    from claire.claire_plugin.cli.main import main

    a, b, m, o = _maps(tmp_path)
    out = tmp_path / "next.gpkg"
    assert main(["suggest", "--map", m, "--second", o, "--output", str(out), "--json", str(tmp_path / "n.json")]) == 0
    text = capsys.readouterr().out
    assert "disagree on 6%" in text and "crops vs built area (1)" in text and out.exists()
    saved = json.loads((tmp_path / "n.json").read_text())
    assert saved["places"][0]["rank"] == 1
    # percent, as the places layer's doubt field and the confidence (a fraction beside a percent before)
    assert saved["places"][0]["doubt_pct"] == 100.0 and saved["disagreement_pct"] == pytest.approx(6, abs=0.5)
    assert main(["suggest", "--map", m, "--second", o, "--output", m]) != 0
    assert "is also an input (the map" in capsys.readouterr().err


def test_maps_with_different_legends_are_compared_by_class_not_by_code(tmp_path):
    """A network trained from polygons numbers its classes its own way (1 built area, 2 crops, 3 trees) while the
    bundled checkpoint's map has 1 water, 2 trees, 4 crops: the same ground in both is agreement, not doubt."""
    a = np.full((64, 64), 2, np.uint8)  # crops in the network's codes
    a[:, 40:] = 3  # trees
    b = np.where(a == 2, 4, 2).astype(np.uint8)  # the same classes in the bundled legend
    b[32:48, 16:32] = 1  # water where the network says crops: the one real disagreement
    m = _named_map(tmp_path / "net.tif", a, {1: "built area", 2: "crops", 3: "trees"})
    o = _named_map(tmp_path / "default.tif", b, {1: "water", 2: "trees", 4: "crops"})
    s = suggest(m, o, n=5)
    assert s.disagreement == pytest.approx(256 / 4096)
    assert len(s.places) == 1 and s.pairs() == [("crops", "water", 1)]


def test_places_after_training_checks_the_forest_before_any_map(tmp_path):
    from types import SimpleNamespace

    from claire.claire_plugin.core.suggest import places_after_training

    params = SimpleNamespace(output=str(tmp_path / "net.safetensors"), labels=None, field=None, layer=None)
    out = str(tmp_path / "places.gpkg")
    with pytest.raises(ClaireError, match="random forest .* is not there"):
        places_after_training(params, str(tmp_path / "net.forest.safetensors"), out)
    with pytest.raises(ClaireError, match="is not there"):
        places_after_training(params, None, out)
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT

    with pytest.raises(ClaireError, match="is not a random forest"):
        places_after_training(params, str(DEFAULT_CHECKPOINT), out)
    assert not list(tmp_path.iterdir())  # no map was made
    with pytest.raises(ClaireError, match=r"GeoPackage; give a path ending in \.gpkg"):
        places_after_training(params, None, str(tmp_path / "places.shp"))


def test_places_after_training_cancelled_leaves_the_last_maps_as_they_were(tmp_path, monkeypatch):
    """QA round 16: a cancel during the forest's map had already replaced the network's map, so the two maps and
    the places beside them came from different runs while the dock said "no output was written". The maps are
    made aside and replace the last ones only when both are done; nothing of the cancelled run stays."""
    from types import SimpleNamespace

    from claire.claire_plugin.core import engine
    from claire.claire_plugin.core import suggest as suggest_module
    from claire.claire_plugin.core.errors import CancelledError

    params = SimpleNamespace(output=str(tmp_path / "net.safetensors"), labels=None, field=None, layer=None,
                             optical="o.tif", sar="s.tif", optical_bands=None, sar_bands=None, optical_offset=None,
                             sar_units="auto", config=SimpleNamespace(device="cpu"))
    monkeypatch.setattr(suggest_module, "require_forest", lambda path: None)
    out = str(tmp_path / "places.gpkg")
    last = {name: tmp_path / f"places_{name}.tif" for name in ("network", "forest")}
    for path in last.values():
        path.write_bytes(b"the last run's map")

    def classify(p, progress=None, is_cancelled=None):
        if "forest" in p.output:
            raise CancelledError()
        with open(p.output, "wb") as fh:
            fh.write(b"a new map")

    monkeypatch.setattr(engine, "classify", classify)
    with pytest.raises(CancelledError):
        suggest_module.places_after_training(params, "forest.safetensors", out)
    assert all(path.read_bytes() == b"the last run's map" for path in last.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["places_forest.tif", "places_network.tif"]


def test_places_after_training_cancelled_after_its_maps_writes_nothing(tmp_path, monkeypatch):
    """QA round 16 (fix check): a Cancel while the two maps were compared (92 %) still wrote the maps and places."""
    from types import SimpleNamespace

    from claire.claire_plugin.core import engine
    from claire.claire_plugin.core import suggest as suggest_module
    from claire.claire_plugin.core.errors import CancelledError

    params = SimpleNamespace(output=str(tmp_path / "net.safetensors"), labels=None, field=None, layer=None,
                             optical="o.tif", sar="s.tif", optical_bands=None, sar_bands=None, optical_offset=None,
                             sar_units="auto", config=SimpleNamespace(device="cpu"))
    monkeypatch.setattr(suggest_module, "require_forest", lambda path: None)
    monkeypatch.setattr(engine, "classify", lambda p, progress=None, is_cancelled=None: open(p.output, "wb").close())
    asked = {"stop": False}
    monkeypatch.setattr(suggest_module, "suggest", lambda *a, **k: asked.update(stop=True))
    with pytest.raises(CancelledError):
        suggest_module.places_after_training(params, "forest.safetensors", str(tmp_path / "places.gpkg"),
                                             is_cancelled=lambda: asked["stop"])
    assert list(tmp_path.iterdir()) == []


def test_an_empty_map_is_refused_not_answered_with_no_places(tmp_path):
    """QA round 20: a map of nodata only gave exit 0, an empty GeoPackage and "written" (sample-points refused it)."""
    empty = write_raster(str(tmp_path / "empty.tif"), np.zeros((64, 64), np.uint8), nodata=0)
    _a, _b, m, o = _maps(tmp_path)
    with pytest.raises(ClaireError, match="no pixel of the map .*empty.tif' is classified where the second map has"):
        suggest(empty, o, n=5)
    with pytest.raises(ClaireError, match="no pixel of the map .* is classified where the second map has data too"):
        suggest(m, empty, n=5)
    labels = write_raster(str(tmp_path / "labels.tif"), np.pad(np.ones((4, 4), np.uint8), ((0, 60), (0, 60))),
                          nodata=0)
    with pytest.raises(ClaireError, match="no pixel of the map .*empty.tif' is classified"):  # review: labels given,
        suggest(empty, o, labels=labels, n=5)  # the empty map was blamed on them ("no valid pixel away from them")
    everywhere = write_raster(str(tmp_path / "all.tif"), np.ones((64, 64), np.uint8), nodata=0)
    s = suggest(m, o, labels=everywhere, n=5)  # a map with data, all of it labelled: no place, no refusal
    assert s.places == [] and any("no valid pixel away from the labels" in n for n in s.notes)
