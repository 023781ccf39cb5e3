"""SAR units and optical reflectance (core.inputs.units): recognised, converted or refused, never misread."""
from __future__ import annotations

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.inputs.normalize import InputSpec, optical_preparer, sar_preparer
from claire.claire_plugin.core.inputs.units import (
    check_db_plausible,
    check_polarisation_order,
    detect_sar_scale,
    parse_sar_units,
    sar_kind,
)

RNG = np.random.default_rng(0)
DB = RNG.normal(-14, 4, (2, 2000)).astype(np.float32)
POWER = (10 ** (DB / 10)).astype(np.float32)
AMPLITUDE = np.sqrt(POWER)
SAR_SPEC = InputSpec(bands=["VV", "VH"], units="dB", clip=(-40.0, 5.0))
OPT_SPEC = InputSpec(bands=["B02"], units="reflectance", scale=1e-4, clip=(0.0, 1.0))


def test_declared_units_convert_to_the_same_db():
    for raw, units in ((DB, "dB"), (POWER, "linear-power"), (AMPLITUDE, "amplitude")):
        prep = sar_preparer(SAR_SPEC, 2, raw, "", units)
        np.testing.assert_allclose(prep.physical(raw.copy()), np.clip(DB, -40, 5), atol=1e-3)


def test_metadata_says_which_linear_unit():
    assert sar_kind(AMPLITUDE, "amplitude_vv amplitude_vh")[0] == "amplitude"
    assert sar_kind(POWER, "sigma0_vv sigma0_vh")[0] == "power"
    assert sar_kind(DB, "")[0] == "db"


def test_undeclared_linear_is_refused_with_the_units_to_declare():
    for raw in (POWER, AMPLITUDE):
        with pytest.raises(ClaireError, match="--sar-units linear-power or --sar-units amplitude"):
            sar_preparer(SAR_SPEC, 2, raw, "vv vh")


def test_digital_numbers_and_complex_are_refused():
    dn = (AMPLITUDE * 600).astype(np.uint16).astype(np.float32)
    with pytest.raises(ClaireError, match="uint16 integers .*digital numbers.*Calibration"):
        sar_preparer(SAR_SPEC, 2, dn, "", "auto", "uint16")
    with pytest.raises(ClaireError, match="median of 4.*dB, which no backscatter has"):
        sar_preparer(SAR_SPEC, 2, dn, "", "amplitude", "uint16")  # declared, still impossible in dB
    with pytest.raises(ClaireError, match="complex values .*SLC"):
        sar_preparer(SAR_SPEC, 2, DB, "", "auto", "complex64")
    with pytest.raises(ClaireError, match=r"complex values \(complex_int16\).*SLC"):  # was numpy's TypeError
        sar_preparer(SAR_SPEC, 2, DB, "", "amplitude", "complex_int16")
    for dtype in ("complex64", "complex_int16"):  # QA round 20: a complex optical raster ran without a word
        with pytest.raises(ClaireError, match=f"the optical raster holds complex values \\({dtype}\\), not reflectance"):
            optical_preparer(OPT_SPEC, 1, dtype, np.full((1, 8), 1000.0, np.complex64))
    with pytest.raises(ClaireError, match="unknown SAR units 'sigma'"):
        parse_sar_units("sigma")


def test_db_that_no_backscatter_has_is_refused():
    with pytest.raises(ClaireError, match="median of -1400 dB"):
        sar_preparer(SAR_SPEC, 2, np.full((2, 100), -1400.0, np.float32), "", "dB")  # dB x 100
    with pytest.raises(ClaireError, match="median of 30 dB"):
        sar_preparer(SAR_SPEC, 2, np.full((2, 100), 30.0, np.float32), "backscatter in db")
    holes = DB.copy()
    holes[:, :100] = -9999.0
    with pytest.raises(ClaireError, match="around -9999.*nodata value the file does not declare"):
        sar_preparer(SAR_SPEC, 2, holes, "")
    sar_preparer(SAR_SPEC, 2, np.clip(DB, -127, 127).astype(np.int8).astype(np.float32), "", "auto", "int8")


def test_optical_float_dn_is_converted_and_impossible_reflectance_refused():
    dn = RNG.uniform(300, 4000, 1000).astype(np.float32)
    prep = optical_preparer(OPT_SPEC, 1, "float32", dn)
    assert prep.scale == pytest.approx(1e-4) and "floats in the thousands" in " ".join(prep.notes)
    with pytest.raises(ClaireError, match="reach .* more than any surface reflects"):
        optical_preparer(OPT_SPEC, 1, "float32", dn * 10)
    with pytest.raises(ClaireError, match="percent"):
        optical_preparer(OPT_SPEC, 1, "float32", dn / 100)  # reflectance in percent
    with pytest.raises(ClaireError, match="below -0.03.*--optical-offset 0"):
        optical_preparer(OPT_SPEC, 1, "uint16", dn - 1500)
    with pytest.raises(ClaireError, match="8-bit"):
        optical_preparer(OPT_SPEC, 1, "uint8", np.clip(dn / 16, 0, 255))
    saturated = np.full(1000, 65535.0, np.float32)  # the type's maximum marks saturation: not judged
    assert optical_preparer(OPT_SPEC, 1, "uint16", saturated).scale == pytest.approx(1e-4)
    nodata = np.where(np.arange(1000) < 500, -9999.0, dn).astype(np.float32)
    optical_preparer(OPT_SPEC, 1, "int16", nodata, nodata=-9999.0)
    # the same fill undeclared (an HLS stack that lost its nodata) was blamed on the offset, whose fix changed nothing
    with pytest.raises(ClaireError, match=r"50% of the optical values are -9999, .*gdal_edit.py -a_nodata -9999"):
        optical_preparer(OPT_SPEC, 1, "int16", nodata)


def test_declared_units_that_contradict_the_values_are_refused():
    """A declaration (or metadata) saying linear for dB values, or dB for linear ones, would give a map of one
    class: refused with the unit the values show."""
    for units in ("linear-power", "amplitude"):
        with pytest.raises(ClaireError, match=r"negative, which linear backscatter never is.*--sar-units dB"):
            sar_preparer(SAR_SPEC, 2, DB, "", units)
    with pytest.raises(ClaireError, match=r"read as dB \(declared.*--sar-units linear-power or --sar-units amplitude"):
        sar_preparer(SAR_SPEC, 2, POWER, "", "dB")
    with pytest.raises(ClaireError, match=r"read as dB \(metadata says dB\).*as linear backscatter does"):
        sar_preparer(SAR_SPEC, 2, AMPLITUDE, "sigma0 in db")
    bright = np.abs(RNG.normal(3, 2, (2, 2000))).astype(np.float32)  # a city in dB: positive, yet beyond 0..2
    sar_preparer(SAR_SPEC, 2, bright, "", "dB")
    few = POWER.copy()
    few[:, :40] = -1e-4  # thermal-noise removal can leave a few tiny negatives in linear data
    sar_preparer(SAR_SPEC, 2, few, "", "linear-power")


def test_constant_optical_is_named_as_such():
    """An optical raster of zeros with no nodata declared is neither dark land nor percent reflectance."""
    with pytest.raises(ClaireError, match=r"every optical value is 0: the raster holds no image.*-a_nodata 0"):
        optical_preparer(OPT_SPEC, 1, "int16", np.zeros((1, 500), np.float32), None)


def test_floats_that_are_reflectance_under_a_stale_scale_are_named_so():
    """Floats 0..1 whose file still declares the x 0.0001 scale of integers: the message said to give floats
    between 0 and 1, which they are; it now names the scale and how to remove it."""
    from claire.claire_plugin.core.inputs.radiometry import Radiometry

    refl = RNG.uniform(0.03, 0.4, 1000).astype(np.float32)
    with pytest.raises(ClaireError, match=r"as stored .* reflectance already.*gdal_edit\.py -scale 1 -offset 0"):
        optical_preparer(OPT_SPEC, 1, "float32", refl, Radiometry(scale=1e-4, offset=0.0, note="file's scale"))


def _bundled_sar():
    import rasterio

    from claire.claire_plugin.paths import resource

    with rasterio.open(resource("data", "terramesh", "S1RTC", "282D_485L_3_3.tif")) as ds:
        return ds.read().astype(np.float32)  # dB, VV then VH, bands without names


@pytest.mark.parametrize("units", ["dB", "linear-power"])
def test_polarisations_stacked_the_other_way_round_are_refused_when_placed_by_position(units):
    """SNAP and Earth Engine list VH before VV: read by position, the weaker band was taken for VV without a word."""
    db = _bundled_sar()
    raw = db if units == "dB" else (10 ** (db / 10)).astype(np.float32)
    swapped = raw[::-1].copy()
    by_count = "known layout by band count: Sentinel-1 dual polarisation (VV, VH)"
    with pytest.raises(ClaireError, match=r"weaker than the one read as VH on 9\d% .*--sar-bands 2,1"):
        sar_preparer(SAR_SPEC, 2, swapped, "", units, band_method=by_count)
    sar_preparer(SAR_SPEC, 2, raw, "", units, band_method=by_count)  # the right order passes
    sar_preparer(SAR_SPEC, 2, swapped, "", units, band_method="explicit --sar-bands")  # the user's word stands
    sar_preparer(SAR_SPEC, 2, swapped, "", units, band_method="named by band descriptions")


def test_a_second_band_that_is_no_vh_is_named_as_such():
    """VV with a VV/VH ratio (a common Earth Engine export) got "stacked the other way round; give --sar-bands
    2,1", which then mapped 64.5 % of the pixels as the right map; VV with its incidence angle got "declare the
    unit", which could not help. Both now say the second band holds something else."""
    db = _bundled_sar()
    by_count = "known layout by band count: Sentinel-1 dual polarisation (VV, VH)"
    ratio = np.stack([db[0], db[0] - db[1]])
    with pytest.raises(ClaireError, match=r"read as VH \(band 2\) has a median of \+\d.* such as a VV/VH ratio"):
        sar_preparer(SAR_SPEC, 2, ratio, "", "dB", band_method=by_count)
    angle = np.stack([db[0], np.linspace(30.0, 46.0, db[0].size, dtype=np.float32).reshape(db[0].shape)])
    with pytest.raises(ClaireError, match=r"band read as VH, .* median of 3\d.* while the one read as VV looks like "
                                          r"backscatter .*incidence angle"):
        sar_preparer(SAR_SPEC, 2, angle, "", "auto", band_method=by_count)
    sar_preparer(SAR_SPEC, 2, db, "", "auto", band_method=by_count)  # the right bands pass


def test_the_polarisation_check_stays_quiet_on_noise_and_few_pixels():
    noise = RNG.normal(-15, 3, (2, 5000)).astype(np.float32)  # no real contrast either way
    check_polarisation_order(noise, "db", ["VV", "VH"], "assumed to be in the checkpoint's order")
    few = np.stack([np.full(50, -20.0), np.full(50, -10.0)]).astype(np.float32)
    check_polarisation_order(few, "db", ["VV", "VH"], "assumed to be in the checkpoint's order")
    with pytest.raises(ClaireError, match="--sar-bands 2,1"):
        check_polarisation_order(np.repeat(few, 3, axis=1), "db", ["VV", "VH"], "assumed to be in the checkpoint's order")
    check_polarisation_order(np.repeat(few, 3, axis=1), "db", ["HH", "B2"], "assumed to be in the checkpoint's order")


def test_a_cint16_sar_gets_the_slc_message_from_the_command_line(tmp_path, capsys):
    """Sentinel-1 SLC's own type (GDAL CInt16, rasterio 'complex_int16', which numpy lacks) on a map grid crashed
    `claire classify`, Processing and the dock's fit check with "data type 'complex_int16' not understood"."""
    from osgeo import gdal

    from claire.claire_plugin.cli.main import main
    from claire.claire_plugin.paths import resource

    optical = resource("data", "terramesh", "S2L2A", "433D_629L_3_1.tif")
    src = gdal.Open(optical)
    sar = str(tmp_path / "slc.tif")
    ds = gdal.GetDriverByName("GTiff").Create(sar, src.RasterXSize, src.RasterYSize, 2, gdal.GDT_CInt16)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for b in (1, 2):
        ds.GetRasterBand(b).WriteArray((np.full((src.RasterYSize, src.RasterXSize), 30 + 20j)).astype(np.complex64))
    ds = src = None
    assert main(["classify", "--optical", optical, "--sar", sar, "--output", str(tmp_path / "m.tif"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "complex values (complex_int16)" in err and "Traceback" not in err
    assert not (tmp_path / "m.tif").exists()


def test_bands_whose_names_give_different_units_are_refused():
    """SNAP's Sigma0_VV_db stacked with a linear Sigma0_VH: one unit read for both (the first 'db' in the text)
    made VH wrong by its whole dB scale; the map agreed with the right one on 22 % of the pixels, exit 0."""
    mixed = np.stack([DB[0], POWER[1]])
    with pytest.raises(ClaireError, match=r"different units by their names: the band read as VV \(sigma0_vv_db\) is "
                                          r"dB, the band read as VH \(sigma0_vh\) is linear-power"):
        sar_preparer(SAR_SPEC, 2, mixed, "sigma0_vv_db sigma0_vh", band_texts=["sigma0_vv_db", "sigma0_vh"])
    # names in one unit, or no names at all on the unit: as before
    assert sar_preparer(SAR_SPEC, 2, DB, "sigma0_vv_db sigma0_vh_db", band_texts=["sigma0_vv_db", "sigma0_vh_db"])
    assert sar_preparer(SAR_SPEC, 2, DB, "vv vh", band_texts=["vv", "vh"]).to_db is None


def test_a_linear_band_beside_a_db_band_without_names_is_refused():
    with pytest.raises(ClaireError, match="read as VH looks linear .* the one read as VV looks like dB"):
        sar_preparer(SAR_SPEC, 2, np.stack([DB[0], POWER[1]]))


def test_noise_subtracted_linear_with_a_few_negatives_is_linear_not_db():
    """QA (SAR reviewer): linear gamma0 after thermal-noise subtraction (a few % negative, mostly VH) was read as
    dB ("95% non-negative"): a map of 99 % trees on a coastal scene, exit 0."""
    noisy = POWER + np.random.default_rng(5).normal(0, 0.015, POWER.shape).astype(np.float32)
    assert 0.01 < float(np.mean(noisy < 0)) < 0.2
    with pytest.raises(ClaireError, match=r"linear.*small negative values as thermal-noise subtraction leaves.*"
                                          r"--sar-units linear-power or --sar-units amplitude"):
        sar_kind(noisy, "vv vh")
    prep = sar_preparer(SAR_SPEC, 2, noisy, "", "linear-power")  # declared: accepted
    assert prep.to_db == "power"
    with pytest.raises(ClaireError, match=r"read as dB .*as linear backscatter does"):
        sar_preparer(SAR_SPEC, 2, noisy, "", "dB")
    assert sar_kind(DB, "")[0] == "db"  # a dB scene still reads as dB
    bright_city = DB + 14.0  # median 0 dB: half positive, but its negatives reach -10 dB
    assert sar_kind(bright_city, "")[0] == "db"


def test_names_that_say_linear_on_db_values_name_the_declaration_to_make():
    with pytest.raises(ClaireError, match=r"declare --sar-units dB \(the file says linear, its values say dB\)"):
        sar_preparer(SAR_SPEC, 2, DB, "sigma0_vv sigma0_vh")


def test_backscatter_below_the_noise_is_read_as_the_floor_and_only_fills_are_nodata(tmp_path, raster_pair,
                                                                                  tiny_checkpoint):
    """QA (SAR reviewer): linear SAR with noise-subtracted values at or below 0 in one band, or dB with -inf
    where the power was 0, left nodata holes (1.6 % of a coastal scene, mostly sea) at 10 m and none at 20 m:
    such a pixel is the lowest backscatter; only a pixel with no value in any band (a border fill) is nodata."""
    import rasterio

    from claire.claire_plugin.core.engine import classify
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.tests.fixtures.helpers import write_raster

    with rasterio.open(raster_pair["sar"]) as ds:
        db = ds.read().astype(np.float32)
    power = (10 ** (db / 10)).astype(np.float32)
    power[1, 20:30, 40:50] = -1e-4  # VH below the noise inside the scene: 100 px
    power[:, :, :3] = 0.0  # a border fill, 3 columns of 70 px
    lin = write_raster(str(tmp_path / "sar_lin.tif"), power, descriptions=["VV", "VH"])
    res = classify(ClassifyParams(raster_pair["optical"], lin, str(tmp_path / "a.tif"), checkpoint=tiny_checkpoint,
                                  sar_units="linear-power"))
    assert res.summary["valid_pixels"] == 70 * 87, res.summary["valid_pixels"]
    db_inf = db.copy()
    db_inf[1, 20:30, 40:50] = -np.inf
    db_inf[:, :, :3] = -np.inf
    dbf = write_raster(str(tmp_path / "sar_db.tif"), db_inf, descriptions=["VV", "VH"])
    res = classify(ClassifyParams(raster_pair["optical"], dbf, str(tmp_path / "b.tif"), checkpoint=tiny_checkpoint))
    assert res.summary["valid_pixels"] == 70 * 87, res.summary["valid_pixels"]
    with rasterio.open(res.output) as a, rasterio.open(str(tmp_path / "a.tif")) as b:
        assert (a.read(1)[20:30, 40:50] > 0).all() and (a.read(1) == b.read(1)).mean() > 0.99


def test_sar_below_the_noise_floor_in_both_bands_is_warned_of():
    """QA (SAR reviewer): a GRD's border noise (-35 to -60 dB in both bands, no nodata) was classified, mostly as
    water, without a word."""
    import glob

    import rasterio

    from claire.claire_plugin.core.inputs.units import noise_floor_warning
    from claire.claire_plugin.paths import resource

    strip = DB.copy()
    strip[:, :60] = -45.0  # 3 % of the pixels
    said = noise_floor_warning(strip, "db", ["VV", "VH"])
    assert said and said.startswith("warning: 3.0% of the SAR's pixels lie below the radar's noise floor"), said
    assert "Remove GRD Border Noise" in said and "nodata" in said
    assert noise_floor_warning(10 ** (strip / 10), "power", ["VV", "VH"]) == said
    prep = sar_preparer(SAR_SPEC, 2, strip, "", "dB")
    assert said in prep.notes
    assert noise_floor_warning(DB, "db", ["VV", "VH"]) is None
    for path in glob.glob(resource("data", "terramesh", "S1RTC", "*.tif")) + glob.glob(
            resource("data", "sen12ms_cr", "s1", "*.tif")):
        with rasterio.open(path) as ds:
            assert noise_floor_warning(ds.read().astype(np.float32), "db", ["VV", "VH"]) is None, path


def test_linear_sar_declared_in_the_other_linear_unit_is_warned_of():
    """QA (SAR reviewer): power declared amplitude (85 % water) or amplitude declared power (78 % trees) ran with
    no word but "unlike the training data"."""
    import glob

    import rasterio

    from claire.claire_plugin.core.inputs.units import linear_unit_warning
    from claire.claire_plugin.paths import resource

    for path in glob.glob(resource("data", "terramesh", "S1RTC", "*.tif")):
        with rasterio.open(path) as ds:
            db = ds.read().astype(np.float64)
        power, amplitude = 10 ** (db / 10), 10 ** (db / 20)
        assert linear_unit_warning(power, "power", ["VV", "VH"]) is None, path
        assert linear_unit_warning(amplitude, "amplitude", ["VV", "VH"]) is None, path
        as_amp = linear_unit_warning(power, "amplitude", ["VV", "VH"])
        assert as_amp and "below the radar's noise floor" in as_amp and "--sar-units linear-power" in as_amp, path
        as_pow = linear_unit_warning(amplitude, "power", ["VV", "VH"])
        assert as_pow and "as amplitude read as power makes it" in as_pow and "--sar-units amplitude" in as_pow
        assert linear_unit_warning(db, "db", ["VV", "VH"]) is None


def test_db_stored_as_integers_names_the_scale_that_brings_it_back():
    """(review) dB x 10 was called dB x 100, and its -scale 0.01 then failed with a misleading message."""
    with pytest.raises(ClaireError, match=r"median of -1[34]\d dB: most likely dB x 10 .*gdal_edit.py -scale 0.1 "):
        sar_preparer(SAR_SPEC, 2, np.round(DB * 10).astype(np.float32), "", "dB")
    with pytest.raises(ClaireError, match=r"most likely dB x 100 .*-scale 0.01 "):
        sar_preparer(SAR_SPEC, 2, np.round(DB * 100).astype(np.float32), "", "dB")

    both = np.round((DB + 10.0) * 100).astype(np.float32)  # a median of about -400: x 10 or x 100 both fit
    with pytest.raises(ClaireError, match=r"dB x 10 \(.*-scale 0.1 .*\) or dB x 100 \(.*-scale 0.01 .*check one "):
        sar_preparer(SAR_SPEC, 2, both, "", "dB")


def test_a_few_negative_values_are_not_rounded_away_in_the_message():
    """QA (desktop): 9 negative pixels of 50,176 read "100% non-negative"."""
    few = POWER.copy()
    few[0, :3] = -0.001
    with pytest.raises(ClaireError, match=r"99\.9\d% non-negative"):
        sar_kind(few, "vv vh")


def test_sar_calibration_is_read_from_names_and_warned_of_against_the_checkpoints():
    """QA (tenth round, SAR expert, left then): sigma0 (Earth Engine's S1_GRD, SNAP's Calibration) or beta0 moved
    13-34 % of the bundled model's map, which learnt gamma0 RTC, without a word even where the bands said so."""
    from claire.claire_plugin.core.inputs.units import calibration_warning, card_sar_calibration, sar_calibration
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT
    from claire.models.checkpoint import read_card

    said = {("Sigma0_VV_db", "Sigma0_VH_db"): "sigma0", ("VV", "VH", "S1_GRD_sigma0.tif"): "sigma0",
            ("Beta0_VV",): "beta0", ("Gamma0_VV", "Gamma0_VH"): "gamma0", ("VV", "VH", "T31UFQ_S1RTC.tif"): "gamma0",
            ("VV", "VH", "scene.tif"): None, ("bands", "practice.tif"): None,
            # (review) SNAP's Lee Sigma filter parameter, a beta_02 stack, a word that ends in beta0: no calibration
            ("VV", "S1_TC_dB_LeeSigma_0.9.tif"): None, ("S1_VV_VH_Lee_Sigma_0.9_7x7.tif",): None,
            ("S1_stack_beta_02.tif",): None, ("alphabeta0.tif",): None, ("VV", "x_sigma0.tif"): "sigma0"}
    assert {names: sar_calibration(names) for names in said} == said
    bundled = read_card(str(DEFAULT_CHECKPOINT))
    assert card_sar_calibration(bundled) == "gamma0"
    warned = calibration_warning(["Sigma0_VV", "Sigma0_VH", "x.tif"], bundled)
    assert warned == ("warning: the SAR's names say sigma0 ('Sigma0_VV', 'Sigma0_VH'), but this checkpoint learnt "
                      "terrain-flattened gamma0 (RTC) backscatter: sigma0 moves a large share of the map (README: The "
                      "SAR the bundled checkpoint knows); give gamma0 RTC (SNAP: Radar > Radiometric > Radiometric "
                      "Terrain Flattening), or train on your polygons with this SAR")
    assert "say beta0 ('b_beta0.tif')" in calibration_warning(["VV", "VH", "b_beta0.tif"], bundled)
    for names in (["VV", "VH", "x.tif"], ["Gamma0_VV", "Gamma0_VH", "x.tif"]):
        assert calibration_warning(names, bundled) is None
    tuned = {**bundled, "training": {"data": "polygons", "band_choice": {"sar_calibration": "sigma0"}}}
    unknown = {**bundled, "training": {"data": "polygons", "band_choice": {}}}
    assert calibration_warning(["Sigma0_VV", "x.tif"], tuned) is None  # trained on sigma0: it knows it
    assert calibration_warning(["Sigma0_VV", "x.tif"], unknown) is None  # trained on SAR that said nothing
    assert "learnt sigma0 backscatter" in calibration_warning(["Beta0_VV", "x.tif"], tuned)


# Mutation audit (QA round 14, third wave): rules no other test pinned, each shown to fail on its mutant.
def test_linear_power_band_medians_are_ten_log10_not_twenty():  # U4
    rng = np.random.default_rng(0)
    vv = rng.gamma(4.0, 0.05 / 4.0, 4000)     # median about -13 dB in power
    vh = rng.gamma(4.0, 0.003 / 4.0, 4000)    # median about -25.5 dB in power: VH over water, plausible
    sample = np.stack([vv, vh]).reshape(2, 40, 100).astype(np.float32)
    check_db_plausible(sample, "power", "declared", ["VV", "VH"])  # nothing to refuse
    amp = np.sqrt(sample)                      # the same scene as amplitude
    check_db_plausible(amp, "amplitude", "declared", ["VV", "VH"])


def test_a_share_just_short_of_all_is_not_said_as_100_percent():  # U6
    vals = np.full(30000, 0.05, np.float32)
    vals[0] = -0.01
    kind, reason = detect_sar_scale(vals)
    assert kind == "linear" and "99.99% non-negative" in reason and "100" not in reason.split("non-negative")[0]
