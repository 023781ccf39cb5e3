"""claire:classify_folder in real QGIS: pairing, carrying on past a failing pair, unmatched files, summary."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import rasterio


def _folders(tmp_path):
    """Two good pairs (a, b), a pair whose SAR lies elsewhere (bad), an optical and a SAR without partner."""
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    opt_dir, sar_dir = tmp_path / "s2", tmp_path / "s1"
    opt_dir.mkdir()
    sar_dir.mkdir()
    optical, sar, _ = synthetic_scene(40, 48)
    for name in ("a", "b", "bad", "lonely"):
        write_raster(str(opt_dir / f"{name}_S2.tif"), optical)
    for name in ("a", "b"):
        write_raster(str(sar_dir / f"{name}_S1.tif"), sar, descriptions=["VV", "VH"])
    # The failing pair: SAR 100 km away, so the rasters do not overlap.
    write_raster(str(sar_dir / "bad_S1.tif"), sar, origin=(600000.0, 4700000.0), descriptions=["VV", "VH"])
    write_raster(str(sar_dir / "orphan_S1.tif"), sar, descriptions=["VV", "VH"])
    return str(opt_dir), str(sar_dir)


def test_folder_batch_carries_on_and_reports(claire_plugin, tmp_path, tiny_checkpoint):
    import processing

    opt_dir, sar_dir = _folders(tmp_path)
    out_dir = str(tmp_path / "out")
    res = processing.run("claire:classify_folder", {
        "OPTICAL_FOLDER": opt_dir, "SAR_FOLDER": sar_dir, "PAIRING": "_S2->_S1", "OUTPUT_FOLDER": out_dir,
        "CHECKPOINT": tiny_checkpoint, "TILE_SIZE": 32, "OVERLAP": 8})
    assert (res["PAIRS"], res["SUCCEEDED"], res["FAILED"], res["UNMATCHED"]) == (3, 2, 1, 2)
    assert sorted(os.path.basename(p) for p in res["OUTPUTS"]) == ["a_S2_landcover.tif", "b_S2_landcover.tif"]
    for path in res["OUTPUTS"]:
        with rasterio.open(path) as ds:
            assert ds.shape == (40, 48) and ds.nodata == 0
        assert os.path.exists(os.path.splitext(path)[0] + ".qml")
    failures = json.loads(res["FAILURES"])
    assert [os.path.basename(f["optical"]) for f in failures] == ["bad_S2.tif"]
    assert "overlap" in failures[0]["reason"].lower()
    unmatched = {os.path.basename(u["path"]): u["side"] for u in json.loads(res["UNMATCHED_FILES"])}
    assert unmatched == {"lonely_S2.tif": "optical", "orphan_S1.tif": "sar"}

    summary = json.loads(Path(res["SUMMARY_JSON"]).read_text())
    assert summary["succeeded"] == 2 and summary["failed"] == 1
    rows = list(csv.DictReader(Path(res["SUMMARY_CSV"]).read_text().splitlines()))
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok", "unmatched", "unmatched"]


def test_folder_batch_with_identical_names_and_skip_existing(claire_plugin, tmp_path, tiny_checkpoint):
    import processing

    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    optical, sar, _ = synthetic_scene(32, 32)
    (tmp_path / "o").mkdir()
    (tmp_path / "s").mkdir()
    write_raster(str(tmp_path / "o" / "t1.tif"), optical)
    write_raster(str(tmp_path / "s" / "t1.tif"), sar, descriptions=["VV", "VH"])
    params = {"OPTICAL_FOLDER": str(tmp_path / "o"), "SAR_FOLDER": str(tmp_path / "s"),
              "OUTPUT_FOLDER": str(tmp_path / "out"), "CHECKPOINT": tiny_checkpoint, "TILE_SIZE": 32,
              "OVERLAP": 0}
    first = processing.run("claire:classify_folder", params)
    assert (first["PAIRS"], first["SUCCEEDED"], first["FAILED"], first["UNMATCHED"]) == (1, 1, 0, 0)
    again = processing.run("claire:classify_folder", {**params, "SKIP_EXISTING": True})
    statuses = [r["status"] for r in json.loads(Path(again["SUMMARY_JSON"]).read_text())["results"]]
    assert statuses == ["skipped"]


def test_algorithms_have_help_for_every_parameter(claire_plugin):
    from qgis.core import QgsApplication

    for alg_id in ("claire:classify_folder", "claire:evaluate"):
        alg = QgsApplication.processingRegistry().algorithmById(alg_id)
        assert alg is not None, alg_id
        assert alg.shortHelpString() and not alg.icon().isNull()
        missing = [p.name() for p in alg.parameterDefinitions() if not p.help()]
        assert missing == [], f"{alg_id} parameters without help: {missing}"


def test_help_in_angle_brackets_reaches_the_help_panel_and_the_tooltips(claire_plugin):
    """QA round 16 (Processing dialogs): the help panel and the tooltips render HTML and dropped '<key>' from
    '(?P<key>...)', so the pairing example a user copied was an invalid regular expression."""
    from qgis.core import QgsApplication
    from qgis.PyQt.QtGui import QTextDocument

    def shown(text: str) -> str:
        doc = QTextDocument()
        doc.setHtml(text)
        return doc.toPlainText()

    alg = QgsApplication.processingRegistry().algorithmById("claire:classify_folder")
    panel = shown(alg.shortHelpString())
    assert "regex:(?P<key>" in panel and "<optical name>" in panel
    assert "(?P<key>" in shown(alg.parameterDefinition("PAIRING").toolTip())
    evaluate = QgsApplication.processingRegistry().algorithmById("claire:evaluate")
    assert "<value>" in shown(evaluate.shortHelpString())


def test_no_pair_found_names_the_pairing_parameter_not_the_flag(claire_plugin, tmp_path, tiny_checkpoint):
    """QA round 18 (a user's reading): with no pair found the message said "(--pairing, or Pairing rule (empty: same
    names) (PAIRING) in QGIS)"; it names the parameter only now."""
    import processing
    import pytest
    from qgis.core import QgsProcessingException

    opt_dir, sar_dir = _folders(tmp_path)
    with pytest.raises(QgsProcessingException) as info:  # identical names: none of the _S2 files has a partner
        processing.run("claire:classify_folder", {"OPTICAL_FOLDER": opt_dir, "SAR_FOLDER": sar_dir,
                                                  "OUTPUT_FOLDER": str(tmp_path / "out"),
                                                  "CHECKPOINT": tiny_checkpoint})
    message = str(info.value)
    assert "found a SAR partner" in message and "(PAIRING) that maps the names" in message, message
    assert "--" not in message and not (tmp_path / "out").exists()
