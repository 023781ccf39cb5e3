"""The magic wand (core.training.wand): a region grown from one pixel over the optical raster, as one polygon
in the raster's CRS."""
from __future__ import annotations

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.wand import grow_region
from claire.tests.fixtures.helpers import tiny_card, write_raster

ORIGIN = (500000.0, 4600000.0)  # write_raster's default: 10 m pixels, north up
FIELD = (10, 30, 12, 32)  # rows 10..29, cols 12..31 (20 x 20 px)
HOLE = (18, 21, 20, 23)  # a 3 x 3 block of another cover inside the field


def _scene_arrays(rows: int = 60, cols: int = 70, seed: int = 0):
    """Crops-like background, a darker field with a bright block inside; noise sd 30 DN."""
    rng = np.random.default_rng(seed)
    level = np.full((rows, cols), 1800.0)
    r0, r1, c0, c1 = FIELD
    level[r0:r1, c0:c1] = 600.0
    h0, h1, k0, k1 = HOLE
    level[h0:h1, k0:k1] = 2600.0
    opt = np.stack([level + 40 * b + rng.normal(0, 30, level.shape) for b in range(12)]).astype(np.int16)
    sar = np.stack([np.full((rows, cols), -12.0), np.full((rows, cols), -18.0)]).astype(np.float32)
    return opt, sar


@pytest.fixture
def wand_scene(tmp_path):
    opt, sar = _scene_arrays()
    opt[:, 50:, 60:] = 0  # a nodata corner
    s = Scene(write_raster(tmp_path / "o.tif", opt, nodata=0),
              write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]), tiny_card())
    yield s
    s.close()


def _xy(row: float, col: float):
    return ORIGIN[0] + 10.0 * col, ORIGIN[1] - 10.0 * row


def test_a_click_in_a_field_gives_the_field_without_its_hole(wand_scene):
    from osgeo import ogr

    reg = grow_region(wand_scene, *_xy(12.5, 14.5))
    r0, r1, c0, c1 = FIELD
    h0, h1, k0, k1 = HOLE
    expected = np.zeros((60, 70), bool)
    expected[r0:r1, c0:c1] = True
    expected[h0:h1, k0:k1] = False
    got = np.zeros((60, 70), bool)
    got[reg.row0:reg.row0 + reg.mask.shape[0], reg.col0:reg.col0 + reg.mask.shape[1]] = reg.mask
    assert (got == expected).all()
    assert reg.pixels == 400 - 9 and not reg.truncated
    geom = ogr.CreateGeometryFromWkt(reg.wkt)
    assert geom.GetGeometryCount() == 2  # the outer ring and the hole
    assert geom.GetArea() == pytest.approx((400 - 9) * 100.0)
    x0, x1, y0, y1 = geom.GetEnvelope()
    assert (x0, x1) == pytest.approx((ORIGIN[0] + 120.0, ORIGIN[0] + 320.0))
    assert (y0, y1) == pytest.approx((ORIGIN[1] - 300.0, ORIGIN[1] - 100.0))


def test_a_larger_tolerance_takes_more_and_every_pixel_stays_within_it(wand_scene):
    from claire.claire_plugin.core.training.wand import distance_to_seed

    sizes = []
    for tol in (0.1, 0.3, 6.0):
        reg = grow_region(wand_scene, *_xy(12.5, 14.5), tolerance=tol, max_width=201)
        sizes.append(reg.pixels)
        opt, _s, bad = wand_scene.read(reg.row0, reg.col0, *reg.mask.shape)
        feats = wand_scene.opt_prep.standardise(np.nan_to_num(opt, nan=0.0))
        dist = distance_to_seed(feats, bad, 12 - reg.row0, 14 - reg.col0)
        assert dist[reg.mask].max() <= tol
    assert sizes[0] == 391 and sizes[1] == 391  # the field is 0.6 std away from the background
    assert sizes[2] > 3000  # a tolerance above every difference takes every valid pixel it reaches


def test_the_max_width_square_is_an_edge_the_raster_border_is_not(wand_scene):
    reg = grow_region(wand_scene, *_xy(20.5, 5.5), max_width=9)  # background, away from the borders
    assert reg.mask.shape == (9, 9) and reg.truncated
    corner = grow_region(wand_scene, *_xy(0.5, 0.5), max_width=9)  # the raster's corner: two sides are its border
    assert corner.mask.shape == (5, 5) and corner.mask.all() and corner.truncated  # the other two the square's
    whole = grow_region(wand_scene, *_xy(0.5, 35.5), max_width=201)  # the square holds the whole raster
    assert whole.mask.shape == (60, 70) and whole.mask[0].all() and not whole.truncated


def test_nodata_pixels_never_join(wand_scene):
    reg = grow_region(wand_scene, *_xy(45.5, 55.5), tolerance=0.5, max_width=41)
    rows, cols = np.nonzero(reg.mask)
    assert not ((rows + reg.row0 >= 50) & (cols + reg.col0 >= 60)).any()
    assert reg.pixels > 100


@pytest.mark.parametrize("where, kwargs, words", [
    ((-3.0, 5.0), {}, "outside the optical raster"),
    ((55.5, 65.5), {}, "no optical or no SAR data"),
    ((12.5, 14.5), {"tolerance": 0.0}, "must be above 0"),
    ((12.5, 14.5), {"tolerance": 0.001}, "raise the tolerance"),
])
def test_clicks_that_cannot_make_a_polygon_say_why(wand_scene, where, kwargs, words):
    with pytest.raises(ClaireError, match=words):
        grow_region(wand_scene, *_xy(*where), **kwargs)


def test_wand_check_clicks_lie_inside_one_class_patches():
    from claire.claire_plugin.tools.wand_check import clicks

    lulc = np.full((40, 40), 2, np.uint8)
    lulc[:, 20:] = 5
    lulc[10:13, 5:8] = 1  # a 3 x 3 patch: no pixel is 2 px inside it
    got = clicks(lulc, per_class=7, seed=1)
    assert sorted({v for _, _, v in got}) == [2, 5]
    assert sum(v == 2 for _, _, v in got) == 7 and sum(v == 5 for _, _, v in got) == 7
    for r, c, v in got:
        assert (lulc[max(0, r - 2):r + 3, max(0, c - 2):c + 3] == v).all()
        assert 2 <= r < 38 and 2 <= c < 38
