"""claire:train refuses a CHECKPOINT output (OUTPUT) named with another extension than .safetensors, as
`claire train --output` does (models.checkpoint.check_output_name): before any training, nothing written."""
from __future__ import annotations

import os

import pytest

from claire.tests.fixtures.vectors import train_scene

FAST = {"EPOCHS": 1, "STEPS_PER_EPOCH": 1, "BATCH_SIZE": 2, "CROP": 64, "RF_TREES": 0, "DEVICE": 1}


def test_checkpoint_named_tif_is_refused(claire_plugin, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    s = train_scene(tmp_path)
    out, report = str(tmp_path / "e.tif"), str(tmp_path / "r.json")
    params = {"OPTICAL": s["optical"], "SAR": s["sar"], "LABELS": s["labels"], "FIELD": "class",
              "CHECKPOINT": s["checkpoint"], "OUTPUT": out, "REPORT": report, **FAST}
    with pytest.raises(QgsProcessingException) as info:
        processing.run("claire:train", params)
    text = str(info.value)
    assert f"the new checkpoint {out} ends in .tif" in text and str(tmp_path / "e.safetensors") in text, text
    assert "--" not in text, text
    assert not os.path.exists(out) and not os.path.exists(report)
