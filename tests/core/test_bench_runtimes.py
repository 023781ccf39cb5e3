"""`claire bench --runtimes`: rows per size and runtime, the bare forward of the runtime `prepare` gives (never
timing its build), the engine's batches and the cloud input, and the agreement of the maps (tools/bench*.py)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rasterio
import torch

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.runtime import compiled
from claire.claire_plugin.tools import bench, bench_measure

ROW_FIELDS = {"runtime", "runtime_used", "end_to_end_s", "bare_forward_s", "bare_eager_s", "ratio", "ratio_vs_eager",
              "mpix_per_s", "peak_rss_mb", "agreement_with_eager", "build_load_s", "build", "runtime_note"}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIRE_CACHE_DIR", str(tmp_path / "cache"))


def _checkpoint(path, cloud_gate: bool = False) -> str:
    from claire.models.checkpoint import save_checkpoint
    from claire.models.registry import build_model
    from claire.tests.fixtures.helpers import tiny_card

    torch.manual_seed(0)
    card = tiny_card()
    card["config"]["cloud_gate"] = cloud_gate
    save_checkpoint(str(path), build_model("claire", card["config"]), card)
    return str(path)


def _raster(path, data, nodata=0):
    from rasterio.transform import from_origin

    prof = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="uint8", nodata=nodata,
                crs="EPSG:32633", transform=from_origin(400000, 5200000, 10, 10))
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data, 1)
    return str(path)


def test_map_agreement_counts_the_reference_maps_valid_pixels_with_the_same_class(tmp_path):
    a = np.full((40, 50), 3, np.uint8)
    a[:10] = 0  # nodata: not counted
    b = a.copy()
    b[10:15, :20] = 4  # 100 of the 1500 valid pixels differ
    b[:10] = 7  # differs only where the reference has no data
    ra, rb = _raster(tmp_path / "a.tif", a), _raster(tmp_path / "b.tif", b)
    assert bench.map_agreement(ra, ra) == 1.0
    assert bench.map_agreement(ra, rb) == pytest.approx(1400 / 1500)
    assert bench.map_agreement(_raster(tmp_path / "e.tif", np.zeros((40, 50), np.uint8)), ra) is None
    with pytest.raises(ValueError, match="40 x 20"):
        bench.map_agreement(ra, _raster(tmp_path / "s.tif", np.zeros((20, 40), np.uint8)))


def test_agreements_compare_every_runtimes_map_with_the_eager_one_and_remove_the_maps(tmp_path):
    a = np.full((20, 20), 2, np.uint8)
    b = a.copy()
    b[:5] = 1
    rows = [{"runtime": "eager", "output": _raster(tmp_path / "e.tif", a)},
            {"runtime": "aot", "output": _raster(tmp_path / "x.tif", b)}]
    bench._agreements(rows)
    assert [r["agreement_with_eager"] for r in rows] == [1.0, 0.75]
    assert not any((tmp_path / n).exists() for n in ("e.tif", "x.tif"))
    alone = [{"runtime": "auto", "output": _raster(tmp_path / "y.tif", b)}]
    bench._agreements(alone)
    assert alone[0]["agreement_with_eager"] is None and "| n/a |" in bench.format_table({"results": [
        {"size": 64, "tiles": 1, "end_to_end_s": 1, "bare_forward_s": 1, "ratio": 1, "mpix_per_s": 1,
         "peak_rss_mb": 1, "runtime": "auto", "agreement_with_eager": None}]})


def test_engine_batches_end_each_tile_row_with_its_short_batch():
    from claire.claire_plugin.core.engine.tiling import TileGrid

    sizes = bench_measure.engine_batches(600, 48, 8, 4)
    grid = TileGrid(0, 0, 600, 600, 48, 8)
    assert sum(sizes) == grid.n_tiles and grid.n_cols == 13
    assert sizes[:4] == [4, 4, 4, 1] and len(sizes) == 4 * grid.n_rows  # a row of 13 tiles: one chunk


def test_parse_runtimes_accepts_every_runtime_and_names_the_fix():
    from claire.claire_plugin.cli.bench import parse_runtimes

    assert parse_runtimes("eager, AUTO,eager") == ["eager", "auto"]
    assert parse_runtimes("aot,compiled") == ["aot", "compiled"]
    with pytest.raises(ClaireError, match="unknown fast.*e.g. --runtimes eager,auto"):
        parse_runtimes("eager,fast")


def test_the_bare_forward_is_the_prepared_runtime_fed_the_engines_batches_without_its_build(tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path / "gated.safetensors", cloud_gate=True)
    real, seen, prepared = compiled.prepare, [], []

    class Counting(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, o, s, cloud=None, **kw):
            seen.append((o.shape[0], cloud is not None and cloud.shape[0] == o.shape[0]))
            return self.model(o, s, cloud=cloud, **kw)

    def slow_build(model, card, device, runtime, tile, batch, channels, cloud=False, features=False):
        time.sleep(1.0)  # stands in for a build: the bench's first call and the engine's own
        prepared.append((runtime, tile, batch, channels, cloud))
        return compiled.Runtime(Counting(real(model, card, device, "eager", tile, batch, channels).model), "aot",
                                "runtime: stand-in", "built")

    real_bare, builds_inside = bench_measure._bare, []

    def bare_spy(*a, **k):  # a build inside the timed forward would show here, on any machine's speed
        before = len(prepared)
        out = real_bare(*a, **k)
        builds_inside.append(len(prepared) - before)
        return out

    monkeypatch.setattr(compiled, "prepare", slow_build)
    monkeypatch.setattr(bench_measure, "_bare", bare_spy)
    row = bench_measure.measure_one(str(tmp_path), 256, ckpt, 3, 1, runtime="aot")
    assert ROW_FIELDS - {"agreement_with_eager"} <= set(row)
    assert row["runtime"] == row["runtime_used"] == "aot" and row["build"] == "built"
    assert row["build_load_s"] >= 1.0 and row["end_to_end_s"] >= 1.0  # the engine prepares its own
    # structural, not by the clock: a wall-clock bound failed on a busy machine (QA round 18)
    assert builds_inside and not any(builds_inside), "the bare forward must not time the build"
    assert len(prepared) == 3 and all(p[0] == "aot" and p[4] for p in prepared)  # bench, engine, bare
    shape = bench_measure.model_inputs(_card(ckpt), 3, 256)
    want = bench_measure.engine_batches(256, shape["tile"], shape["context"], 3)
    bare = [n for n, _ in seen[-len(want):]]
    assert len(want) > 2 and bare == want and min(want) < 3 and all(c for _, c in seen)  # short batches, cloud in every one
    bare_s, e2e = row["bare_eager_s"], row["end_to_end_s"]  # both rounded to 0.01 s in the row
    assert bare_s > 0 and e2e / (bare_s + 0.006) <= row["ratio_vs_eager"] <= e2e / max(bare_s - 0.006, 1e-3)


def _card(path):
    from claire.models.checkpoint import read_card

    return read_card(path)


def test_bench_gives_a_row_per_size_and_runtime_with_the_eager_maps_agreement(tmp_path, capsys):
    from claire.claire_plugin.cli.main import main

    ckpt = _checkpoint(tmp_path / "t.safetensors")
    out = tmp_path / "b.json"
    assert main(["bench", "--sizes", "256", "--runtimes", "eager,auto", "--checkpoint", ckpt, "--threads", "1",
                 "--repeats", "1", "--folder", str(tmp_path / "pairs"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["results"]
    assert [(r["size"], r["runtime"]) for r in rows] == [(256, "eager"), (256, "auto")]
    for r in rows:
        assert ROW_FIELDS <= set(r) and r["agreement_with_eager"] == 1.0 and r["build"] == "none"
        assert r["bare_forward_s"] > 0 and r["bare_eager_s"] > 0 and r["peak_rss_mb"] > 0
    assert rows[1]["runtime_used"] == "eager" and "no AOT package is cached" in rows[1]["runtime_note"]
    assert report["targets"]["runtime"] == "auto" and set(report["targets"]["by_runtime"]) == {"eager", "auto"}
    assert not list((tmp_path / "pairs").glob("classes_*"))
    table = capsys.readouterr().out
    assert "| 256² | eager |" in table and "| 256² | auto → eager |" in table and "100.00 %" in table


def test_a_row_whose_process_built_the_package_is_measured_again_with_it_cached(monkeypatch):
    calls = []

    def fake(cmd, size, runtime):
        calls.append(cmd)
        built = len(calls) == 1
        return {"build": "built" if built else "cache", "build_load_s": 90.0 if built else 1.5,
                "runtime_note": "built it" if built else "loaded it", "peak_rss_mb": 900.0 if built else 600.0,
                "end_to_end_s": 5.0, "runtime_used": "aot", "bare_forward_s": 2.0, "bare_eager_s": 3.0, "ratio": 2.5,
                "ratio_vs_eager": 1.667, "mpix_per_s": 1.0}

    monkeypatch.setattr(bench, "_subprocess_row", fake)
    row = bench._run_one("/tmp", 256, "aot", None, 4, 1, None, 1, "plain", lambda *a: None)
    assert len(calls) == 2 and calls[0] == calls[1] and "--runtime" in calls[0]
    assert (row["build"], row["build_load_s"], row["load_s"], row["runtime_note"], row["peak_rss_mb"]) == (
        "built", 90.0, 1.5, "built it", 600.0)
    calls[:] = ["a first call"]  # so the fake answers "cache" from now on
    assert bench._run_one("/tmp", 256, "auto", None, 4, 1, None, 1, "plain", lambda *a: None)["build"] == "cache"
    assert len(calls) == 2  # that row is not measured again
