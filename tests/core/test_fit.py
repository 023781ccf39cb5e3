"""core.inputs.fit and the band names of a VRT of band files (issue 19 class 9)."""
from __future__ import annotations

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.inputs.bands import choose_bands
from claire.claire_plugin.core.inputs.fit import check_pair, resolution_warning, training_resolution
from claire.tests.fixtures import bad_inputs as C
from claire.tests.fixtures import bad_inputs_19 as C19
from claire.tests.fixtures.helpers import CARD_OPTICAL, tiny_card

ALPHABETICAL = sorted(C19.S2_FILES)


def test_alphabetical_names_are_reordered_and_said():
    choice = choose_bands("optical", 12, ALPHABETICAL, CARD_OPTICAL, flag="--optical-bands")
    assert [ALPHABETICAL[i - 1] for i in choice.indices] == CARD_OPTICAL
    assert "reordered: the raster stacks them as B01 B02" in choice.method and "B12 B8A" in choice.method


def test_layout_against_the_names_is_refused():
    names = sorted([b for b in C19.S2_FILES if b != "B8A"] + ["B10"])
    with pytest.raises(ClaireError, match=r"band 9 \(B09\) as B8A; B8A is not among them; stack the bands"):
        choose_bands("optical", 12, names, CARD_OPTICAL, flag="--optical-bands")
    # the same count without names keeps the known layout
    assert choose_bands("optical", 12, [None] * 12, CARD_OPTICAL).method.startswith("known layout")


def test_vrt_in_alphabetical_order_gives_the_map_of_the_ordered_stack(workdir):
    """The engine through the CLI: the alphabetical VRT and the 12-band GeoTIFF in L2A order give the
    same map, pixel for pixel (without the reorder, B09 would be read as B8A and so on)."""
    import rasterio

    from claire.tests.core.test_bad_inputs import classify_argv, cli

    tmp, ck = workdir
    args = C19._vrt_alphabetical(tmp, ck)
    maps = []
    for optical, out in ((args["optical"], tmp / "out" / "vrt.tif"), (str(tmp / "in" / "optical.tif"),
                                                                       tmp / "out" / "tif.tif")):
        rc, stdout, stderr = cli(classify_argv(dict(args, optical=optical, output=str(out))))
        assert rc == 0, stderr
        with rasterio.open(out) as ds:
            maps.append(ds.read(1))
    np.testing.assert_array_equal(maps[0], maps[1])


def test_training_resolution_from_card_or_sensor():
    card = tiny_card()
    assert training_resolution(card) == (10.0, "Sentinel-2 bands")
    card["inputs"]["optical"]["resolution_m"] = 20
    assert training_resolution(card) == (20.0, "its model card")
    card["inputs"]["optical"].pop("resolution_m")
    card["inputs"]["optical"]["sensor"] = "unknown camera"
    assert training_resolution(card) is None


@pytest.mark.parametrize("res,warns", [(10.0, False), (14.0, False), (20.0, True), (5.0, True)])
def test_resolution_warning_threshold(tmp_path, res, warns):
    import rasterio

    path = C.write_tif(tmp_path / "o.tif", np.ones((2, 4, 4), np.int16), res=res)
    with rasterio.open(path) as ds:
        text = resolution_warning(ds, tiny_card())
    assert bool(text) == warns
    if warns:
        assert text.startswith("warning:") and "resample the optical to 10 m" in text


def test_check_pair_same_file_units_and_fit(workdir):
    tmp, ck = workdir
    card = tiny_card()
    args = C._pair(tmp, ck)
    assert check_pair(args["optical"], args["sar"], card).errors == []
    same = check_pair(args["optical"], args["optical"], card)
    assert len(same.errors) == 1 and "same raster" in same.errors[0]
    # one file stacking both, with disjoint band lists, is fine for this check
    assert check_pair(args["optical"], args["optical"], card, list(range(1, 11)), [11, 12]).errors[:1] != [
        same.errors[0]]
    dn = C19._sar_float_dn(tmp, ck)
    errors = check_pair(dn["optical"], dn["sar"], card).errors
    assert errors and "neither dB nor linear" in errors[0] and "--sar-units dB" in errors[0]
    coarse = C19._coarse_optical(tmp, ck)
    found = check_pair(coarse["optical"], coarse["sar"], card)
    assert found.errors == [] and "60 m" in found.warnings[0]


def test_check_pair_writes_nothing_next_to_the_inputs(workdir):
    tmp, ck = workdir
    args = C19._vrt_alphabetical(tmp, ck)
    before = C.snapshot(tmp)
    assert check_pair(args["optical"], args["sar"], tiny_card()).errors == []
    assert C.snapshot(tmp) == before


def test_check_pair_notes_bands_it_reorders(workdir):
    """The alphabetical VRT gets a note (no warning) saying how its bands will be read; a plain pair none."""
    tmp, ck = workdir
    args = C19._vrt_alphabetical(tmp, ck)
    found = check_pair(args["optical"], args["sar"], tiny_card())
    assert found.errors == found.warnings == []
    assert found.notes == ["the optical bands of this VRT are stacked in alphabetical order (B01 B02 B03 B04 B05 "
                           "B06 B07 B08 B09 B11 B12 B8A, by the VRT's source file names); they will be read in the "
                           "checkpoint's order: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12"]
    ordered = str(tmp / "in" / "optical.tif")  # the same bands as a GeoTIFF in the L2A order
    assert check_pair(ordered, args["sar"], tiny_card()).notes == []


def test_card_resolution_is_validated():
    from claire.models.card_schema import card_problem

    card = tiny_card()
    card["inputs"]["optical"]["resolution_m"] = 10
    assert card_problem(card) is None
    for bad in (0, -10, float("nan"), "10 m"):
        card["inputs"]["optical"]["resolution_m"] = bad
        assert "resolution_m" in (card_problem(card) or ""), bad


def test_check_pair_refuses_rasters_of_two_places_before_the_run(workdir):
    """The dock's check names a pair that does not overlap or has no CRS, as the engine would after Classify."""
    tmp, ck = workdir
    far = C._no_overlap(tmp, ck)
    errors = check_pair(far["optical"], far["sar"], tiny_card()).errors
    assert len(errors) == 1 and "do not overlap" in errors[0] and "give rasters of the same place" in errors[0]
    nocrs = C._no_crs(tmp, ck)
    errors = check_pair(nocrs["optical"], nocrs["sar"], tiny_card()).errors
    assert len(errors) == 1 and "SAR" in errors[0] and "no coordinate reference system" in errors[0]
    corner = C._small_overlap(tmp, ck)  # a partial overlap is a run over the part both cover
    assert check_pair(corner["optical"], corner["sar"], tiny_card()).errors == []


def test_the_dock_fit_check_runs_the_optical_spectral_checks_too(tmp_path):
    """The dock said nothing of a Level-2A stack with its scene classification band appended, which the run then
    read as Level-1C (agreement 55.7 % with the right map): the fit check runs the engine's optical checks."""
    import rasterio

    from claire.claire_plugin.core.inputs.fit import check_pair
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT, resource
    from claire.models.checkpoint import read_card

    src = resource("data", "terramesh", "S2L2A", "433D_629L_3_1.tif")
    sar = resource("data", "terramesh", "S1RTC", "433D_629L_3_1.tif")
    with rasterio.open(src) as ds:
        a, profile = ds.read(), ds.profile
    profile.update(count=13)
    stacked = str(tmp_path / "l2a_scl.tif")
    with rasterio.open(stacked, "w", **profile) as out:
        out.write(np.concatenate([a, np.full((1,) + a.shape[1:], 4, a.dtype)]))  # SCL: vegetation everywhere
    card = read_card(DEFAULT_CHECKPOINT)
    found = check_pair(stacked, sar, card)
    assert any("--optical-bands 2,3,4,5,6,7,8,9,11,12" in e for e in found.errors), found.errors
    assert check_pair(src, sar, card).errors == []


def test_jpeg_2000_bands_are_left_to_the_run_by_the_fit_check(tmp_path):
    """Sampling a SAFE's JPEG 2000 bands decodes whole tiles: seconds of a frozen dock at each layer choice."""
    from types import SimpleNamespace

    import rasterio

    from claire.claire_plugin.core.io.raster_io import slow_to_sample
    from claire.tests.fixtures.helpers import write_raster

    assert slow_to_sample(SimpleNamespace(driver="JP2OpenJPEG", name="B02.jp2"))
    src = write_raster(str(tmp_path / "b.tif"), np.ones((1, 8, 8), np.uint16))
    (tmp_path / "B02.jp2").write_bytes((tmp_path / "b.tif").read_bytes())
    with rasterio.open(src) as ds:
        assert not slow_to_sample(ds)
    for name, slow in (("b.tif", False), ("B02.jp2", True)):
        vrt = tmp_path / f"{name}.vrt"
        vrt.write_text(f"""<VRTDataset rasterXSize="8" rasterYSize="8">
<GeoTransform>500000, 10, 0, 4600000, 0, -10</GeoTransform><VRTRasterBand dataType="UInt16" band="1">
<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>
</VRTRasterBand></VRTDataset>""")
        with rasterio.open(vrt) as ds:
            assert slow_to_sample(ds) is slow
