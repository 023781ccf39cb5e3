"""claire:sample_points, claire:map_accuracy, claire:grow_polygons and claire:suggest in real QGIS: an output
that is an input, a folder, or in a missing folder gives one QgsProcessingException naming the problem and the
fix (never a hidden temporary name), before any work; the inputs stay byte-identical and nothing is left
behind. The command-line twins are in tests/core/test_output_over_input.py."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from claire.tests.core.test_output_over_input import _points, tree  # the same helpers as the CLI twins
from claire.tests.fixtures.helpers import synthetic_scene, write_raster
from claire.tests.qgis.test_bad_inputs_alg import run_alg

X0, Y0 = 500000.0, 4600000.0


@pytest.fixture
def scene(tmp_path):
    """Inputs as paths (a QgsVectorLayer held by a failed run's exception would outlive QGIS) in tmp_path/in;
    tmp_path/out exists and is empty."""
    d = tmp_path / "in"
    d.mkdir()
    (tmp_path / "out").mkdir()
    a = np.ones((64, 64), np.uint8)
    a[:, 32:] = 2
    b = a.copy()
    b[40:56, 8:24] = 2
    opt, sar, _ = synthetic_scene(64, 96)
    return {
        "map": write_raster(str(d / "map.tif"), a), "second": write_raster(str(d / "forest.tif"), b),
        "points": _points(d / "pts.gpkg", [(X0 + 10 * c + 5, Y0 - 10 * r - 5, {"ref_class": int(a[r, c])})
                                           for r in range(2, 62, 6) for c in range(2, 62, 6)], "ref_class"),
        "labels": _points(d / "labels.gpkg", [(X0 + 505, Y0 - 55, {"class": 2})], "class"),
        "optical": write_raster(str(d / "o.tif"), opt),
        "sar": write_raster(str(d / "s.tif"), sar, descriptions=["VV", "VH"]),
        "survey": _points(d / "survey.gpkg", [(X0 + 155, Y0 - 305, {"cover": "water"})], "cover", "str"),
        "out": str(tmp_path / "out"), "root": str(tmp_path)}


def _refused(scene, alg_id, params, *patterns):
    before = tree(scene["root"])
    results, message = run_alg(alg_id, params)
    assert results is None and message, results
    for pattern in patterns:
        assert pattern in message, message
    assert ".partial" not in message and "Traceback" not in message, message
    assert tree(scene["root"]) == before  # inputs byte-identical; no output, temporary or backup left
    return message


def _accuracy(scene, report):
    return {"MAP": scene["map"], "POINTS": scene["points"], "FIELD": "ref_class", "REPORT": report}


def _grow(scene, output, tiny_checkpoint):
    return {"OPTICAL": scene["optical"], "SAR": scene["sar"], "POINTS": scene["survey"], "FIELD": "cover",
            "CHECKPOINT": tiny_checkpoint, "OUTPUT": output}


def _suggest(scene, output, labels=None):
    params = {"MAP": scene["map"], "SECOND": scene["second"], "N": 3, "SQUARE": 16, "OUTPUT": output}
    if labels:
        params.update(LABELS=labels, FIELD="class")
    return params


def test_map_accuracy_report_over_the_points_or_the_map_is_refused(claire_plugin, scene):
    for target, role in ((scene["points"], "labelled points"), (scene["map"], "classified map")):
        msg = _refused(scene, "claire:map_accuracy", _accuracy(scene, target), f"is also an input (the {role} ")
        assert f"writing there would overwrite the {role}" in msg


def test_map_accuracy_report_folder_is_refused(claire_plugin, scene):
    d = Path(scene["out"], "acc.json")
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    _refused(scene, "claire:map_accuracy", _accuracy(scene, str(d)), "is a folder",
             repr(os.path.join(str(d), "report.json")))


def test_map_accuracy_report_still_written(claire_plugin, scene):
    report = os.path.join(scene["out"], "acc.json")
    res, message = run_alg("claire:map_accuracy", _accuracy(scene, report))
    assert message is None and res["OA"] == pytest.approx(1.0) and os.listdir(scene["out"]) == ["acc.json"]


def test_grow_polygons_over_the_points_is_refused(claire_plugin, scene, tiny_checkpoint):
    _refused(scene, "claire:grow_polygons", _grow(scene, scene["survey"], tiny_checkpoint),
             "is also an input (the labelled points ")


def test_suggest_over_the_labels_or_the_map_is_refused(claire_plugin, scene):
    _refused(scene, "claire:suggest", _suggest(scene, scene["labels"], scene["labels"]),
             "is also an input (the labels ")
    _refused(scene, "claire:suggest", _suggest(scene, scene["second"]), "is also an input (the second map ")


def test_sample_points_over_the_map_is_refused(claire_plugin, scene):
    gpkg_map = write_raster(os.path.join(scene["root"], "in", "map_as.gpkg"), np.ones((20, 20), np.uint8))
    _refused(scene, "claire:sample_points", {"MAP": gpkg_map, "PER_CLASS": 5, "SEED": 0, "OUTPUT": gpkg_map},
             "is also an input (the classified map ")


def test_a_missing_output_folder_is_named(claire_plugin, scene, tiny_checkpoint):
    missing = os.path.join(scene["out"], "nodir")
    cases = [("claire:sample_points", {"MAP": scene["map"], "PER_CLASS": 5, "SEED": 0,
                                       "OUTPUT": os.path.join(missing, "pts.gpkg")}),
             ("claire:grow_polygons", _grow(scene, os.path.join(missing, "grown.gpkg"), tiny_checkpoint)),
             ("claire:suggest", _suggest(scene, os.path.join(missing, "next.gpkg"))),
             ("claire:map_accuracy", _accuracy(scene, os.path.join(missing, "acc.json")))]
    for alg_id, params in cases:
        msg = _refused(scene, alg_id, params, f"folder {missing!r} does not exist", "create it")
        assert "sqlite" not in msg, (alg_id, msg)


def test_a_folder_as_gpkg_output_is_refused(claire_plugin, scene, tiny_checkpoint):
    d = Path(scene["out"], "results.gpkg")
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    _refused(scene, "claire:suggest", _suggest(scene, str(d)), "is a folder", "places.gpkg")
    _refused(scene, "claire:grow_polygons", _grow(scene, str(d), tiny_checkpoint), "is a folder", "polygons.gpkg")
    _refused(scene, "claire:sample_points", {"MAP": scene["map"], "PER_CLASS": 5, "SEED": 0, "OUTPUT": str(d)},
             "is a folder", "points.gpkg")
