"""QA round 15 (mutation audit, fourth wave): `--max-width` / MAX_WIDTH is the side of the square each polygon stays
in, in pixels, but an even width W gave a (W + 1) x (W + 1) square (`--max-width 4` grew 5 x 5 = 25 px polygons on
a uniform field). The click's pixel now has W // 2 pixels before it and (W - 1) // 2 after.
"""
import numpy as np
import pytest

from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.wand import grow_region
from claire.tests.fixtures.helpers import tiny_card, write_raster


@pytest.mark.parametrize("width", [4, 6, 40])
def test_no_polygon_is_wider_than_the_largest_width(tmp_path, width):
    rng = np.random.default_rng(0)
    opt = np.stack([1800 + 40 * b + rng.normal(0, 10, (60, 70)) for b in range(12)]).astype(np.int16)  # one field
    sar = np.stack([np.full((60, 70), -12.0), np.full((60, 70), -18.0)]).astype(np.float32)
    scene = Scene(write_raster(tmp_path / "o.tif", opt, nodata=0),
                  write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]), tiny_card())
    reg = grow_region(scene, 500000.0 + 10 * 35.5, 4600000.0 - 10 * 30.5, max_width=width)
    rows, cols = np.nonzero(reg.mask)
    assert np.ptp(rows) + 1 <= width and np.ptp(cols) + 1 <= width, reg.mask.shape
    scene.close()
