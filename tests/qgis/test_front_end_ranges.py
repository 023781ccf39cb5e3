"""The ranges the dock and Processing offer are the engine's: one set of limits (core.params, core.training.checks),
each accepted by the engine at its largest and refused, naming the setting, beyond it. The forms' ranges differed
(epochs 1000 in the dock, 10000 in Processing; a tile up to 4096 in the dock, any in Processing)."""
from __future__ import annotations

import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.params import BATCH_MAX, CONTEXT_MAX, TILE_MAX, ClassifyParams
from claire.claire_plugin.core.training.checks import (
    CROP_MAX,
    EPOCHS_MAX,
    MINUTES_MAX,
    TRAIN_BATCH_MAX,
    check_run_numbers,
)


def _maximum(alg_id: str, name: str) -> float:
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().algorithmById(alg_id).parameterDefinition(name).maximum()


def test_the_dock_and_processing_offer_the_engines_limits(claire_plugin):
    from claire.claire_plugin.gui.dock import ClaireDock

    for alg in ("claire:classify", "claire:classify_folder"):
        assert (_maximum(alg, "TILE_SIZE"), _maximum(alg, "CONTEXT"), _maximum(alg, "BATCH_SIZE")) == \
            (TILE_MAX, CONTEXT_MAX, BATCH_MAX), alg
    assert (_maximum("claire:train", "EPOCHS"), _maximum("claire:train", "MINUTES"),
            _maximum("claire:train", "BATCH_SIZE"), _maximum("claire:train", "CROP")) == \
        (EPOCHS_MAX, MINUTES_MAX, TRAIN_BATCH_MAX, CROP_MAX)
    dock = ClaireDock(None)
    try:
        assert (dock.tile_size.maximum(), dock.context.maximum(), dock.batch.maximum()) == \
            (TILE_MAX, CONTEXT_MAX, BATCH_MAX)
        assert (dock.train_panel.epochs.maximum(), dock.train_panel.minutes.maximum()) == (EPOCHS_MAX, MINUTES_MAX)
    finally:
        dock.deleteLater()


def test_the_engine_takes_the_largest_tiling_and_refuses_beyond_it():
    from claire.claire_plugin.core.engine.tiling import resolve_tiling

    def tiling(**kw):
        return resolve_tiling(ClassifyParams("o.tif", "s.tif", "out.tif", **kw), {})

    assert tiling(tile_size=TILE_MAX, context=CONTEXT_MAX, batch_size=BATCH_MAX) == (TILE_MAX, CONTEXT_MAX, BATCH_MAX)
    for kw, words in (({"tile_size": TILE_MAX + 32}, f"tile size {TILE_MAX + 32} is above {TILE_MAX}"),
                      ({"context": CONTEXT_MAX + 16}, f"context {CONTEXT_MAX + 16} is above {CONTEXT_MAX}"),
                      ({"batch_size": BATCH_MAX + 1}, f"batch size must be 1 to {BATCH_MAX}")):
        with pytest.raises(ClaireError, match=words):
            tiling(**kw)


def test_a_training_takes_the_largest_numbers_and_refuses_beyond_them():
    base = dict(epochs=12, steps_per_epoch=20, batch_size=8, crop=128, lr=0.001)
    check_run_numbers(**dict(base, epochs=EPOCHS_MAX, minutes=MINUTES_MAX, batch_size=TRAIN_BATCH_MAX, crop=CROP_MAX))
    for over, words in ((dict(epochs=EPOCHS_MAX + 1), f"--epochs {EPOCHS_MAX + 1} is above {EPOCHS_MAX}"),
                        (dict(minutes=MINUTES_MAX + 0.5), f"--minutes {MINUTES_MAX + 0.5:g} is above {MINUTES_MAX}"),
                        (dict(batch_size=TRAIN_BATCH_MAX + 1), "--batch-size 257 is above 256"),
                        (dict(crop=CROP_MAX + 32), f"--crop {CROP_MAX + 32} is above {CROP_MAX}")):
        with pytest.raises(ClaireError, match=words):
            check_run_numbers(**dict(base, **over))
