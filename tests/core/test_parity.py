"""Parity of the two ways a checkpoint is run: the training/evaluation path (models.spec.normalise +
models.predict.predict_arrays, as models/training.py `evaluate` and cli/train.py use them) and the engine
(core.engine.run on GeoTIFFs of the same scene). Their argmax maps must agree on >= 99.5 % of the
interior pixels, or the metrics training reports are not the metrics of the maps users get."""
from __future__ import annotations

import os

import numpy as np
import rasterio

from claire.claire_plugin.core.engine import load_model, run
from claire.claire_plugin.core.params import ClassifyParams
from claire.claire_plugin.paths import resource
from claire.models.predict import predict_arrays
from claire.models.spec import normalise
from claire.tests.fixtures.helpers import L2A_BANDS, make_tiny_checkpoint, synthetic_scene, write_raster

L2A_FOR_CARD = [2, 3, 4, 5, 6, 7, 8, 9, 11, 12]  # 1-based B02..B12 without B09 in a 12-band L2A stack
SITE = "433D_629L_3_1"
MARGIN = 16  # the interior: pixels this far from the raster's edge


def _engine_map(optical: str, sar: str, out: str, model, card: dict, tile: int, context: int) -> np.ndarray:
    """Class indices of the engine's map."""
    res = run(ClassifyParams(optical, sar, out, tile_size=tile, context=context), model, card)
    assert res.band_choice["optical"]["indices"] == L2A_FOR_CARD
    values = [int(c["value"]) for c in sorted(card["classes"], key=lambda c: int(c["index"]))]
    with rasterio.open(res.output) as ds:
        classes = ds.read(1)
    lut = np.full(256, -1)
    lut[values] = np.arange(len(values))
    return lut[classes]


def _evaluation_map(optical: str, sar: str, model, card: dict, tile: int, context: int) -> np.ndarray:
    """Class indices of the evaluation path."""
    with rasterio.open(optical) as o, rasterio.open(sar) as s:
        opt = normalise(o.read(L2A_FOR_CARD).astype(np.float32), card["inputs"]["optical"])
        sr = normalise(s.read([1, 2]).astype(np.float32), card["inputs"]["sar"])
    prob, _ = predict_arrays(model, opt, sr, tile, context)
    return prob.argmax(0)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    m = MARGIN
    return float((a[m:-m, m:-m] == b[m:-m, m:-m]).mean())


def _site():
    data = resource("data", "terramesh")
    return os.path.join(data, "S2L2A", f"{SITE}.tif"), os.path.join(data, "S1RTC", f"{SITE}.tif")


def test_engine_and_evaluation_agree_on_a_scene_of_several_tiles(tmp_path):
    tiny_checkpoint = make_tiny_checkpoint(str(tmp_path / "tiny.safetensors"), seed=1)  # predicts 4 classes here
    optical, sar, _ = synthetic_scene(300, 300, seed=3)
    o = write_raster(tmp_path / "o.tif", optical, descriptions=L2A_BANDS)
    s = write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"])
    model, card = load_model(tiny_checkpoint)
    engine = _engine_map(o, s, str(tmp_path / "lc.tif"), model, card, 64, 16)
    evaluation = _evaluation_map(o, s, model, card, 64, 16)
    assert len(np.unique(evaluation)) > 1, "a map of one class would agree trivially"
    assert _agreement(engine, evaluation) >= 0.995


def test_engine_and_evaluation_agree_on_the_bundled_site_given_the_same_window(tmp_path, default_checkpoint):
    """The 224 px site is smaller than one tile window: both read it whole, in one forward."""
    o, s = _site()
    model, card = load_model(default_checkpoint)
    engine = _engine_map(o, s, str(tmp_path / "lc.tif"), model, card, 256, 32)
    evaluation = _evaluation_map(o, s, model, card, 256, 32)
    assert len(np.unique(evaluation)) > 1
    assert _agreement(engine, evaluation) >= 0.995


def test_engine_and_evaluation_agree_on_the_bundled_site(tmp_path, default_checkpoint):
    o, s = _site()
    model, card = load_model(default_checkpoint)
    engine = _engine_map(o, s, str(tmp_path / "lc.tif"), model, card, 256, 32)
    evaluation = _evaluation_map(o, s, model, card, 256, 32)
    assert _agreement(engine, evaluation) >= 0.995
