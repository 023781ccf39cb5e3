"""Scene windows through the engine's preparers, sparse per-pixel sampling, bounded memory, the scorecard."""
import html
import tracemalloc

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from claire.claire_plugin.core.training.labels import ClassInfo, LabelPixels, read_labels
from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.scorecard import render_html, score
from claire.claire_plugin.core.training.windows import cells, sample_pixels
from claire.tests.fixtures.helpers import synthetic_scene, tiny_card, write_raster
from claire.tests.fixtures.vectors import box_wkt, write_vector


def _scene(tmp_path, tags=None, rows=70, cols=90):
    opt, sar, _ = synthetic_scene(rows, cols)
    return Scene(write_raster(tmp_path / "o.tif", opt, tags=tags),
                 write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]), tiny_card()), opt, sar


def test_physical_values_come_from_the_engine_preparers(tmp_path):
    scene, opt, sar = _scene(tmp_path)
    o, s, bad = scene.read(10, 20, 8, 8)
    # 12-band L2A -> B02 (band 2) first; reflectance = DN * 1e-4, clipped to [0, 1]
    assert np.allclose(o[0], opt[1, 10:18, 20:28] * 1e-4, atol=1e-6) and not bad.any()
    assert np.allclose(s, sar[:, 10:18, 20:28], atol=1e-5)
    scene.close()
    (tmp_path / "x").mkdir()
    shifted = Scene(write_raster(tmp_path / "x" / "o.tif", opt + 1000, tags={"PROCESSING_BASELINE": "04.00"}),
                    write_raster(tmp_path / "x" / "s.tif", sar, descriptions=["VV", "VH"]), tiny_card())
    o2, _, _ = shifted.read(10, 20, 8, 8)
    assert np.allclose(o2[0], opt[1, 10:18, 20:28] * 1e-4, atol=1e-6)  # ESA's -1000 taken off, as in the engine
    shifted.close()


def test_reads_past_the_edge_are_padded(tmp_path):
    scene, opt, _ = _scene(tmp_path)
    o, s, bad = scene.read(60, 80, 32, 32)
    assert o.shape == (10, 32, 32) and bad.shape == (32, 32)
    assert np.allclose(o[0, :10, :10], opt[1, 60:70, 80:90] * 1e-4, atol=1e-6)
    scene.close()


def test_sample_pixels_features_and_seeded_clouds(tmp_path):
    scene, opt, sar = _scene(tmp_path)
    rows, cols = np.array([0, 33, 69, 5], np.int32), np.array([0, 44, 89, 80], np.int32)
    px = LabelPixels(rows, cols, np.zeros(4, np.uint8), np.arange(4, dtype=np.int32))
    _, feats = sample_pixels(scene, px)
    assert np.allclose(feats[:, 0], opt[1, rows, cols] * 1e-4, atol=1e-6)
    assert np.allclose(feats[:, 10], sar[0, rows, cols], atol=1e-5)
    _, c1 = sample_pixels(scene, px, clouds=True, seed=4)
    _, c2 = sample_pixels(scene, px, clouds=True, seed=4)
    assert np.array_equal(c1, c2) and not np.allclose(c1, feats)
    scene.close()


def test_cells_cover_every_pixel_once(tmp_path):
    scene, _, _ = _scene(tmp_path, rows=300, cols=260)
    rng = np.random.default_rng(0)
    px = LabelPixels(rng.integers(0, 300, 500).astype(np.int32), rng.integers(0, 260, 500).astype(np.int32),
                     np.zeros(500, np.uint8), np.zeros(500, np.int32))
    seen = np.zeros(500, int)
    for c in cells(scene, px, tile=128, context=16):
        assert c.h == c.w == 128 and 0 <= c.r0 <= 300 - 128 and 0 <= c.c0 <= 260 - 128
        assert (c.local_rows >= 0).all() and (c.local_rows < 128).all() and (c.local_cols < 128).all()
        seen[c.index] += 1
    assert (seen == 1).all()
    scene.close()


def test_labels_and_features_of_a_huge_raster_stay_small(tmp_path):
    """A 30000 x 30000 sparse optical raster: memory follows the labelled pixels, not the raster."""
    n = 30000
    profile = dict(driver="GTiff", width=n, height=n, count=12, dtype="int16", crs="EPSG:32631",
                   transform=from_origin(500000.0, 4600000.0, 10, 10), tiled=True, blockxsize=256, blockysize=256,
                   SPARSE_OK="TRUE", nodata=None)
    with rasterio.open(tmp_path / "big.tif", "w", **profile) as ds:
        ds.write(np.full((12, 256, 256), 1500, np.int16), window=rasterio.windows.Window(0, 0, 256, 256))
    sar = write_raster(tmp_path / "s.tif", np.full((2, 64, 64), -12.0, np.float32), res=n * 10 / 64,
                       descriptions=["VV", "VH"])
    feats = [(box_wkt(r, c, r + 5, c + 5), v) for v, r, c in [(1, 10, 10), (1, 10, 100), (1, 200, 10),
                                                               (2, 29000, 29000), (2, 100, 29000), (2, 29000, 100)]]
    tracemalloc.start()
    with rasterio.open(tmp_path / "big.tif") as grid:
        labels = read_labels(write_vector(tmp_path / "l.gpkg", feats), grid, "class")
    with Scene(str(tmp_path / "big.tif"), sar, tiny_card()) as scene:
        _, f = sample_pixels(scene, labels.pixels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(labels.pixels) == 150 and f.shape == (150, 12)
    written = (labels.pixels.rows < 256) & (labels.pixels.cols < 256)
    assert written.sum() == 75 and np.allclose(f[written, 0], 0.15, atol=1e-6)
    assert peak < 200 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MiB"  # one band of the raster would be 1.7 GiB


def test_scorecard_rows_are_the_reference():
    classes = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "trees")]
    ref = LabelPixels(np.zeros(5, np.int32), np.arange(5, dtype=np.int32), np.array([0, 0, 0, 1, 1], np.uint8),
                      np.zeros(5, np.int32))
    m = score(np.array([0, 0, 1, 1, -1]), ref, classes)
    assert m["confusion"] == [[2, 1], [0, 1]] and m["pixels"] == 4 and m["unscored_pixels"] == 1
    assert m["per_class"][0]["recall"] == pytest.approx(2 / 3, abs=1e-4) and m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2,
                                                                                                 abs=1e-4)
    report = {"classes": [{"name": "water"}, {"name": "trees"}], "labels": {"path": "p", "field": "f", "sha256": "x"},
              "split": {"kind": "polygons", "buffer_px": 3}, "counts": [], "leakage": None,
              "arms": {"finetuned": {"clear": m}}}
    html = render_html(report)
    assert "reference \u2193 / predicted \u2192" in html and "<th>water</th><td>2</td><td>1</td>" in html


def _arms(net: float, rf: float, net_clouds: float = 0.6, rf_clouds: float = 0.3) -> dict:
    def m(v):
        return {"macro_f1": v, "oa": v, "kappa": v, "miou": v, "pixels": 10, "confusion": [[1]], "per_class": []}

    return {"finetuned": {"clear": m(net), "clouds_60pct": m(net_clouds)},
            "rf_optical_sar": {"clear": m(rf), "clouds_60pct": m(rf_clouds)}}


def test_the_report_says_when_the_forest_beats_the_network_and_what_to_do():
    from claire.claire_plugin.cli.train_polygons import summary_table
    from claire.claire_plugin.core.training.scorecard import forest_verdict
    from claire.claire_plugin.processing.train import score_lines

    report = {"arms": _arms(0.55, 0.69)}
    text = forest_verdict(report)
    assert "random forest (optical + SAR) scored higher" in text and "0.69 against 0.55" in text
    assert "Draw more polygons" in text and "Under synthetic clouds your CLAIRE model holds better (0.60 against 0.30)" in text
    with_forest = forest_verdict(dict(report, forest_checkpoint="/data/area.forest.safetensors"))
    assert "written beside your model (area.forest.safetensors): classify with both and compare" in with_forest
    assert "keep the network for cloudy scenes" in with_forest and "averaged" not in with_forest
    arms = dict(_arms(0.55, 0.69), ensemble=_arms(0.66, 0.0, 0.58)["finetuned"])
    with_both = forest_verdict(dict(report, arms=arms, forest_checkpoint="/data/area.forest.safetensors",
                                    ensemble_checkpoint="/data/area.ensemble.safetensors"))
    assert ("The two averaged (area.ensemble.safetensors, the forest's weight falling under cloud) scored 0.66 "
            "clear and 0.58 under synthetic clouds.") in with_both
    chosen = forest_verdict(dict(report, arms=arms, forest_checkpoint="/data/area.forest.safetensors",
                                 ensemble_checkpoint="/data/area.ensemble.safetensors",
                                 ensemble_weight={"chosen": 0.25, "halves": [{}, {}]}))
    assert ("(area.ensemble.safetensors, the forest's weight 0.25 (chosen on your held-out polygons) falling under "
            "cloud) scored 0.66") in chosen
    assert "Under synthetic clouds" not in forest_verdict({"arms": _arms(0.55, 0.69, 0.2, 0.3)})
    assert forest_verdict({"arms": _arms(0.80, 0.81)}) is None  # within FOREST_LEAD
    assert forest_verdict({"arms": _arms(0.80, 0.70)}) is None
    assert forest_verdict({"arms": {"finetuned": _arms(0.5, 0.9)["finetuned"]}}) is None  # no baseline run
    full = dict(report, classes=[{"name": "a"}], labels={"path": "p", "field": "f", "sha256": "x"},
                split={"kind": "polygons", "buffer_px": 3}, counts=[], leakage=None)
    assert html.escape(text) in render_html(full)
    assert text in summary_table(full) and text in score_lines(full)


def test_the_report_says_when_fine_tuning_did_not_help():
    from claire.claire_plugin.cli.train_polygons import summary_table
    from claire.claire_plugin.core.training.scorecard import untuned_verdict, verdicts
    from claire.claire_plugin.processing.train import score_lines

    arms = _arms(0.70, 0.60)
    arms["untuned"] = _arms(0.85, 0.0)["finetuned"]
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT

    report = {"arms": arms, "training": {"base_checkpoint": DEFAULT_CHECKPOINT}}  # the bundled base: no start_sentence
    text = untuned_verdict(report)  # no interval: the lead is not decided, no advice to switch
    assert "scored a little higher on the held-out polygons (macro-F1 0.85 against 0.70), by less than" in text
    assert "fine-tuning has not shown a gain yet" in text and "Map with" not in text
    report["spread"] = {"clear": {"differences": {"finetuned - untuned": [-0.25, -0.05]}}}  # decided
    text = untuned_verdict(report)
    assert "(claire_default.safetensors) scored higher on the held-out polygons than after fine-tuning" in text
    assert "0.85 against 0.70" in text and "Map with the base checkpoint" in text
    assert verdicts(report)[0] == text  # the forest scored lower: no forest sentence
    # QA (new classes): a base without some of the user's classes is no map to take instead
    report.update(classes=[{"index": 0, "name": "water"}, {"index": 1, "name": "vineyard"},
                           {"index": 2, "name": "grassland"}], untuned_class_map=[0, -1, -1])
    lacks = untuned_verdict(report)
    assert "but it has no class for 'vineyard', 'grassland': it is no map of your legend" in lacks
    assert "Map with" not in lacks
    del report["classes"], report["untuned_class_map"]
    del report["spread"]
    assert verdicts(report) == [untuned_verdict(report)]
    arms["untuned"] = _arms(0.71, 0.0)["finetuned"]
    assert untuned_verdict(report) is None and verdicts(report) == []  # within FOREST_LEAD
    del arms["untuned"]
    assert untuned_verdict(report) is None
    arms["untuned"], arms["rf_optical_sar"] = _arms(0.9, 0.0)["finetuned"], _arms(0.8, 0.0)["finetuned"]
    both = verdicts(report)
    assert len(both) == 2 and "fine-tuning has not shown a gain" in both[0] and "random forest" in both[1]
    full = dict(report, classes=[{"name": "a"}], labels={"path": "p", "field": "f", "sha256": "x"},
                split={"kind": "polygons", "buffer_px": 3}, counts=[], leakage=None)
    assert both[0] in summary_table(full) and both[0] in score_lines(full)
    assert html.escape(both[0]) in render_html(full)
