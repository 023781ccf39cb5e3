"""claire:train in a plain qgis_process: QGIS's own Python path (Debian's dist-packages first), not the venv's."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from claire.tests.core.test_training_polygons import BOXES, NAMES
from claire.tests.fixtures.vectors import box_wkt, write_vector
from claire.tests.qgis.test_qgis_process import QGIS_PROCESS, _env


@pytest.mark.slow
def test_qgis_process_trains_from_polygons(tmp_path, raster_pair, tiny_checkpoint):
    from claire.claire_plugin.install import install

    root = str(tmp_path / "qgis")
    install(os.path.join(root, "profiles", "default"))
    labels = write_vector(tmp_path / "l.gpkg", [(box_wkt(r, c, r + 5, c + 5), NAMES[v]) for v, r, c in BOXES])
    out, report = str(tmp_path / "mine.safetensors"), str(tmp_path / "report.json")
    proc = subprocess.run(
        [QGIS_PROCESS, "run", "claire:train", "--json", "--", f"OPTICAL={raster_pair['optical']}",
         f"SAR={raster_pair['sar']}", f"LABELS={labels}", "FIELD=class", f"CHECKPOINT={tiny_checkpoint}",
         "EPOCHS=1", "STEPS_PER_EPOCH=2", "BATCH_SIZE=2", "CROP=32", "RF_TREES=5", f"OUTPUT={out}",
         f"REPORT={report}"],
        env=_env(root), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(proc.stdout[proc.stdout.find("{"):])["results"]["OUTPUT"] == out
    from claire.models.checkpoint import read_card

    card = read_card(out)
    with open(report) as fh:
        arms = json.load(fh)["arms"]
    assert {c["name"] for c in card["classes"]} and "finetuned" in arms and "rf_optical_sar" in arms
