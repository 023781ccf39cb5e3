"""Fixtures for the engine tests: small GeoTIFF writers, a deterministic stand-in model and its card.

Reusable by other core tests: `geotiff` (write an array as a GeoTIFF), `standin_model`, `standin_card`,
`engine_scene` (optical + SAR + labels on one 10 m UTM grid, sizes not multiples of the tile).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn as nn

torch.set_num_threads(1)

from claire.tests.fixtures.helpers import CARD_OPTICAL, TINY_CLASSES as CLASSES  # noqa: E402
from claire.tests.fixtures.helpers import write_raster as write_geotiff  # noqa: E402


def scene(rows: int, cols: int, seed: int = 0):
    """12-band L2A-like int16 reflectance x 10000, VV/VH dB float32 and uint8 labels (1, 2, 4, 5)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    labels = np.full((rows, cols), 4, np.uint8)
    labels[xx < cols // 3] = 1
    labels[(yy > rows // 2) & (xx > 2 * cols // 3)] = 5
    labels[(yy < rows // 3) & (xx > cols // 2)] = 2
    refl = {1: 400, 2: 1200, 4: 1800, 5: 2400}
    db = {1: (-22.0, -28.0), 2: (-9.0, -14.0), 4: (-12.0, -18.0), 5: (-3.0, -9.0)}
    optical = np.zeros((12, rows, cols), np.int16)
    sar = np.zeros((2, rows, cols), np.float32)
    for v in refl:
        m = labels == v
        for b in range(12):
            optical[b][m] = np.clip(refl[v] + 60 * b + rng.normal(0, 50, m.sum()), 1, 10000)
        for b in range(2):
            sar[b][m] = db[v][b] + rng.normal(0, 0.7, m.sum())
    return optical, sar, labels


class StandIn(nn.Module):
    """Follows the forward contract: a fixed 5x5 convolution over [optical, SAR] (SAR weighted heavily)
    and a 1x1 SAR gate, so results depend on neighbours (tiling matters) and mostly on the SAR."""

    def __init__(self, optical_channels: int = 10, sar_channels: int = 2, num_classes: int = 4, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(optical_channels + sar_channels, num_classes, 5, padding=2)
        self.gate = nn.Conv2d(sar_channels, 1, 1)
        with torch.no_grad():
            w = torch.randn(self.conv.weight.shape, generator=g) * 0.05
            w[:, optical_channels:, 2, 2] += torch.linspace(-2.0, 2.0, num_classes)[:, None]
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(torch.linspace(0.0, 0.3, num_classes))
            self.gate.weight.fill_(0.3)
            self.gate.bias.zero_()

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> dict:
        x = torch.cat([optical, sar], dim=1)
        return {"logits": self.conv(x) * 2.0, "sar_share": torch.sigmoid(self.gate(sar))}


def card(tile: int = 64, overlap: int = 16) -> dict:
    """Model card matching StandIn (10 S2 bands, VV/VH in dB)."""
    return {
        "format": "claire-checkpoint/1", "arch": "standin", "size": "tiny",
        "config": {"num_classes": 4, "optical_channels": 10, "sar_channels": 2},
        "classes": [dict(c) for c in CLASSES], "nodata": 0,
        "inputs": {
            "optical": {"bands": list(CARD_OPTICAL), "units": "reflectance", "scale": 1e-4, "offset": 0.0,
                        "clip": [0.0, 1.0], "mean": [0.2] * 10, "std": [0.1] * 10},
            "sar": {"bands": ["VV", "VH"], "units": "dB", "scale": 1.0, "offset": 0.0, "clip": [-40.0, 5.0],
                    "mean": [-12.0, -18.0], "std": [5.0, 5.0]},
        },
        "tile_size": tile, "overlap": overlap,
    }


@pytest.fixture
def geotiff():
    """The `write_geotiff` function."""
    return write_geotiff


@pytest.fixture
def standin_model():
    return StandIn().eval()


@pytest.fixture
def standin_card():
    return card()


@pytest.fixture
def engine_scene(tmp_path):
    """Optical (12-band int16, 150 x 173 px) + SAR (VV/VH dB) + labels on the same 10 m grid."""
    optical, sar, labels = scene(150, 173)
    return {
        "optical": write_geotiff(str(tmp_path / "optical.tif"), optical),
        "sar": write_geotiff(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]),
        "labels": write_geotiff(str(tmp_path / "labels.tif"), labels, nodata=0),
        "arrays": (optical, sar, labels),
        "dir": str(tmp_path),
    }


def listdir(path: str):
    """Sorted file names in a folder."""
    return sorted(os.listdir(path))


@pytest.fixture
def make_card():
    """The `card(tile, overlap)` function."""
    return card


@pytest.fixture
def make_scene():
    """The `scene(rows, cols, seed)` function."""
    return scene
