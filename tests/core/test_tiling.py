"""Blend weights, the tile grid and the streaming row blender."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claire.claire_plugin.core.engine.tiling import RowBlender, TileGrid, blend_weights, check_tiling
from claire.claire_plugin.core.errors import ClaireError


def test_blend_weights_smooth_positive_and_flat_inside():
    w = blend_weights(64, 16)
    assert w.shape == (64, 64) and w.min() > 0
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
    assert np.all(w[16:48, 16:48] == 1.0)
    assert np.all(np.diff(w[32, :16]) > 0), "ramps up towards the middle"
    assert np.allclose(blend_weights(32, 0), 1.0)


@pytest.mark.parametrize("tile,overlap", [(60, 8), (64, 33), (64, 64), (64, 80), (64, -1), (0, 0)])
def test_bad_tiling_is_a_clear_error(tile, overlap):
    with pytest.raises(ClaireError, match="tile size|overlap"):
        check_tiling(tile, overlap)


def test_grid_covers_region_with_equal_strides():
    g = TileGrid(5, 7, 150, 173, 64, 16)
    assert g.stride == 48
    assert (g.n_rows - 1) * 48 + 64 >= 150 and (g.n_rows - 2) * 48 + 64 < 150
    assert (g.n_cols - 1) * 48 + 64 >= 173 and (g.n_cols - 2) * 48 + 64 < 173
    chunks = list(g.chunks(3))
    assert chunks[0] == (0, 0, 3) and chunks[-1][0] == g.n_rows - 1 and chunks[-1][2] == g.n_cols


def _blend_field(field: np.ndarray, tile: int, overlap: int, per_chunk: int) -> np.ndarray:
    """Feed tiles that are crops of `field` through the blender; return the reassembled region."""
    C, H, W = field.shape
    g = TileGrid(0, 0, H, W, tile, overlap)
    padded = np.zeros((C, g.n_rows * g.stride + tile, g.n_cols * g.stride + tile), np.float32)
    padded[:, :H, :W] = field
    out = np.full((C, H, W), np.nan, np.float32)
    b = RowBlender(g, C)
    for r, j0, j1 in g.chunks(per_chunk):
        tiles = [padded[:, r * g.stride:r * g.stride + tile, j * g.stride:j * g.stride + tile] for j in range(j0, j1)]
        for fin in b.add(r, j0, np.stack(tiles)):
            h, w = fin.values.shape[1:]
            assert np.isnan(out[:, fin.r0:fin.r0 + h, fin.c0:fin.c0 + w]).all(), "each pixel finished once"
            out[:, fin.r0:fin.r0 + h, fin.c0:fin.c0 + w] = fin.values
    return out


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 150), w=st.integers(1, 150), per_chunk=st.integers(1, 4),
       ov=st.sampled_from([0, 8, 16]))
def test_blender_reassembles_any_region_exactly(h, w, per_chunk, ov):
    rng = np.random.default_rng(h * 1000 + w)
    field = rng.random((2, h, w)).astype(np.float32)
    out = _blend_field(field, 32 if ov < 16 else 64, ov, per_chunk)
    assert not np.isnan(out).any(), "every pixel of the region is finished"
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-6)


def test_blender_averages_disagreeing_tiles_smoothly():
    g = TileGrid(0, 0, 64, 112, 64, 16)  # two tiles side by side, 16 px overlap
    b = RowBlender(g, 1)
    tiles = np.stack([np.zeros((1, 64, 64), np.float32), np.ones((1, 64, 64), np.float32)])
    (fin,) = b.add(0, 0, tiles)
    row = fin.values[0, 32]
    assert np.all(row[:48] == 0) and np.all(row[64:] == 1)
    seam = row[47:66]
    assert np.all(np.diff(seam) >= 0) and 0 < row[55] < 1, "a ramp, not a step, across the overlap"
    np.testing.assert_allclose(row[48:64] + row[48:64][::-1], 1.0, atol=1e-6)
