"""claire:sample_points and claire:map_accuracy in real QGIS: sample, label, area-weighted accuracy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def test_sample_label_and_map_accuracy(claire_plugin, tmp_path):
    import processing
    from osgeo import ogr

    from claire.tests.fixtures.helpers import write_raster

    data = np.ones((60, 40), np.uint8)
    data[:, 20:] = 2
    truth = data.copy()
    truth[:, 15:20] = 2  # a quarter of the mapped class 1 is class 2 on the ground
    path = write_raster(str(tmp_path / "map.tif"), data)
    res = processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 40, "SEED": 1,
                                                  "OUTPUT": str(tmp_path / "pts.gpkg")})
    assert res["POINTS"] == 80 and Path(res["OUTPUT"]).exists()
    ds = ogr.Open(res["OUTPUT"], 1)
    lyr = ds.GetLayer(0)
    wrong = 0
    for feat in lyr:
        x, y = feat.GetGeometryRef().GetX(), feat.GetGeometryRef().GetY()
        row, col = int((4600000.0 - y) // 10), int((x - 500000.0) // 10)
        assert data[row, col] == feat.GetField("map_class")
        wrong += int(truth[row, col] != data[row, col])
        feat.SetField("ref_class", int(truth[row, col]))
        lyr.SetFeature(feat)
    lyr = ds = None
    report = str(tmp_path / "acc.json")
    out = processing.run("claire:map_accuracy", {"MAP": path, "POINTS": res["OUTPUT"], "FIELD": "ref_class",
                                                 "REPORT": report})
    # W = 0.5 / 0.5 and 40 points per class: OA = 0.5 (40 - wrong) / 40 + 0.5
    assert out["OA"] == pytest.approx(0.5 * (40 - wrong) / 40 + 0.5)
    assert out["OA_CI95"] > 0 and json.loads(Path(report).read_text())["points_used"] == 80


def test_map_accuracy_gives_areas_in_the_unit_asked_as_the_command_line_does(claire_plugin, tmp_path):
    """`claire map-accuracy --area-unit` had no Processing twin: the log's table was always in hectares."""
    import processing
    from qgis.core import QgsProcessingFeedback

    from claire.claire_plugin.core.area_estimate import AREA_UNITS

    path, points = _labelled_sample(tmp_path, (30, 40), 1)  # 1200 px of 100 m2: 12 ha

    class Log(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, text):  # noqa: N802
            self.lines.append(text)

    tables = {}
    for k, unit in enumerate(AREA_UNITS):
        log = Log()
        processing.run("claire:map_accuracy", {"MAP": path, "POINTS": points, "FIELD": "ref_class",
                                               "AREA_UNIT": k}, feedback=log)
        tables[unit] = "\n".join(log.lines)
    assert "mapped ha" in tables["ha"] and " 12.00 " in tables["ha"], tables["ha"]
    assert "mapped km2" in tables["km2"] and " 0.12 " in tables["km2"]
    assert "mapped m2" in tables["m2"] and " 120000.00 " in tables["m2"]


def test_map_accuracy_algorithms_have_help(claire_plugin):
    from qgis.core import QgsApplication

    for alg_id in ("claire:sample_points", "claire:map_accuracy"):
        alg = QgsApplication.processingRegistry().algorithmById(alg_id)
        assert alg is not None, alg_id
        assert alg.shortHelpString() and not alg.icon().isNull()
        assert [p.name() for p in alg.parameterDefinitions() if not p.help()] == []


def test_map_accuracy_refuses_a_temporary_layer(claire_plugin, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsVectorLayer

    from claire.tests.fixtures.helpers import write_raster

    path = write_raster(str(tmp_path / "map.tif"), np.ones((10, 10), np.uint8))
    scratch = QgsVectorLayer("Point?crs=EPSG:32631&field=ref_class:integer", "scratch", "memory")
    with pytest.raises(QgsProcessingException, match=r"\(POINTS\): 'scratch' is not a file layer; save it as a GeoPackage"):
        processing.run("claire:map_accuracy", {"MAP": path, "POINTS": scratch, "FIELD": "ref_class"})


def test_map_accuracy_refuses_labels_not_yet_saved(claire_plugin, tmp_path):
    """Labels typed into the attribute table but not saved would be read as empty: said, with the fix."""
    import processing
    from qgis.core import QgsProcessingException, QgsProject, QgsVectorLayer

    from claire.tests.fixtures.helpers import write_raster

    path = write_raster(str(tmp_path / "map.tif"), np.ones((10, 10), np.uint8))
    res = processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 5, "SEED": 0,
                                                  "OUTPUT": str(tmp_path / "pts.gpkg")})
    layer = QgsVectorLayer(res["OUTPUT"], "points", "ogr")
    QgsProject.instance().addMapLayer(layer)  # as a user has it; the project deletes it before QGIS exits
    try:  # removed even when the test fails (a left 'points' layer failed the layer-filter test after it)
        assert layer.startEditing()
        for feat in list(layer.getFeatures())[:2]:  # two: a class's spread needs two labelled points
            assert layer.changeAttributeValue(feat.id(), layer.fields().indexOf("ref_class"), 1)
        with pytest.raises(QgsProcessingException, match=r"\(POINTS\): 'points' has unsaved edits; save them first"):
            processing.run("claire:map_accuracy", {"MAP": path, "POINTS": layer, "FIELD": "ref_class"})
        layer.commitChanges()
        out = processing.run("claire:map_accuracy", {"MAP": path, "POINTS": layer, "FIELD": "ref_class"})
        assert out["OA"] == pytest.approx(1.0)
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_map_accuracy_warns_of_reference_codes_in_another_legend(claire_plugin, tmp_path):
    """Reference codes that are no class of the map reach the user as a Processing warning."""
    import processing
    from osgeo import ogr
    from qgis.core import QgsProcessingFeedback

    from claire.tests.fixtures.helpers import write_raster

    class Heard(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.warnings, self.infos = [], []

        def pushWarning(self, text):  # noqa: N802
            self.warnings.append(text)

        def pushInfo(self, text):  # noqa: N802
            self.infos.append(text)

    data = np.ones((30, 30), np.uint8)
    data[:, 15:] = 2
    path = write_raster(str(tmp_path / "map.tif"), data)
    res = processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 10, "SEED": 0,
                                                  "OUTPUT": str(tmp_path / "pts.gpkg")})
    ds = ogr.Open(res["OUTPUT"], 1)
    lyr = ds.GetLayer(0)
    for feat in lyr:
        feat.SetField("ref_class", 20)  # a WorldCover code
        lyr.SetFeature(feat)
    lyr = ds = None
    heard = Heard()
    processing.run("claire:map_accuracy", {"MAP": path, "POINTS": res["OUTPUT"], "FIELD": "ref_class"},
                   feedback=heard)
    assert any("reference code(s) 20" in w and "match no class of the map" in w for w in heard.warnings), \
        heard.warnings
    assert not any(line.startswith("warning:") for line in heard.infos)  # not a line of the table


def test_selected_features_only_is_refused_with_the_fix_not_ignored(claire_plugin, tmp_path):
    """The Toolbox's "Selected features only" hands a feature source, which CLAIRE (reading the layer's file) cannot
    honour: refused naming the parameter and the fix, required (POINTS) or optional (suggest's LABELS)."""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeatureSourceDefinition, QgsProject, QgsVectorLayer

    from claire.tests.fixtures.helpers import write_raster

    data = np.ones((10, 10), np.uint8)
    data[:, 5:] = 2
    path = write_raster(str(tmp_path / "map.tif"), data)
    res = processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 5, "SEED": 0,
                                                  "OUTPUT": str(tmp_path / "pts.gpkg")})
    layer = QgsVectorLayer(res["OUTPUT"], "points", "ogr")
    QgsProject.instance().addMapLayer(layer)
    layer.selectByIds([next(layer.getFeatures()).id()])
    chosen = QgsProcessingFeatureSourceDefinition(layer.id(), True)
    try:
        with pytest.raises(QgsProcessingException,
                           match=r"\(POINTS\): .*Selected features only.*Save Selected Features As"):
            processing.run("claire:map_accuracy", {"MAP": path, "POINTS": chosen, "FIELD": "ref_class"})
        with pytest.raises(QgsProcessingException, match=r"\(LABELS\): .*Selected features only"):
            processing.run("claire:suggest", {"MAP": path, "CONFIDENCE": None, "SECOND": path, "LABELS": chosen,
                                              "FIELD": "map_class", "OUTPUT": str(tmp_path / "places.gpkg")})
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_a_file_of_two_point_layers_gets_processing_words_not_a_command_line_flag(claire_plugin, tmp_path):
    import subprocess

    import processing
    from qgis.core import QgsProcessingException

    from claire.tests.fixtures.helpers import write_raster

    path = write_raster(str(tmp_path / "map.tif"), np.ones((10, 10), np.uint8))
    res = processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 5, "SEED": 0,
                                                  "OUTPUT": str(tmp_path / "pts.gpkg")})
    subprocess.run(["ogr2ogr", "-update", "-nln", "copy", res["OUTPUT"], res["OUTPUT"]], check=True)
    with pytest.raises(QgsProcessingException, match=r"hold 2 layers.*PATH\|layername=NAME") as err:
        processing.run("claire:map_accuracy", {"MAP": path, "POINTS": res["OUTPUT"], "FIELD": "ref_class"})
    assert "--layer" not in str(err.value)


def test_sample_points_to_a_temporary_file_are_warned_and_polygons_are_no_points(claire_plugin, tmp_path):
    """QA round 16 (Processing dialogs): sample points written to QGIS's temporary folder (the dialog's default) went
    with the labels typed into them when QGIS closed, without a word; the POINTS of map accuracy offered polygon
    layers (refused only when run)."""
    import processing
    from qgis.core import QgsApplication, QgsProcessing, QgsProcessingFeedback

    from claire.tests.fixtures.helpers import write_raster

    said = []

    class Feedback(QgsProcessingFeedback):
        def pushWarning(self, warning):  # noqa: N802
            said.append(warning)

    path = write_raster(str(tmp_path / "map.tif"), np.ones((30, 30), np.uint8))
    processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 5, "OUTPUT": "TEMPORARY_OUTPUT"},
                   feedback=Feedback())
    assert any(w.startswith("OUTPUT is a temporary file") and "before you label its points" in w for w in said)
    said.clear()
    processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 5, "OUTPUT": str(tmp_path / "s.gpkg")},
                   feedback=Feedback())
    assert not [w for w in said if "temporary" in w]
    points = QgsApplication.processingRegistry().algorithmById("claire:map_accuracy").parameterDefinition("POINTS")
    assert points.dataTypes() == [QgsProcessing.SourceType.TypeVectorPoint]


def test_a_path_typed_as_text_is_that_file_not_a_project_layer_of_it(claire_plugin, tmp_path):
    """QA round 20: POINTS given as a path was matched by QGIS to a project layer of that file, so the layer's
    unsaved edits refused a run that reads the file (and which layer answered depended on their order)."""
    import processing
    from qgis.core import QgsProject, QgsVectorLayer

    from claire.tests.fixtures.helpers import write_raster

    path = write_raster(str(tmp_path / "map.tif"), np.ones((10, 10), np.uint8))
    res = processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 5, "SEED": 0,
                                                  "OUTPUT": str(tmp_path / "pts.gpkg")})
    saved = QgsVectorLayer(res["OUTPUT"], "points", "ogr")
    assert saved.startEditing()
    for feat in list(saved.getFeatures())[:2]:
        assert saved.changeAttributeValue(feat.id(), saved.fields().indexOf("ref_class"), 1)
    assert saved.commitChanges()
    layer = QgsVectorLayer(res["OUTPUT"], "points", "ogr")
    QgsProject.instance().addMapLayer(layer)
    try:
        assert layer.startEditing()
        feat = next(layer.getFeatures())
        assert layer.changeAttributeValue(feat.id(), layer.fields().indexOf("ref_class"), 2)  # not saved
        out = processing.run("claire:map_accuracy", {"MAP": path, "POINTS": res["OUTPUT"], "FIELD": "ref_class"})
        assert out["OA"] == pytest.approx(1.0)  # the file's labels, all 1
    finally:
        layer.rollBack()
        QgsProject.instance().removeMapLayer(layer.id())


def test_a_path_with_its_layer_named_reads_that_layer(claire_plugin, tmp_path):
    """Mutation check of round 20: a path typed with `|layername=` must keep the layer (a file of two layers is
    otherwise refused: "hold 2 layers")."""
    import processing

    path, points = _labelled_sample(tmp_path, (10, 10), 0, copy_as="labelled")
    out = processing.run("claire:map_accuracy", {"MAP": path, "POINTS": f"{points}|layername=labelled",
                                                 "FIELD": "ref_class"})
    assert out["OA"] == pytest.approx(1.0)


def _labelled_sample(tmp_path, shape, seed: int, copy_as: str = ""):
    """(map of class 1, its sample points all labelled 1), by claire:sample_points; `copy_as` adds a copy of the
    points as a second layer of that name."""
    import processing
    from osgeo import ogr

    from claire.tests.fixtures.helpers import write_raster

    path = write_raster(str(tmp_path / "map.tif"), np.ones(shape, np.uint8))
    res = processing.run("claire:sample_points", {"MAP": path, "PER_CLASS": 5, "SEED": seed,
                                                  "OUTPUT": str(tmp_path / "pts.gpkg")})
    ds = ogr.Open(res["OUTPUT"], 1)
    lyr = ds.GetLayer(0)
    for feat in lyr:
        feat.SetField("ref_class", 1)
        lyr.SetFeature(feat)
    if copy_as:
        ds.CopyLayer(lyr, copy_as)
    lyr = ds = None
    return path, res["OUTPUT"]
