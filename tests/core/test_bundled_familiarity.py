"""The bundled card's "unlike the training data" entry is what today's calibration computes (the one
`make checkpoint` and `tools.refresh_card --familiarity-only` write), so a change in how windows are read
cannot leave a stale threshold behind, and it separates the training sites from scenes elsewhere."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from claire.models.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def bundled(request):
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT

    torch.set_grad_enabled(False)
    model, card = load_checkpoint(str(DEFAULT_CHECKPOINT))
    yield model, card
    torch.set_grad_enabled(True)


def test_card_entry_is_todays_calibration(bundled):
    from claire.claire_plugin.tools.familiarity import terramesh_familiarity

    model, card = bundled
    shipped, now = card["familiarity"], terramesh_familiarity(model, card)
    assert now["pixels"] == shipped["pixels"]
    assert now["heldout_pixels"] == shipped["heldout_pixels"]
    assert now["threshold"] == pytest.approx(shipped["threshold"], rel=2e-3), (
        "the bundled card's familiarity threshold is stale: python -m claire.claire_plugin.tools.refresh_card "
        "resources/checkpoints/claire_default.safetensors --familiarity-only")
    np.testing.assert_allclose(now["mean"], shipped["mean"], rtol=1e-3, atol=1e-3)


def test_card_flags_about_one_percent_of_the_holdout_and_most_of_elsewhere(bundled):
    from claire.claire_plugin.tools.familiarity import scene_shares

    model, card = bundled
    shares = scene_shares(model, card, card["familiarity"])["scenes"]
    assert shares["terramesh_heldout"]["unfamiliar_share"] <= 0.02
    for scene in ("sen12ms_cr_clear", "sen12ms_cr_cloudy", "bigearthnet_mm"):
        assert shares[scene]["unfamiliar_share"] >= 0.5, (scene, shares[scene])


def test_in_geometry_keeps_the_mask_on_its_pixels():
    from claire.claire_plugin.tools.familiarity import in_geometry
    from claire.models.predict import CONTEXT

    rng = np.random.default_rng(0)
    o, s = rng.random((3, 224, 200)).astype(np.float32), rng.random((2, 224, 200)).astype(np.float32)
    m = np.zeros((224, 200), bool)
    m[:, 150:] = True
    inside = in_geometry((o, s, None, m), "inside")
    assert inside[0].shape == (3, 224 + 2 * CONTEXT, 200 + 2 * CONTEXT) and inside[2] is None
    np.testing.assert_array_equal(inside[0][:, inside[3]], o[:, m])
    right = in_geometry((o, s, None, m), "right128")
    assert right[1].shape == (2, 224, 128)
    np.testing.assert_array_equal(right[1][:, right[3]], s[:, m])
    top = in_geometry((o, s, None, m), "top160")
    assert top[3].shape == (160, 200) and top[3].sum() == 160 * 50
    with pytest.raises(ValueError, match="geometry must be one of"):
        in_geometry((o, s, None, m), "sideways")


def test_score_read_another_way_still_flags_elsewhere(bundled):
    """docs/model_card.md, "How a pixel is read moves the score": read whole, the shares are the card's;
    inside a larger raster familiar ground is flagged more, and scenes from elsewhere stay flagged (the score
    errs towards "do not trust", never the other way)."""
    from claire.claire_plugin.tools.familiarity import geometry_shares, scene_shares

    model, card = bundled
    fam = card["familiarity"]
    geo = geometry_shares(model, card, fam, geometries=("whole", "inside"))
    card_shares = scene_shares(model, card, fam)["scenes"]
    assert geo["whole"]["terramesh_heldout"]["unfamiliar_share"] == card_shares["terramesh_heldout"]["unfamiliar_share"]
    assert geo["inside"]["terramesh_heldout"]["median_ratio"] > geo["whole"]["terramesh_heldout"]["median_ratio"]
    for scene in ("sen12ms_cr_clear", "sen12ms_cr_cloudy", "bigearthnet_mm"):
        assert geo["inside"][scene]["unfamiliar_share"] >= 0.5, (scene, geo["inside"][scene])
