"""Windows fitted to the labelled pixels: coverage with the context margin, agreement with fixed cells."""
import numpy as np
import pytest

from claire.claire_plugin.core.training.labels import LabelPixels
from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.windows import MARGIN, WindowSet, cells, fitted_windows, predict_pixels
from claire.tests.fixtures.helpers import synthetic_scene, tiny_card, write_raster


def _scene(tmp_path, rows, cols):
    opt, sar, _ = synthetic_scene(rows, cols)
    return Scene(write_raster(tmp_path / "o.tif", opt), write_raster(tmp_path / "s.tif", sar,
                                                                      descriptions=["VV", "VH"]), tiny_card())


def _squares(rows, cols, n, size, seed):
    """Pixels of `n` random `size` x `size` squares (one group each) inside a rows x cols raster."""
    rng = np.random.default_rng(seed)
    rr, cc, gg = [], [], []
    for g in range(n):
        r, c = rng.integers(0, rows - size), rng.integers(0, cols - size)
        yy, xx = np.mgrid[r:r + size, c:c + size]
        rr.append(yy.ravel())
        cc.append(xx.ravel())
        gg.append(np.full(yy.size, g))
    cat = np.concatenate
    return LabelPixels(cat(rr).astype(np.int32), cat(cc).astype(np.int32), (cat(gg) % 3).astype(np.uint8),
                       cat(gg).astype(np.int32))


@pytest.mark.parametrize("margin", [32, MARGIN])
def test_fitted_windows_cover_every_pixel_with_the_margin(tmp_path, margin):
    rows, cols = 530, 470
    scene = _scene(tmp_path, rows, cols)
    px = _squares(rows, cols, 25, 8, seed=margin)
    seen = np.zeros(len(px), int)
    for w in fitted_windows(scene, px, margin):
        assert w.h % 32 == 0 and w.w % 32 == 0 and w.h <= 512 and w.w <= 512
        assert w.r0 % 32 == 0 or w.r0 == rows - w.h
        assert w.c0 % 32 == 0 or w.c0 == cols - w.w
        r, c = px.rows[w.index], px.cols[w.index]
        assert np.array_equal(w.local_rows, r - w.r0) and np.array_equal(w.local_cols, c - w.c0)
        # at least `margin` px of context on every side, or as much as the raster has
        assert (w.local_rows >= np.minimum(margin, r)).all()
        assert (w.h - 1 - w.local_rows >= np.minimum(margin, rows - 1 - r)).all()
        assert (w.local_cols >= np.minimum(margin, c)).all()
        assert (w.w - 1 - w.local_cols >= np.minimum(margin, cols - 1 - c)).all()
        # fitted: no more than the box + margins + the rounding to the 32 px grid at both ends
        assert w.h <= np.ptp(r) + 1 + 2 * margin + 62 and w.w <= np.ptp(c) + 1 + 2 * margin + 62
        seen[w.index] += 1
    assert (seen == 1).all()
    scene.close()


def test_fitted_window_predictions_match_fixed_cells(tmp_path):
    """The bundled network (local context) gives nearly the same class at the labelled pixels on windows
    fitted with the default margin as on the former fixed 256 px cells, and clearly not without a margin;
    windows kept in memory give the same as fresh reads."""
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT
    from claire.models.checkpoint import load_checkpoint

    net, card = load_checkpoint(DEFAULT_CHECKPOINT)
    rows, cols = 384, 448
    opt, sar, _ = synthetic_scene(rows, cols)
    scene = Scene(write_raster(tmp_path / "o.tif", opt), write_raster(tmp_path / "s.tif", sar,
                                                                      descriptions=["VV", "VH"]), card)
    px = _squares(rows, cols, 12, 6, seed=1)
    models = [(net.eval(), None)]
    old = WindowSet(scene, px, budget_mb=0)
    old.windows = list(cells(scene, px, 256))
    ref = predict_pixels(old, models)[False][0][0]
    assert (ref >= 0).all() and np.unique(ref).size >= 3  # the zones get different classes
    fitted = WindowSet(scene, px)
    first = predict_pixels(fitted, models, (False, True), seed=3)
    again = predict_pixels(fitted, models, (False, True), seed=3)
    assert np.array_equal(first[True][0][0], again[True][0][0]) and np.array_equal(first[True][1], again[True][1])
    assert not np.allclose(first[True][1], first[False][1])  # the clouded condition differs from the clear one
    agree = float((first[False][0][0] == ref).mean())
    bare = float((predict_pixels(WindowSet(scene, px, margin=0), models)[False][0][0] == ref).mean())
    # the level depends on the checkpoint (0.986 and 0.944 measured on two trainings of the bundled recipe);
    # without the context margin it is far lower (0.75 and 0.81)
    assert agree >= 0.9 and bare < agree - 0.05, (agree, bare)
    scene.close()


def test_a_spread_of_the_windows_reads_through_the_set_and_keeps_every_class(tmp_path):
    """Round 21: the per-epoch held-out score is measured on a spread of the held-out windows (all of them took half
    of every epoch with 2,000 polygons); it must give, at its pixels, what the whole set gives there, hold every
    class, and read through the whole set (whose final scoring then finds the windows kept)."""
    rows, cols = 530, 470
    scene = _scene(tmp_path, rows, cols)
    px = _squares(rows, cols, 40, 6, seed=4)
    px.cls[px.group == 39] = 7  # a class of one square only
    full = WindowSet(scene, px, margin=32)
    full.windows = list(cells(scene, px, 96))  # many small windows, each pixel in one
    same, every = full.spread(10 ** 9)
    assert same is full and (every == np.arange(len(px))).all()
    most = sum(w.h * w.w for w in full.windows) // 4
    part, at = full.spread(most)
    assert 1 < len(part.windows) < len(full.windows)
    assert set(np.unique(part.pixels.cls)) == set(np.unique(px.cls))  # the one-square class too
    assert (part.pixels.rows == px.rows[at]).all() and (part.pixels.cols == px.cols[at]).all()
    reads = []
    real = full.read
    full.read = lambda k: reads.append(k) or real(k)
    import torch

    from claire.models.registry import build_model

    torch.manual_seed(0)
    net = build_model("claire", tiny_card()["config"]).eval()
    whole = predict_pixels(full, [(net, None)])[False]
    reads.clear()
    some = predict_pixels(part, [(net, None)])[False]
    assert len(reads) == len(part.windows)  # each read went through the whole set
    assert np.array_equal(some[0][0], whole[0][0][at]) and np.allclose(some[1], whole[1][at], equal_nan=True)
    scene.close()


def test_a_spread_keeps_to_its_pixel_budget_spreads_evenly_and_is_the_set_when_it_takes_every_window(tmp_path):
    """Mutation check of round 21: the spread's size, its evenness and the whole set returned when the classes'
    windows take every window had no test."""
    rows, cols = 530, 470
    scene = _scene(tmp_path, rows, cols)
    px = _squares(rows, cols, 40, 6, seed=4)
    px.cls[:] = 0  # one class: no window is added for a class
    full = WindowSet(scene, px, margin=32)
    full.windows = list(cells(scene, px, 96))
    area = [w.h * w.w for w in full.windows]
    n = len(full.windows)
    part, _ = full.spread(sum(area) // 4)
    picked = part._through[1]
    assert sum(area[k] for k in picked) <= sum(area) // 4 + max(area)
    assert picked[0] == 0 and picked[-1] == n - 1 and len(picked) >= n // 4 - 1
    gaps = np.diff(picked)
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    assert n < 256
    for k, w in enumerate(full.windows):  # a class per window: coverage takes every window
        px.cls[w.index] = k
    every = WindowSet(scene, px, margin=32)
    every.windows = full.windows
    same, at = every.spread(1)
    assert same is every and (at == np.arange(len(px))).all()
    scene.close()
