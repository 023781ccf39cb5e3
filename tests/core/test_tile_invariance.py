"""tools/tile_invariance.py: the disagreement-versus-distance-to-a-tile-edge curve finds a network's reach."""
import numpy as np
import torch

from claire.claire_plugin.tools.tile_invariance import edge_curve
from claire.tests.fixtures.helpers import tiny_card
from claire.tests.fixtures.standin import LocalStack

torch.set_num_threads(1)


def test_edge_curve_is_zero_beyond_the_network_reach_and_not_inside_it():
    card = tiny_card()
    rng = np.random.default_rng(0)
    opt = rng.uniform(100, 5000, size=(10, 192, 192)).astype(np.float32)
    sar = rng.uniform(-25, -5, size=(2, 192, 192)).astype(np.float32)
    with torch.no_grad():
        curve = edge_curve(LocalStack(in_channels=12).eval(), card, opt, sar, tile=64, step=32, bin_px=4)
    assert len(curve) == 8  # bins of 4 px up to the tile's centre
    reach_bins = -(-LocalStack.REACH // 4)  # 0-3 and 4-7 px
    assert sum(curve[:reach_bins]) > 0, "pixels next to a tile edge see the zero padding"
    assert all(v == 0 for v in curve[reach_bins:]), curve
