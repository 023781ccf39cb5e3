"""models.predict's tilings (issue #18 item 5): the engine's (kept cores read with context at least the
network's reach) gives the whole-image map at any tile size; of the earlier blended tiling, only `blend="crop"`
with `fit_edges` and an overlap of at least twice the reach does."""
import numpy as np
import pytest
import torch

from claire.models.predict import CROP_EPS, blend_weights, predict_arrays, predict_blended
from claire.tests.fixtures.standin import LocalStack

torch.set_num_threads(1)
H, W = 200, 350  # not multiples of 32: tile 64 ends 2 px past the image, tile 128 66 px past it
REACH = LocalStack.REACH  # 6 px


def _inputs():
    rng = np.random.default_rng(3)
    return rng.normal(size=(2, H, W)).astype(np.float32), rng.normal(size=(1, H, W)).astype(np.float32)


def _run(tile: int, overlap: int = 32, **options):
    o, s = _inputs()
    return predict_blended(LocalStack().eval(), o, s, tile=tile, overlap=overlap, **options)


def _maxdiff(a, b) -> float:
    return max(float(np.abs(a[0] - b[0]).max()), float(np.abs(a[1] - b[1]).max()))


def test_kept_cores_with_context_give_the_whole_image_map_at_any_tile_size():
    o, s = _inputs()
    net = LocalStack().eval()
    small, large = (predict_arrays(net, o, s, tile=t, context=16) for t in (32, 96))
    assert small[0].shape == (4, H, W) and small[1].shape == (H, W)
    assert _maxdiff(small, large) < 1e-4, "windows end at the image's edge whatever the tile"
    whole = predict_arrays(net, o, s, tile=352, context=0)  # one forward, padded by reflection to 224 x 352
    inner = (slice(None), slice(0, H - REACH - 24), slice(0, W - REACH - 2))  # away from that padding
    assert np.abs(small[0] - whole[0])[inner].max() < 1e-4
    bare = predict_arrays(net, o, s, tile=32, context=0)  # no context: the tile edges show
    assert np.abs(bare[0] - whole[0])[inner].max() > 1e-3


def test_crop_and_fitted_edges_give_the_whole_image_map_at_any_tile_size():
    whole = _run(352, 0, fit_edges=True)  # one forward over the image (padded to 224 x 352)
    small, large = (_run(t, 32, blend="crop", fit_edges=True) for t in (64, 128))
    assert small[0].shape == (4, H, W) and small[1].shape == (H, W)
    assert _maxdiff(small, large) < 1e-4
    assert _maxdiff(small, whole) < 1e-4 and _maxdiff(large, whole) < 1e-4


def test_default_tiling_depends_on_the_tile_size():
    assert _maxdiff(_run(64), _run(128)) > 1e-3  # the sin^2 blend mixes in pixels next to a tile edge


def test_crop_without_fitted_edges_still_sees_the_tile_past_the_image():
    a, b = (_run(t, 32, blend="crop") for t in (64, 128))
    diff = np.abs(a[0] - b[0]).max(axis=0)
    assert diff[:, : W - REACH - 2].max() < 1e-4  # the seams agree ...
    assert diff[:, W - 2:].max() > 1e-3  # ... the image's right edge does not (2 px vs 66 px of reflection)


def test_blend_weights_crop_meets_mid_overlap_and_is_never_zero():
    w = blend_weights(64, 16, "crop")[32]
    assert np.all(w[:8] == np.float32(CROP_EPS)) and np.all(w[8:56] == 1.0) and np.all(w[56:] == np.float32(CROP_EPS))
    assert np.allclose(blend_weights(64, 0, "crop"), 1.0)
    taper = blend_weights(64, 16)[32]
    assert 0 < taper[0] < taper[8] < 1.0
    with pytest.raises(ValueError, match="blend"):
        blend_weights(64, 16, "feather")


def test_an_axis_exactly_one_window_long_and_small_rasters_mirrored():
    """Mutation audit (QA round 14): an axis of exactly one window (512 px at tile 256, context 128) is one window, and
    a raster smaller than a window is padded by reflection (zeros changed the map near its far edges); no test
    noticed either rule going."""
    import numpy as np

    from claire.models.predict import context_axis, pad_tile

    assert context_axis(512, 256, 128) == ([0], [0, 512], 512)
    x = np.arange(12.0).reshape(1, 3, 4)
    np.testing.assert_array_equal(pad_tile(x, 5, 6), np.pad(x, ((0, 0), (0, 2), (0, 2)), mode="reflect"))
