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
