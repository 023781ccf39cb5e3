"""claire:suggest in real QGIS: places where two maps disagree, away from the labels, as a point layer."""
from __future__ import annotations

import json

import numpy as np
import pytest

from claire.tests.fixtures.helpers import write_raster

X0, Y0 = 500000.0, 4600000.0


def _scene(tmp_path):
    a = np.ones((64, 64), np.uint8)
    b = a.copy()
    b[32:48, 16:32] = 2  # one disagreeing square
    b[0:16, 48:64] = 2  # and one under the labels
    m = write_raster(str(tmp_path / "map.tif"), a)
    o = write_raster(str(tmp_path / "forest.tif"), b)
    poly = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}},
            "features": [{"type": "Feature", "properties": {"class": 2}, "geometry": {"type": "Polygon", "coordinates": [[
                [X0 + 500, Y0 - 20], [X0 + 620, Y0 - 20], [X0 + 620, Y0 - 140], [X0 + 500, Y0 - 140],
                [X0 + 500, Y0 - 20]]]}}]}
    lab = tmp_path / "labels.geojson"
    lab.write_text(json.dumps(poly))
    return m, o, str(lab)


def test_suggest_writes_the_places_and_skips_the_labelled_square(claire_plugin, tmp_path):
    import processing
    from osgeo import ogr
    from qgis.core import QgsVectorLayer

    m, o, lab = _scene(tmp_path)
    labels = QgsVectorLayer(lab, "labels", "ogr")
    out = str(tmp_path / "next.gpkg")
    res = processing.run("claire:suggest", {"MAP": m, "SECOND": o, "LABELS": labels, "FIELD": "class", "N": 5,
                                            "SQUARE": 16, "OUTPUT": out})
    # the polygon (rows 2-13, cols 50-61) and 8 px around it (rows 0-21, cols 42-63) are left out
    assert res["PLACES"] == 1 and res["DISAGREEMENT"] == pytest.approx(256 / (4096 - 22 * 22))
    ds = ogr.Open(out)  # held: a layer outlives its dataset only in a crash
    feats = list(ds.GetLayerByName("label_next"))
    assert len(feats) == 1
    x, y = feats[0].GetGeometryRef().GetX(), feats[0].GetGeometryRef().GetY()
    row, col = int((Y0 - y) // 10), int((x - X0) // 10)
    assert 32 <= row < 48 and 16 <= col < 32 and feats[0].GetField("doubt") == 100


def test_suggest_needs_a_second_map_or_a_confidence(claire_plugin, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    m, o, lab = _scene(tmp_path)
    with pytest.raises(QgsProcessingException, match="second classified map"):
        processing.run("claire:suggest", {"MAP": m, "OUTPUT": str(tmp_path / "x.gpkg")})


def test_suggest_has_help(claire_plugin):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("claire:suggest")
    assert alg is not None and alg.shortHelpString() and not alg.icon().isNull()
    assert [p.name() for p in alg.parameterDefinitions() if not p.help()] == []
