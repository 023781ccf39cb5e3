"""Fixtures for the engine tests: a deterministic stand-in model, its card and a scene on disk.

`standin_model`, `standin_card`, `engine_scene` (optical + SAR + labels on one 10 m UTM grid, sizes
not multiples of the tile), `training_scene` (a scene opened for polygon training with the card of the test
module's `base` checkpoint fixture). Plain helpers (write_raster, synthetic_scene, tiny_card) are imported from
claire.tests.fixtures.helpers.
"""
from __future__ import annotations

import pytest
import torch

from claire.tests.fixtures.helpers import synthetic_scene, tiny_card, write_raster
from claire.tests.fixtures.standin import StandIn

torch.set_num_threads(1)


@pytest.fixture
def standin_model():
    """StandIn (10 optical + 2 SAR channels, 4 classes), in eval mode."""
    return StandIn().eval()


@pytest.fixture
def standin_card():
    """The card matching StandIn: tiny_card's classes, inputs and tiling (32 px cores, 16 px of context)."""
    return tiny_card(arch="standin")


@pytest.fixture
def engine_scene(tmp_path):
    """Optical (12-band int16, 150 x 173 px) + SAR (VV/VH dB) + labels on the same 10 m grid."""
    optical, sar, labels = synthetic_scene(150, 173)
    return {
        "optical": write_raster(str(tmp_path / "optical.tif"), optical),
        "sar": write_raster(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]),
        "labels": write_raster(str(tmp_path / "labels.tif"), labels, nodata=0),
        "arrays": (optical, sar, labels),
        "dir": str(tmp_path),
    }


@pytest.fixture
def training_scene(tmp_path, base):
    """A 70 x 90 px synthetic scene opened for polygon training with the card of the module's `base`
    checkpoint fixture (core.training.scene.Scene)."""
    from claire.claire_plugin.core.training.scene import Scene

    opt, sar, _ = synthetic_scene(70, 90)
    s = Scene(write_raster(tmp_path / "o.tif", opt), write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]),
              base[1])
    yield s
    s.close()
