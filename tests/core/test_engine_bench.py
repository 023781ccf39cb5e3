"""The benchmark's synthetic pair, target checks and table (the timed runs are `claire bench`)."""
from __future__ import annotations

import numpy as np
import rasterio

from claire.claire_plugin.tools.bench import format_table, targets, write_pair


def test_synthetic_pair_is_s2_l1c_and_s1_on_epsg4326(tmp_path):
    p = write_pair(str(tmp_path), 96)
    with rasterio.open(p["optical"]) as o, rasterio.open(p["sar"]) as s:
        assert (o.count, o.dtypes[0], o.shape, o.crs.to_epsg(), o.res) == (13, "uint16", (96, 96), 32633, (10.0, 10.0))
        assert (s.count, s.dtypes[0], s.crs.to_epsg()) == (2, "float32", 4326)
        assert s.descriptions == ("VV", "VH")
        from rasterio.warp import transform_bounds

        ob = transform_bounds(o.crs, s.crs, *o.bounds)
        assert s.bounds.left < ob[0] and s.bounds.right > ob[2] and s.bounds.bottom < ob[1] and s.bounds.top > ob[3]
        assert 15.0 < s.res[1] * 110574 < 25.0, "about 20 m"
        vv = s.read(1)
        assert np.isfinite(vv).all() and -30 < vv.mean() < 0


def test_cog_layout_stores_the_same_pixels_compressed_in_1024_tiles(tmp_path):
    plain = write_pair(str(tmp_path), 96)
    cog = write_pair(str(tmp_path), 96, layout="cog")
    for role in ("optical", "sar"):
        with rasterio.open(plain[role]) as a, rasterio.open(cog[role]) as b:
            assert (a.compression, b.compression.name) == (None, "deflate")
            assert b.block_shapes[0] == (1024, 1024) and (a.crs, a.transform) == (b.crs, b.transform)
            np.testing.assert_array_equal(a.read(), b.read())
            assert b.descriptions == a.descriptions


def _row(size, e2e, bare, rss):
    return {"size": size, "pixels": size * size, "tiles": 1, "end_to_end_s": e2e, "bare_forward_s": bare,
            "ratio": round(e2e / bare, 3), "cpu_ratio": 1.0, "mpix_per_s": 1.0, "peak_rss_mb": rss}


def test_targets_and_table():
    ok = targets([_row(1024, 1.05, 1.0, 500.0), _row(8192, 60.0, 56.0, 640.0)])
    assert ok["ratio_ok"] and ok["rss_ok"] and ok["s2_tile_ok"]
    assert abs(ok["s2_tile_estimate_s"] - 60.0 * 10980 ** 2 / 8192 ** 2) < 0.1
    bad = targets([_row(1024, 2.0, 1.0, 500.0), _row(8192, 600.0, 500.0, 700.0)])
    assert not bad["ratio_ok"] and not bad["rss_ok"] and not bad["s2_tile_ok"]
    table = format_table({"results": [_row(1024, 1.05, 1.0, 500.0)]})
    assert "| 1024² |" in table and "peak RSS" in table


def test_busy_bench_forward_reports_the_time_per_tile():
    from claire.claire_plugin.tools.busy_bench import forward

    row = forward(1, batches=1)
    assert row["threads"] == 1 and 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
    assert set(row["omp_env"]) == {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}


def test_phase_table_lists_every_phase_of_every_size():
    from claire.claire_plugin.tools.bench import format_phases

    a, b = _row(1024, 1.0, 1.0, 1.0), _row(4096, 9.0, 8.0, 1.0)
    a["phases"] = {"model forward, keep the cores, softmax": 0.8, "read optical, cloud, normalise": 0.1}
    b["phases"] = {"model forward, keep the cores, softmax": 7.5, "stitch, finish and write blocks": 1.2}
    table = format_phases({"results": [a, b]}).splitlines()
    assert table[0] == "| phase (thread-seconds) | 1024² | 4096² |"
    assert "| stitch, finish and write blocks | - | 1.2 |" in table
    assert "| model forward, keep the cores, softmax | 0.8 | 7.5 |" in table
    assert table[-1] == "| end to end (wall) | 1.0 | 9.0 |"
    assert format_phases({"results": [_row(64, 1.0, 1.0, 1.0)]}) == ""


def test_engine_stats_carry_the_phases(tmp_path):
    from claire.claire_plugin.core.engine import classify
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.tests.fixtures.helpers import make_tiny_checkpoint

    p = write_pair(str(tmp_path), 300)
    res = classify(ClassifyParams(p["optical"], p["sar"], str(tmp_path / "c.tif"), device="cpu",
                                  checkpoint=make_tiny_checkpoint(str(tmp_path / "t.safetensors"))))
    phases = res.stats["phases"]
    for name in ("plan: open, check, model on the device", "read optical, cloud, normalise",
                 "read and warp SAR, normalise", "model forward, keep the cores, softmax",
                 "stitch, finish and write blocks"):
        assert phases[name] > 0, name
    assert abs(phases["model forward, keep the cores, softmax"] - res.stats["forward_seconds"]) < 0.01
    assert sum(phases.values()) < 3 * res.stats["seconds"]


def test_targets_per_runtime_check_the_eager_ratio_of_each():
    from claire.claire_plugin.tools.bench import runtime_targets

    rows = []
    for runtime, e2e, small_rss in (("eager", 10.0, 500.0), ("auto", 6.0, 400.0)):
        for size, rss in ((1024, small_rss), (8192, 600.0)):
            r = _row(size, e2e, e2e / 1.2, rss)
            rows.append(dict(r, runtime=runtime, ratio_vs_eager=round(e2e / 10.0, 3)))
    t = runtime_targets(rows, ["eager", "auto"])
    assert t["runtime"] == "auto" and t["max_ratio_vs_eager"] == 0.6 and t["ratio_vs_eager_ok"]
    assert not t["rss_ok"] and t["by_runtime"]["eager"]["rss_ok"]  # each runtime's sizes against each other
    assert not t["by_runtime"]["eager"]["ratio_vs_eager_ok"] and t["by_runtime"]["eager"]["max_ratio_vs_eager"] == 1.0
    assert "by_runtime" not in runtime_targets(rows[:2], ["eager"]) and "max_ratio_vs_eager" not in targets(
        [_row(1024, 1.0, 1.0, 1.0)])


def test_the_contention_figure_is_busy_over_alone_and_checked_against_two(tmp_path, monkeypatch):
    from claire.claire_plugin.tools import bench, busy_bench

    calls = []

    def fake(paths, out, busy, pythonpath=None, extra=()):
        calls.append((busy, tuple(extra)))
        return {"busy": busy, "rc": 0, "seconds": 30.0 if busy else 12.0, "load1": 0.1, "notes": ["threads: 2 -> 1"]}

    monkeypatch.setattr(busy_bench, "classify_once", fake)
    row = bench.contention_row(str(tmp_path), 64, "eager", None, 0, 1, "plain", log=lambda m: None)
    assert calls == [(False, ("--runtime", "eager", "--threads", "1")), (True, ("--runtime", "eager", "--threads", "1"))]
    assert row["busy_over_alone"] == 2.5 and (row["alone_s"], row["busy_s"]) == (12.0, 30.0)
    t = targets([dict(_row(1024, 1.05, 1.0, 500.0), **row)])
    assert t["max_busy_over_alone"] == 2.5 and t["busy_ok"] is False
    assert "| 2.5 (12.0 / 30.0 s) |" in format_table({"results": [dict(_row(1024, 1.05, 1.0, 500.0), **row)]})


def test_the_contention_runs_classify_for_real(tmp_path):
    """Both runs are real `claire classify` processes on the bench's pair (a tiny one here)."""
    from claire.claire_plugin.tools.bench import contention_row

    row = contention_row(str(tmp_path), 96, "eager", None, 0, 1, "plain", log=lambda m: None)
    assert row["alone_s"] > 0 and row["busy_s"] > 0 and row["busy_over_alone"] > 0
    assert not list(tmp_path.glob("contention_*"))


def test_time_left_is_said_once_there_is_a_pace():
    """A whole tile in QGIS showed only "tile 20 of 144" for three minutes: the progress now says the time left."""
    from claire.claire_plugin.core.engine.runner import time_left

    assert time_left(3.0, 10, 100) == ""  # under 5 s: no pace yet
    assert time_left(10.0, 1, 100) == ""  # one tile: no pace yet
    assert time_left(10.0, 10, 0) == ""
    assert time_left(10.0, 10, 12) == "about 10 s left"
    assert time_left(10.0, 10, 2) == "about 5 s left"
    assert time_left(20.0, 10, 134) == "about 4 min left"
