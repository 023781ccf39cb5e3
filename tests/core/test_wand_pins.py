"""QA round 15 (mutation audit, fourth wave) of core/training/wand.py: survivors pinned.

- pixels without SAR (valid optical) never join, whatever their spectrum (distance +inf where `bad`);
- the seed's spectrum is the median of the *valid* pixels of its 3 x 3 (no-data neighbours, zero-filled, left out);
- the seed joins even where its own spectrum is farther than the tolerance from that median;
- the region is 4-connected: a diagonal neighbour alone does not join;
- a point a fraction of a pixel left of / above / right of / below the raster is refused as outside;
- the largest width 1001 of the documented range 3..1001 is taken, 1002 refused.
"""
import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.wand import check_tolerance, distance_to_seed, grow, grow_region, pixel_of
from claire.tests.fixtures.helpers import tiny_card, write_raster

ORIGIN = (500000.0, 4600000.0)  # write_raster's default: 10 m pixels, north up
FIELD = (10, 30, 12, 32)  # rows 10..29, cols 12..31


def _xy(row, col):
    return ORIGIN[0] + 10.0 * col, ORIGIN[1] - 10.0 * row


@pytest.fixture
def scene(tmp_path):
    """60 x 70 px: crops-like background, a darker uniform 20 x 20 field; the SAR has no data over the field's
    columns 26..31 (the optical is valid there)."""
    rng = np.random.default_rng(0)
    level = np.full((60, 70), 1800.0)
    r0, r1, c0, c1 = FIELD
    level[r0:r1, c0:c1] = 600.0
    opt = np.stack([level + 40 * b + rng.normal(0, 30, level.shape) for b in range(12)]).astype(np.int16)
    sar = np.stack([np.full((60, 70), -12.0), np.full((60, 70), -18.0)]).astype(np.float32)
    sar[:, :, 26:32] = np.nan
    s = Scene(write_raster(tmp_path / "o.tif", opt, nodata=0),
              write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]), tiny_card())
    yield s
    s.close()


def _global(reg, shape=(60, 70)):
    got = np.zeros(shape, bool)
    got[reg.row0:reg.row0 + reg.mask.shape[0], reg.col0:reg.col0 + reg.mask.shape[1]] = reg.mask
    return got


def test_pixels_without_sar_never_join_even_where_their_optical_matches(scene):
    reg = grow_region(scene, *_xy(15.5, 14.5))
    got = _global(reg)
    r0, r1, c0, c1 = FIELD
    assert not got[:, 26:32].any()
    assert got[r0:r1, c0:26].all() and reg.pixels == (r1 - r0) * (26 - c0)


def test_the_seed_is_the_median_of_the_valid_pixels_around_it():
    """Five of the click's 3 x 3 neighbours have no data (their features zero-filled, as grow_region hands them
    over): the seed is the median of the four valid ones (1.0), not of all nine (0.0)."""
    feats = np.ones((1, 5, 5), np.float32)
    bad = np.zeros((5, 5), bool)
    bad[1:4, 1:4] = True
    bad[2, 2] = False
    bad[1, 2] = bad[2, 1] = bad[3, 3] = False  # 4 valid, 5 without data in the 3 x 3
    feats[0][bad] = 0.0
    d = distance_to_seed(feats, bad, 2, 2)
    assert d[2, 2] == 0.0 and d[0, 0] == 0.0 and np.isinf(d[bad]).all()


def test_the_seed_joins_even_farther_than_the_tolerance_from_its_median():
    dist = np.zeros((5, 5), np.float32)
    dist[2, 2] = 1.0  # the clicked pixel itself differs from its neighbourhood's median
    assert grow(dist, 2, 2, 0.15).all()


def test_the_region_is_four_connected():
    dist = np.array([[0.0, np.inf, 0.0],
                     [np.inf, 0.0, np.inf],
                     [0.0, np.inf, 0.0]], np.float32)
    assert grow(dist, 1, 1, 0.15).sum() == 1


@pytest.mark.parametrize("row, col", [(-0.4, 5.5), (5.5, -0.4), (60.2, 5.5), (5.5, 70.2)])
def test_a_point_a_fraction_of_a_pixel_off_the_raster_is_outside(scene, row, col):
    with pytest.raises(ClaireError, match="outside the optical raster"):
        pixel_of(scene, *_xy(row, col))
    with pytest.raises(ClaireError, match="outside the optical raster"):
        grow_region(scene, *_xy(row, col))
    assert pixel_of(scene, *_xy(0.2, 0.2)) == (0, 0) and pixel_of(scene, *_xy(59.8, 69.8)) == (59, 69)


def test_the_largest_width_of_the_range_is_taken():
    check_tolerance(0.15, 1001)
    check_tolerance(0.15, 3)
    with pytest.raises(ClaireError, match="between 3 and 1001"):
        check_tolerance(0.15, 1002)
