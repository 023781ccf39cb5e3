"""Every command-line flag an engine or training message names is renamed for the dock (its tabs' fields) and
for Processing (the algorithms' parameters): the flags are found by scanning the messages' source, so a new
message naming a new flag fails here until the flag is mapped."""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, Set

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

#: Flags in messages that no dock or Processing run can show, and why.
NOT_SHOWN = {
    "--nthreads": "the `dask worker` command's own option, quoted in a shell command to run",
    "--calc": "gdal_calc.py's own option, quoted in a shell command to run (a label raster's class left out)",
    "--outfile": "gdal_calc.py's own option, quoted in a shell command to run (a label raster's class left out)",
    "--bands": "the default of choose_bands' flag argument; every caller names its own",
    "--parts": "`claire classify` splitting one scene on a cluster (command line only)",
    "--vrt": "`claire classify` splitting one scene on a cluster (command line only)",
    "--average-last": "`claire train --labels` only: the dock and claire:train keep the recipe's default (off)",
    **{f: "`claire train --data` (folder training; command line only)" for f in (
        "--layout", "--holdout", "--resume", "--optical-scale", "--loss-lambda", "--focal-gamma", "--tversky-alpha",
        "--tversky-beta", "--context-px", "--ignore")},
    "--split": "`claire evaluate` of a labelled folder (command line only)",
    "--output-folder": "a folder batch's lock (core.io.folder_lock): the dock runs no folder batch; Processing "
                       "names OUTPUT_FOLDER",
}

#: Source folders/files (under claire_plugin/ or models/) of what each interface runs.
CLASSIFY = ("core/engine/", "core/inputs/", "core/io/", "core/runtime/", "core/explain/", "core/params.py",
            "core/errors.py", "models/")
TRAIN = ("core/training/", "core/inputs/", "core/io/", "core/runtime/", "core/errors.py", "models/")
PROCESSING_OTHERS = CLASSIFY + ("core/batch.py", "core/cluster.py", "core/accuracy.py", "core/map_accuracy.py",
                                "core/area_estimate.py")


def _strings(path: Path):
    """The string constants of a module (f-string parts included), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.value


def _messages(prefixes) -> Dict[str, Set[str]]:
    """flag -> the source strings naming it, in the modules under `prefixes`."""
    found: Dict[str, Set[str]] = defaultdict(set)
    files = sorted((ROOT / "claire_plugin").rglob("*.py")) + sorted((ROOT / "models").rglob("*.py"))
    for path in files:
        rel = path.relative_to(ROOT).as_posix().replace("claire_plugin/", "", 1)
        if not rel.startswith(prefixes):
            continue
        for text in _strings(path):
            for flag in FLAG.findall(text):
                found[flag].add(text)
    return found


def _flags(prefixes):
    return sorted(f for f in _messages(prefixes) if f not in NOT_SHOWN)


def _left(text: str) -> Set[str]:
    return {f for f in FLAG.findall(text) if f not in NOT_SHOWN}


def test_the_scan_finds_the_messages_flags():
    """The scan sees the flags of known messages (so that the tests below test something)."""
    train = set(_flags(TRAIN))
    assert {"--epochs", "--crop", "--lr", "--device", "--buffer", "--sar-units", "--optical-bands"} <= train
    assert "--tile-size" in _flags(CLASSIFY) and "--epochs" not in _flags(CLASSIFY)
    assert "--tile-size" not in train


@pytest.mark.parametrize("flag", _flags(CLASSIFY))
def test_run_tab_messages_name_no_flag(qgis_app, flag):
    from claire.claire_plugin.gui.tasks import dock_message

    for text in _messages(CLASSIFY)[flag]:
        shown = dock_message(text)
        assert not _left(shown), (text, shown)


@pytest.mark.parametrize("flag", _flags(TRAIN))
def test_train_tab_messages_name_no_flag(qgis_app, flag):
    from claire.claire_plugin.gui.tasks import TRAIN_FLAG_TO_FIELD, dock_message

    for text in _messages(TRAIN)[flag]:
        shown = dock_message(text, TRAIN_FLAG_TO_FIELD)
        assert not _left(shown), (text, shown)


@pytest.mark.parametrize("flag", _flags(PROCESSING_OTHERS))
def test_processing_messages_name_no_flag(qgis_app, flag):
    from claire.claire_plugin.processing.common import qgis_message

    for text in _messages(PROCESSING_OTHERS)[flag]:
        shown = qgis_message(text)
        assert not _left(shown), (text, shown)


@pytest.mark.parametrize("flag", _flags(TRAIN + CLASSIFY))
def test_processing_train_messages_name_no_flag(qgis_app, flag):
    """claire:train trains, then may classify with the new checkpoint."""
    from claire.claire_plugin.processing.common import TRAIN_FLAG_TO_PARAMETER, qgis_message

    for text in _messages(TRAIN + CLASSIFY)[flag]:
        shown = qgis_message(text, TRAIN_FLAG_TO_PARAMETER)
        assert not _left(shown), (text, shown)


def _field_labels(widget) -> Set[str]:
    """The labels of a tab's form rows and the texts of its check boxes."""
    from qgis.PyQt.QtWidgets import QCheckBox, QFormLayout, QLabel

    labels = {box.text() for box in widget.findChildren(QCheckBox)}
    for form in widget.findChildren(QFormLayout):
        for row in range(form.rowCount()):
            item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            if item is not None and isinstance(item.widget(), QLabel):
                labels.add(item.widget().text().strip())
    return labels


def test_the_names_used_are_the_dock_fields_labels(qgis_app):
    """A field name quoted in a tab's renaming of its messages' flags ('Epochs') is a field label of that tab."""
    from claire.claire_plugin.gui.dock import ClaireDock
    from claire.claire_plugin.gui.tasks import FLAG_TO_FIELD, TRAIN_FLAG_TO_FIELD

    dock = ClaireDock(None)
    tabs = ((FLAG_TO_FIELD, _flags(CLASSIFY), _field_labels(dock.tabs.widget(0))),
            (TRAIN_FLAG_TO_FIELD, _flags(TRAIN), _field_labels(dock.train_panel)))
    for names, flags, labels in tabs:
        for flag in flags:
            name = names.get(flag, "")
            if "`claire train`" in name:
                continue
            for quoted in re.findall(r"'([^']+)'", name):
                assert any(label.startswith(quoted) for label in labels), (flag, quoted, sorted(labels))


def test_whole_flags_only_and_longest_first():
    from claire.claire_plugin.core.errors import rename_flags

    names = {"--sar": "SAR", "--sar-bands": "SAR_BANDS", "--sar-units dB, --sar-units amplitude": "UNITS"}
    assert rename_flags("fix --sar-bands or --sar; --sar-units dB, --sar-units amplitude. --sar-unit",
                        names) == "fix SAR_BANDS or SAR; UNITS. --sar-unit"


@pytest.mark.parametrize("setting,shown", [({"epochs": 0}, "'Epochs' must be a whole number of at least 1"),
                                           ({"crop": 100}, "the crop size (a setting of the `claire train` command"),
                                           ({"minutes": -1}, "'Minutes' must be more than 0")])
def test_a_train_tab_run_names_its_fields(qgis_app, tmp_path, setting, shown):
    """A TrainTask's error, as the Train tab shows it: the tab's field, or that only `claire train` sets it."""
    from claire.claire_plugin.core.training.finetune import FinetuneConfig
    from claire.claire_plugin.core.training.polygons import PolygonTrainParams
    from claire.claire_plugin.gui.tasks import TrainTask

    params = PolygonTrainParams(optical=str(tmp_path / "o.tif"), sar=str(tmp_path / "s.tif"),
                                labels=str(tmp_path / "l.gpkg"), field="class", output=str(tmp_path / "m.safetensors"),
                                config=FinetuneConfig(**setting))
    task = TrainTask(params)
    assert task.run() is False
    assert shown in task.error and "--" not in task.error, task.error
