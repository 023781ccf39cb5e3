"""models.familiarity: decoder feature statistics, distance and the calibrated threshold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from claire.models.familiarity import distance, distances, familiarity
from claire.models.registry import build_model

torch.set_num_threads(1)
CFG = dict(num_classes=3, optical_channels=4, sar_channels=2, size="tiny")


def _items(seed: int, n: int, shift: float = 0.0, size: int = 64):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        o = rng.normal(shift, 1.0, (4, size, size)).astype(np.float32)
        o[:, :, : size // 2] += 1.5  # two kinds of ground
        s = rng.normal(-shift, 1.0, (2, size, size)).astype(np.float32)
        yield o, s, None


def test_features_are_exposed_and_logits_unchanged():
    torch.manual_seed(0)
    model = build_model("claire", CFG).eval()
    o, s = torch.randn(1, 4, 64, 64), torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        plain = model(o, s)
        out = model(o, s, return_features=True)
    assert out["features"].shape[-2:] == (16, 16)
    assert torch.equal(plain["logits"], out["logits"])


class InputFeatures(torch.nn.Module):
    """Follows the forward contract; its 'decoder features' are the inputs averaged over 4 x 4 pixels."""

    def forward(self, optical, sar, cloud=None, return_features=False):
        feats = torch.nn.functional.avg_pool2d(torch.cat([optical, sar], 1), 4)
        return {"logits": optical[:, :3], "sar_share": None, "features": feats}


def test_threshold_is_the_heldout_quantile_and_flags_unlike_inputs():
    model = InputFeatures()
    fam = familiarity(model, _items(0, 4), _items(1, 2))
    d_held = distances(model, _items(1, 2), np.array(fam["mean"]), np.array(fam["var"]))
    assert (d_held > fam["threshold"]).mean() == pytest.approx(0.01, abs=0.005)
    assert len(fam["mean"]) == len(fam["var"]) and fam["threshold"] > 0
    mean, var = np.array(fam["mean"]), np.array(fam["var"])
    same = distances(model, _items(2, 2), mean, var)
    far = distances(model, _items(3, 2, shift=2.0), mean, var)
    assert (same > fam["threshold"]).mean() < 0.05
    assert (far > fam["threshold"]).mean() > 0.5


def test_distance_is_zero_at_the_mean_and_scales_with_the_variance():
    mean, var = torch.tensor([1.0, 2.0]), torch.tensor([4.0, 1.0])
    f = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    assert float(distance(f, mean, var)) == 0.0
    f2 = torch.tensor([3.0, 3.0]).view(1, 2, 1, 1)  # (2^2/4 + 1^2/1) / 2 = 1
    assert abs(float(distance(f2, mean, var)) - 1.0) < 1e-6


def test_a_mask_keeps_only_its_pixels():
    from claire.models.familiarity import feature_stats

    o, s, _ = next(_items(0, 1))
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True
    _, _, n_all = feature_stats(InputFeatures(), [(o, s, None)])
    mean, _, n_half = feature_stats(InputFeatures(), [(o, s, None, mask)])
    assert (n_all, n_half) == (256, 128)
    assert mean[0] > 1.0, "only the brighter left half (+1.5) was measured"
