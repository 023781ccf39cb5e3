"""Every architecture trained through the CLI from the generic folder layout runs in `claire classify` and
in QGIS (`processing.run("claire:classify")`), with its modality reliance where it belongs."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from claire.tests.fixtures.helpers import write_raster

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def generic_dir(tmp_path_factory):
    """DIR/optical, DIR/sar, DIR/labels paired by name: 4-band uint16 optical, VV/VH dB SAR, labels 1..3."""
    root = tmp_path_factory.mktemp("generic")
    for sub in ("optical", "sar", "labels"):
        (root / sub).mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        labels = np.ones((64, 96), np.uint8)
        labels[:, 32:64] = 2
        labels[20:40, :] = 3
        level = labels[None].astype(np.float64)  # explicit: NumPy 2 keeps uint8 and overflows
        write_raster(root / "optical" / f"{name}.tif",
                     (rng.normal(1000, 50, (4, 64, 96)) + 800 * level).astype(np.uint16))
        write_raster(root / "sar" / f"{name}.tif",
                     (rng.normal(-15, 1, (2, 64, 96)) + 2 * level).astype(np.float32))
        write_raster(root / "labels" / f"{name}.tif", labels)
    return root


@pytest.mark.parametrize("arch, sar_share", [("claire", None), ("asanet", None), ("optical_only", 0),
                                             ("sar_only", 100)])
def test_trained_checkpoint_runs_in_cli_and_qgis(claire_plugin, generic_dir, tmp_path, arch, sar_share):
    import processing

    from claire.claire_plugin.cli.main import main

    ckpt = str(tmp_path / f"{arch}.safetensors")
    assert main(["train", "--arch", arch, "--size", "tiny", "--data", str(generic_dir), "--epochs", "1",
                 "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "64", "--threads", "1",
                 "--output", ckpt]) == 0
    optical, sar = str(generic_dir / "optical" / "a.tif"), str(generic_dir / "sar" / "a.tif")
    cli_out = str(tmp_path / "cli.tif")
    assert main(["classify", "--optical", optical, "--sar", sar, "--checkpoint", ckpt, "--output", cli_out,
                 "--quiet"]) == 0
    results = processing.run("claire:classify", {
        "OPTICAL": optical, "SAR": sar, "CHECKPOINT": ckpt, "OUTPUT": str(tmp_path / "qgis.tif"),
        "RELIANCE": str(tmp_path / "reliance.tif")})
    with rasterio.open(cli_out) as a, rasterio.open(results["OUTPUT"]) as b, rasterio.open(optical) as o:
        assert a.shape == b.shape == o.shape and b.transform == o.transform
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert set(np.unique(b.read(1)).tolist()) <= {1, 2, 3}
    with rasterio.open(results["RELIANCE"]) as rel:
        share = rel.read(1)
    assert share.max() <= 100
    if sar_share is not None:
        assert (share == sar_share).all(), f"{arch} must report a SAR share of {sar_share} %"
