"""models.familiarity: feature statistics (bottleneck low-rank, decoder diagonal), distances and the calibrated
threshold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from claire.models.familiarity import Scorer, distance, distances, familiarity, lowrank_distance, ratios
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


@pytest.mark.parametrize("arch", ["claire", "asanet", "optical_only", "sar_only"])
def test_features_are_exposed_and_logits_unchanged(arch):
    torch.manual_seed(0)
    model = build_model(arch, CFG).eval()
    o, s = torch.randn(1, 4, 64, 64), torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        plain = model(o, s)
        out = model(o, s, return_features=True)
    assert out["features"].shape[-2:] == (16, 16)
    assert out["bottleneck"].shape[-2:] == (2, 2), "the deepest encoder level, stride 32"
    assert torch.equal(plain["logits"], out["logits"])


class InputFeatures(torch.nn.Module):
    """Follows the forward contract; its 'decoder features' are the inputs averaged over 4 x 4 pixels."""

    def forward(self, optical, sar, cloud=None, return_features=False):
        feats = torch.nn.functional.avg_pool2d(torch.cat([optical, sar], 1), 4)
        return {"logits": optical[:, :3], "sar_share": None, "features": feats}


def test_threshold_is_the_heldout_quantile_and_flags_unlike_inputs():
    model = InputFeatures()
    fam = familiarity(model, _items(0, 4), _items(1, 2), feature="decoder")
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


def test_lowrank_distance_is_the_mahalanobis_distance_at_full_rank():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + np.eye(3)
    w, v = np.linalg.eigh(cov)
    x, mean = rng.normal(size=3), rng.normal(size=3)
    f = torch.tensor(x, dtype=torch.float32).view(1, 3, 1, 1)
    d = lowrank_distance(f, torch.tensor(mean).float(), torch.tensor(v.T).float(), torch.tensor(w).float(), 1.0)
    expected = np.sqrt((x - mean) @ np.linalg.inv(cov) @ (x - mean) / 3)
    assert float(d) == pytest.approx(expected, rel=1e-4)
    # one axis kept: the rest of the offset is measured against the residual variance
    d1 = lowrank_distance(f, torch.tensor(mean).float(), torch.tensor(v.T[-1:]).float(), torch.tensor(w[-1:]).float(), 2.0)
    p = v[:, -1] @ (x - mean)
    assert float(d1) == pytest.approx(np.sqrt((p ** 2 / w[-1] + ((x - mean) @ (x - mean) - p ** 2) / 2.0) / 3), rel=1e-4)


def _scene_items(seed, odd: bool = False):
    """The repo's synthetic scene (tests/fixtures/helpers.synthetic_scene, 224 px like a training site) of
    each seed, normalised with the tiny card; `odd`: the same ground seen unlike anything in training
    (spectra reversed and brightened, SAR +15 dB)."""
    from claire.models.spec import normalise
    from claire.tests.fixtures.helpers import synthetic_scene, tiny_card

    card = tiny_card()
    for one in np.atleast_1d(seed):
        optical, sar, _ = synthetic_scene(224, 224, seed=int(one))
        optical = optical[[1, 2, 3, 4, 5, 6, 7, 8, 10, 11]].astype(np.float32)  # B02..B12 without B09
        if odd:
            optical, sar = np.clip(optical[::-1] * 3.0, 0, 10000), sar + 15.0
        yield normalise(optical, card["inputs"]["optical"]), normalise(sar, card["inputs"]["sar"]), None


def test_bottleneck_score_is_higher_out_of_distribution():
    """The card's default score: fitted on three synthetic scenes, calibrated on three others (7 x 7
    bottleneck cells each); a scene like them stays mostly below the threshold, the same ground seen through
    other spectra and SAR lies beyond it."""
    from claire.tests.fixtures.helpers import tiny_card

    torch.manual_seed(0)
    model = build_model("claire", tiny_card()["config"]).eval()
    fam = familiarity(model, _scene_items([0, 3, 4]), _scene_items([1, 5, 6]))
    assert fam["feature"] == "bottleneck" and len(fam["basis"]) == len(fam["pvar"]) <= 64
    assert len(fam["basis"][0]) == len(fam["mean"]) and fam["residual_var"] > 0
    scorer = Scorer(fam)
    same = ratios(model, _scene_items(2), scorer)
    odd = ratios(model, _scene_items(2, odd=True), scorer)
    assert np.median(odd) > 2 * np.median(same), (np.median(odd), np.median(same))
    assert (same > 1.0).mean() < 0.1 and (odd > 1.0).mean() > 0.9


def test_scorer_reads_both_card_kinds_and_rejects_broken_ones():
    old = Scorer({"mean": [0.0, 0.0], "var": [1.0, 4.0], "threshold": 2.0})
    assert old.key == "features"
    f = torch.tensor([2.0, 4.0]).view(1, 2, 1, 1)  # (4/1 + 16/4) / 2 = 4 -> d 2 -> ratio 1
    assert float(old.ratio(f)) == pytest.approx(1.0)
    new = Scorer({"feature": "bottleneck", "mean": [0.0, 0.0], "basis": [[1.0, 0.0]], "pvar": [4.0],
                  "residual_var": 1.0, "threshold": 1.0})
    assert new.key == "bottleneck" and float(new.ratio(f)) == pytest.approx(np.sqrt((1.0 + 16.0) / 2))
    with pytest.raises(ValueError):
        Scorer({"feature": "bottleneck", "mean": [0.0, 0.0], "basis": [[1.0, 0.0]], "pvar": [4.0, 1.0],
                "residual_var": 1.0, "threshold": 1.0})
    with pytest.raises(ValueError):
        Scorer({"feature": "pixels", "mean": [0.0], "var": [1.0], "threshold": 1.0})


def test_masks_of_sizes_that_are_no_multiple_of_the_stride():
    """Cells of a partial last row/column take the mask's edge; an all-False mask leaves nothing to fit on."""
    from claire.models.familiarity import cell_mask, feature_stats

    mask = np.zeros((70, 70), bool)
    mask[:, 64:] = True
    cells = cell_mask((None, None, None, mask), (3, 3), 32)
    assert cells.shape == (3, 3) and cells[:, 2].all() and not cells[:, :2].any()
    o, s, _ = next(_items(0, 1, size=70))
    _, _, n = feature_stats(InputFeatures(), [(o, s, None, mask)])
    assert n == 18 * 2  # stride-4 cells whose centre (4k + 2) lies in columns 64..69: k = 16, 17
    with pytest.raises(ValueError, match="no pixels"):
        feature_stats(InputFeatures(), [(o, s, None, np.zeros((70, 70), bool))])


def test_smoothed_scorer_judges_a_neighbourhood_not_a_cell():
    fam = {"feature": "decoder", "mean": [0.0], "var": [1.0], "threshold": 1.0}
    feats = torch.zeros(1, 1, 7, 7)
    feats[0, 0, 3, 3] = 5.0  # one far cell in a familiar neighbourhood
    single = Scorer(fam).ratio(feats)[0, 0]
    smooth = Scorer(dict(fam, smooth_cells=5)).ratio(feats)[0, 0]
    assert single[3, 3] == pytest.approx(5.0) and single[0, 0] == 0
    assert smooth[3, 3] == pytest.approx(5.0 / 25) and smooth[2, 2] == pytest.approx(5.0 / 25)
    assert smooth[1, 1] == pytest.approx(5.0 / 16)  # cells beyond the tile are left out of the mean
    assert smooth[0, 0] == 0  # three cells away: outside its window
    feats[:] = 2.0  # a whole unlike neighbourhood stays unlike, up to the tile's border
    assert torch.allclose(Scorer(dict(fam, smooth_cells=5)).ratio(feats), torch.full((1, 1, 7, 7), 2.0))


def test_new_bottleneck_entries_record_their_smoothing():
    from claire.models import familiarity as fm
    from claire.tests.fixtures.helpers import tiny_card

    torch.manual_seed(0)
    model = build_model("claire", tiny_card()["config"]).eval()
    fam = familiarity(model, _scene_items([0, 3, 4]), _scene_items([1, 5, 6]))
    assert fam["feature"] == "bottleneck" and fam["smooth_cells"] == fm.SMOOTH_CELLS > 1


def test_the_calibration_scores_on_the_device_the_features_are_on(monkeypatch):
    """QA round 17 (GPU paths): familiarity() built its calibration Scorer on the CPU whatever `device` was, so every
    polygon training on a CUDA GPU failed at "measuring the training features" (tensors on two devices)."""
    import claire.models.familiarity as fam_mod

    made = []

    class Spy(fam_mod.Scorer):
        def __init__(self, fam, device="cpu"):
            made.append(str(device))
            super().__init__(fam, device)

    monkeypatch.setattr(fam_mod, "Scorer", Spy)
    model = InputFeatures()
    fam = fam_mod.familiarity(model, _items(0, 2), _items(1, 1), feature="decoder", device="cpu:0")
    fam_mod.distances(model, _items(1, 1), np.array(fam["mean"]), np.array(fam["var"]), device="cpu:0")
    assert made == ["cpu:0", "cpu:0"]
