"""End-to-end engine runs on small rasters with a deterministic stand-in model."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
import torch

from claire.claire_plugin.core.engine import run, schedule
from claire.claire_plugin.core.engine.schedule import cpu_cores as REAL_CPU_CORES
from claire.claire_plugin.core.engine.schedule import worker_threads as REAL_WORKER_THREADS
from claire.claire_plugin.core.errors import CancelledError, ClaireError
from claire.claire_plugin.core.params import ClassifyParams
from claire.tests.fixtures.helpers import synthetic_scene, write_raster

L2A_FOR_CARD = [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]  # 0-based B02..B12 without B09 in a 12-band L2A stack


@pytest.fixture(autouse=True, params=["between batches", "worker threads", "3 reader threads", "2 forward lanes"])
def pipeline(request, monkeypatch):
    """Every engine test runs each way the engine can schedule reading, the forward and writing: in the
    model's thread between batches, one reader thread, three reader threads (chunks handed out in order), two
    forward lanes (two chunks in the model at once, one reader thread)."""
    readers = {"between batches": 0, "worker threads": 1, "3 reader threads": 3, "2 forward lanes": 1}[request.param]
    lanes = 2 if request.param == "2 forward lanes" else 1
    monkeypatch.setattr(schedule, "worker_threads", lambda device: (readers, request.param))
    monkeypatch.setattr(schedule, "forward_lanes", lambda device, model, threads=None: lanes)
    return request.param


def test_worker_threads_only_where_cores_are_free(monkeypatch):
    assert REAL_CPU_CORES() == len(os.sched_getaffinity(0))
    old = torch.get_num_threads()
    try:
        for cores in (1, 2, 8):
            monkeypatch.setattr(schedule, "cpu_cores", lambda cores=cores: cores)
            torch.set_num_threads(cores)
            assert REAL_WORKER_THREADS(torch.device("cpu"))[0] == 0
            assert REAL_WORKER_THREADS(torch.device("cuda"))[0] == max(1, min(4, cores - 2))
            if cores > 1:
                torch.set_num_threads(cores - 1)
                readers, why = REAL_WORKER_THREADS(torch.device("cpu"))
                assert readers == 1 and f"{cores - 1} of {cores}" in why
    finally:
        torch.set_num_threads(old)


def _params(scene, out="out.tif", **kw):
    return ClassifyParams(optical=scene["optical"], sar=scene["sar"], output=os.path.join(scene["dir"], out), **kw)


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile


def test_output_on_optical_grid_sizes_not_multiple_of_tile(engine_scene, standin_model, standin_card):
    p = _params(engine_scene, confidence=os.path.join(engine_scene["dir"], "conf.tif"),
                reliance=os.path.join(engine_scene["dir"], "rel.tif"))
    res = run(p, standin_model, standin_card)
    with rasterio.open(engine_scene["optical"]) as opt, rasterio.open(res.output) as out:
        assert (out.crs, out.transform, out.shape) == (opt.crs, opt.transform, opt.shape) == (opt.crs, opt.transform, (150, 173))
        assert out.dtypes[0] == "uint8" and out.nodata == 0
        assert out.block_shapes[0] == (256, 256) and out.compression is not None
        cls = out.read(1)
    assert set(np.unique(cls)) <= {1, 2, 4, 5} and (cls != 0).all()
    conf, prof = _read(res.confidence)
    assert prof["nodata"] == 255 and conf.max() <= 100 and conf.min() >= 25  # >= 1/K for 4 classes
    rel, _ = _read(res.reliance)
    assert rel.max() <= 100
    with rasterio.open(res.confidence) as c, rasterio.open(res.reliance) as r, rasterio.open(res.output) as o:
        assert c.units == r.units == ("%",) and o.units in ((None,), ("",))  # gdalinfo's Unit Type
    assert res.summary["valid_pixels"] == 150 * 173 and res.summary["nodata_pixels"] == 0
    assert sum(c["pixels"] for c in res.summary["classes"]) == 150 * 173


def _whole_image(scene, model, card):
    optical, sar, _ = scene["arrays"]
    o = optical[L2A_FOR_CARD].astype(np.float32) * 1e-4
    def per_band(spec, key):
        return np.array(spec[key], np.float32)[:, None, None]

    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    o = (np.clip(o, 0, 1) - per_band(ospec, "mean")) / per_band(ospec, "std")
    s = (np.clip(sar, -40, 5) - per_band(sspec, "mean")) / per_band(sspec, "std")
    with torch.no_grad():
        out = model(torch.from_numpy(o[None]).float(), torch.from_numpy(s[None]).float())
    probs = torch.softmax(out["logits"], 1)[0]
    conf, idx = probs.max(0)
    values = np.array([c["value"] for c in card["classes"]], np.uint8)
    return values[idx.numpy()], conf.numpy()


def test_blended_tiles_equal_whole_image_inference_in_the_interior(engine_scene, standin_model, standin_card):
    p = _params(engine_scene, confidence=os.path.join(engine_scene["dir"], "conf.tif"))
    res = run(p, standin_model, standin_card)
    cls, _ = _read(res.output)
    conf, _ = _read(res.confidence)
    want_cls, want_conf = _whole_image(engine_scene, standin_model, standin_card)
    inner = (slice(3, -3), slice(3, -3))
    agree = (cls[inner] == want_cls[inner]).mean()
    assert agree >= 0.995, agree
    assert np.abs(conf[inner].astype(float) - want_conf[inner] * 100).mean() < 1.0


def test_sar_in_another_crs_matches_prewarped_sar(engine_scene, standin_model, standin_card):
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject, transform_bounds

    _, sar, _ = engine_scene["arrays"]
    with rasterio.open(engine_scene["optical"]) as opt:
        grid = (opt.crs, opt.transform, opt.shape)
        b = transform_bounds(opt.crs, "EPSG:4326", *opt.bounds)
    # SAR on EPSG:4326 at ~20 m, larger than the optical extent
    pad = 0.002
    w_geo, h_geo = 110, 100
    t_geo = from_bounds(b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad, w_geo, h_geo)
    geo = np.full((2, h_geo, w_geo), np.nan, np.float32)
    reproject(sar, geo, src_crs=grid[0], src_transform=grid[1], dst_crs="EPSG:4326", dst_transform=t_geo,
              resampling=Resampling.average, dst_nodata=np.nan)
    geo_path = write_raster(os.path.join(engine_scene["dir"], "sar4326.tif"), geo, crs="EPSG:4326", transform=t_geo,
                       nodata=float("nan"), descriptions=["VV", "VH"])
    onto = np.full((2,) + grid[2], np.nan, np.float32)
    reproject(geo, onto, src_crs="EPSG:4326", src_transform=t_geo, dst_crs=grid[0], dst_transform=grid[1],
              resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
    pre_path = write_raster(os.path.join(engine_scene["dir"], "sar_prewarped.tif"), onto, crs=str(grid[0]),
                       transform=grid[1], nodata=float("nan"), descriptions=["VV", "VH"])
    a = run(ClassifyParams(engine_scene["optical"], geo_path, os.path.join(engine_scene["dir"], "a.tif")),
            standin_model, standin_card)
    b_ = run(ClassifyParams(engine_scene["optical"], pre_path, os.path.join(engine_scene["dir"], "b.tif")),
             standin_model, standin_card)
    ca, prof = _read(a.output)
    cb, _ = _read(b_.output)
    assert (prof["crs"], prof["transform"], ca.shape) == grid
    assert (ca == cb).mean() >= 0.98
    assert (ca != 0).mean() > 0.95
    assert any("warped onto the optical grid" in m for m in a.messages)


def test_nodata_of_either_input_and_outside_the_overlap_propagates(engine_scene, standin_model, standin_card):
    optical, sar, _ = engine_scene["arrays"]
    optical = optical.copy()
    optical[:, 10:20, 10:30] = 0
    sar_part = sar[:, :, :120].copy()  # SAR covers only the left 120 columns
    sar_part[:, 100:110, 50:60] = np.nan
    d = engine_scene["dir"]
    o_path = write_raster(os.path.join(d, "opt_nd.tif"), optical, nodata=0)
    s_path = write_raster(os.path.join(d, "sar_part.tif"), sar_part, descriptions=["VV", "VH"])
    res = run(ClassifyParams(o_path, s_path, os.path.join(d, "nd.tif"), confidence=os.path.join(d, "c.tif")),
              standin_model, standin_card)
    cls, _ = _read(res.output)
    conf, _ = _read(res.confidence)
    assert cls.shape == (150, 173)
    assert (cls[10:20, 10:30] == 0).all() and (conf[10:20, 10:30] == 255).all()
    assert (cls[100:110, 50:60] == 0).all()
    assert (cls[:, 120:] == 0).all() and (conf[:, 120:] == 255).all()
    expected_valid = 150 * 120 - 200 - 100
    assert (cls != 0).sum() == expected_valid == res.summary["valid_pixels"]
    assert res.summary["optical_invalid_share"] == pytest.approx(200 / (150 * 120))


def test_a_dataset_mask_counts_beside_a_declared_nodata_value(engine_scene, standin_model, standin_card):
    """QA round 16: an optical with nodata 0 declared and an internal mask (gdal_translate with
    GDAL_TIFF_INTERNAL_MASK) had its masked pixels classified from their optical values without a word (the mask
    was read only where no nodata value was declared). Both mark no data now, as QGIS and GDAL show them."""
    optical, sar, _ = engine_scene["arrays"]
    optical = optical.copy()
    optical[:, 10:20, 10:30] = 0
    d = engine_scene["dir"]
    o_path = os.path.join(d, "opt_nd_mask.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        write_raster(o_path, optical, nodata=0)
        with rasterio.open(o_path, "r+") as ds:
            mask = np.full(ds.shape, 255, np.uint8)
            mask[60:70, 40:60] = 0
            ds.write_mask(mask)
    s_path = write_raster(os.path.join(d, "sar_all.tif"), sar, descriptions=["VV", "VH"])
    res = run(ClassifyParams(o_path, s_path, os.path.join(d, "ndm.tif"), fill_from_sar=False), standin_model,
              standin_card)
    cls, _ = _read(res.output)
    assert (cls[10:20, 10:30] == 0).all() and (cls[60:70, 40:60] == 0).all()
    assert (cls != 0).sum() == cls.size - 400 == res.summary["valid_pixels"]
    assert not any("marks every pixel" in m for m in res.messages)  # a partial mask is no "mask everywhere"


def test_a_mask_of_no_data_everywhere_is_warned(engine_scene, standin_model, standin_card):
    """QA round 16 (review): an internal mask created and never written (0 everywhere) made the whole map come from
    SAR alone, said only by the summary's shares."""
    optical, sar, _ = engine_scene["arrays"]
    d = engine_scene["dir"]
    o_path = os.path.join(d, "opt_all_masked.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        write_raster(o_path, optical, nodata=0)
        with rasterio.open(o_path, "r+") as ds:
            ds.write_mask(np.zeros(ds.shape, np.uint8))
    s_path = write_raster(os.path.join(d, "sar_m.tif"), sar, descriptions=["VV", "VH"])
    res = run(ClassifyParams(o_path, s_path, os.path.join(d, "allmasked.tif")), standin_model, standin_card)
    assert any("marks every pixel as no data" in m and "-mask none" in m for m in res.messages), res.messages


def test_cancelled_run_leaves_no_output_and_keeps_earlier_file(engine_scene, standin_model, standin_card):
    d = engine_scene["dir"]
    out = os.path.join(d, "out.tif")
    with open(out, "wb") as f:
        f.write(b"an earlier result")
    before = sorted(os.listdir(d))
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        run(_params(engine_scene, confidence=os.path.join(d, "conf.tif"), batch_size=1), standin_model,
            standin_card, is_cancelled=cancel)
    assert sorted(os.listdir(d)) == before, "no temporary or partial files left"
    with open(out, "rb") as f:
        assert f.read() == b"an earlier result"


def test_progress_is_monotonic_and_reaches_one(engine_scene, standin_model, standin_card):
    seen = []
    run(_params(engine_scene, batch_size=2), standin_model, standin_card, progress=lambda f, m: seen.append((f, m)))
    # QA round 16: seconds of "Starting…" while the inputs were checked and the tiles planned
    assert seen[0] == (0.0, "checking the inputs and planning the tiles")
    fractions = [f for f, _ in seen]
    assert len(fractions) > 5
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))
    assert fractions[-1] == 1.0 and all(isinstance(m, str) and m for _, m in seen)


def test_linear_sar_is_converted_to_db(engine_scene, standin_model, standin_card):
    _, sar, _ = engine_scene["arrays"]
    d = engine_scene["dir"]
    lin = write_raster(os.path.join(d, "sar_lin.tif"), (10 ** (sar / 10)).astype(np.float32), descriptions=["VV", "VH"])
    a = run(_params(engine_scene, "db.tif"), standin_model, standin_card)
    b = run(ClassifyParams(engine_scene["optical"], lin, os.path.join(d, "lin.tif"), sar_units="linear-power"),
            standin_model, standin_card)
    assert any("converting to dB" in m for m in b.messages)
    assert (_read(a.output)[0] == _read(b.output)[0]).mean() > 0.999


def test_l1c_band_layout_is_chosen_and_reported(engine_scene, standin_model, standin_card):
    optical, _, _ = engine_scene["arrays"]
    l1c = np.insert(optical, 10, 5, axis=0).astype(np.uint16)  # add B10 -> 13 bands
    path = write_raster(os.path.join(engine_scene["dir"], "l1c.tif"), l1c)
    res = run(ClassifyParams(path, engine_scene["sar"], os.path.join(engine_scene["dir"], "o.tif")),
              standin_model, standin_card)
    assert res.band_choice["optical"]["indices"] == [2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
    assert "L1C" in res.band_choice["optical"]["method"]
    ref = run(_params(engine_scene, "ref.tif"), standin_model, standin_card)
    assert (_read(res.output)[0] == _read(ref.output)[0]).all()


def test_reference_metrics_summary_json_and_categories(engine_scene, standin_model, standin_card):
    from osgeo import gdal

    d = engine_scene["dir"]
    first = run(_params(engine_scene, "first.tif"), standin_model, standin_card)
    res = run(_params(engine_scene, "second.tif", reference=first.output, summary_json=os.path.join(d, "s.json")),
              standin_model, standin_card)
    m = res.summary["metrics"]
    assert m["oa"] == pytest.approx(1.0) and m["class_values"] == [1, 2, 4, 5]
    assert np.trace(np.array(m["confusion"])) == res.summary["valid_pixels"]
    with open(os.path.join(d, "s.json")) as f:
        js = json.load(f)["summary"]
    for key in ("pixel_area_m2", "valid_pixels", "nodata_pixels", "optical_invalid_share", "cloud_share",
                "classes", "mean_confidence", "mean_sar_share", "metrics"):
        assert key in js
    assert js["pixel_area_m2"] == pytest.approx(100.0)
    for c in js["classes"]:
        assert set(c) >= {"value", "name", "color", "pixels", "area_ha", "share", "mean_confidence",
                          "low_confidence_share", "mean_sar_share"}
    from claire.claire_plugin.core.io.pam import pam_on

    with pam_on():  # the names live in the .aux.xml, which GDAL_PAM_ENABLED=NO (as QGIS runs are told) hides
        info = gdal.Info(res.output)  # what gdalinfo prints (GDAL 3.6 GTiff loads PAM lazily for the band API)
    assert "Categories:" in info and "1: water" in info and "5: built area" in info
    assert "Color Table" in info
    bad = run(_params(engine_scene, "third.tif", reference=engine_scene["labels"]), standin_model, standin_card)
    assert 0.0 <= bad.summary["metrics"]["oa"] <= 1.0


def test_reference_codes_that_are_no_class_are_counted_and_said(engine_scene, standin_model, standin_card):
    """A reference whose crops were coded 10 (a code of the user's scheme) gave OA 0.827 where the map scored
    0.745, its 42 % of pixels left out without a word: they are counted, by code, and said."""
    from claire.claire_plugin.core.engine.summary import reference_line

    d = engine_scene["dir"]
    first = run(_params(engine_scene, "first.tif"), standin_model, standin_card)
    codes, profile = _read(first.output)
    recoded = codes.copy()
    recoded[codes == 4] = 10  # one class under a code the map does not have; 0 stays nodata
    ref = write_raster(os.path.join(d, "ref10.tif"), recoded[None].astype(np.uint8), nodata=0)
    res = run(_params(engine_scene, "second.tif", reference=ref), standin_model, standin_card)
    m = res.summary["metrics"]
    moved = int((codes == 4).sum())
    assert moved > 0
    assert m["reference_left_out"]["pixels"] == moved and m["reference_left_out"]["codes"] == {"10": moved}
    assert m["reference_pixels"] == int(np.array(m["confusion"]).sum()) == res.summary["valid_pixels"] - moved
    assert (m["confusion_rows"], m["confusion_columns"]) == ("reference", "map")
    line = reference_line(m)
    assert "reference pixels" in line and "(10: " in line and "left out" in line
    same = run(_params(engine_scene, "third.tif", reference=first.output), standin_model, standin_card)
    assert same.summary["metrics"]["reference_left_out"]["pixels"] == 0
    assert "left out" not in reference_line(same.summary["metrics"])


@pytest.mark.parametrize("case,match", [
    ("same_as_input", "also an input"),
    ("missing_folder", "folder .* does not exist"),
    ("missing_file", "does not exist"),
    ("not_raster", "not a raster"),
    ("no_crs", "(no|neither a) coordinate reference system"),
    ("no_overlap", "do not overlap"),
    ("few_bands", "has 3 band\\(s\\) but the checkpoint needs 10"),
    ("band_range", "band index 14 is out of range"),
    ("tile_context", "context 24 is not a non-negative multiple of 16"),
    ("sar_all_nan", "no valid values"),
])
def test_bad_input_gives_clear_error(case, match, engine_scene, standin_model, standin_card):
    d = engine_scene["dir"]
    optical, sar, _ = engine_scene["arrays"]
    p = _params(engine_scene, "x.tif")
    if case == "same_as_input":
        p.output = engine_scene["sar"]
    elif case == "missing_folder":
        p.output = os.path.join(d, "nope", "x.tif")
    elif case == "missing_file":
        p.sar = os.path.join(d, "missing.tif")
    elif case == "not_raster":
        with open(os.path.join(d, "notes.tif"), "w") as f:
            f.write("hello")
        p.optical = os.path.join(d, "notes.tif")
    elif case == "no_crs":
        p.sar = write_raster(os.path.join(d, "nocrs.tif"), sar, crs=None)
    elif case == "no_overlap":
        p.sar = write_raster(os.path.join(d, "far.tif"), sar, origin=(600000.0, 4600000.0))
    elif case == "few_bands":
        p.optical = write_raster(os.path.join(d, "rgb.tif"), optical[:3])
    elif case == "band_range":
        p.optical_bands = [2, 3, 4, 5, 6, 7, 8, 9, 11, 14]
    elif case == "tile_context":
        p.tile_size, p.context = 64, 24
    elif case == "sar_all_nan":
        p.sar = write_raster(os.path.join(d, "nan.tif"), np.full_like(sar, np.nan))
    with pytest.raises(ClaireError, match=match):
        run(p, standin_model, standin_card)
    assert not os.path.exists(os.path.join(d, "x.tif"))
    assert not [f for f in os.listdir(d) if "partial" in f]


def test_reader_samples_the_sar_on_one_torch_thread(engine_scene, standin_model, standin_card, monkeypatch,
                                                    pipeline):
    """The SAR warp's grid_sample runs with one torch thread in either schedule (no second OpenMP team as
    wide as the model's beside it)."""
    import threading

    import torch
    import torch.nn.functional as F

    _, sar, _ = engine_scene["arrays"]
    d = engine_scene["dir"]
    sar_20m = write_raster(os.path.join(d, "sar20.tif"), sar[:, ::2, ::2].copy(), res=20.0, descriptions=["VV", "VH"])
    from claire.claire_plugin.core.engine.reader import ChunkReader

    seen, reading = [], threading.local()
    real, real_read = F.grid_sample, ChunkReader._read_sar

    def spy(*a, **k):
        if getattr(reading, "on", False):  # the chunks, not the value sample taken before the run starts
            seen.append((threading.current_thread().name, torch.get_num_threads()))
        return real(*a, **k)

    def read(self, *a, **k):
        reading.on = True
        try:
            return real_read(self, *a, **k)
        finally:
            reading.on = False

    monkeypatch.setattr(F, "grid_sample", spy)
    monkeypatch.setattr(ChunkReader, "_read_sar", read)
    from claire.claire_plugin.core.runtime.torch_thread import call

    before, main = call(torch.get_num_threads), torch.get_num_threads()
    torch.set_num_threads(2)  # torch's default for new threads: a reader thread would start with 2
    try:
        run(ClassifyParams(engine_scene["optical"], sar_20m, os.path.join(d, "o.tif"), batch_size=2), standin_model,
            standin_card)
    finally:
        torch.set_num_threads(main)
    assert seen and all(n == 1 for _, n in seen), seen
    names = {name for name, _ in seen}
    want = {"between batches": {"claire-torch"}, "worker threads": {"claire-reader-0"},
            "3 reader threads": {"claire-reader-0", "claire-reader-1", "claire-reader-2"},
            "2 forward lanes": {"claire-reader-0"}}[pipeline]
    assert names == want, names
    assert call(torch.get_num_threads) == before, "the model's thread keeps its thread count"


def test_the_map_does_not_depend_on_the_tile_size(engine_scene, standin_model, standin_card):
    """Tiles read with context beyond the model's reach (StandIn: 2 px) give the same classes and confidence
    whatever the kept core; with no context, the tile edges show."""
    maps = {}
    for tile, context in ((32, 16), (96, 16), (32, 0)):
        res = run(_params(engine_scene, f"t{tile}_{context}.tif", tile_size=tile, context=context,
                          confidence=os.path.join(engine_scene["dir"], f"c{tile}_{context}.tif")),
                  standin_model, standin_card)
        assert res.stats["tiles"] > 1 and res.stats["context"] == context
        maps[tile, context] = (_read(res.output)[0], _read(res.confidence)[0])
    for a, b in zip(maps[32, 16], maps[96, 16]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(maps[32, 0][1], maps[32, 16][1])


from claire.claire_plugin.core.engine.schedule import forward_lanes as REAL_FORWARD_LANES  # noqa: E402


def test_forward_lanes_only_on_small_cpus_with_every_core_and_models_that_let_the_gil_go(monkeypatch):
    class HoldsGil(torch.nn.Module):
        releases_gil = False

    cpu, eager, old = torch.device("cpu"), torch.nn.Conv2d(1, 1, 1), torch.get_num_threads()
    try:
        # more threads than cores: as many lanes as cores (4 lanes on one core held 1.64 GB for no speed)
        for cores, threads, want in ((2, 2, 2), (4, 4, 4), (2, 1, 1), (4, 2, 1), (8, 8, 1), (1, 1, 1), (1, 4, 1),
                                     (2, 4, 2), (3, 4, 3)):
            monkeypatch.setattr(schedule, "cpu_cores", lambda cores=cores: cores)
            torch.set_num_threads(threads)
            assert REAL_FORWARD_LANES(cpu, eager) == want, (cores, threads)
            assert REAL_FORWARD_LANES(torch.device("cuda"), eager) == 1
            assert REAL_FORWARD_LANES(cpu, HoldsGil()) == 1
    finally:
        torch.set_num_threads(old)


def test_two_lanes_run_two_windows_at_once_and_give_the_same_map(engine_scene, standin_model, standin_card,
                                                                  pipeline):
    """With two lanes, two forwards are in the model at the same time (each waits here for the other: one
    lane at a time would break the barrier), each with one torch thread, and the map, confidence and summary
    are those of one forward at a time."""
    import threading

    if pipeline != "2 forward lanes":
        pytest.skip("compared with one lane inside the test")
    meet, seen = threading.Barrier(2, timeout=20), []

    class Meets(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, *a, **k):
            name = threading.current_thread().name
            if name.startswith("claire-lane"):  # not the memory check's calibration forward
                seen.append((name, torch.get_num_threads()))
                if len(seen) <= 2:
                    meet.wait()
            return self.net(*a, **k)

    kw = {"confidence": "conf.tif", "batch_size": 2}
    lanes = run(_params(engine_scene, "lanes.tif", **{**kw, "confidence": os.path.join(engine_scene["dir"], "c2.tif")}),
                Meets(standin_model), standin_card)
    assert lanes.stats["lanes"] == 2 and lanes.stats["tiles"] > 4
    assert len({n for n, _ in seen}) == 2 and all(t == 1 for _, t in seen), seen
    schedule_one = pytest.MonkeyPatch()
    schedule_one.setattr(schedule, "forward_lanes", lambda device, model, threads=None: 1)
    try:
        one = run(_params(engine_scene, "one.tif", **{**kw, "confidence": os.path.join(engine_scene["dir"], "c1.tif")}),
                  standin_model, standin_card)
    finally:
        schedule_one.undo()
    assert one.stats["lanes"] == 1
    for a, b in ((lanes.output, one.output), (lanes.confidence, one.confidence)):
        np.testing.assert_array_equal(_read(a)[0], _read(b)[0])
    assert lanes.summary == one.summary


def test_beside_forward_lanes_no_read_chunk_waits_outside_the_queue(engine_scene, standin_model, standin_card,
                                                                     monkeypatch, pipeline):
    """With forward lanes the reader starts a chunk only once its queue has room: at most one chunk read and not
    yet taken (its windows are the run's largest buffers beside the forwards); beside a model that leaves cores
    free it reads its next chunk while one waits in the queue."""
    import threading
    import time

    from claire.claire_plugin.core.engine.reader import ChunkReader

    if pipeline not in ("2 forward lanes", "worker threads"):
        pytest.skip("one reader thread beside the model")
    lock, waiting = threading.Lock(), {"now": 0, "most": 0}
    real_read, real_get = ChunkReader._read, ChunkReader.get

    def read(self, *a, **k):
        item = real_read(self, *a, **k)
        with lock:
            waiting["now"] += 1
            waiting["most"] = max(waiting["most"], waiting["now"])
        return item

    def get(self):
        item = real_get(self)
        if item is not None:
            with lock:
                waiting["now"] -= 1
        return item

    class Slow(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, *a, **k):
            if threading.current_thread().name != "MainThread":
                time.sleep(0.05)  # the reader is well ahead of the model
            return self.net(*a, **k)

    monkeypatch.setattr(ChunkReader, "_read", read)
    monkeypatch.setattr(ChunkReader, "get", get)
    res = run(_params(engine_scene, "slow.tif", tile_size=32, context=16, batch_size=2), Slow(standin_model),
              standin_card)
    assert res.stats["tiles"] > 12
    assert waiting["most"] == (1 if pipeline == "2 forward lanes" else 2), waiting


def test_tiles_with_nothing_to_classify_skip_the_model_and_the_map_is_the_same(engine_scene, standin_model,
                                                                               standin_card, monkeypatch):
    """A nodata wedge in both rasters (a swath edge): tiles whose kept part holds no pixel to classify do not run
    through the model (also inside a batch that has other tiles), and every output and the summary are those of
    running every tile."""
    from claire.claire_plugin.core.engine import tiling

    optical, sar, _ = synthetic_scene(240, 260)
    rows, cols = np.mgrid[:optical.shape[1], :optical.shape[2]]
    wedge = rows + cols < 230  # every row and column keeps data: the region is the whole raster
    optical, sar = optical.copy(), sar.astype(np.float32)
    optical[:, wedge] = 0
    sar[:, wedge] = -9999.0
    d = engine_scene["dir"]
    scene = {"optical": write_raster(os.path.join(d, "o_wedge.tif"), optical, nodata=0),
             "sar": write_raster(os.path.join(d, "s_wedge.tif"), sar, nodata=-9999.0, descriptions=["VV", "VH"]),
             "dir": d}
    forwarded = []

    class Counts(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, optical, *a, **k):
            forwarded.append(optical.shape[0])
            return self.net(optical, *a, **k)

    kw = dict(tile_size=32, context=16, batch_size=3)

    def outputs(name):
        res = run(_params(scene, f"{name}.tif", confidence=os.path.join(d, f"{name}_c.tif"),
                          summary_json=os.path.join(d, f"{name}.json"), **kw), Counts(standin_model), standin_card)
        return res, [_read(p)[0] for p in (res.output, res.confidence)]

    skipped, skipped_maps = outputs("skipped")
    ran = sum(forwarded)
    forwarded.clear()
    monkeypatch.setattr(tiling, "tiles_with_data", lambda grid, r, j0, j1, valid: [True] * (j1 - j0))
    every, every_maps = outputs("every")
    assert skipped.stats["tiles"] == every.stats["tiles"] > 12
    assert every.stats["tiles_without_data"] == 0 and sum(forwarded) >= every.stats["tiles"]
    assert skipped.stats["tiles_without_data"] >= 4, skipped.stats
    assert sum(forwarded) - ran == skipped.stats["tiles_without_data"]  # (both with the memory check's forward)
    for a, b in zip(skipped_maps, every_maps):
        np.testing.assert_array_equal(a, b)
    assert skipped.summary == every.summary
    nodata = _read(skipped.output)[1]["nodata"]
    assert (skipped_maps[0][wedge] == nodata).all() and (skipped_maps[0][~wedge] != nodata).all()


def test_the_summary_and_the_report_record_the_settings_the_run_used(engine_scene, standin_model, standin_card):
    """QA (consistency): every report said the card's tile (the training's), and nothing of the run's runtime,
    threads or switches: two maps could not be told apart by what made them."""
    d = engine_scene["dir"]
    res = run(_params(engine_scene, "set.tif", tile_size=32, context=16, snow_check=False,
                      summary_json=os.path.join(d, "set.json"), report=os.path.join(d, "set_report.json")),
              standin_model, standin_card)
    with open(os.path.join(d, "set.json")) as f:
        saved = json.load(f)["run"]
    with open(os.path.join(d, "set_report.json")) as f:
        reported = json.load(f)["run"]
    assert saved == reported == res.stats["run"]
    assert saved["tile_size"] == res.stats["tile_size"] and saved["context"] == 16
    assert saved["runtime"] == res.stats["runtime"] and saved["lanes"] == res.stats["lanes"]
    assert saved["snow_check"] is False and saved["fill_from_sar"] is True and saved["level"] == "class"
    assert saved["device"] == "cpu" and saved["threads"] >= 1 and saved["claire_version"] not in ("", "unknown")
    # QA round 17 (reproducibility): which checkpoint made the map, and with what software
    from claire.claire_plugin.core.io.atomic import file_sha256
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT

    assert saved["checkpoint"] == {"path": os.path.abspath(DEFAULT_CHECKPOINT), "sha256": file_sha256(DEFAULT_CHECKPOINT)}
    assert saved["software"]["torch"] and saved["software"]["numpy"] and saved["software"]["gdal"]
    assert saved["runtime_asked"] == "auto"


def test_a_scripts_paths_are_taken_and_odd_thread_counts_refused(engine_scene, standin_model, standin_card):
    """QA (library use): `pathlib.Path` inputs failed with an AttributeError deep in GDAL's name handling, and
    threads=0 / 1.5 ran as the default / 1 thread without a word."""
    from pathlib import Path

    out = Path(engine_scene["dir"]) / "lc.tif"
    p = ClassifyParams(Path(engine_scene["optical"]), Path(engine_scene["sar"]), out, report=out.with_suffix(".html"))
    assert (p.optical, p.output, p.report) == (engine_scene["optical"], str(out), str(out.with_suffix(".html")))
    assert os.path.exists(run(p, standin_model, standin_card).output)
    said = {0: "--threads must be a whole number of at least 1 \\(got 0\\)",
            1.5: "--threads must be a whole number of at least 1 \\(got 1.5\\)",
            -1: "--threads must be a whole number of at least 1 \\(got -1\\)",
            "two": "--threads 'two' is not a number", float("inf"): "--threads is inf, not a finite number",
            "inf": "--threads is inf, not a finite number",
            10 ** 20: "--threads 1e\\+20 is above 1024, the most a run takes"}  # QA round 20: exit 3
    for threads, message in said.items():  # round 21: the words of training's check, one check for both
        with pytest.raises(ClaireError, match=message):
            run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], str(out), threads=threads),
                standin_model, standin_card)


def test_a_training_thread_count_beyond_any_machine_is_refused_by_name():
    """QA round 20: `claire train --threads 99999999999999999999` reached torch.set_num_threads: an internal error."""
    from claire.claire_plugin.core.training.checks import check_threads

    assert check_threads("4") == 4 and check_threads(None) is None
    with pytest.raises(ClaireError, match="--threads 1e\\+20 is above 1024"):
        check_threads(10 ** 20)


def test_a_scripts_band_lists_as_text_are_read_as_the_command_line_reads_them():
    """QA (library use): band lists given as text failed with a ValueError from int()."""
    from pathlib import Path

    from claire.claire_plugin.core.training.polygons import PolygonTrainParams

    p = ClassifyParams("o.tif", "s.tif", "out.tif", optical_bands="2 3 4 8", sar_bands="1,2")
    assert (p.optical_bands, p.sar_bands) == ([2, 3, 4, 8], [1, 2])
    t = PolygonTrainParams(Path("o.tif"), Path("s.tif"), Path("l.gpkg"), Path("m.safetensors"), optical_bands="2;3")
    assert (t.optical, t.labels, t.output, t.optical_bands) == ("o.tif", "l.gpkg", "m.safetensors", [2, 3])
    with pytest.raises(ClaireError, match="--optical-bands '2,x' is not a list of band numbers"):
        ClassifyParams("o.tif", "s.tif", "out.tif", optical_bands="2,x")
    assert ClassifyParams("o.tif", "s.tif", "out.tif", optical_offset="-1000").optical_offset == -1000.0
    with pytest.raises(ClaireError, match="--optical-offset 'x' is not a number"):
        ClassifyParams("o.tif", "s.tif", "out.tif", optical_offset="x")


def test_the_run_record_names_the_checkpoint_given(engine_scene, standin_model, standin_card):
    """Mutation check of round 17: only the bundled checkpoint was checked, so a record naming it whatever the run
    was given survived."""
    from claire.claire_plugin.core.io.atomic import file_sha256
    from claire.tests.fixtures.helpers import make_tiny_checkpoint

    d = engine_scene["dir"]
    mine = make_tiny_checkpoint(os.path.join(d, "mine.safetensors"))
    res = run(_params(engine_scene, "given.tif", checkpoint=mine, tile_size=32, context=16), standin_model,
              standin_card)
    assert res.stats["run"]["checkpoint"] == {"path": os.path.abspath(mine), "sha256": file_sha256(mine)}
