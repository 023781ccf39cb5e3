"""A band that holds one value everywhere the others have data (QA round 16: an all-zero B8A was blamed on the band
order, an all-zero VH called 'linear, values 0 to 2' with a log10 fix that cannot work)."""
from __future__ import annotations

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.inputs.units import check_constant_bands


def test_an_empty_band_is_named_as_empty():
    rng = np.random.default_rng(0)
    sample = rng.uniform(0.01, 0.4, (3, 20, 20))
    check_constant_bands(sample, "optical", ["B04", "B08", "B8A"])
    sample[2] = 0.0
    with pytest.raises(ClaireError, match=r"the optical band read as B8A holds 0 on every pixel where the other "
                                          r"bands have data: it is empty"):
        check_constant_bands(sample, "optical", ["B04", "B08", "B8A"])
    sar = np.stack([rng.normal(-12, 2, (20, 20)), np.full((20, 20), -20.0)])
    with pytest.raises(ClaireError, match=r"the SAR band read as VH holds -20 on every pixel"):
        check_constant_bands(sar, "SAR", ["VV", "VH"])


def test_no_data_around_and_small_samples_are_left_alone():
    rng = np.random.default_rng(0)
    sample = rng.uniform(0.01, 0.4, (2, 20, 20))
    sample[:, :10] = 0.0  # a nodata frame: 0 in every band is no pixel with data
    check_constant_bands(sample, "optical", ["B04", "B08"])
    small = np.zeros((2, 5, 5))
    small[0] = 0.2
    check_constant_bands(small, "optical", ["B04", "B08"])  # 25 pixels: too few to tell
    check_constant_bands(np.zeros((1, 20, 20)), "SAR", ["VV"])  # one band: nothing to compare with


def test_the_engine_refuses_an_empty_band_before_the_order_test(workdir, capsys):
    """Through claire classify: the message names the empty band, not the stacking order."""
    import os

    import rasterio

    from claire.claire_plugin.cli.main import main
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    tmp, ck = workdir
    optical, sar = synthetic_scene(64, 64)[:2]
    optical = optical.copy()
    optical[8] = 0
    o = write_raster(os.path.join(tmp, "empty_b8a.tif"), optical)
    s = write_raster(os.path.join(tmp, "sar_ok.tif"), sar, descriptions=["VV", "VH"])
    out = os.path.join(tmp, "x.tif")
    assert main(["classify", "--optical", o, "--sar", s, "--checkpoint", ck, "--output", out]) == 2
    said = capsys.readouterr().err
    assert "holds 0 on every pixel where the other bands have data: it is empty" in said and "order" not in said, said
    assert not os.path.exists(out)
    with rasterio.open(o) as ds:
        assert ds.count == optical.shape[0]


def test_a_unit_of_just_linear_is_said_to_be_taken_as_power():
    """QA round 16: -units linear on amplitude values was reported as 'metadata says linear power'."""
    from claire.claire_plugin.core.inputs.units import detect_sar_scale

    sample = np.full((2, 20, 20), 0.1)
    kind, why = detect_sar_scale(sample, "linear")
    assert kind == "power" and "taken as power" in why and "--sar-units amplitude" in why
    assert detect_sar_scale(sample, "Sigma0_VV") == ("power", "metadata says linear power")
