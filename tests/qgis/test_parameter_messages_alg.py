"""A parameter QGIS itself refuses (out of range, not an option, a file that does not exist) gets a message
naming the parameter, the value and what is accepted, not QGIS's bare "Incorrect parameter value for NAME"."""
from __future__ import annotations

import os

import pytest

from claire.tests.qgis.test_bad_inputs_alg import run_alg


@pytest.fixture
def pair(tmp_path):
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    optical, sar, _ = synthetic_scene(24, 30)
    write_raster(tmp_path / "opt.tif", optical)
    write_raster(tmp_path / "sar.tif", sar, descriptions=["VV", "VH"])
    return str(tmp_path / "opt.tif"), str(tmp_path / "sar.tif"), str(tmp_path / "out.tif")


@pytest.mark.parametrize("extra, expected", [
    ({"TILE_SIZE": -64}, r"Tile size .*\(TILE_SIZE\) = -64 is not accepted; give a whole number (of at least|from) 0"),
    ({"BATCH_SIZE": -3}, r"Batch .*\(BATCH_SIZE\) = -3 is not accepted; give a whole number"),
    ({"DEVICE": 7}, r"Device \(DEVICE\) = 7 is not one of its options; give one of 0 \("),
    # QA round 20: QGIS takes NaN and reads it (and 1e12) as -2147483648: an IndexError / a wrong message
    ({"SAR_UNITS": float("nan")}, r"SAR units \(SAR_UNITS\) = nan is not one of its options; give one of 0 \("),
    ({"LEVEL": "nan"}, r"\(LEVEL\) = 'nan' is not one of its options"),
    ({"TILE_SIZE": 10 ** 12}, r"\(TILE_SIZE\) = 1000000000000 is not accepted; give a whole number"),
    ({"OPTICAL_OFFSET": float("nan")}, r"\(OPTICAL_OFFSET\) = nan is not accepted"),  # a number, not a whole one
])
def test_classify_parameter_out_of_range_says_what_is_accepted(claire_plugin, pair, extra, expected):
    import re

    optical, sar, out = pair
    results, message = run_alg("claire:classify", {"OPTICAL": optical, "SAR": sar, "OUTPUT": out, **extra})
    assert results is None and re.search(expected, message), message
    assert "Incorrect parameter value" not in message


def test_train_labels_file_that_does_not_exist_is_named(claire_plugin, pair, tmp_path):
    optical, sar, _ = pair
    missing = str(tmp_path / "none.gpkg")
    results, message = run_alg("claire:train", {"OPTICAL": optical, "SAR": sar, "LABELS": missing, "FIELD": "class",
                                                "OUTPUT": str(tmp_path / "m.safetensors")})
    assert results is None and "(LABELS): " in message and "does not exist" in message and "none.gpkg" in message, \
        message


def test_a_file_name_holding_a_bar_is_the_file(tmp_path, raster_pair):
    """QA round 13: `p|ipe opt.tif` worked on the command line, but Processing, the dock's layers and polygon
    training cut it at the `|` (QGIS's separator of data source options) and said '.../p' does not exist."""
    import shutil

    from qgis.core import QgsRasterLayer

    from claire.claire_plugin.core.io.gdal_names import source_file
    from claire.claire_plugin.layers.layers import layer_file
    from claire.claire_plugin.processing.common import check_raster_files

    odd = str(tmp_path / "p|ipe opt.tif")
    shutil.copy(raster_pair["optical"], odd)
    assert source_file(odd) == odd
    assert source_file(str(tmp_path / "layers.gpkg|layername=labels")) == str(tmp_path / "layers.gpkg")
    gpkg = tmp_path / "la|bels.gpkg"  # a layer of a file whose name holds `|` (review of round 13)
    gpkg.write_bytes(b"")
    assert source_file(str(gpkg) + "|layername=labels") == str(gpkg)
    assert source_file(str(tmp_path / "ev|al.csv")) == str(tmp_path / "ev|al.csv")  # an output not written yet
    assert source_file(str(tmp_path / "new.gpkg|layername=t")) == str(tmp_path / "new.gpkg")
    assert check_raster_files({"OPTICAL": odd}, {"OPTICAL": "optical"}) is None
    layer = QgsRasterLayer(odd, "odd", "gdal")
    assert layer.isValid() and layer_file(layer) == (odd, None)


def test_messages_title_parameters_but_not_paths_or_file_names():
    """Round 18: a message names a parameter as the dialog labels it (without the hint a label ends with), with its
    name, at its first mention, and a value after it as "= value"; a path, file name, quoted value or code sample
    that holds a parameter's name ('/data/OUTPUT/x.tif', LABELS.gpkg, REFERENCE:CLASSIFIED) is left as it is, so
    is a name alone in parentheses, and a name that is also a word ("SAR") unless the message begins with it."""
    from qgis.core import QgsProcessingParameterString

    from claire.claire_plugin.processing.base import titled_message

    params = [QgsProcessingParameterString(n, d) for n, d in
              (("OUTPUT", "Classified map"), ("LABELS", "Training polygons"), ("FIELD", "Class field"),
               ("SAR", "SAR raster"), ("TILE_SIZE", "Tile size kept (0: default 896)"),
               ("REFERENCE", "Reference raster"), ("CLASSIFIED", "Classified raster"))]
    assert titled_message("FIELD: choose the field of LABELS that holds the class; FIELD is empty", params) == \
        "Class field (FIELD): choose the field of Training polygons (LABELS) that holds the class; FIELD is empty"
    assert titled_message("cannot write /home/u/OUTPUT/x.tif; choose another OUTPUT", params) == \
        "cannot write /home/u/OUTPUT/x.tif; choose another Classified map (OUTPUT)"
    assert titled_message("the labels 'my LABELS' and LABELS.gpkg do not exist; give LABELS", params) == \
        "the labels 'my LABELS' and LABELS.gpkg do not exist; give Training polygons (LABELS)"
    assert titled_message("SAR: the SAR raster has 2 bands", params) == "SAR raster (SAR): the SAR raster has 2 bands"
    assert titled_message("Class field (FIELD) is required", params) == "Class field (FIELD) is required"
    assert titled_message("tile size 16 is too small; use e.g. TILE_SIZE 512", params) == \
        "tile size 16 is too small; use e.g. Tile size kept (TILE_SIZE) = 512"
    assert titled_message("the entry '1-2' is not REFERENCE:CLASSIFIED; write 10:1", params) == \
        "the entry '1-2' is not REFERENCE:CLASSIFIED; write 10:1"
    for unchanged in ("give FIELD=class in qgis_process", "FIELD (Class field) is required",
                      "the SAR raster has no CRS", "cannot write /data/OUTPUT"):
        assert titled_message(unchanged, params) == unchanged
    assert titled_message("declared dB (SAR) and (LABELS with its FIELD)", params) == \
        "declared dB (SAR) and (Training polygons (LABELS) with its Class field (FIELD))"


def test_a_checkpoint_given_as_a_folder_is_told_to_be_a_file(claire_plugin, pair, tmp_path):
    """QA round 18 (a user's reading): a folder as CHECKPOINT was told "cannot be opened as a layer or file of that
    kind; give a layer or file of that kind", which names no fix."""
    optical, sar, out = pair
    folder = tmp_path / "models"
    folder.mkdir()
    results, message = run_alg("claire:classify", {"OPTICAL": optical, "SAR": sar, "OUTPUT": out,
                                                   "CHECKPOINT": str(folder)})
    assert results is None and "is a folder; give a file (.safetensors) in it" in message, message
    assert "(CHECKPOINT)" in message and not os.path.exists(out)


def test_train_numbers_qgis_would_wrap_are_refused_before_any_work(claire_plugin, pair, tmp_path):
    """QA round 20: RF_TREES 1e12 or NaN trained no forest and said "RF_TREES is 0"; THREADS / SEED NaN gave a
    traceback."""
    optical, sar, _ = pair
    base = {"OPTICAL": optical, "SAR": sar, "LABELS": str(tmp_path / "none.gpkg"), "FIELD": "class",
            "OUTPUT": str(tmp_path / "m.safetensors")}
    for extra, words in (({"RF_TREES": 10 ** 12}, "(RF_TREES) = 1000000000000 is not accepted; give a whole number "
                                                  "from 0 to 5000"),
                         ({"RF_TREES": float("nan")}, "(RF_TREES) = nan is not accepted"),
                         ({"THREADS": "nan"}, "(THREADS) = 'nan' is not accepted"),
                         ({"SEED": float("nan")}, "(SEED) = nan is not accepted")):
        results, message = run_alg("claire:train", {**base, **extra})
        assert results is None and words in message and "Traceback" not in message, message
    assert "m.safetensors" not in os.listdir(tmp_path)


def test_an_evaluation_report_named_like_a_raster_is_refused_and_the_raster_kept(claire_plugin, pair, tmp_path):
    """QA round 20: REPORT = the map itself (or any .tif) was overwritten with HTML."""
    import numpy as np

    from claire.tests.fixtures.helpers import write_raster

    m = write_raster(tmp_path / "map.tif", np.ones((8, 8), np.uint8))
    other = write_raster(tmp_path / "other.tif", np.ones((8, 8), np.uint8))
    before = open(other, "rb").read()
    results, message = run_alg("claire:evaluate", {"CLASSIFIED": m, "REFERENCE": m, "REPORT": other,
                                                   "OUTPUT_TABLE": str(tmp_path / "t.csv")})
    assert results is None and "the report" in message and "does not end in .html, .htm, .json; it is written as " \
        "HTML or JSON" in message, message
    assert open(other, "rb").read() == before


def test_a_classified_map_of_another_format_is_refused_before_training(claire_plugin, tmp_path):
    """QA round 20: CLASSIFIED = map.txt was found only after the whole training, which left its checkpoint, forest,
    held-out layer and report behind a failed run."""
    from claire.tests.fixtures.bad_inputs_19 import training_scene

    (tmp_path / "in").mkdir()
    d = training_scene(tmp_path)
    results, message = run_alg("claire:train", {
        "OPTICAL": d["optical"], "SAR": d["sar"], "LABELS": d["labels"], "FIELD": "class", "EPOCHS": 1,
        "OUTPUT": str(tmp_path / "m.safetensors"), "REPORT": str(tmp_path / "r.json"),
        "CLASSIFIED": str(tmp_path / "map.txt")})
    assert results is None and "map.txt' ends in .txt, but the classified map is written as a GeoTIFF" in message, \
        message
    assert sorted(os.listdir(tmp_path)) == ["in"]


@pytest.mark.parametrize("output, words", [
    ("memory:", "(OUTPUT) = 'memory:' is a data provider's address; this output is written as a file"),
    ("   ", "(OUTPUT) is a name of spaces only; give a file path")])
def test_outputs_that_name_no_file_are_refused_not_written_in_the_working_folder(claire_plugin, pair, output, words,
                                                                                  tmp_path, monkeypatch):
    """QA round 20: OUTPUT = 'memory:' or spaces wrote a GeoTIFF of that name in QGIS's working folder."""
    from qgis.core import QgsProcessingOutputLayerDefinition

    optical, sar, _ = pair
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for value in (output, QgsProcessingOutputLayerDefinition(output)):  # as a script gives it, as the dialog does
        results, message = run_alg("claire:classify", {"OPTICAL": optical, "SAR": sar, "OUTPUT": value})
        assert results is None and words in message, message
    assert os.listdir(work) == []


@pytest.mark.parametrize("name", ["t.txt", "map.tif", "t.dbf"])
def test_a_per_class_table_of_no_table_format_is_refused(claire_plugin, tmp_path, name):
    """QA round 20: OUTPUT_TABLE t.txt made QGIS pick Geoconcept ("SRS is mandatory"), map.tif wrote map.tif.gpkg."""
    import numpy as np

    from claire.tests.fixtures.helpers import write_raster

    m = write_raster(tmp_path / "in.tif", np.ones((8, 8), np.uint8))
    results, message = run_alg("claire:evaluate", {"CLASSIFIED": m, "REFERENCE": m,
                                                   "OUTPUT_TABLE": str(tmp_path / name)})
    assert results is None and f"(OUTPUT_TABLE): '{tmp_path / name}' ends in" in message and "e.g." in message, message
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


@pytest.mark.parametrize("name", ["t.json", "t.fgb", "t.csv"])
def test_a_per_class_table_in_a_format_qgis_offers_is_written(claire_plugin, tmp_path, name):
    """Review of QA round 20: the first list of table formats refused .json, .fgb, .tab, .gml ... which the dialog
    offers and QGIS writes."""
    import numpy as np

    from claire.tests.fixtures.helpers import write_raster

    m = write_raster(tmp_path / "in.tif", np.ones((8, 8), np.uint8))
    results, message = run_alg("claire:evaluate", {"CLASSIFIED": m, "REFERENCE": m,
                                                   "OUTPUT_TABLE": str(tmp_path / name)})
    assert results is not None, message
    assert any(n.startswith("t.") for n in os.listdir(tmp_path))
