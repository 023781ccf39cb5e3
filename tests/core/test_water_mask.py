"""The hand-made water mask of `claire bench-robustness` (tools/water.py) and the subcommand's parser."""
from __future__ import annotations

import pytest

from claire.claire_plugin.cli.main import build_parser, main
from claire.claire_plugin.tools.water import water_mask


def test_water_mask_covers_the_sea_and_not_the_beach():
    m = water_mask()
    assert m.shape == (224, 224)
    assert m[-40:, -40:].mean() > 0.9, "the sea in the lower right"
    assert m[:40, :40].mean() < 0.05, "the dark upper-left area is left out"
    assert 0.1 < m.mean() < 0.5


def test_bench_robustness_is_a_subcommand(capsys):
    args = build_parser().parse_args(["bench-robustness", "--json", "x.json"])
    assert args.json == "x.json" and args.func.__module__.endswith("bench_robustness")
    with pytest.raises(SystemExit) as exc:
        main(["bench-robustness", "--help"])
    assert exc.value.code == 0 and "hand-made mask" in capsys.readouterr().out


def test_otsu_splits_two_modes():
    import numpy as np

    from claire.claire_plugin.tools.water import otsu_threshold

    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(-22, 1.5, 3000), rng.normal(-8, 2, 7000), [np.nan, np.inf]])
    assert -19 < otsu_threshold(v) < -11


def test_water_iou_compares_the_sar_decided_map_with_a_vv_threshold():
    """The bundled checkpoint on the coastal site: the map decided from SAR alone (cloud input 1) against a VV
    threshold, both scored on the site's label (docs/model_card.md)."""
    import torch

    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT
    from claire.claire_plugin.tools.water import water_iou
    from claire.models.checkpoint import load_checkpoint

    torch.set_grad_enabled(False)
    try:
        model, card = load_checkpoint(str(DEFAULT_CHECKPOINT))
        out = water_iou(model, card)
    finally:
        torch.set_grad_enabled(True)
    assert -20 < out["vv_otsu_threshold_db"] < -8 and 0.5 < out["vv_otsu_iou_vs_label"] < 1
    assert out["sar_decides_iou_vs_label"] is not None
    assert out["sar_decides_iou_vs_label"] != out["iou_vs_label"], "the override reached the fusion gate"
    assert out["iou_vs_label"] > out["sar_decides_iou_vs_label"] > out["vv_otsu_iou_vs_label"]
