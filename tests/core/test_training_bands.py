"""Training reads the optical bands as the engine does (core.inputs.bands.choose_raster_bands): a VRT of one
file per Sentinel-2 band stacked in the shell's alphabetical order (B01 .. B12 B8A) is read by its source
files' names, so polygon training sees the same pixel values as on the stack in the L2A order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from claire.claire_plugin.core.inputs.bands import S2_L2A as S2_FILES
from claire.claire_plugin.core.training.finetune import FinetuneConfig
from claire.claire_plugin.core.training.polygons import PolygonTrainParams, train_from_polygons
from claire.claire_plugin.core.training.scene import Scene
from claire.models.checkpoint import read_card
from claire.tests.fixtures.helpers import make_tiny_checkpoint, synthetic_scene, write_raster
from claire.tests.fixtures.vectors import TRAIN_BOXES as BOXES
from claire.tests.fixtures.vectors import TRAIN_NAMES as NAMES
from claire.tests.fixtures.vectors import box_wkt, write_vector


@pytest.fixture
def stacks(tmp_path):
    """The same scene as a 12-band GeoTIFF in the L2A order and as an alphabetical VRT of band files."""
    from osgeo import gdal

    opt, sar, _ = synthetic_scene(64, 96)
    (tmp_path / "bands").mkdir()
    files = {b: write_raster(tmp_path / "bands" / f"T31TCJ_20230601_{b}_10m.tif", opt[i])
             for i, b in enumerate(S2_FILES)}
    vrt = str(tmp_path / "stack.vrt")
    gdal.BuildVRT(vrt, [files[b] for b in sorted(S2_FILES)], separate=True).FlushCache()
    feats = [(box_wkt(r, c, r + 5, c + 5), NAMES[v]) for v, r, c in BOXES]
    return {"ordered": write_raster(tmp_path / "o.tif", opt), "alphabetical": vrt,
            "sar": write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]),
            "labels": write_vector(tmp_path / "l.gpkg", feats),
            "checkpoint": make_tiny_checkpoint(tmp_path / "base.safetensors"), "dir": tmp_path}


def test_alphabetical_stack_really_differs_band_by_band(stacks):
    """The check below can fail: read in the raster's own order, the two stacks differ from band 9 on."""
    import rasterio

    with rasterio.open(stacks["ordered"]) as a, rasterio.open(stacks["alphabetical"]) as b:
        assert not np.array_equal(a.read(), b.read())


def test_scene_reads_the_alphabetical_vrt_like_the_ordered_stack(stacks):
    card = read_card(stacks["checkpoint"])
    with Scene(stacks["ordered"], stacks["sar"], card) as ordered, \
            Scene(stacks["alphabetical"], stacks["sar"], card) as alphabetical:
        assert alphabetical.oc.names == ordered.oc.names
        assert alphabetical.oc.indices != ordered.oc.indices
        assert "reordered" in alphabetical.oc.method and "source file names" in alphabetical.oc.method
        for window in ((0, 0, 64, 96), (10, 20, 32, 32)):
            o1, s1, bad1 = ordered.read(*window)
            o2, s2, bad2 = alphabetical.read(*window)
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(s1, s2)
            np.testing.assert_array_equal(bad1, bad2)


def test_polygon_training_on_the_alphabetical_vrt_matches_the_ordered_stack(stacks):
    torch.set_num_threads(1)
    reports = {}
    for kind in ("ordered", "alphabetical"):
        cfg = FinetuneConfig(epochs=1, steps_per_epoch=2, batch_size=2, crop=64, device="cpu", seed=3)
        params = PolygonTrainParams(optical=stacks[kind], sar=stacks["sar"], labels=stacks["labels"], field="class",
                                    output=str(stacks["dir"] / f"{kind}.safetensors"),
                                    checkpoint=stacks["checkpoint"], report=str(stacks["dir"] / f"{kind}.json"),
                                    rf_trees=10, buffer_px=2, config=cfg)
        reports[kind] = train_from_polygons(params)
    a, b = reports["ordered"], reports["alphabetical"]
    assert b["arms"]["rf_optical"] == a["arms"]["rf_optical"]  # the random forest sees the raw band values
    assert b["arms"]["finetuned"] == a["arms"]["finetuned"]
    assert b["training"]["loss"] == a["training"]["loss"]
