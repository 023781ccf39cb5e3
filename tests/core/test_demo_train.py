"""`make demo-train`'s own pieces: the patch's band stack and the hand-drawn polygons shipped with it."""
import numpy as np
import rasterio

from claire.claire_plugin.core.training.labels import read_labels
from claire.claire_plugin.tools.demo_train import POLYGONS, S2_BANDS, side_by_side, stack_patch


def test_patch_stack_and_shipped_polygons_pass_the_label_checks(tmp_path):
    paths = stack_patch(str(tmp_path))
    with rasterio.open(paths["optical"]) as o, rasterio.open(paths["sar"]) as s:
        assert o.count == len(S2_BANDS) == 10 and s.count == 2
        assert o.shape == s.shape == (120, 120) and o.res == (10.0, 10.0) and o.crs == s.crs
        b08 = o.read(7)
        # the 20 m bands are resampled onto the 10 m grid, not left empty
        assert (o.read(9) > 0).all() and (b08 > 0).all()
        labels = read_labels(POLYGONS, o, "class")
    assert sorted(c.name for c in labels.classes) == ["built area", "crops", "trees"]
    counts = labels.counts()
    assert min(counts["polygons"]) >= 3 and min(counts["pixels"]) >= 50


def test_side_by_side_puts_the_panels_next_to_each_other(tmp_path):
    from PIL import Image

    red = np.zeros((10, 12, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((10, 12, 3), np.uint8)
    blue[..., 2] = 255
    out = side_by_side([red, blue], ["a", "b"], str(tmp_path / "s.png"), scale=2)
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (10 * 2 + 18, 2 * 24 + 8, 3)
    assert tuple(img[30, 5]) == (255, 0, 0) and tuple(img[30, 24 + 8 + 5]) == (0, 0, 255)
