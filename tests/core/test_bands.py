"""Band selection: explicit indices, descriptions, known layouts, errors."""
from __future__ import annotations

import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.inputs.bands import (
    S2_L1C,
    S2_L2A,
    canonical_band,
    check_spectral_order,
    choose_bands,
)

CARD10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


@pytest.mark.parametrize("text,want", [("B2", "B02"), ("b02", "B02"), ("B8A", "B8A"), ("B08", "B08"),
                                       ("Band 4 (B4)", "B04"), ("red", "B04"), ("NIR", "B08"),
                                       ("SWIR1", "B11"), ("Sigma0_VV_db", "VV"), ("vh", "VH"), (None, None),
                                       # an ASF HyP3 product id (B3E1) is no Sentinel-2 band: the polarisation wins
                                       ("S1A_IW_20200408T233530_DVP_RTC10_G_gpuned_B3E1_VV", "VV"),
                                       ("T33UUP_20170613T101031_B8A_20m", "B8A"), ("B04.jp2", "B04")])
def test_canonical_band_names(text, want):
    assert canonical_band(text) == want


def test_l1c_and_l2a_layouts_by_band_count():
    l1c = choose_bands("optical", 13, [None] * 13, CARD10)
    assert l1c.indices == [S2_L1C.index(b) + 1 for b in CARD10] == [2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
    l2a = choose_bands("optical", 12, [None] * 12, CARD10)
    assert l2a.indices == [S2_L2A.index(b) + 1 for b in CARD10] == [2, 3, 4, 5, 6, 7, 8, 9, 11, 12]
    assert "L1C" in l1c.method and "L2A" in l2a.method


def test_descriptions_win_over_layout():
    desc = ["B8", "B4", "B3", "B2"]  # reversed RGBN stack
    c = choose_bands("optical", 4, desc, ["B02", "B03", "B04", "B08"])
    assert c.indices == [4, 3, 2, 1] and "descriptions" in c.method
    assert "optical: bands 4->B02" in c.describe("optical")


def test_four_band_layout_and_sar_order():
    assert choose_bands("optical", 4, [None] * 4, ["B02", "B03", "B04", "B08"]).indices == [1, 2, 3, 4]
    assert choose_bands("SAR", 2, ["VH", "VV"], ["VV", "VH"]).indices == [2, 1]
    assert choose_bands("SAR", 2, [None, None], ["VV", "VH"]).indices == [1, 2]


def test_explicit_indices_and_their_errors():
    assert choose_bands("optical", 13, [None] * 13, ["B02", "B03"], explicit=[3, 2]).indices == [3, 2]
    with pytest.raises(ClaireError, match="band index 14 is out of range.*13 band"):
        choose_bands("optical", 13, [None] * 13, ["B02", "B03"], explicit=[2, 14], flag="--optical-bands")
    with pytest.raises(ClaireError, match="lists 1 band.*needs 2"):
        choose_bands("optical", 13, [None] * 13, ["B02", "B03"], explicit=[2], flag="--optical-bands")


def test_too_few_or_ambiguous_bands_are_clear_errors():
    with pytest.raises(ClaireError, match="has 3 band.*needs 10"):
        choose_bands("optical", 3, [None] * 3, CARD10)
    with pytest.raises(ClaireError, match="--optical-bands"):
        choose_bands("optical", 11, [None] * 11, CARD10, flag="--optical-bands")


def test_same_count_without_names_keeps_checkpoint_order():
    c = choose_bands("optical", 5, [None] * 5, [], needed=5)
    assert c.indices == [1, 2, 3, 4, 5] and "order" in c.method


@pytest.mark.parametrize("ratio", ["Sigma0_VV_db_minus_VH", "VV/VH", "VV_VH_ratio"])
def test_a_ratio_band_beside_vv_and_vh_is_neither(ratio):
    """A third band naming both polarisations (SNAP's VV - VH, a VV/VH ratio) made the names ambiguous, and the
    run was refused as if the bands were unnamed."""
    assert canonical_band(ratio) not in ("VV", "VH")
    c = choose_bands("SAR", 3, ["Sigma0_VV_db", "Sigma0_VH_db", ratio], ["VV", "VH"])
    assert c.indices == [1, 2] and "descriptions" in c.method


def _site_reflectance(order, site="433D_629L_3_1"):
    import numpy as np
    import rasterio

    from claire.claire_plugin.paths import resource

    with rasterio.open(resource("data", "terramesh", "S2L2A", f"{site}.tif")) as ds:
        a = ds.read().astype(np.float32) * 1e-4  # L2A reflectance x 10000, bands B01..B12 without B10, unnamed
    return np.stack([a[S2_L2A.index(b)] for b in order])


def test_a_stack_of_the_10_m_bands_first_read_by_position_is_refused_with_the_order_that_fits():
    """Earth Engine's select() in that order, or `gdalbuildvrt -separate -resolution highest` saved as GeoTIFF,
    without band names: read in band-number order, B08 was taken for B05 (agreement with the right map 0.645)."""
    stacked = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
    by_count = choose_bands("optical", 10, [None] * 10, CARD10)
    assert by_count.method.startswith("known layout")
    with pytest.raises(ClaireError, match=r"give --optical-bands 1,2,3,5,6,7,4,8,9,10 \(the 10 m bands"):
        check_spectral_order(by_count, 10, _site_reflectance(stacked))
    assert check_spectral_order(by_count, 10, _site_reflectance(CARD10)) is None  # the right order passes
    explicit = choose_bands("optical", 10, [None] * 10, CARD10, explicit=[1, 2, 3, 5, 6, 7, 4, 8, 9, 10])
    assert check_spectral_order(explicit, 10, _site_reflectance(stacked)[[0, 1, 2, 4, 5, 6, 3, 7, 8, 9]]) is None


def test_an_order_the_scene_cannot_check_is_said():
    """QA round 22: on a snow scene (no vegetation) a stack of the 10 m bands first passed in silence (inputs wrong
    by up to 0.83): the tests that catch it need vegetation. Said now; named bands need no test."""
    import numpy as np

    import claire.claire_plugin.core.inputs.bands as bands

    stacked = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
    by_count = choose_bands("optical", 10, [None] * 10, CARD10)
    no_vegetation = _site_reflectance(stacked, "609U_541L_3_0")  # the bundled snow site
    said = check_spectral_order(by_count, 10, no_vegetation)
    assert said.startswith("warning: the optical bands carry no names and were read by position") and \
        "too little vegetation" in said and "so their order is unchecked" in said
    # the tests ran (on 1.5 % of the pixels, no vegetation) and passed the wrong order: that little is not trusted
    assert {"b05", "b12"} <= set(bands._order_shares(no_vegetation.reshape(10, -1).astype(np.float64), CARD10))
    assert bands._vegetation_share(no_vegetation.reshape(10, -1), CARD10) < bands.VEGETATION_MIN
    assert check_spectral_order(by_count, 10, _site_reflectance(CARD10, "38D_378R_2_3")) is None  # 17 % vegetation
    named = choose_bands("optical", 10, CARD10, CARD10)
    assert check_spectral_order(named, 10, no_vegetation) is None


def test_every_bundled_optical_scene_passes_the_band_order_check():
    import glob

    import numpy as np
    import rasterio

    from claire.claire_plugin.paths import resource

    files = sorted(glob.glob(resource("data", "terramesh", "S2L*", "*.tif")))
    files += sorted(glob.glob(resource("data", "sen12ms_cr", "s2_*", "*.tif")))
    assert len(files) == 10
    for path in files:
        with rasterio.open(path) as ds:
            a = ds.read().astype(np.float32) * 1e-4
        layout = S2_L1C if a.shape[0] == 13 else S2_L2A
        choice = choose_bands("optical", a.shape[0], [None] * a.shape[0], CARD10)
        check_spectral_order(choice, a.shape[0], np.stack([a[layout.index(b)] for b in CARD10]))


def test_a_mosaic_vrt_of_pieces_that_name_their_bands_is_read_by_those_names(tmp_path):
    """An Earth Engine export cut in pieces, joined with gdalbuildvrt, which drops the band names: refused as
    unnamed, or (10 bands) read by position in whatever order the export had."""
    import rasterio
    from osgeo import gdal

    from claire.claire_plugin.core.io.raster_io import band_labels
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    opt, _, _ = synthetic_scene(40, 40)
    order = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
    pieces = [write_raster(tmp_path / f"s2-{k}.tif", opt[:10, :, 20 * k: 20 * k + 20], descriptions=order,
                           origin=(500000.0 + 200 * k, 4600000.0)) for k in range(2)]
    vrt = str(tmp_path / "mosaic.vrt")
    gdal.BuildVRT(vrt, pieces).FlushCache()
    with rasterio.open(vrt) as ds:
        assert not any(ds.descriptions)
        names, named_by = band_labels(ds)
        choice = choose_bands("optical", ds.count, names, CARD10, named_by=named_by)
    assert names == order and "source files" in named_by
    assert choice.indices == [1, 2, 3, 5, 6, 7, 4, 8, 9, 10]
    other = write_raster(tmp_path / "s2-2.tif", opt[:10, :, :20], descriptions=order[::-1],
                         origin=(500000.0 + 400, 4600000.0))  # a piece naming its bands otherwise: no names
    gdal.BuildVRT(vrt, pieces + [other]).FlushCache()
    with rasterio.open(vrt) as ds:
        assert not any(band_labels(ds)[0])


def test_snap_products_get_their_own_fix(tmp_path):
    """SNAP's BEAM-DIMAP header was refused as "not a raster GDAL can read (ENVI header)"; a VRT of its
    Sigma0_VV.img / Sigma0_VH.img was refused as of unknown unit although the file names say sigma0 (power)."""
    import numpy as np
    import rasterio
    from osgeo import gdal

    from claire.claire_plugin.core.inputs.units import sar_kind
    from claire.claire_plugin.core.io.raster_io import metadata_text, open_raster
    from claire.tests.fixtures.helpers import write_raster

    dim = tmp_path / "S1_TC.dim"
    dim.write_text("<?xml version='1.0'?><Dimap_Document/>")
    with pytest.raises(ClaireError, match=r"BEAM-DIMAP .*S1_TC\.data .*gdalbuildvrt -separate"):
        open_raster(str(dim), "SAR")
    power = (10 ** (np.random.default_rng(0).normal(-14, 3, (2, 30, 30)) / 10)).astype(np.float32)
    files = [write_raster(tmp_path / f"Sigma0_{p}.tif", power[k]) for k, p in enumerate(["VH", "VV"])]
    vrt = str(tmp_path / "sigma0.vrt")
    gdal.BuildVRT(vrt, files, separate=True).FlushCache()
    with rasterio.open(vrt) as ds:
        text = metadata_text(ds, [1, 2])
    assert "sigma0_vv" in text and sar_kind(power, text)[0] == "power"


@pytest.mark.parametrize("count", [10, 12, 13])
@pytest.mark.parametrize("stacking", ["ten_first", "alphabetical"])
def test_stacks_in_the_usual_wrong_orders_are_refused_naming_the_bands_that_fit(count, stacking):
    """A 12- or 13-band stack with the 10 m bands first read no vegetation at all (B08 read as B04), so the B05 /
    B06 test could not see it; band files stacked in alphabetical order (B8A last) read B8A as B12. Each is
    refused with the `--optical-bands` of its order, and those bands then pass."""
    import numpy as np

    from claire.claire_plugin.core.inputs.bands import OPTICAL_LAYOUTS, _stacking_orders

    layout = OPTICAL_LAYOUTS[count][1]
    site = _site_reflectance(S2_L2A) if count != 13 else None
    if count == 13:
        import rasterio

        from claire.claire_plugin.paths import resource

        with rasterio.open(resource("data", "terramesh", "S2L1C", "433D_629L_3_1.tif")) as ds:
            site = ds.read().astype(np.float32) * 1e-4 - 0.1  # L1C DN with the +1000 offset of baseline 04.00
    source = S2_L1C if count == 13 else S2_L2A
    what, order, _reveal = _stacking_orders(layout)[0 if stacking == "ten_first" else 1]
    stack = np.stack([site[source.index(b)] for b in order])  # the file's bands, in that order
    choice = choose_bands("optical", count, [None] * count, CARD10)
    expected = ",".join(str(order.index(b) + 1) for b in CARD10)
    with pytest.raises(ClaireError, match=rf"give --optical-bands {expected} .*{what.split(',')[0]}"):
        check_spectral_order(choice, count, stack[[i - 1 for i in choice.indices]])
    fixed = choose_bands("optical", count, [None] * count, CARD10, explicit=[int(i) for i in expected.split(",")])
    assert [order[i - 1] for i in fixed.indices] == CARD10
    check_spectral_order(fixed, count, stack[[i - 1 for i in fixed.indices]])  # explicit: trusted, and right


def test_a_twelve_band_stack_of_the_10_m_bands_first_is_refused_by_the_engine_and_mapped_right_with_the_fix(
        tmp_path):
    """End to end on a real site: `claire classify` refuses the stack (exit 2, the flag named) and with that flag
    writes the same map as from the file in its right order."""
    import numpy as np
    import rasterio

    from claire.claire_plugin.cli.main import main
    from claire.claire_plugin.core.inputs.bands import _stacking_orders
    from claire.claire_plugin.paths import resource

    src = resource("data", "terramesh", "S2L2A", "433D_629L_3_1.tif")
    sar = resource("data", "terramesh", "S1RTC", "433D_629L_3_1.tif")
    _what, order, _reveal = _stacking_orders(S2_L2A)[0]
    with rasterio.open(src) as ds:
        a, profile = ds.read(), ds.profile
    stacked = tmp_path / "stacked.tif"
    with rasterio.open(stacked, "w", **profile) as out:
        out.write(np.stack([a[S2_L2A.index(b)] for b in order]))
    common = ["--sar", sar, "--threads", "1", "--quiet"]
    assert main(["classify", "--optical", src, "--output", str(tmp_path / "right.tif")] + common) == 0
    flag = ",".join(str(order.index(b) + 1) for b in CARD10)
    wrong = tmp_path / "wrong.tif"
    assert main(["classify", "--optical", str(stacked), "--output", str(wrong)] + common) == 2
    assert not wrong.exists()
    assert main(["classify", "--optical", str(stacked), "--optical-bands", flag, "--output", str(wrong)]
                + common) == 0
    with rasterio.open(tmp_path / "right.tif") as r, rasterio.open(wrong) as w:
        assert np.array_equal(r.read(1), w.read(1))


def test_level_2a_with_a_scene_classification_band_and_landsat_bands_are_refused_when_read_by_count():
    """Thirteen unnamed bands were read as Level-1C: Level-2A's twelve plus its scene classification (or cloud
    probability) gave B12 read as B11 and SCL as B12 (agreement 55.7 % with the right map, exit 0). Ten unnamed HLS
    L30 (Landsat) bands were read as Sentinel-2's 10/20 m bands (agreement 33.6 %). Both are refused now; the
    first names the bands to give, which then pass."""
    import numpy as np

    site = _site_reflectance(S2_L2A)
    scl = np.where(site[S2_L2A.index("B08")] > 0.3, 4, 5).astype(np.float32)[None] * 1e-4  # SCL codes as DN
    stack = np.concatenate([site, scl])
    choice = choose_bands("optical", 13, [None] * 13, CARD10)
    with pytest.raises(ClaireError, match=r"under a fifth .*give --optical-bands 2,3,4,5,6,7,8,9,11,12 if it was "
                                          r"stacked in Level-2A's 12 bands"):
        check_spectral_order(choice, 13, stack[[i - 1 for i in choice.indices]])
    fixed = choose_bands("optical", 13, [None] * 13, CARD10, explicit=[2, 3, 4, 5, 6, 7, 8, 9, 11, 12])
    assert [S2_L2A[i - 1] for i in fixed.indices] == CARD10
    band = {b: site[S2_L2A.index(b)] for b in S2_L2A}
    thermal = np.full_like(band["B02"], 0.2950)  # brightness temperature x 100 in DN, read x 1e-4
    l30 = np.stack([band["B01"], band["B02"], band["B03"], band["B04"], band["B8A"], band["B11"], band["B12"],
                    np.full_like(thermal, 0.0008), thermal, thermal])  # B01-B07, B09 (cirrus), B10, B11 (thermal)
    choice = choose_bands("optical", 10, [None] * 10, CARD10)
    with pytest.raises(ClaireError, match=r"B8A \(865 nm\) differs .* or are not Sentinel-2's \(Landsat"):
        check_spectral_order(choice, 10, l30[[i - 1 for i in choice.indices]])


@pytest.mark.parametrize("names, hint", [
    (["B02", "B03", "B04", "B08"], "Sentinel-2's 10 m bands alone"),  # a product's 10m subdataset, a GEE RGB+NIR
    (["B05", "B06", "B07", "B8A", "B11", "B12", "AOT", "SCL"], "Sentinel-2's 20 m bands alone"),
    (["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B09", "B10", "B11"], "HLS L30 or Landsat"),
])
def test_a_part_of_a_sentinel2_product_is_not_called_landsat(names, hint):
    """QA (formats): the 10m subdataset of a Sentinel-2 product, and a GEE export B2,B3,B4,B8, were told they were
    an HLS or Landsat stack; the 20m subdataset got no word on what to do."""
    with pytest.raises(ClaireError) as err:
        choose_bands("optical", len(names), names, CARD10, flag="--optical-bands")
    assert hint in str(err.value), str(err.value)
    if hint != "HLS L30 or Landsat":
        assert "Landsat" not in str(err.value)


def test_two_bands_of_one_name_are_said_not_an_empty_list():
    """SNAP's four bands Sigma0_VH, Sigma0_VH_db, Sigma0_VV, Sigma0_VV_db: 'which do not include ,'."""
    with pytest.raises(ClaireError, match=r"where VH, VV names more than one band \(e\.g\. linear and dB\)"):
        names = ["Sigma0_VH", "Sigma0_VH_db", "Sigma0_VV", "Sigma0_VV_db"]
        choose_bands("SAR", 4, names, ["VV", "VH"], flag="--sar-bands")


def test_subdatasets_are_listed_by_gdals_own_names_and_descriptions(monkeypatch):
    """rasterio 1.4 orders a netCDF's subdatasets otherwise than GDAL's metadata: each name stood beside another
    variable's description, lower-cased and without GDAL's quotes."""
    import rasterio

    from claire.claire_plugin.core.io import gdal_names, raster_io

    meta = {"SUBDATASET_1_NAME": 'NETCDF:"s2.nc":B01', "SUBDATASET_1_DESC": "[1x8x8] B01 (16-bit integer)",
            "SUBDATASET_2_NAME": 'NETCDF:"s2.nc":B02', "SUBDATASET_2_DESC": "[1x8x8] B02 (16-bit integer)",
            "SUBDATASET_3_NAME": 'NETCDF:"s2.nc":B09', "SUBDATASET_3_DESC": "[1x8x8] B09 (16-bit integer)"}

    class Container:
        count = width = height = 0
        subdatasets = ['netcdf:s2.nc:B01', 'netcdf:s2.nc:B09', 'netcdf:s2.nc:B02']

        def tags(self, ns=None):
            return dict(meta) if ns == "SUBDATASETS" else {}

        def close(self):
            pass

    monkeypatch.setattr(gdal_names, "missing_message", lambda path, role: None)
    monkeypatch.setattr(rasterio, "open", lambda path: Container())
    with pytest.raises(ClaireError) as err:
        raster_io.open_raster("s2.nc", "optical")
    assert ('NETCDF:"s2.nc":B02 ([1x8x8] B02 (16-bit integer)); NETCDF:"s2.nc":B09 ([1x8x8] B09 (16-bit integer))'
            in str(err.value)), str(err.value)


def test_a_zarr_store_names_the_vrt_of_its_bands(tmp_path):
    """QA (formats): a Zarr store GDAL reads was 'a folder; give a raster file', its ZARR: name 'does not exist'."""
    import numpy as np
    from osgeo import gdal

    from claire.claire_plugin.core.io.raster_io import open_raster
    from claire.tests.fixtures.helpers import write_raster

    tif = write_raster(str(tmp_path / "s.tif"), np.ones((3, 16, 16), np.uint16))
    store = str(tmp_path / "s.zarr")
    if gdal.Translate(store, tif, format="ZARR") is None:
        pytest.fail("GDAL without its Zarr driver")
    # GDAL 3.6 lists the store's band arrays as subdatasets (a VRT of them is the way); 3.10 opens it as one raster
    arrays = bool((gdal.OpenEx(store, gdal.OF_RASTER).GetMetadata("SUBDATASETS") or {}))
    fix = f"""'ZARR:"{store}":/Band1' 'ZARR:"{store}":/Band2'""" if arrays else f"gdal_translate {store} optical.tif"
    for given in (store, f'ZARR:"{store}"'):
        with pytest.raises(ClaireError) as err:
            open_raster(given, "optical")
        text = str(err.value)
        assert "is a Zarr store (a folder)" in text and fix in text, text


def test_classify_and_training_say_an_order_they_cannot_check(tmp_path):
    """Mutation check of round 22: the warning reaches a classification's messages and a training scene's notes
    (the bundled snow site, its bands unnamed), not only the function's caller."""
    from claire.claire_plugin.core.training.scene import Scene
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT, resource
    from claire.models.checkpoint import read_card
    from claire.tests.core.test_bad_inputs import cli

    optical = resource("data", "terramesh", "S2L2A", "609U_541L_3_0.tif")
    sar = resource("data", "terramesh", "S1RTC", "609U_541L_3_0.tif")
    rc, out, err = cli(["classify", "--optical", optical, "--sar", sar, "--output", tmp_path / "m.tif",
                        "--threads", "1"])
    assert rc == 0, err
    assert "so their order is unchecked" in err
    scene = Scene(optical, sar, read_card(DEFAULT_CHECKPOINT))
    try:
        assert any("so their order is unchecked" in n for n in scene.notes)
    finally:
        scene.close()
    from claire.claire_plugin.core.inputs.fit import check_pair  # the dock's check before a run (docs QA)

    assert any("so their order is unchecked" in w for w in check_pair(optical, sar, read_card(DEFAULT_CHECKPOINT))
               .warnings)


def test_claire_evaluate_says_once_that_no_image_could_check_the_order(tmp_path):
    """QA round 22 (second review): `claire evaluate --data` dropped the note; then printed it once per image. Said
    once now, when no image of the folder could check the order (one that passes checks them all: same bands)."""
    import shutil

    from claire.claire_plugin.paths import resource
    from claire.tests.core.test_bad_inputs import cli

    site = "609U_541L_3_0"
    for sub, src in (("optical", "S2L2A"), ("sar", "S1RTC"), ("labels", "LULC")):
        (tmp_path / "gen" / sub).mkdir(parents=True)
        for name in ("a", "b"):
            shutil.copy(resource("data", "terramesh", src, f"{site}.tif"), tmp_path / "gen" / sub / f"{name}.tif")
    rc, out, err = cli(["evaluate", "--data", tmp_path / "gen", "--split", "all"])
    assert rc == 0, err
    assert err.count("so their order is unchecked") == 1 and "(every image of the folder: a.tif, b.tif)" in err, err
    for sub, src in (("optical", "S2L2A"), ("sar", "S1RTC"), ("labels", "LULC")):  # a: vegetation, checks both
        shutil.copy(resource("data", "terramesh", src, "433D_629L_3_1.tif"), tmp_path / "gen" / sub / "a.tif")
    rc, out, err = cli(["evaluate", "--data", tmp_path / "gen", "--split", "all"])
    assert rc == 0 and "unchecked" not in err and "every image of the folder" not in err, err
