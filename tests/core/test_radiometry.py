"""Sentinel-2 radiometric offsets (processing baseline 04.00+): declared by the file, given by the user,
or suspected. Offset data read the right way must give exactly the map of the same scene stored without
the offset; read the wrong way it must not."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.cli.classify import params_from_args
from claire.claire_plugin.cli.main import build_parser
from claire.claire_plugin.core.engine import run
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.params import ClassifyParams
from claire.tests.fixtures.helpers import write_raster


def _offset_copy(scene, name, tags=None, band_tags=None, scales=None, offsets=None) -> str:
    """The scene's optical stored the baseline-04.00 way (DN + 1000), with the given metadata."""
    optical, _, _ = scene["arrays"]
    stored = (optical.astype(np.int32) + 1000).astype(np.uint16)
    path = write_raster(os.path.join(scene["dir"], name), stored, tags=tags)
    if band_tags or scales or offsets:
        with rasterio.open(path, "r+") as ds:
            for i, t in (band_tags or {}).items():
                ds.update_tags(i, **t)
            if scales:
                ds.scales = scales
            if offsets:
                ds.offsets = offsets
    return path


def _conf(scene, model, card, optical, name, **kw):
    """(confidence raster, messages) of one run; the confidence reacts to any change of the inputs."""
    d = scene["dir"]
    res = run(ClassifyParams(optical, scene["sar"], os.path.join(d, f"out_{name}.tif"),
                             confidence=os.path.join(d, f"out_{name}_conf.tif"), **kw), model, card)
    with rasterio.open(res.confidence) as ds:
        return ds.read(1), res.messages


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to float rounding of the scaling: 1 % at most in a few pixels."""
    np.testing.assert_allclose(got.astype(int), want.astype(int), atol=1)
    assert (got == want).mean() > 0.99


@pytest.fixture
def reference(engine_scene, standin_model, standin_card):
    """Confidence of the scene stored without offset, and the same data with +1000 read naively."""
    ref, msgs = _conf(engine_scene, standin_model, standin_card, engine_scene["optical"], "ref")
    assert not any("--optical-offset" in m for m in msgs), "ordinary reflectance raises no suspicion"
    return ref


def test_offset_data_without_metadata_differs_and_is_suspected(engine_scene, standin_model, standin_card,
                                                                reference):
    path = _offset_copy(engine_scene, "plain.tif")
    got, msgs = _conf(engine_scene, standin_model, standin_card, path, "plain")
    assert (got != reference).mean() > 0.5, "the offset changes the result, so the tests below can fail"
    assert any("run again with --optical-offset -1000" in m for m in msgs)
    fixed, msgs = _conf(engine_scene, standin_model, standin_card, path, "given", optical_offset=-1000)
    _same(fixed, reference)
    assert any("(--optical-offset)" in m for m in msgs)


def test_offset_data_with_negative_dark_pixels_or_as_floats_is_suspected(engine_scene, standin_model, standin_card,
                                                                         reference):
    """QA round 22: offset data whose water reads a little below 1000 DN in the SWIR (negative reflectance, 961 DN
    on a coast) lost the note (it wanted every value >= 1000), and offset data stored as floats was never looked
    at: both read 0.1 too bright without a word."""
    optical, _, _ = engine_scene["arrays"]
    stored = optical.astype(np.int32) + 1000
    dark = np.zeros(stored.shape[1:], bool)
    dark[:2, :] = True  # 1.3 % of the pixels
    stored[10:12, dark] = 961
    path = write_raster(os.path.join(engine_scene["dir"], "dark.tif"), stored.astype(np.uint16))
    _, msgs = _conf(engine_scene, standin_model, standin_card, path, "dark")
    assert any("run again with --optical-offset -1000" in m for m in msgs), msgs
    as_reflectance = write_raster(os.path.join(engine_scene["dir"], "f.tif"), (stored / 1e4).astype(np.float32))
    _, msgs = _conf(engine_scene, standin_model, standin_card, as_reflectance, "f")
    assert any("run again with --optical-offset -0.1 " in m for m in msgs), msgs
    fixed, given = _conf(engine_scene, standin_model, standin_card, as_reflectance, "f0", optical_offset=-0.1)
    assert not any("run again with" in m for m in given), given  # the user's offset: no suggestion
    res = run(ClassifyParams(path, engine_scene["sar"], os.path.join(engine_scene["dir"], "flag.tif")),
              standin_model, standin_card)
    assert res.summary["optical_offset_suspected"] is True  # what the explanation and the dock read
    ordinary, _ = _conf(engine_scene, standin_model, standin_card,
                        write_raster(os.path.join(engine_scene["dir"], "o.tif"),
                                     (stored - 1000).astype(np.float32) * np.float32(1e-4)), "o")
    np.testing.assert_array_equal(fixed, ordinary)
    as_dn = write_raster(os.path.join(engine_scene["dir"], "x.tif"), stored.astype(np.float32))
    _, msgs = _conf(engine_scene, standin_model, standin_card, as_dn, "x")
    assert any("run again with --optical-offset -1000" in m for m in msgs), msgs


def test_a_gdal_scale_contradicting_add_offset_tags_is_said(engine_scene, standin_model, standin_card):
    """QA round 22: a GDAL scale of 1e-4 with offset 0 beside BOA_ADD_OFFSET -1000 tags read the data 0.1 too
    bright, saying only that the GDAL scale applied."""
    path = _offset_copy(engine_scene, "both.tif", band_tags={i: {"BOA_ADD_OFFSET": "-1000"} for i in range(1, 13)},
                        scales=[1e-4] * 12)
    _, msgs = _conf(engine_scene, standin_model, standin_card, path, "both")
    said = [m for m in msgs if "GDAL band scale/offset" in m]
    assert said and said[0].startswith("warning: ") and "ADD_OFFSET of -1000" in said[0], msgs
    assert "--optical-offset -1000" in said[0]


@pytest.mark.parametrize("meta,says", [
    (dict(band_tags={i: {"BOA_ADD_OFFSET": "-1000"} for i in range(1, 13)}), "ADD_OFFSET band metadata"),
    (dict(tags={"RADIO_ADD_OFFSET_B2": "-1000", "RADIO_ADD_OFFSET_B3": "-1000"}), "ADD_OFFSET dataset metadata"),
    (dict(tags={"PROCESSING_BASELINE": "05.10"}), "processing baseline 05.10"),
    (dict(scales=[1e-4] * 12, offsets=[-0.1] * 12), "GDAL band scale/offset"),
    (dict(offsets=[-1000.0] * 12), "GDAL band offset"),
])
def test_declared_offset_gives_the_map_of_the_uncorrected_scene(engine_scene, standin_model, standin_card,
                                                                 reference, meta, says):
    path = _offset_copy(engine_scene, "declared.tif", **meta)
    got, msgs = _conf(engine_scene, standin_model, standin_card, path, "declared")
    _same(got, reference)
    assert any(says in m for m in msgs), msgs
    assert not any("run again with" in m for m in msgs)


def test_user_offset_wins_over_the_file(engine_scene, standin_model, standin_card, reference):
    path = _offset_copy(engine_scene, "tagged.tif", tags={"PROCESSING_BASELINE": "04.00"})
    naive, _ = _conf(engine_scene, standin_model, standin_card, _offset_copy(engine_scene, "p.tif"), "p")
    got, _ = _conf(engine_scene, standin_model, standin_card, path, "zero", optical_offset=0)
    np.testing.assert_array_equal(got, naive)


@pytest.mark.parametrize("meta,match", [
    (dict(tags={"BOA_ADD_OFFSET": "1000"}), "ESA's offset is added"),
    (dict(band_tags={i: {"BOA_ADD_OFFSET": "-900" if i == 3 else "-1000"} for i in range(1, 13)}),
     "different ADD_OFFSET"),
    (dict(tags={"BOA_ADD_OFFSET": "n/a"}), "not a number"),
    (dict(tags={"BOA_ADD_OFFSET": "nan"}), "not a number"),  # QA round 23: every pixel water, confidence nan
    (dict(band_tags={i: {"BOA_ADD_OFFSET": "-inf"} for i in range(1, 13)}), "not a number"),
    (dict(band_tags={2: {"BOA_ADD_OFFSET": "-1000"}, 3: {"BOA_ADD_OFFSET": "-1000"}}), "some bands but not on "),
    (dict(scales=[float("nan")] * 12), "not numbers"),
    (dict(offsets=[float("-inf")] * 12), "not numbers"),
    (dict(offsets=[-1000.0] * 11 + [0.0]), "different offset values"),
])
def test_declarations_that_cannot_be_applied_are_clear_errors(engine_scene, standin_model, standin_card,
                                                               meta, match):
    path = _offset_copy(engine_scene, "bad.tif", **meta)
    out = os.path.join(engine_scene["dir"], "bad_out.tif")
    with pytest.raises(ClaireError, match=match) as err:
        run(ClassifyParams(path, engine_scene["sar"], out), standin_model, standin_card)
    assert "--optical-offset" in str(err.value)
    assert not os.path.exists(out)


def test_command_line_flag_reaches_the_engine():
    args = build_parser().parse_args(["classify", "--optical", "o.tif", "--sar", "s.tif", "--output", "x.tif",
                                      "--optical-offset", "-1000"])
    assert params_from_args(args).optical_offset == -1000.0
    args = build_parser().parse_args(["classify", "--optical", "o.tif", "--sar", "s.tif", "--output", "x.tif"])
    assert params_from_args(args).optical_offset is None


@pytest.mark.parametrize("meta", [dict(tags={"PROCESSING_BASELINE": "04.00"}),
                                  dict(scales=[1e-4] * 12, offsets=[-0.1] * 12)])
def test_training_reads_declared_offsets_like_the_engine(engine_scene, meta):
    from claire.claire_plugin.core.training.datasets import ClassDef, Pair, RasterPairSource

    d = engine_scene["dir"]
    classes = [ClassDef(v, str(v)) for v in (1, 2, 4, 5)]
    region = (0, 0, 150, 173)
    plain = Pair("plain", engine_scene["optical"], engine_scene["sar"], os.path.join(d, "labels.tif"), region)
    offset = Pair("offset", _offset_copy(engine_scene, "train_offset.tif", **meta), engine_scene["sar"],
                  os.path.join(d, "labels.tif"), region)
    src = RasterPairSource([plain, offset], classes)
    want = src.read(plain, 10, 20, 64, 64)[0]
    got = src.read(offset, 10, 20, 64, 64)[0]
    np.testing.assert_allclose(got, want, atol=0.05)  # raw DN units; float rounding of the scale
    src.close()


def test_offset_tags_on_float_reflectance_are_not_applied(engine_scene, standin_model, standin_card,
                                                          reference):
    """`gdal_translate -unscale` turns DN into reflectance but keeps the product's ADD_OFFSET tags."""
    optical, _, _ = engine_scene["arrays"]
    path = write_raster(os.path.join(engine_scene["dir"], "unscaled.tif"), (optical * 1e-4).astype(np.float32),
                   tags={"BOA_ADD_OFFSET": "-1000", "PROCESSING_BASELINE": "05.10"})
    got, msgs = _conf(engine_scene, standin_model, standin_card, path, "unscaled")
    _same(got, reference)
    assert any("offset metadata (-1000 DN) is not applied" in m for m in msgs), msgs


def test_sar_named_sigma0_is_warned_of_by_the_run_and_recorded_by_a_training(engine_scene, standin_model,
                                                                              standin_card):
    """A run of a checkpoint that learnt gamma0 RTC says when the SAR's band names say sigma0 (the map moves);
    a training scene records what its SAR's names say, so that the fine-tuned card knows it."""
    import copy

    from claire.claire_plugin.core.training.scene import Scene

    _, sar, _ = engine_scene["arrays"]
    sigma = write_raster(os.path.join(engine_scene["dir"], "s1.tif"), sar,
                         descriptions=["Sigma0_VV_db", "Sigma0_VH_db"])
    card = copy.deepcopy(standin_card)
    card["inputs"]["sar"]["sensor"] = "Sentinel-1 RTC"
    d = engine_scene["dir"]
    runs = {name: run(ClassifyParams(engine_scene["optical"], path, os.path.join(d, f"{name}.tif")), standin_model,
                      card).messages for name, path in (("rtc", engine_scene["sar"]), ("sigma", sigma))}
    warned = [m for m in runs["sigma"] if "names say sigma0 ('Sigma0_VV_db', 'Sigma0_VH_db')" in m]
    assert len(warned) == 1 and warned[0].startswith("warning:")
    assert not any("names say" in m for m in runs["rtc"])
    scene = Scene(engine_scene["optical"], sigma, card)
    try:
        assert scene.band_info()["sar_calibration"] == "sigma0"
    finally:
        scene.close()


@pytest.mark.parametrize("value,baseline", [("04.00", 4.0), ("05.10", 5.1), ("02.13", 2.13), ("N0400", 4.0),
                                            ("N0213", 2.13), ("N0399", 3.99), ("PB04.00", 4.0), ("V04.00", 4.0),
                                            ("4", 4.0)])
def test_processing_baseline_as_esa_writes_it(value, baseline):
    """QA round 14: 'N0213' (a product name's 02.13) was read as 213 and got the -1000 offset of baseline 04.00, noted
    as "baseline 213.00"; 'V04.00' was dropped without a word (no offset)."""
    from claire.claire_plugin.core.inputs.radiometry import _baseline

    assert _baseline({"PROCESSING_BASELINE": value}) == pytest.approx(baseline)
    assert _baseline({"PROCESSING_BASELINE": " "}) is None


@pytest.mark.parametrize("value", ["4.00.1", "baseline four"])
def test_an_unreadable_processing_baseline_is_an_error_naming_the_offset_to_pass(value):
    from claire.claire_plugin.core.inputs.radiometry import _baseline

    with pytest.raises(ClaireError, match="--optical-offset -1000 .* --optical-offset 0"):
        _baseline({"PROCESSING_BASELINE": value})


def test_the_offset_suspicion_reads_the_darkest_thousandth_of_every_band():
    """Mutation check of round 22: offset data with 0.05 % of its pixels at 500 DN (defects, deep shadow) is still
    suspected, with 1 % at 850 DN not; ordinary data with 5 % water at 50 DN is not; the floor is 0.09 as
    reflectance."""
    from claire.claire_plugin.core.inputs.radiometry import OFFSET_FLOOR, offset_suspicion

    rng = np.random.default_rng(0)
    offset = rng.integers(1100, 4000, (10, 20000)).astype(np.float32)
    offset[:, :10] = 500  # 0.05 %
    assert offset_suspicion(offset, 1e-4, "reflectance") is not None
    offset[:, :200] = 850  # 1 % at 0.085: the 0.1st percentile below the floor
    assert offset_suspicion(offset, 1e-4, "reflectance") is None
    ordinary = rng.integers(300, 4000, (10, 20000)).astype(np.float32)
    ordinary[:, :1000] = 50  # 5 % water
    assert offset_suspicion(ordinary, 1e-4, "reflectance") is None
    bright = np.full((10, 20000), 1000 * OFFSET_FLOOR * 10 + 5, np.float32)
    assert offset_suspicion(bright, 1e-4, "reflectance") is not None  # 0.0905: at the floor
    assert offset_suspicion(bright - 10, 1e-4, "reflectance") is None  # 0.0895


def test_a_gdal_offset_of_its_own_beside_add_offset_tags_is_no_contradiction(engine_scene, standin_model,
                                                                             standin_card, reference):
    """Mutation check of round 22: the warning is for a GDAL offset of 0 beside ADD_OFFSET tags; a GDAL offset of
    -0.1 applies ESA's offset already."""
    path = _offset_copy(engine_scene, "agree.tif", band_tags={i: {"BOA_ADD_OFFSET": "-1000"} for i in range(1, 13)},
                        scales=[1e-4] * 12, offsets=[-0.1] * 12)
    got, msgs = _conf(engine_scene, standin_model, standin_card, path, "agree")
    _same(got, reference)
    assert not any(m.startswith("warning:") and "ADD_OFFSET" in m for m in msgs), msgs


def test_which_add_offset_tags_are_read(tmp_path):
    """Round 23's mutation check: band tags win over the dataset's (a dataset tag of 0 beside band tags of -1000
    read 0), an ADD_OFFSET of 0 is no refusal, and the scale path reads the tags by the same rule."""
    from claire.claire_plugin.core.inputs.radiometry import optical_radiometry

    def rad(tags=None, band_tags=None, scales=None):
        path = write_raster(tmp_path / "o.tif", np.full((4, 20, 20), 1500, np.uint16), tags=tags)
        with rasterio.open(path, "r+") as ds:
            for i, t in (band_tags or {}).items():
                ds.update_tags(i, **t)
            if scales:
                ds.scales = scales
        with rasterio.open(path) as ds:
            return optical_radiometry(ds, [1, 2, 3, 4])

    every = {i: {"BOA_ADD_OFFSET": "-1000"} for i in range(1, 5)}
    assert not rad(scales=[1e-4] * 4).note.startswith("warning")  # a plain GDAL scale: no contradiction
    with pytest.raises(ClaireError, match=r"but not on band 3, band 4;"):
        rad(band_tags={1: every[1], 2: every[2]})
    got = rad(tags={"BOA_ADD_OFFSET": "0"}, band_tags=every)
    assert got.add == -1000 and "band metadata" in got.note
    zero = rad(tags={"BOA_ADD_OFFSET": "0"})
    assert zero.add == 0 and "dataset metadata" in zero.note
    scaled = rad(band_tags=every, scales=[1e-4] * 4)
    assert scaled.scale == 1e-4 and "--optical-offset -1000" in scaled.note
    assert "band offset to -0.1 (gdal_edit.py -offset)" in scaled.note  # in the file's scaled units
    # beside a GDAL scale (which applies) tags that cannot be read as one value warn; they change nothing (QA round
    # 24: refused, where the file's own scale says how to read it)
    for bad, said in (({**every, 4: {"BOA_ADD_OFFSET": "0"}}, "different ADD_OFFSET"),
                      ({i: {"BOA_ADD_OFFSET": "1000"} for i in range(1, 5)}, "ESA's offset is added"),
                      ({1: {"BOA_ADD_OFFSET": "nan"}}, "not a number"), ({1: every[1]}, "but not on band 2")):
        warned = rad(band_tags=bad, scales=[1e-4] * 4)
        assert (warned.scale, warned.offset, warned.add) == (1e-4, 0.0, 0.0), bad
        assert warned.note.startswith("warning: ") and "ADD_OFFSET metadata is not applied" in warned.note, bad
        assert said in warned.note, (bad, warned.note)
    with pytest.raises(ClaireError, match=r"ADD_OFFSET of \+1, "):  # any positive offset, however small
        rad(tags={"BOA_ADD_OFFSET": "1"})
    # a band without tags takes the dataset's: the same -1000 on the dataset and on band 1 is -1000 for all
    inherited = rad(tags={"BOA_ADD_OFFSET": "-1000"}, band_tags={1: every[1]})
    assert inherited.add == -1000 and "band and dataset metadata" in inherited.note
    # bands that all carry their own: a dataset tag that is no number is not read (QA round 24: refused)
    assert rad(tags={"BOA_ADD_OFFSET": "n/a"}, band_tags=every).add == -1000
    with pytest.raises(ClaireError, match="different ADD_OFFSET"):
        rad(tags={"BOA_ADD_OFFSET": "0"}, band_tags={1: every[1]})
    # a file scale and offset of its own apply whatever tags some bands carry (second review: refused)
    path = write_raster(tmp_path / "p.tif", np.full((4, 20, 20), 1500, np.uint16))
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(1, BOA_ADD_OFFSET="-1000")
        ds.scales, ds.offsets = [1e-4] * 4, [-0.1] * 4
    with rasterio.open(path) as ds:
        own = optical_radiometry(ds, [1, 2, 3, 4])
    assert (own.scale, own.offset) == (1e-4, -0.1) and "warning" not in own.note
