"""The tile grid (kept cores read with context around them) and the stitching of the kept parts."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claire.claire_plugin.core.engine.tiling import TileGrid, check_tiling, stitch, tiles_per_chunk
from claire.claire_plugin.core.errors import ClaireError
from claire.models.predict import context_axis, fitted_core


@pytest.mark.parametrize("tile,context", [(60, 8), (0, 16), (64, -16), (64, 8), (64, 100)])
def test_bad_tiling_is_a_clear_error(tile, context):
    with pytest.raises(ClaireError, match="tile size|context"):
        check_tiling(tile, context)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), tile=st.sampled_from([32, 64, 256, 896]), context=st.sampled_from([0, 16, 128]))
def test_every_pixel_is_kept_once_and_far_from_inner_tile_borders(n, tile, context):
    starts, bounds, size = context_axis(n, tile, context)
    assert bounds[0] == 0 and bounds[-1] == n and all(a < b for a, b in zip(bounds, bounds[1:]))
    assert len(starts) == len(bounds) - 1
    if n <= tile + 2 * context:
        assert starts == [0] and size >= n and size % 32 == 0 and size - n < 32
        return
    assert size == tile + 2 * context
    for k, s in enumerate(starts):
        assert 0 <= s and s + size <= n, "windows lie inside the axis: no padding"
        lo = bounds[k] - s if s > 0 else context  # distance to the window's start unless it is the image's edge
        hi = s + size - bounds[k + 1] if s + size < n else context
        assert lo >= context and hi >= context
    assert len(starts) == -(-(n - 2 * context) // tile), "no more tiles than needed"


def test_grid_chunks_windows_and_kept_parts():
    g = TileGrid(5, 7, 300, 500, 64, 32)  # window 128
    assert g.shape == (128, 128) and g.n_cols == len(context_axis(500, 64, 32)[0])
    chunks = list(g.chunks(3))
    assert chunks[0] == (0, 0, 3) and chunks[-1][0] == g.n_rows - 1 and chunks[-1][2] == g.n_cols
    y, x, h, w = g.read_window(0, 0, 3)
    assert (y, x, h) == (0, 0, 128) and w == g.col_axis[0][2] + 128
    assert g.tile_offsets(0, 3) == [0, 64, 128]
    assert g.kept_in_tile(0, 0) == (slice(0, 96), slice(0, 96))
    assert g.kept_in_tile(1, 1) == (slice(32, 96), slice(32, 96))


def test_a_narrow_raster_reads_one_fitted_window_across():
    g = TileGrid(0, 0, 1000, 100, 256, 128)
    assert g.shape == (512, 128) and g.n_cols == 1
    assert g.read_window(0, 0, 1)[3] == 100


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), per_chunk=st.integers(1, 4), ctx=st.sampled_from([0, 16, 32]))
def test_stitching_reassembles_any_region_exactly(h, w, per_chunk, ctx):
    rng = np.random.default_rng(h * 1000 + w)
    field = rng.random((2, h, w)).astype(np.float32)
    g = TileGrid(0, 0, h, w, 32, ctx)
    th, tw = g.shape
    padded = np.zeros((2, max(h, th), max(w, tw)), np.float32)
    padded[:, :h, :w] = field
    out = np.full((2, h, w), np.nan, np.float32)
    ys = g.row_axis[0]
    for r, j0, j1 in g.chunks(per_chunk):
        y, x, _, _ = g.read_window(r, j0, j1)
        parts = []
        for j, off in zip(range(j0, j1), g.tile_offsets(j0, j1)):
            window = padded[:, ys[r]:ys[r] + th, x + off:x + off + tw]
            rows, cols = g.kept_in_tile(r, j)
            parts.append(window[:, rows, cols])
        fin = stitch(g, r, j0, parts)
        bh, bw = fin.values.shape[1:]
        assert np.isnan(out[:, fin.r0:fin.r0 + bh, fin.c0:fin.c0 + bw]).all(), "each pixel finished once"
        out[:, fin.r0:fin.r0 + bh, fin.c0:fin.c0 + bw] = fin.values
    assert not np.isnan(out).any(), "every pixel of the region is finished"
    np.testing.assert_array_equal(out, field)


def test_chunks_hold_about_four_small_tiles_or_one_large_one():
    assert tiles_per_chunk(4, 256) == 4 and tiles_per_chunk(1, 256) == 4 and tiles_per_chunk(3, 256) == 6
    assert tiles_per_chunk(1, 1152) == 1 and tiles_per_chunk(2, 1152) == 2


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 20000), tile=st.sampled_from([32, 256, 896, 1536]), context=st.sampled_from([0, 16, 128]))
def test_the_fitted_core_needs_no_more_tiles_and_is_the_smallest_that_does(n, tile, context):
    core = fitted_core(n, tile, context)
    assert core % 32 == 0 and 32 <= core <= tile
    count = len(context_axis(n, core, context)[0])
    assert count == len(context_axis(n, tile, context)[0])
    if core > 32 and n > tile + 2 * context:
        assert len(context_axis(n, core - 32, context)[0]) > count


def test_the_core_is_fitted_to_the_raster():
    core = fitted_core(10980, 1536, 128)
    starts, _, size = context_axis(10980, core, 128)
    assert (core, len(starts), size) == (1536, 7, 1792)  # 7 x 1792 px for 10980: 1.14 per axis
    assert fitted_core(4096, 1536, 128) == 1280  # 3 windows of 1536 px instead of 3 of 1792
    assert fitted_core(4096, 896, 128) == 768  # 5 windows of 1024 px instead of 5 of 1152


def test_card_tiling_follows_the_card_then_the_defaults():
    from claire.claire_plugin.core.engine.tiling import CONTEXT, DEFAULT_TILE, card_tiling, tiling_text

    assert card_tiling({"tile_size": 256, "overlap": 32}) == (DEFAULT_TILE, CONTEXT)
    assert card_tiling({"core": 512, "context": 64}) == (512, 64)
    assert card_tiling({"context": 0}) == (DEFAULT_TILE, 0)
    assert tiling_text({"core": 512, "context": 64}) == ("cores of up to 512 px (fitted to the raster), each read "
                                                         "with 64 px of context")
