"""QA round 15 (mutation audit, fourth wave) of core/training/windows.py: survivors pinned.

- fitted windows near the bottom / right edge are shifted back inside the raster (not read past it as padding);
- the user class 0 of a channel map is a prediction of that class, not "another class";
- a cloud-gated network gets cloud 1 at optical gaps (the engine's default), not the cloud test's 0;
- the familiarity cells keep `context` px around their core on every side the raster has;
- one window over two nearby groups wins when two windows would cost more than its area (per-window overhead);
- on a raster smaller than its rounded size, a window starts at row / column 0 (on the 32 px grid), never before;
- dense labels never get windows over `max_side` (512 px) even where a larger grid would cost less;
- the familiarity windows are spread over all the cells, not the first `max_windows`.
"""
import numpy as np

from claire.claire_plugin.core.training.labels import LabelPixels
from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.windows import (
    ANOTHER_CLASS,
    MARGIN,
    WINDOW_OVERHEAD_PX,
    _pick,
    cells,
    fitted_windows,
    gate_input,
    window_items,
)
from claire.tests.fixtures.helpers import synthetic_scene, tiny_card, write_raster


def _scene(tmp_path, rows, cols, nodata_at=None):
    opt, sar, _ = synthetic_scene(rows, cols)
    nodata = None
    if nodata_at is not None:
        opt[:, nodata_at[0], nodata_at[1]] = 0
        nodata = 0
    return Scene(write_raster(tmp_path / "o.tif", opt, nodata=nodata),
                 write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]), tiny_card())


def _pixels(rows, cols):
    rows, cols = np.asarray(rows, np.int32), np.asarray(cols, np.int32)
    return LabelPixels(rows, cols, np.zeros(rows.size, np.uint8), np.arange(rows.size, dtype=np.int32))


def test_a_window_at_the_far_edge_is_shifted_back_inside_the_raster(tmp_path):
    """A pixel 10 px from the bottom-right corner of a 300 x 300 raster: its window (grid start 192, 224 px long)
    would end at 416, 116 px of reflected padding instead of the raster's own pixels; it starts at 76 instead."""
    scene = _scene(tmp_path, 300, 300)
    for w in fitted_windows(scene, _pixels([290], [290])):
        assert w.r0 >= 0 and w.c0 >= 0
        assert w.r0 + w.h <= 300 and w.c0 + w.w <= 300, (w.r0, w.h, w.c0, w.w)
        assert (w.local_rows >= MARGIN).all() and (w.local_cols >= MARGIN).all()
    scene.close()


def test_user_class_zero_of_a_channel_map_is_that_class():
    """A base checkpoint's channel 1 mapped to the user's class 0 (their first class): a pixel the base gives channel
    1 is predicted as class 0, not as ANOTHER_CLASS (which is scored as an error)."""
    logits = np.zeros((3, 1, 2), np.float32)
    logits[1, 0, 0] = 5.0  # pixel 0: channel 1 -> user class 0
    logits[2, 0, 1] = 5.0  # pixel 1: channel 2 -> none of the user's classes
    cmap = np.array([1, 0, -1])
    assert _pick(logits, cmap).tolist() == [[0, ANOTHER_CLASS]]


def test_the_cloud_input_is_one_at_optical_gaps(tmp_path):
    """The engine hands a cloud-gated network cloud 1 where the optical has no data (gaps go to SAR); the cloud
    test itself gives 0 at a NaN pixel, so the window's gap must be set to 1."""
    scene = _scene(tmp_path, 64, 64, nodata_at=(slice(20, 24), slice(30, 34)))
    o, _s, bad = scene.read(0, 0, 64, 64)
    gap = ~np.isfinite(o).all(axis=0)
    assert gap[20:24, 30:34].all() and bad[20:24, 30:34].all()
    cloud = gate_input(scene, o, bad)
    assert cloud.shape == (1, 64, 64)
    assert (cloud[0][gap] == 1.0).all()
    assert (cloud[0][~bad] < 1.0).any()  # the clear pixels keep the cloud test's value
    scene.close()


def test_familiarity_cells_keep_their_context_on_every_side(tmp_path):
    """cells(tile=256, context=32): a 192 px core with 32 px around it; every selected pixel has at least 32 px of
    the window on each side where the raster has them."""
    rows = cols = 600
    scene = _scene(tmp_path, rows, cols)
    rr, cc = np.mgrid[0:rows:7, 0:cols:7]
    px = _pixels(rr.ravel(), cc.ravel())
    for cell in cells(scene, px, 256, 32):
        r, c = px.rows[cell.index], px.cols[cell.index]
        assert (cell.local_rows >= np.minimum(32, r)).all()
        assert (cell.h - 1 - cell.local_rows >= np.minimum(32, rows - 1 - r)).all()
        assert (cell.local_cols >= np.minimum(32, c)).all()
        assert (cell.w - 1 - cell.local_cols >= np.minimum(32, cols - 1 - c)).all()
    scene.close()


def test_one_window_wins_when_a_second_would_cost_more_than_its_area(tmp_path):
    """Pixels (215, 356) and (30, 385): the 128 px grid gives one window of 320 x 256 = 81920 px, the 64 px grid two
    of 128 x 224 + 224 x 224 = 78848 px. With one network call costing WINDOW_OVERHEAD_PX (4096 px) the one window
    is cheaper (86016 against 87040) and is chosen; without that overhead the two would be."""
    scene = _scene(tmp_path, 1000, 1000)
    wins = fitted_windows(scene, _pixels([215, 30], [356, 385]))
    assert WINDOW_OVERHEAD_PX == 64 * 64
    assert [(w.r0, w.h, w.c0, w.w) for w in wins] == [(0, 320, 256, 256)]
    scene.close()


def test_a_raster_smaller_than_its_rounded_size_gets_windows_from_row_and_column_0(tmp_path):
    """100 x 90 px: the window is 128 x 96 (the rounded sizes) and starts at (0, 0), past the raster at the bottom
    and right, not at (-28, -6), off the 32 px grid."""
    scene = _scene(tmp_path, 100, 90)
    wins = fitted_windows(scene, _pixels([50], [45]))
    assert [(w.r0, w.h, w.c0, w.w) for w in wins] == [(0, 128, 0, 96)]
    scene.close()


def test_dense_labels_never_get_windows_over_the_largest_side(tmp_path):
    """A pixel every 5 px over 1000 x 1000: the 384 px grid (576 px windows) would cost less than the 256 px one,
    but windows stay within max_side (512)."""
    scene = _scene(tmp_path, 1000, 1000)
    rr, cc = np.mgrid[0:1000:5, 0:1000:5]
    wins = fitted_windows(scene, _pixels(rr.ravel(), cc.ravel()))
    assert max(w.h for w in wins) <= 512 and max(w.w for w in wins) <= 512
    assert sum(len(w.index) for w in wins) == rr.size
    scene.close()


def test_familiarity_windows_are_spread_over_all_the_cells(tmp_path):
    """Labels in 5 cells of one row of a 256 x 1300 raster, at most 2 windows: the first and the last cell are read,
    not the first two."""
    scene = _scene(tmp_path, 256, 1300)
    px = _pixels([100] * 5, [20, 300, 500, 700, 1250])
    starts = [c.c0 for c in cells(scene, px, 256)]
    assert len(starts) == 5
    seen = []
    read = scene.read
    scene.read = lambda r0, c0, h, w: seen.append(c0) or read(r0, c0, h, w)
    assert len(list(window_items(scene, px, False, 256, max_windows=2))) == 2
    assert seen == [starts[0], starts[-1]]
    scene.close()


def test_the_cells_of_familiarity_windows_are_counted_once_each(tmp_path):
    """QA (round 19, the dock): the training windows were clipped onto the same place of a small scene and each
    counted its cells again: a 224 px scene (49 cells of 32 px) "held 147 cells", and a 320 px scene with polygons
    in its four corners counted 256 from 100, passing the 256-cell minimum meant to stop statistics on too few."""
    scene = _scene(tmp_path, 320, 320)
    px = _pixels([5, 5, 315, 315], [5, 315, 5, 315])
    seen: set = set()
    read = scene.read
    reads = []
    scene.read = lambda r0, c0, h, w: reads.append((r0, c0, h, w)) or read(r0, c0, h, w)
    items = list(window_items(scene, px, False, 256, cells_seen=seen))
    assert len(seen) == 100 and seen == {(r, c) for r in range(10) for c in range(10)}
    assert len(items) == len(set(reads)) == len(reads)  # no window read twice
    (tmp_path / "small").mkdir()
    small = _scene(tmp_path / "small", 224, 224)
    seen = set()
    assert len(list(window_items(small, _pixels([5, 100, 200], [5, 100, 200]), False, 256, cells_seen=seen))) == 1
    assert len(seen) == 49
    scene.close()
    small.close()


def test_familiarity_cells_count_only_cells_with_data_on_the_rasters_own_grid(tmp_path):
    """Mutation check (round 19): a cell whose centre has no data is not counted; a window clipped to a raster whose
    side is no multiple of 32 (280 px: the last window starts at 24) still names each raster cell once."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    holed = _scene(tmp_path / "a", 320, 320, nodata_at=(slice(0, 160), slice(None)))
    seen: set = set()
    list(window_items(holed, _pixels([5, 5, 315, 315], [5, 315, 5, 315]), False, 256, cells_seen=seen))
    holed.close()
    assert seen == {(r, c) for r in range(5, 10) for c in range(10)}, sorted(seen)
    odd = _scene(tmp_path / "b", 280, 280)
    seen = set()
    list(window_items(odd, _pixels([5, 5, 275, 275], [5, 275, 5, 275]), False, 256, cells_seen=seen))
    odd.close()
    assert seen == {(r, c) for r in range(9) for c in range(9)}, sorted(seen)
