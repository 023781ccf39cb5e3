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
