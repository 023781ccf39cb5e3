"""GDAL's block cache sized so that a run decodes each input block once (core.block_cache)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.core.engine.tiling import TileGrid, tiles_per_chunk
from claire.claire_plugin.core.io import block_cache as bc


def _decodes(grid: TileGrid, batch: int, bh: int, bw: int, capacity: int) -> int:
    """Blocks decoded by an LRU cache of `capacity` blocks when the engine's reader reads `grid` chunk by chunk
    (the windows of engine.reader.ChunkReader._read)."""
    cache: OrderedDict = OrderedDict()
    decoded = 0
    for r, j0, j1 in grid.chunks(tiles_per_chunk(batch, grid.window)):
        y, x, h, w = grid.read_window(r, j0, j1)
        y, x = grid.row0 + y, grid.col0 + x
        for by in range(y // bh, (y + h - 1) // bh + 1):
            for bx in range(x // bw, (x + w - 1) // bw + 1):
                if (by, bx) in cache:
                    cache.move_to_end((by, bx))
                    continue
                decoded += 1
                cache[(by, bx)] = True
                if len(cache) > capacity:
                    cache.popitem(last=False)
    return decoded


@pytest.mark.parametrize("tile,context,bh,bw,aligned", [
    (192, 32, 256, 256, False), (192, 32, 1024, 1024, False), (192, 32, 512, 256, False), (192, 32, 64, 64, False),
    (96, 16, 1, 2000, False), (192, 32, 8, 2000, False), (384, 64, 2048, 2048, False), (256, 0, 256, 256, True)])
def test_the_planned_cache_decodes_each_block_once_in_the_engines_read_order(tile, context, bh, bw, aligned):
    size = 2048 if aligned else 2000 if bw == 2000 else max(2000, 5 * bh)  # several block rows and columns
    grid = TileGrid(0, 0, size, size, tile, context)
    layout = bc.Layout("x.tif", bh, bw, 2, size, size, compressed=True)
    need = bc.need(layout, grid.window, size)
    capacity = need.bytes // (bh * bw * 2)
    blocks = -(-size // bh) * -(-size // bw)
    assert _decodes(grid, 4, bh, bw, capacity) == blocks
    # with half of it, blocks are decoded again, unless tiles without context line up with the blocks
    assert (_decodes(grid, 4, bh, bw, capacity // 2) > blocks) != aligned


def test_uncompressed_blocks_no_taller_than_a_tile_keep_the_base_cache():
    short = bc.Layout("a.tif", 256, 256, 26, 8192, 8192, compressed=False)
    tall = bc.Layout("b.tif", 1024, 1024, 26, 8192, 8192, compressed=False)
    assert bc.need(short, 256, 8192).bytes == 0
    assert bc.need(tall, 256, 8192).bytes == (2 * 8 + 2) * 1024 * 1024 * 26
    assert bc.plan([bc.need(short, 256, 8192)], 10 ** 10) == (bc.BASE_BYTES, None)


def test_each_reader_with_its_own_datasets_needs_its_own_share():
    lay = bc.Layout("c.tif", 512, 512, 20, 4096, 4096, compressed=True)
    assert bc.need(lay, 256, 4096, copies=3).bytes == 3 * bc.need(lay, 256, 4096).bytes


def test_plan_is_capped_by_the_available_memory_and_says_so():
    lay = bc.Layout("scene.tif", 1024, 1024, 26, 10980, 10980, compressed=True)
    n = bc.need(lay, 256, 10980, role="optical")
    size, note = bc.plan([n], 10 ** 11)
    assert size == n.bytes and "decoded once" in note and "optical scene.tif (1024 x 1024 blocks, compressed)" in note
    size, note = bc.plan([n], 10 ** 9)
    assert size == int(bc.SHARE * 10 ** 9) and "limited to" in note and "Free memory" in note
    size, _ = bc.plan([n], 10 ** 6)  # never below the base cache
    assert size == bc.BASE_BYTES
    huge = bc.need(bc.Layout("mosaic.vrt", 1024, 1024, 26, 60000, 60000, compressed=True), 256, 60000)
    size, note = bc.plan([huge], None)  # memory unknown (neither /proc, cgroup nor Windows): a fixed ceiling
    assert size == bc.UNKNOWN_CAP < huge.bytes and "unknown" in note


def _tif(path, bands, **extra):
    prof = dict(driver="GTiff", width=300, height=200, count=bands, dtype="uint16", crs="EPSG:32631",
                transform=rasterio.transform.from_origin(500000, 4600000, 10, 10), tiled=True,
                blockxsize=128, blockysize=64, **extra)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.ones((bands, 200, 300), np.uint16))
    return str(path)


def test_layouts_read_block_shape_interleave_and_compression_of_real_files(tmp_path):
    pix = _tif(tmp_path / "pix.tif", 4, compress="deflate", interleave="pixel")
    band = _tif(tmp_path / "band.tif", 4, interleave="band")
    with rasterio.open(pix) as ds:
        (lay,) = bc.layouts(ds, [2, 3])
    assert (lay.block_h, lay.block_w, lay.bytes_per_px, lay.compressed) == (64, 128, 8, True)  # all 4 bands decoded
    with rasterio.open(band) as ds:
        (lay,) = bc.layouts(ds, [2, 3])
    assert (lay.bytes_per_px, lay.compressed) == (4, False)


def test_a_vrt_band_stack_is_sized_by_the_files_behind_it(tmp_path):
    from osgeo import gdal

    files = [_tif(tmp_path / f"b{i}.tif", 1, compress="deflate") for i in range(3)]
    vrt = str(tmp_path / "stack.vrt")
    gdal.BuildVRT(vrt, files, separate=True).FlushCache()
    with rasterio.open(vrt) as ds:
        lays = bc.layouts(ds, [1, 3])
    assert sorted(lay.name.rsplit("/", 1)[-1] for lay in lays) == ["b0.tif", "b2.tif"]
    assert all((lay.block_h, lay.block_w, lay.bytes_per_px, lay.compressed) == (64, 128, 2, True) for lay in lays)


def test_a_vrt_mosaic_of_many_files_is_sized_by_its_own_blocks(tmp_path, monkeypatch):
    from osgeo import gdal

    files = [_tif(tmp_path / f"m{i}.tif", 1, compress="deflate") for i in range(4)]
    vrt = str(tmp_path / "mosaic.vrt")
    gdal.BuildVRT(vrt, files).FlushCache()
    monkeypatch.setattr(bc, "MAX_VRT_FILES", 3)
    with rasterio.open(vrt) as ds:
        (lay,) = bc.layouts(ds, [1])
    assert lay.name == vrt and lay.compressed  # a VRT is not stored as raw pixels


def test_engine_sets_the_planned_cache_for_the_run_and_restores_it(engine_scene, standin_model, standin_card,
                                                                  monkeypatch, tmp_path):
    from osgeo import gdal

    from claire.claire_plugin.core.engine import run
    from claire.claire_plugin.core.params import ClassifyParams

    optical = engine_scene["arrays"][0]
    with rasterio.open(engine_scene["optical"]) as src:
        prof = dict(src.profile, tiled=True, blockxsize=16, blockysize=128, compress="deflate")
    path = str(tmp_path / "optical_deflate.tif")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(optical)
    monkeypatch.setattr(bc, "BASE_BYTES", 4096)  # so that this small raster needs more than the base
    before = gdal.GetCacheMax()
    during = []
    params = ClassifyParams(path, engine_scene["sar"], str(tmp_path / "out.tif"))
    # the cache while the tiles are read (before the plan, "checking the inputs ...", it is the run's base one)
    res = run(params, standin_model, standin_card,
              progress=lambda f, m: during.append(gdal.GetCacheMax()) if m.startswith("tile") else None)
    note = next(m for m in res.messages if m.startswith("reading:"))
    assert "optical optical_deflate.tif (16 x 128 blocks, compressed)" in note
    planned = int(note.split("reading: ")[1].split(" MB")[0])
    assert round(max(during) / 2 ** 20) == planned
    assert gdal.GetCacheMax() == before


def test_source_span_counts_the_source_pixels_a_window_falls_on(tmp_path):
    from claire.claire_plugin.core.io.warp import GridWarp
    from claire.tests.fixtures.helpers import write_raster

    grid = rasterio.open(write_raster(tmp_path / "grid.tif", np.zeros((1, 200, 300), np.uint16), res=10.0))
    coarse = rasterio.open(write_raster(tmp_path / "coarse.tif", np.zeros((1, 120, 170), np.float32), res=20.0))
    same = rasterio.open(write_raster(tmp_path / "same.tif", np.zeros((1, 200, 300), np.float32), res=10.0))
    try:
        rows, cols = GridWarp(coarse, grid).source_span(0, 0, 64, 300)
        assert (rows, cols) == pytest.approx((63 / 2 + 2, 299 / 2 + 2))  # centres 0.5 px apart in the source
        assert GridWarp(same, grid).source_span(10, 0, 64, 300) == (64.0, 300.0)
    finally:
        for ds in (grid, coarse, same):
            ds.close()


def test_jobs_that_read_a_map_once_keep_the_cache_to_its_block_rows(tmp_path, monkeypatch):
    """QA round 21: suggest, the map's sample and accuracy, evaluate and grow-polygons let GDAL's default cache (5 %
    of the memory) keep every block of a scene: their memory grew with it. Each runs with the cache lowered to
    what reading its rasters once needs and gives the previous size back; a file that needs less keeps BASE_BYTES."""
    from osgeo import gdal

    from claire.claire_plugin.core import accuracy, map_accuracy, suggest
    from claire.tests.fixtures.helpers import write_raster

    deflated = _tif(tmp_path / "d.tif", 2, compress="deflate")  # 2 uint16 bands, 64 x 128 blocks
    with rasterio.open(deflated) as ds:
        width, height = ds.width, ds.height
    rows_of_blocks = min(2, -(-height // 64))
    cols = min(-(-width // 128) + 1, -(-width // 128))
    assert bc.rows_once_bytes([deflated]) == max(bc.BASE_BYTES, (rows_of_blocks * cols + 2) * 64 * 128 * 4)
    assert bc.rows_once_bytes([None, str(tmp_path / "missing.tif")]) == bc.BASE_BYTES
    monkeypatch.setattr(bc, "BASE_BYTES", 1)  # the formula itself, below the floor
    one, many = bc.rows_once_bytes([deflated]), bc.rows_once_bytes([deflated], rows=130)
    assert one == (2 * 3 + 2) * 64 * 128 * 4 and many == (min(4, 4) * 3 + 2) * 64 * 128 * 4
    monkeypatch.undo()
    big = 3 * bc.BASE_BYTES
    asked = []
    monkeypatch.setattr(bc, "rows_once_bytes", lambda paths, rows=1: asked.append((list(paths), rows)) or big)
    m = np.ones((40, 50), np.uint8)
    m[:, 25:] = 2
    path = write_raster(tmp_path / "m.tif", m, nodata=0)
    seen = []
    real_read = map_accuracy.read_classes
    monkeypatch.setattr(map_accuracy, "read_classes", lambda ds, w: seen.append(gdal.GetCacheMax()) or real_read(ds, w))
    old = gdal.GetCacheMax()
    try:
        gdal.SetCacheMax(8 * bc.BASE_BYTES)
        map_accuracy.stratified_sample(path, 5)
        assert seen and set(seen) == {big} and gdal.GetCacheMax() == 8 * bc.BASE_BYTES
        gdal.SetCacheMax(2 * bc.BASE_BYTES)  # never raised
        seen.clear()
        map_accuracy.stratified_sample(path, 5)
        assert set(seen) == {2 * bc.BASE_BYTES}
        gdal.SetCacheMax(8 * bc.BASE_BYTES)
        during = []
        real_pairs = accuracy._pair_counts
        monkeypatch.setattr(accuracy, "_pair_counts", lambda *a, **k: during.append(gdal.GetCacheMax()) or
                            real_pairs(*a, **k))
        accuracy.evaluate(path, write_raster(tmp_path / "r.tif", m))
        real_score = suggest._score_squares
        monkeypatch.setattr(suggest, "_score_squares", lambda *a: during.append(gdal.GetCacheMax()) or real_score(*a))
        other = m.copy()
        other[:10] = 1
        suggest.suggest(path, write_raster(tmp_path / "o.tif", other, nodata=0), n=1, square=8, spacing=1)
        assert during == [big, big] and gdal.GetCacheMax() == 8 * bc.BASE_BYTES
        assert asked[-2] == ([path, str(tmp_path / "r.tif")], 1)  # the map and the reference, block by block
        assert asked[-1] == ([path, str(tmp_path / "o.tif"), None, None], 8)  # suggest's bands of one square
        with bc.reading_rows_once([], size=1):  # a size given is floored at BASE_BYTES too
            assert gdal.GetCacheMax() == bc.BASE_BYTES
    finally:
        gdal.SetCacheMax(old)


def test_runs_under_way_at_once_share_the_cache_and_the_size_before_them_comes_back(monkeypatch):
    """Review of round 21: each run gave back the size it had found, so a job lowering the cache beside a
    classification raising it left it lowered for the session (or the classification's bound ended with the job)."""
    from osgeo import gdal

    old = gdal.GetCacheMax()
    try:
        gdal.SetCacheMax(1200 * 2 ** 20)
        job, run = bc.CacheSize(), bc.CacheSize()
        job.at_most(40 * 2 ** 20)
        assert gdal.GetCacheMax() == 40 * 2 ** 20
        run.at_most(bc.BASE_BYTES)  # the engine's start: no lower than what the job asks for
        assert gdal.GetCacheMax() == 40 * 2 ** 20
        run.set(300 * 2 ** 20)  # the engine's fit
        assert gdal.GetCacheMax() == 300 * 2 ** 20
        job.restore()
        assert gdal.GetCacheMax() == 300 * 2 ** 20  # the run under way keeps what it needs
        run.restore()
        assert gdal.GetCacheMax() == 1200 * 2 ** 20  # the size before both
        with bc.reading_rows_once([], size=50 * 2 ** 20):
            with bc.reading_rows_once([], size=60 * 2 ** 20):  # not lowered further: the larger request stands
                assert gdal.GetCacheMax() == 50 * 2 ** 20
            assert gdal.GetCacheMax() == 50 * 2 ** 20
        assert gdal.GetCacheMax() == 1200 * 2 ** 20
    finally:
        gdal.SetCacheMax(old)
