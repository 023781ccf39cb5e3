"""Processing tools given a wrong class map, confidence, reference, seed or table folder (QA pass): each raises
QgsProcessingException naming the file, the problem and the fix; no traceback, nothing written."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from claire.tests.fixtures.helpers import synthetic_scene, write_raster

ROWS, COLS = 40, 50
CONFIDENCE = "confidence (top-class probability, %)"


def _inputs(tmp_path):
    """(class map, 12-band optical, 2-band SAR, reference labels, confidence raster) on one grid."""
    optical, sar, labels = synthetic_scene(ROWS, COLS)
    conf = np.full((ROWS, COLS), 70, np.uint8)
    return (write_raster(str(tmp_path / "map.tif"), labels, nodata=0, descriptions=["land cover class"]),
            write_raster(str(tmp_path / "optical.tif"), optical),
            write_raster(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]),
            write_raster(str(tmp_path / "ref.tif"), labels),
            write_raster(str(tmp_path / "conf.tif"), conf, nodata=255, descriptions=[CONFIDENCE]))


def _refused(alg, params, *words):
    """Run `alg`: a QgsProcessingException whose message holds every word and no traceback."""
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as info:
        processing.run(alg, params)
    text = str(info.value)
    assert "Traceback" not in text
    for w in words:
        assert w.lower() in text.lower(), text
    return text


def test_evaluate_refuses_wrong_classified_and_reference(claire_plugin, tmp_path):
    m, optical, sar, ref, conf = _inputs(tmp_path)
    text = tmp_path / "text.tif"
    text.write_text("not a raster\n")
    table = str(tmp_path / "out.csv")
    _refused("claire:evaluate", {"CLASSIFIED": str(text), "REFERENCE": ref, "OUTPUT_TABLE": table},
             "text.tif", "not a raster GDAL can read")
    _refused("claire:evaluate", {"CLASSIFIED": m, "REFERENCE": str(text), "OUTPUT_TABLE": table},
             "text.tif", "not a raster GDAL can read")
    _refused("claire:evaluate", {"CLASSIFIED": optical, "REFERENCE": ref, "OUTPUT_TABLE": table},
             "optical.tif", "has 12 bands; a classified raster has one band")
    _refused("claire:evaluate", {"CLASSIFIED": conf, "REFERENCE": ref, "OUTPUT_TABLE": table},
             "conf.tif", "confidence raster")
    _refused("claire:evaluate", {"CLASSIFIED": m, "REFERENCE": sar, "OUTPUT_TABLE": table}, "sar.tif", "has 2 bands")
    empty = write_raster(str(tmp_path / "empty.tif"), np.zeros((ROWS, COLS), np.uint8), nodata=0)
    _refused("claire:evaluate", {"CLASSIFIED": empty, "REFERENCE": ref, "OUTPUT_TABLE": table},
             "empty.tif", "no valid pixel")
    assert not os.path.exists(table)


def test_evaluate_checks_the_table_folder_first(claire_plugin, tmp_path, monkeypatch):
    m, _, _, ref, _ = _inputs(tmp_path)
    _refused("claire:evaluate", {"CLASSIFIED": m, "REFERENCE": ref, "OUTPUT_TABLE": str(tmp_path / "nodir" / "t.csv")},
             "per-class table folder", "does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path, mode, *args, **kwargs):  # root writes through any mode bits: the folder is made read-only
        if os.path.abspath(path) == str(locked) and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    _refused("claire:evaluate", {"CLASSIFIED": m, "REFERENCE": ref, "OUTPUT_TABLE": str(locked / "t.csv")},
             "per-class table folder", "not writable")
    assert list(locked.iterdir()) == []


def test_sample_points_and_suggest_refuse_wrong_rasters_and_seed(claire_plugin, tmp_path):
    m, _, sar, _, conf = _inputs(tmp_path)
    out = str(tmp_path / "out.gpkg")
    # the dialog's spin box stops at 0 (QA round 16: it went negative), and a negative seed is refused naming it
    _refused("claire:sample_points", {"MAP": m, "PER_CLASS": 5, "SEED": -1, "OUTPUT": out}, "seed", "from 0 to")
    _refused("claire:sample_points", {"MAP": conf, "PER_CLASS": 5, "OUTPUT": out}, "conf.tif", "confidence raster")
    _refused("claire:suggest", {"MAP": m, "CONFIDENCE": sar, "OUTPUT": out}, "sar.tif", "has 2 bands")
    _refused("claire:suggest", {"MAP": m, "CONFIDENCE": m, "OUTPUT": out}, "map.tif", "is a class map")
    _refused("claire:suggest", {"MAP": conf, "CONFIDENCE": m, "OUTPUT": out}, "conf.tif", "confidence raster")
    assert not os.path.exists(out)


def test_classify_refuses_a_reference_that_is_no_class_raster(claire_plugin, tmp_path, tiny_checkpoint):
    import processing

    _, optical, sar, ref, _ = _inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for reference, words in ((optical, ("optical.tif", "has 12 bands")), (sar, ("sar.tif", "has 2 bands"))):
        _refused("claire:classify", {"OPTICAL": optical, "SAR": sar, "REFERENCE": reference, "CHECKPOINT": tiny_checkpoint,
                                     "OUTPUT": str(out / "map.tif")}, *words)
        assert list(out.iterdir()) == []
    res = processing.run("claire:classify", {"OPTICAL": optical, "SAR": sar, "REFERENCE": ref,
                                             "CHECKPOINT": tiny_checkpoint, "OUTPUT": str(out / "map.tif")})
    assert Path(res["OUTPUT"]).exists() and res["OA"] == res["OA"]  # a number, not NaN
