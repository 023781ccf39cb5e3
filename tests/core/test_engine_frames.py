"""A nodata frame around the data of both rasters (a reprojection's, or a clip larger than the data) leaves the
map of the data as it is: the region is cut to the data, and what remains of such pixels reaches the model as the
scene's edge, not as a cloud over zero backscatter."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.core.engine import classify
from claire.claire_plugin.core.engine.reader import outside_filled
from claire.claire_plugin.core.params import ClassifyParams
from claire.claire_plugin.paths import resource

SITE = "433D_629L_3_1.tif"


def _framed(src: str, dst: str, frame: int, nodata: float, declare: bool = True) -> str:
    """`src` inside a frame of `frame` px of `nodata` on its left and top (and twice that right and bottom),
    declared as the file's nodata or (`declare` False) not, as a plain clip writes it."""
    with rasterio.open(src) as ds:
        a, prof, t = ds.read(), ds.profile.copy(), ds.transform
    out = np.full((a.shape[0], a.shape[1] + 3 * frame, a.shape[2] + 3 * frame), nodata, a.dtype)
    out[:, frame:frame + a.shape[1], frame:frame + a.shape[2]] = a
    prof.update(height=out.shape[1], width=out.shape[2], nodata=nodata if declare else None,
                transform=rasterio.Affine(t.a, t.b, t.c - frame * t.a, t.d, t.e, t.f - frame * t.e))
    with rasterio.open(dst, "w", **prof) as ds:
        ds.write(out)
    return dst


@pytest.mark.parametrize("declare", [True, False])
def test_a_nodata_frame_in_both_rasters_leaves_the_map_of_the_data_as_it_is(tmp_path, declare):
    """QA (geography): a 20 px frame in both rasters changed 20 % of the site's map and made all of it unlike
    the training data; (review) a frame of 0 and NaN that the files do not declare, as `gdal_translate -projwin`
    leaves it, was not cut (88 % like the frameless map)."""
    root = resource("data", "terramesh")
    opt, sar = os.path.join(root, "S2L2A", SITE), os.path.join(root, "S1RTC", SITE)
    plain = classify(ClassifyParams(opt, sar, str(tmp_path / "plain.tif"), batch_size=4))
    fo = _framed(opt, str(tmp_path / "opt.tif"), 20, 0, declare)
    fs = _framed(sar, str(tmp_path / "sar.tif"), 20, float("nan"), declare)
    framed = classify(ClassifyParams(fo, fs, str(tmp_path / "framed.tif"), batch_size=4))
    assert any("that frame is left out" in m for m in framed.messages), framed.messages
    with rasterio.open(plain.output) as a, rasterio.open(framed.output) as b:
        whole = b.read(1)
        inner = whole[20:244, 20:244]
        assert (inner == a.read(1)).mean() == 1.0
        assert (whole == 0).sum() == whole.size - inner.size  # the frame is nodata
    assert framed.summary["unfamiliar_share"] == pytest.approx(plain.summary["unfamiliar_share"], abs=1e-6)


def test_the_model_sees_a_frame_as_the_scene_s_edge():
    o = np.arange(2 * 6 * 8, dtype=np.float32).reshape(2, 6, 8)
    s = -o[:1]
    o_bad, s_bad = np.zeros((6, 8), bool), np.zeros((6, 8), bool)
    o_bad[:, :2] = s_bad[:, :2] = True  # a rectangular frame: mirrored
    cloud = np.zeros((6, 8), np.float32)
    o2, ob2, s2, sb2, c2 = outside_filled(o, o_bad, s, s_bad, cloud)
    assert not ob2.any() and not sb2.any()
    np.testing.assert_array_equal(o2[:, :, :2], o[:, :, [4, 3]])  # np.pad's reflect, as pad_tile pads an edge
    o_bad2 = np.zeros((6, 8), bool)
    o_bad2[0, 0] = o_bad2[5, 7] = o_bad2[2, 4] = True  # irregular: the nearest pixel with data
    s_bad2 = o_bad2.copy()
    o3, ob3, _, _, _ = outside_filled(o, o_bad2, s, s_bad2, None)
    # irregular, in both rasters: the nearest pixel with data
    assert not ob3[o_bad2].any() and o3[0, 2, 4] in (o[0, 1, 4], o[0, 3, 4], o[0, 2, 3], o[0, 2, 5])
    np.testing.assert_array_equal(o3[:, ~o_bad2], o[:, ~o_bad2])  # pixels with data unchanged
    only_optical = o_bad.copy()
    same = outside_filled(o, only_optical, s, np.zeros_like(only_optical), cloud)
    assert same[0] is o and same[1] is only_optical  # optical gaps under SAR: as they were (decided from SAR)
    sar_gap = np.zeros((6, 8), bool)
    sar_gap[:, 5:] = True  # beyond a SAR strip's edge: the SAR mirrored there, the optical as it is
    o4, ob4, s4, sb4, _ = outside_filled(o, np.zeros_like(sar_gap), s, sar_gap, cloud)
    assert o4 is o and not sb4.any()
    np.testing.assert_array_equal(s4[:, :, 5:], s[:, :, [3, 2, 1]])


def test_coarse_sar_and_a_sar_over_part_of_the_optical_are_said(tmp_path):
    """QA (geography, SAR): 40 m SAR under the 10 m optical (12 % of the map moved) and a SAR covering half the
    optical (half the map nodata) were said only as "warped on the fly" and an overlap's rows and columns."""
    from osgeo import gdal

    root = resource("data", "terramesh")
    opt, sar = os.path.join(root, "S2L2A", SITE), os.path.join(root, "S1RTC", SITE)
    coarse = str(tmp_path / "sar40.tif")
    gdal.Warp(coarse, sar, xRes=40, yRes=40, resampleAlg="average")
    res = classify(ClassifyParams(opt, coarse, str(tmp_path / "a.tif"), batch_size=4))
    said = "\n".join(res.messages)
    assert "SAR pixels 40 m, optical 10 m" in said
    assert "warning: the SAR pixels are 40 m, 4 x the 10 m the checkpoint was trained on" in said, said
    # (QA, desktop) the dock's check before a run says it too, as it does for a coarse optical
    from claire.claire_plugin.core.inputs.fit import check_pair
    from claire.models.checkpoint import read_card

    card = read_card(resource("checkpoints", "claire_default.safetensors"))
    before = check_pair(opt, coarse, card)
    assert not before.errors and any(w.startswith("warning: the SAR pixels are 40 m") for w in before.warnings)
    assert not any("SAR pixels" in w for w in check_pair(opt, sar, card).warnings)
    half = str(tmp_path / "half.tif")
    with rasterio.open(sar) as ds:
        gdal.Translate(half, sar, srcWin=[0, 0, ds.width // 2, ds.height])
    res = classify(ClassifyParams(opt, half, str(tmp_path / "b.tif"), batch_size=4))
    said = "\n".join(res.messages)
    assert "the SAR covers 50.0 % of the optical raster" in said and "warning: the SAR pixels" not in said


def test_both_rasters_in_degrees_across_the_antimeridian_in_two_conventions(tmp_path, raster_pair, tiny_checkpoint):
    """QA (geography): an optical written as 179.99..180.01 and its SAR as -180.01..-179.99 (one place) were
    refused with "the SAR raster has no valid values where it overlaps the optical"."""
    from claire.tests.fixtures.helpers import write_raster

    with rasterio.open(raster_pair["optical"]) as o, rasterio.open(raster_pair["sar"]) as s:
        opt, sar = o.read(), s.read()
    east = (179.995, 52.0)
    o_path = write_raster(str(tmp_path / "opt.tif"), opt, crs="EPSG:4326", origin=east, res=0.0001)
    s_east = write_raster(str(tmp_path / "sar_e.tif"), sar, crs="EPSG:4326", origin=east, res=0.0001,
                          descriptions=["VV", "VH"])
    s_west = write_raster(str(tmp_path / "sar_w.tif"), sar, crs="EPSG:4326", origin=(east[0] - 360.0, east[1]),
                          res=0.0001, descriptions=["VV", "VH"])
    a = classify(ClassifyParams(o_path, s_east, str(tmp_path / "a.tif"), checkpoint=tiny_checkpoint))
    b = classify(ClassifyParams(o_path, s_west, str(tmp_path / "b.tif"), checkpoint=tiny_checkpoint))
    with rasterio.open(a.output) as x, rasterio.open(b.output) as y:
        assert (x.read(1) == y.read(1)).all() and (y.read(1) > 0).all()


def test_training_reads_a_frame_as_the_engine_hands_it_to_the_model(tmp_path):
    """QA (review): training and its held-out scores still saw a nodata frame as a cloud over zero backscatter
    (the untuned base scored macro-F1 0.31 on a framed patch and 0.16 on the same patch without the frame)."""
    from claire.claire_plugin.core.training.scene import Scene
    from claire.claire_plugin.core.training.windows import gate_input
    from claire.models.checkpoint import read_card

    root = resource("data", "terramesh")
    opt, sar = os.path.join(root, "S2L2A", SITE), os.path.join(root, "S1RTC", SITE)
    fo = _framed(opt, str(tmp_path / "opt.tif"), 20, 0)
    fs = _framed(sar, str(tmp_path / "sar.tif"), 20, float("nan"))
    card = read_card(resource("checkpoints", "claire_default.safetensors"))
    with Scene(fo, fs, card) as framed, Scene(opt, sar, card) as plain:
        assert (int(framed.region.row_off), int(framed.region.col_off)) == (20, 20)  # cut to the data
        assert (int(framed.region.height), int(framed.region.width)) == (224, 224)
        o, s, bad = framed.read(0, 0, 64, 64)  # a corner with 20 px of frame on two sides
        po, ps, pbad = plain.read(-20, -20, 64, 64)  # the same ground, past the plain raster's edge
        assert bad[:20].all() and bad[:, :20].all() and not bad[20:, 20:].any()
        assert np.isfinite(o).all() and np.isfinite(s).all()  # the frame carries the edge, not NaN
        np.testing.assert_allclose(o, po, rtol=1e-6)  # mirrored as the plain raster's edge is padded
        np.testing.assert_allclose(s, ps, rtol=1e-6)
        cloud = gate_input(framed, o, bad)
        np.testing.assert_allclose(cloud, gate_input(plain, po, pbad))  # no cloud of 1 over the frame


def test_training_reads_a_sar_strip_edge_as_the_engine_hands_it_to_the_model(tmp_path):
    """(review) beyond a SAR strip training showed the network blank optical, zero SAR and a cloud of 1, where the
    engine shows the optical, its cloud probability and the SAR mirrored across the strip's edge."""
    from claire.claire_plugin.core.engine.reader import outside_filled
    from claire.claire_plugin.core.training.scene import Scene
    from claire.claire_plugin.core.training.windows import gate_input
    from claire.models.checkpoint import read_card

    root = resource("data", "terramesh")
    opt, sar = os.path.join(root, "S2L2A", SITE), os.path.join(root, "S1RTC", SITE)
    with rasterio.open(sar) as ds:
        a, prof = ds.read(), ds.profile.copy()
    a[:, :, 150:] = np.nan
    prof.update(nodata=float("nan"))
    strip = str(tmp_path / "strip.tif")
    with rasterio.open(strip, "w", **prof) as ds:
        ds.write(a)
    card = read_card(resource("checkpoints", "claire_default.safetensors"))
    with Scene(opt, strip, card) as sc, Scene(opt, sar, card) as full:
        o, s, bad = sc.read(0, 96, 128, 128)
        fo, fs, fbad = full.read(0, 96, 128, 128)
        gap = np.zeros(bad.shape, bool)
        gap[:, 54:] = True  # columns 150.. of the raster
        assert bad[:, 54:].all() and not bad[:, :54].any()  # no labels or scores where the SAR is missing
        np.testing.assert_allclose(o, fo, rtol=1e-6)  # the optical as it is
        expect = outside_filled(fo, np.zeros_like(gap), np.where(gap, np.nan, fs), gap, None)[2]
        np.testing.assert_allclose(s, expect, rtol=1e-6)  # the SAR mirrored across the strip's edge
        np.testing.assert_allclose(gate_input(sc, o, bad), gate_input(full, fo, fbad))  # no cloud of 1 over optical


@pytest.mark.parametrize("declare, tiled, interleave", [(True, True, "pixel"), (False, True, "pixel"),
                                                        (True, False, "band"), (False, True, "band")])
def test_the_data_box_of_a_large_scene_holds_every_pixel_with_data(tmp_path, declare, tiled, interleave):
    """QA round 18 (what the fixes cost): the data box of a scene over 1024 px was read as one reduced read, which
    on a deflate, pixel-interleaved file with 1024 px blocks decompressed each block again for every output row
    (a 2048² pair: over 7 minutes before the first tile). It is read a block at a time now; the box still holds
    every pixel with data, and exceeds the exact one by at most three read pixels a side."""
    from claire.claire_plugin.core.io.raster_io import DATA_MASK_SIDE, _valid_box

    h, w, bands = 2300, 2900, 4
    rng = np.random.default_rng(3)
    a = np.zeros((bands, h, w), np.uint16)
    r0, c0, r1, c1 = 333, 517, 2011, 2689
    a[:, r0:r1, c0:c1] = rng.integers(1, 5000, (bands, r1 - r0, c1 - c0))
    prof = dict(driver="GTiff", height=h, width=w, count=bands, dtype="uint16", crs="EPSG:32632",
                transform=rasterio.Affine(10, 0, 500000, 0, -10, 5000000), nodata=0 if declare else None,
                compress="deflate", interleave=interleave)
    if tiled:
        prof.update(tiled=True, blockxsize=1024, blockysize=1024)
    path = str(tmp_path / "framed.tif")
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(a)
    with rasterio.open(path) as ds:
        box = _valid_box(ds)
    f = -(-max(h, w) // DATA_MASK_SIDE)
    assert box is not None
    assert box[0] <= r0 and box[1] <= c0 and box[2] >= r1 and box[3] >= c1, box
    assert r0 - box[0] < f and c0 - box[1] < f and box[2] - r1 < f and box[3] - c1 < f, box  # whole cells of f px


def test_the_data_box_reads_a_block_at_a_time_to_the_last_row_and_column(tmp_path):
    """Mutation check of round 18: a raster whose sides are no multiple of its blocks or of the reduction, with data
    in its bottom-right corner only: the box holds that corner (the last partial strip and column of the reduced mask
    are read), and every read of the mask is of a window (one whole-raster reduced read stalled for minutes). QA
    round 22: a patch of data narrower than the reduction fell between the pixels a reduced read samples, and was
    mapped as nodata (two data columns of an 1100 px scene): one pixel of data, far from the rest, is in the box."""
    from claire.claire_plugin.core.io import raster_io

    h, w = 3001, 4500
    a = np.zeros((1, h, w), np.uint8)
    a[0, h - 8:, w - 8:] = 7  # wider than the reduction (5): a sampled mask sees it
    path = str(tmp_path / "corner.tif")
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=1, dtype="uint8", nodata=0,
                       crs="EPSG:32632", transform=rasterio.Affine(10, 0, 500000, 0, -10, 5000000), tiled=True,
                       blockxsize=512, blockysize=512, compress="deflate") as ds:
        ds.write(a)

    class Spy:
        def __init__(self, ds):
            self._ds, self.calls = ds, []

        def __getattr__(self, name):
            return getattr(self._ds, name)

        def dataset_mask(self, **kw):
            self.calls.append(kw)
            return self._ds.dataset_mask(**kw)

    with rasterio.open(path) as ds:
        spy = Spy(ds)
        box = raster_io._valid_box(spy)
    assert box is not None and box[0] <= h - 1 < box[2] and box[1] <= w - 1 < box[3], box
    assert box[2] == h and box[3] == w and box[0] >= h - 8 - 5 and box[1] >= w - 8 - 5, box
    assert len(spy.calls) > 1 and all(c.get("window") is not None for c in spy.calls)
    with rasterio.open(path, "r+") as ds:
        ds.write(np.full((1, 1), 7, np.uint8), 1, window=rasterio.windows.Window(100, 50, 1, 1))
    with rasterio.open(path) as ds:
        assert raster_io._valid_box(ds) == (50, 100, h, w)  # the cell of rows 50-54, columns 100-104


def test_the_data_box_of_the_other_raster_reads_only_its_part_over_the_grid(tmp_path, monkeypatch):
    """QA round 22 (review): reduced with "any" at full resolution, the whole of a SAR scene far larger than the optical
    was read (6000² px: 6x the CPU of the sampled read); only its part over the optical's grid is read now, and a
    window with data everywhere is its own box."""
    from rasterio.windows import Window

    from claire.claire_plugin.core.io import raster_io

    grid = str(tmp_path / "grid.tif")
    g = np.zeros((1, 300, 400), np.uint16)
    g[:, 40:, :] = 900  # a frame of 40 rows without data
    with rasterio.open(grid, "w", driver="GTiff", height=300, width=400, count=1, dtype="uint16", nodata=0,
                       crs="EPSG:32632", transform=rasterio.Affine(10, 0, 500000, 0, -10, 5000000)) as ds:
        ds.write(g)
    sar = str(tmp_path / "sar.tif")  # 2000 x 2000 px at 10 m around the grid, data everywhere over it
    s = np.full((1, 2000, 2000), -12.0, np.float32)
    s[:, :, :50] = np.nan
    with rasterio.open(sar, "w", driver="GTiff", height=2000, width=2000, count=1, dtype="float32", nodata=np.nan,
                       crs="EPSG:32632", transform=rasterio.Affine(10, 0, 490000, 0, -10, 5010000)) as ds:
        ds.write(s)
    seen = []
    real = raster_io._valid_box
    monkeypatch.setattr(raster_io, "_valid_box", lambda ds, window=None: seen.append(window) or real(ds, window))
    with rasterio.open(grid) as gd, rasterio.open(sar) as sd:
        cut = raster_io.data_window(gd, sd, Window(0, 0, 400, 300))
        over = seen[1]
        assert (over.row_off, over.col_off, over.height, over.width) == (1000, 1000, 300, 400)
        assert real(sd, over) == (1000, 1000, 1300, 1400)  # data everywhere in it: its own box
    assert cut is None  # the SAR has data over the whole grid: nothing to leave out


def test_no_data_window_where_the_other_raster_holds_more_pixels_under_the_grid_than_the_limit(tmp_path, monkeypatch):
    """QA round 22 (second review): a 1 m SAR under a 1024² optical cost 1.9 s of CPU for the box (at the 4096² limit
    about 30 s): the SAR's part under the grid is bounded like the optical."""
    from rasterio.windows import Window

    from claire.claire_plugin.core.io import raster_io
    from claire.tests.fixtures.helpers import write_raster

    grid = write_raster(str(tmp_path / "g.tif"), np.pad(np.full((1, 40, 40), 900, np.uint16), ((0, 0), (10, 10),
                                                                                               (10, 10))), nodata=0)
    sar = np.full((1, 120, 120), -12.0, np.float32)  # 5 m: four pixels under each optical one
    sar[:, :20] = np.nan
    sar_path = write_raster(str(tmp_path / "s.tif"), sar, res=5.0, nodata=float("nan"))
    with rasterio.open(grid) as gd, rasterio.open(sar_path) as sd:
        assert raster_io.data_window(gd, sd, Window(0, 0, 60, 60)) is not None  # the frame both lack: cut
        monkeypatch.setattr(raster_io, "DATA_WINDOW_MAX_PIXELS", 60 * 60)
        assert raster_io.data_window(gd, sd, Window(0, 0, 60, 60)) is None  # 120² SAR pixels under it: left
