"""A band that holds one value everywhere the others have data (QA round 16: an all-zero B8A was blamed on the band
order, an all-zero VH called 'linear, values 0 to 2' with a log10 fix that cannot work, a constant VH mapped without
a word)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.inputs.units import check_constant_bands, constant_band, detect_sar_scale


def test_an_empty_band_is_named_as_empty():
    rng = np.random.default_rng(0)
    sample = rng.uniform(0.01, 0.4, (3, 20, 20))
    assert constant_band(sample, "optical", ["B04", "B08", "B8A"]) is None
    sample[2] = 0.0
    assert constant_band(sample, "optical", ["B04", "B08", "B8A"]).startswith(
        "the optical band read as B8A holds 0 on every pixel where the other bands have data: an empty band")
    with pytest.raises(ClaireError, match=r"B8A holds 0 .*; give the raster with that band's values"):
        check_constant_bands(sample, "optical", ["B04", "B08", "B8A"])
    sar = np.stack([rng.normal(-12, 2, (20, 20)), np.full((20, 20), -20.0)])
    assert "the SAR band read as VH holds -20 on every pixel" in constant_band(sar, "SAR", ["VV", "VH"])


def test_no_data_around_and_small_samples_are_left_alone():
    rng = np.random.default_rng(0)
    sample = rng.uniform(0.01, 0.4, (2, 20, 20))
    sample[:, :10] = 0.0  # a nodata frame: 0 in every band is no pixel with data
    assert constant_band(sample, "optical", ["B04", "B08"]) is None
    sample[1, 10:] = 0.3  # a band constant where the data are, the frame around it: named (mutation check)
    assert "read as B08 holds 0.3" in constant_band(sample, "optical", ["B04", "B08"])
    small = np.zeros((2, 5, 5))
    small[0] = 0.2
    assert constant_band(small, "optical", ["B04", "B08"]) is None  # 25 pixels: too few to tell
    assert constant_band(np.zeros((1, 20, 20)), "SAR", ["VV"]) is None  # one band: nothing to compare with


def _pair(tmp, optical, sar):
    from claire.tests.fixtures.helpers import write_raster

    o = write_raster(os.path.join(tmp, "o.tif"), optical)
    s = write_raster(os.path.join(tmp, "s.tif"), sar, descriptions=["VV", "VH"])
    return o, s


def test_an_empty_band_the_order_test_trips_on_is_named_empty(workdir, capsys):
    """Through claire classify: B8A all 0 failed the band-order test, whose fix (--optical-bands) could not help."""
    from claire.claire_plugin.cli.main import main
    from claire.tests.fixtures.helpers import synthetic_scene

    tmp, ck = workdir
    optical, sar = synthetic_scene(64, 64)[:2]
    optical = optical.copy()
    optical[8] = 0
    o, s = _pair(tmp, optical, sar)
    out = os.path.join(tmp, "x.tif")
    assert main(["classify", "--optical", o, "--sar", s, "--checkpoint", ck, "--output", out]) == 2
    said = capsys.readouterr().err
    assert "holds 0 on every pixel where the other bands have data" in said and "stacked in" not in said, said
    assert not os.path.exists(out)


def test_a_constant_sar_band_is_mapped_with_a_warning(workdir, capsys):
    from claire.claire_plugin.cli.main import main
    from claire.tests.fixtures.helpers import synthetic_scene

    tmp, ck = workdir
    optical, sar = synthetic_scene(64, 64)[:2]
    sar = sar.copy()
    sar[1] = -20.0
    o, s = _pair(tmp, optical, sar)
    out = os.path.join(tmp, "x.tif")
    assert main(["classify", "--optical", o, "--sar", s, "--checkpoint", ck, "--output", out]) == 0
    said = capsys.readouterr()
    assert "SAR band read as VH holds -20 on every pixel" in said.out + said.err and os.path.exists(out)


def test_a_unit_of_just_linear_is_said_to_be_taken_as_power():
    """QA round 16: -units linear on amplitude values was reported as 'metadata says linear power'."""
    sample = np.full((2, 20, 20), 0.1)
    kind, why = detect_sar_scale(sample, "linear")
    assert kind == "power" and "taken as power" in why and "--sar-units amplitude" in why
    assert detect_sar_scale(sample, "Sigma0_VV") == ("power", "metadata says linear power")


def test_an_empty_sar_band_is_not_called_linear():
    from claire.claire_plugin.core.inputs.units import _check_each_band

    rng = np.random.default_rng(0)
    sample = np.stack([rng.normal(-12, 2, (20, 20)), np.zeros((20, 20))])
    with pytest.raises(ClaireError, match=r"the SAR band read as VH holds 0 on every pixel .* give the raster"):
        _check_each_band(sample, "db", "read as dB", ["VV", "VH"])
    sample[1] = rng.uniform(0, 1.5, (20, 20))  # a band really linear beside a dB one: still that message
    with pytest.raises(ClaireError, match=r"looks linear \(values 0 to 2\)"):
        _check_each_band(sample, "db", "read as dB", ["VV", "VH"])


def test_classify_says_it_loads_the_model_first(workdir):
    """QA round 16 (QGIS desktop): 'Starting…' for 5-8 s at the first run of a session, nothing said."""
    from claire.claire_plugin.core.engine import classify
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.tests.fixtures.helpers import synthetic_scene

    tmp, ck = workdir
    o, s = _pair(tmp, *synthetic_scene(48, 48)[:2])
    seen = []
    classify(ClassifyParams(o, s, os.path.join(tmp, "m.tif"), checkpoint=ck), lambda f, m: seen.append(m))
    assert seen[:2] == ["loading the model", "checking the inputs and planning the tiles"], seen[:3]


def test_reflectance_in_percent_is_told_how_to_declare_its_scale():
    """QA round 16: floats 0-52 with units '%' were refused without the one-line fix (which gives the base's map)."""
    from claire.claire_plugin.core.inputs.units import check_reflectance

    rng = np.random.default_rng(0)
    percent = rng.uniform(1, 52, (4, 30, 30)).astype(np.float32)
    with pytest.raises(ClaireError, match=r"in percent, 0-100, declare it: gdal_edit\.py -scale 0\.01 FILE"):
        check_reflectance(percent, "float32", 1.0, 0.0, "as floats")
    with pytest.raises(ClaireError) as err:  # integers far beyond reflectance x 10000: no such hint
        check_reflectance((percent * 10000).astype(np.int32), "int32", 1e-4, 0.0, "x 1e-4")
    assert "in percent" not in str(err.value)


def test_a_band_bright_everywhere_is_no_empty_band(workdir, capsys):
    """QA round 16 (review): the warning read the clipped reflectance, so a band above 1.0 on every pixel (values
    varying) was 'holding 1' and called empty."""
    from claire.claire_plugin.cli.main import main
    from claire.tests.fixtures.helpers import synthetic_scene

    tmp, ck = workdir
    optical, sar = synthetic_scene(64, 64)[:2]
    optical = optical.copy()
    optical[1] = 10050 + np.arange(64)[None, :] % 7 * 100  # B02 above reflectance 1 everywhere, varying
    o, s = _pair(tmp, optical, sar)
    main(["classify", "--optical", o, "--sar", s, "--checkpoint", ck, "--output", os.path.join(tmp, "b.tif")])
    said = capsys.readouterr()
    assert "empty band" not in said.out + said.err


def test_a_real_percent_file_is_told_its_scale_too(workdir, capsys):
    """QA round 16 (fix check): a float file of percent (10-52) is read at the checkpoint's 1e-4 and lands in the
    'darker than any land scene' branch, which gave no gdal_edit.py -scale 0.01."""
    from claire.claire_plugin.cli.main import main
    from claire.tests.fixtures.helpers import synthetic_scene

    tmp, ck = workdir
    optical, sar = synthetic_scene(64, 64)[:2]
    o, s = _pair(tmp, (optical / 100.0).astype(np.float32), sar)  # reflectance x 10000 / 100: percent
    out = os.path.join(tmp, "p.tif")
    assert main(["classify", "--optical", o, "--sar", s, "--checkpoint", ck, "--output", out]) == 2
    assert "gdal_edit.py -scale 0.01 FILE" in capsys.readouterr().err


def test_a_raster_constant_in_every_band_has_no_odd_band():
    """A raster saturated everywhere (65535 in every band) is not 'band B02 empty' (bad-inputs table, round 16)."""
    assert constant_band(np.full((3, 20, 20), 65535.0), "optical", ["B02", "B03", "B04"]) is None


def test_an_empty_band_among_constant_ones_is_still_named():
    """QA round 16 (second review): with every band constant (a synthetic scene), an empty B02 went unnamed."""
    sample = np.stack([np.full((20, 20), 1200.0), np.zeros((20, 20)), np.full((20, 20), 900.0)])
    assert "read as B02 holds 0 on every pixel" in constant_band(sample, "optical", ["B01", "B02", "B03"])
    assert constant_band(np.zeros((3, 20, 20)), "optical", ["B01", "B02", "B03"]) is None  # no data at all
