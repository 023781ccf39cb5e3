"""A label raster's classes named from the file (GDAL category names, a raster attribute table) and by
`claire train --classes value:name[:#rrggbb]` (core.training.label_raster)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
import torch

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.io.pam import pam_on
from claire.claire_plugin.core.training.labels import read_labels
from claire.tests.fixtures.helpers import write_raster
from claire.tests.fixtures.vectors import TRAIN_BOXES, train_scene


@pytest.fixture
def scene(tmp_path):
    """The polygon-training scene with its boxes also as a label raster (codes 1 water, 4 crops, 5 built area;
    nodata 0), `label_raster`."""
    s = train_scene(tmp_path)
    lab = np.zeros((64, 96), np.uint8)
    for v, r, c in TRAIN_BOXES:
        lab[r:r + 5, c:c + 5] = v
    s["label_raster"] = write_raster(tmp_path / "lab.tif", lab, nodata=0)
    return s


def _categories(path: str, names, colors=None) -> None:
    """GDAL category names (index = code; GTiff keeps them in FILE.aux.xml, written even where the tests run with
    GDAL_PAM_ENABLED=NO) and a colour table."""
    from osgeo import gdal

    with pam_on():
        ds = gdal.Open(path, gdal.GA_Update)
        band = ds.GetRasterBand(1)
        if colors:  # before the names: a colour table set after them drops the names GDAL has not yet saved
            table = gdal.ColorTable()
            for code, rgb in colors.items():
                table.SetColorEntry(code, (*rgb, 255))
            band.SetColorTable(table)
        band.SetCategoryNames(list(names))
        del band
        ds = None


def _read(scene, class_names=None):
    with rasterio.open(scene["optical"]) as grid:
        return read_labels(scene["label_raster"], grid, class_names=class_names)


def _classes(labels):
    return [(c.code, c.name, c.color) for c in labels.classes]


def test_category_names_written_by_gdal_name_the_classes(scene, monkeypatch):
    _categories(scene["label_raster"], ["", "water", "", "", "", "built area"], {1: (0, 0, 255), 5: (255, 0, 0)})
    monkeypatch.setenv("GDAL_PAM_ENABLED", "NO")  # read all the same: the names live in the sidecar
    labels = _read(scene)
    assert _classes(labels) == [(1, "water", "#0000ff"), (4, "class 4", None), (5, "built area", "#ff0000")]
    assert "class names read from the label raster: 1 water, 5 built area" in labels.notes
    unnamed = [n for n in labels.notes if "have no name" in n]
    assert len(unnamed) == 1 and "code(s) 4 have no name in the file" in unnamed[0]
    assert "--classes 4:NAME" in unnamed[0]


def test_a_raster_without_names_is_read_as_before_and_gets_no_sidecar(scene):
    labels = _read(scene)
    assert [c.name for c in labels.classes] == ["class 1", "class 4", "class 5"]
    assert "--classes 1:NAME,4:NAME,5:NAME" in labels.notes[0]
    assert not os.path.exists(scene["label_raster"] + ".aux.xml")


def test_a_raster_attribute_tables_name_column_names_the_classes(scene):
    from osgeo import gdal

    rat = gdal.RasterAttributeTable()
    rat.CreateColumn("Value", gdal.GFT_Integer, gdal.GFU_MinMax)
    rat.CreateColumn("Class_name", gdal.GFT_String, gdal.GFU_Generic)
    for row, (code, name) in enumerate([(1, "water"), (4, "crops"), (5, "")]):
        rat.SetValueAsInt(row, 0, code)
        rat.SetValueAsString(row, 1, name)
    with pam_on():
        ds = gdal.Open(scene["label_raster"], gdal.GA_Update)
        ds.GetRasterBand(1).SetDefaultRAT(rat)
        ds = None
    assert [c.name for c in _read(scene).classes] == ["water", "crops", "class 5"]


def test_classes_option_names_codes_and_wins_over_the_file(scene):
    _categories(scene["label_raster"], ["", "lake", "", "", "crops"], {1: (0, 0, 255)})
    labels = _read(scene, "1:water,5:built area:#c4281b")
    assert _classes(labels) == [(1, "water", "#0000ff"), (4, "crops", None), (5, "built area", "#c4281b")]
    assert labels.notes == ["class names read from the label raster for the codes --classes leaves out: 4 crops"]
    labels = _read(scene, "5:built area")
    assert [c.name for c in labels.classes] == ["lake", "crops", "built area"]


@pytest.mark.parametrize("text, words", [
    ("1:water,7:trees", ["--classes names code(s) 7", "does not hold", "its codes there: 1, 4, 5",
                         "drop them from --classes"]),
    ("1:water,5:water", ["class name 'water' has several codes (1, 5)", "give each code its own name"]),
    ("4:lake", ["class name 'lake' has several codes (1, 4)"]),  # one name from the file, one from --classes
    ("1:water,1:lake", ["--classes gives code 1 twice ('water' and 'lake')"]),
    ("1:", ["--classes gives code 1 an empty name"]),
    ("1:water:blue", ["the colour 'blue', which is not #rrggbb"]),
    ("water", ["--classes: bad class entry 'water'", "value:name"]),
])
def test_classes_option_problems_are_clear_errors(scene, text, words):
    _categories(scene["label_raster"], ["", "lake"])
    with pytest.raises(ClaireError) as err:
        _read(scene, text)
    for w in words:
        assert w in str(err.value), str(err.value)


def _argv(scene, labels, out, *extra):
    return ["train", "--optical", scene["optical"], "--sar", scene["sar"], "--labels", labels,
            "--checkpoint", scene["checkpoint"], "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
            "--crop", "64", "--device", "cpu", "--no-baseline", "--buffer", "2", "--output", str(out), *extra]


def test_cli_classes_name_a_label_rasters_codes(scene, capsys):
    from claire.claire_plugin.cli.main import main
    from claire.models.checkpoint import read_card

    torch.set_num_threads(1)
    out = scene["dir"] / "named.safetensors"
    rc = main(_argv(scene, scene["label_raster"], out, "--classes", "1:water:#0000ff,4:crops",
                    "--report", str(scene["dir"] / "r.json")))
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"wrote {out} (classes 1=water, 4=crops, 5=class 5)" in err
    assert "note: the label raster's code(s) 5 have no name in --classes or in the file" in err
    card = read_card(str(out))
    assert [(c["value"], c["name"], c.get("color")) for c in card["classes"]] == [
        (1, "water", "#0000ff"), (4, "crops", "#e49635"), (5, "class 5", None)]  # crops: the base card's colour
    report = json.loads((scene["dir"] / "r.json").read_text())
    assert "untuned" in report["arms"]  # water and crops are classes of the base: it is scored beside


def test_cli_classes_errors_stop_before_any_output(scene, capsys):
    from claire.claire_plugin.cli.main import main

    out = scene["dir"] / "x.safetensors"
    rc = main(_argv(scene, scene["label_raster"], out, "--classes", "1:water,9:trees"))
    err = capsys.readouterr().err
    assert rc == 2 and "--classes names code(s) 9, which the label raster" in err and not out.exists()
    rc = main(_argv(scene, scene["labels"], out, "--field", "class", "--classes", "1:water"))
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists(), err
    assert "--classes names the codes of a label raster, but the labels" in err and "are a vector layer" in err
    assert "--name-field" in err and "drop --classes" in err
    rc = main(_argv(scene, scene["label_raster"], out, "--field", "class", "--name-field", "name"))
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists(), err  # was ignored without a word
    assert "--field and --name-field name fields of a vector layer" in err and "are a label raster" in err
    assert "--classes value:name" in err


def test_info_and_picker_name_a_label_raster_not_polygons_of_field_none(scene, capsys):
    """A raster-trained checkpoint was shown as 'trained on polygons (lab.tif, field None)'."""
    from claire.claire_plugin.cli.main import main

    torch.set_num_threads(1)
    out = scene["dir"] / "r.safetensors"
    assert main(_argv(scene, scene["label_raster"], out, "--classes", "1:water,4:crops,5:trees")) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("trained on"))
    assert f"a label raster ({os.path.basename(scene['label_raster'])})" in line and "field" not in line


def test_class_names_may_hold_commas_and_bad_colours_are_named():
    """QA (scale of labels): CORINE's names hold commas ("Beaches, dunes, sands"); --classes split them into bad
    entries."""
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training.sources import parse_classes

    got = parse_classes("243:Land principally occupied by agriculture, with significant areas of natural vegetation,"
                        "331:Beaches, dunes, sands:#e6e6e6, 1:water:#419bdf")
    assert [(c.value, c.name, c.color) for c in got] == [
        (243, "Land principally occupied by agriculture, with significant areas of natural vegetation", None),
        (331, "Beaches, dunes, sands", "#e6e6e6"), (1, "water", "#419bdf")]
    with pytest.raises(ClaireError, match=r"bad class entry 'water'"):
        parse_classes("water,2:trees")


def test_codes_over_254_are_all_named_with_the_fix(scene, tmp_path):
    """QA (scale of labels): a CORINE-coded label raster named one of its 13 codes over 254 and said only
    'renumber the classes'."""
    from claire.claire_plugin.core.errors import ClaireError
    from claire.tests.fixtures.helpers import write_raster

    lab = np.zeros((64, 96), np.uint16)
    for k, (_, r, c) in enumerate(TRAIN_BOXES):
        lab[r:r + 5, c:c + 5] = 300 + k
    scene["label_raster"] = write_raster(tmp_path / "corine.tif", lab, nodata=0)
    with pytest.raises(ClaireError, match=r"holds code\(s\) outside 1\.\.254 \(300, 301, 302, 303, 304, 305, 306, "
                                          r"307 and 4 more, .*renumber the classes to 1\.\.254 .*Reclassify by table"):
        _read(scene)


def test_a_label_raster_of_values_with_a_fraction_is_refused(scene, tmp_path):
    """QA round 22: a float label raster holding 4.999 (a raster calculator's or a bilinear resampling's) became
    code 4 by truncation, and `a == 4` matched none of its pixels: a class without pixels, no word on why. Whole
    floats are codes."""
    lab = np.zeros((64, 96), np.float32)
    for v, r, c in TRAIN_BOXES:
        lab[r:r + 5, c:c + 5] = v
    scene["label_raster"] = write_raster(tmp_path / "whole.tif", lab, nodata=0)
    assert sorted(c.code for c in _read(scene).classes) == sorted({v for v, _, _ in TRAIN_BOXES})
    lab[lab == 4] = 4.999
    scene["label_raster"] = write_raster(tmp_path / "odd.tif", lab, nodata=0)
    with pytest.raises(ClaireError, match=r"label raster .*odd\.tif' holds values such as 4\.999, not class codes; "
                                          r"give label rasters of whole class codes .*gdal_translate -ot Byte"):
        _read(scene)
