"""A checkpoint whose card carries a calibration: the engine tempers the confidence, never the classes."""
from __future__ import annotations

import numpy as np
import rasterio

from claire.claire_plugin.core.engine import classify
from claire.claire_plugin.core.params import run_options
from claire.models.checkpoint import load_checkpoint, save_checkpoint


def _calibrated(src: str, dst: str, temperature: float) -> str:
    model, card = load_checkpoint(src)
    card["calibration"] = {"temperature": temperature, "note": "test"}
    save_checkpoint(dst, model, card)
    return dst


def _run(pair, ckpt, tmp_path, tag):
    options = run_options(checkpoint=ckpt, tile_size=64, context=16, threads=1)
    res = classify(options.params(pair["optical"], pair["sar"], str(tmp_path / f"{tag}.tif"),
                                  confidence=str(tmp_path / f"{tag}_c.tif")))
    with rasterio.open(res.output) as a, rasterio.open(res.confidence) as b:
        return a.read(1), b.read(1), res.summary


def test_tempered_confidence_same_classes(raster_pair, tiny_checkpoint, tmp_path):
    raw_cls, raw_conf, raw_sum = _run(raster_pair, tiny_checkpoint, tmp_path, "raw")
    one_cls, one_conf, _ = _run(raster_pair, _calibrated(tiny_checkpoint, str(tmp_path / "t1.safetensors"), 1.0),
                                tmp_path, "t1")
    hot = _calibrated(tiny_checkpoint, str(tmp_path / "t8.safetensors"), 8.0)
    cls, conf, summary = _run(raster_pair, hot, tmp_path, "t8")
    assert np.array_equal(one_cls, raw_cls) and np.array_equal(one_conf, raw_conf)
    assert np.array_equal(cls, raw_cls)  # the map does not change
    valid = raw_conf != 255
    assert valid.any() and np.array_equal(conf != 255, valid)
    assert np.all(conf[valid] <= raw_conf[valid])
    k = 4  # the tiny checkpoint's classes: tempered confidence stays above 1 / K
    sure = raw_conf[valid] >= 30  # a random tiny network is never very sure
    assert sure.any() and np.all(conf[valid][sure] < raw_conf[valid][sure])
    assert np.all(conf[valid] >= int(100 / k) - 1)
    assert summary["mean_confidence"] < raw_sum["mean_confidence"]
