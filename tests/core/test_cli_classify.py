"""`claire classify` through the real dispatcher: band choice, outputs, class table, exit codes."""
from __future__ import annotations

import json
import os

import pytest
import rasterio

from claire.claire_plugin.cli.main import main
from claire.claire_plugin.cli.classify import parse_band_list
from claire.claire_plugin.core.errors import ClaireError


def test_band_list_parsing():
    assert parse_band_list("2,3, 4,8", "--optical-bands") == [2, 3, 4, 8]
    assert parse_band_list(None, "--optical-bands") is None
    with pytest.raises(ClaireError, match="band numbers"):
        parse_band_list("two,three", "--optical-bands")


def test_classify_command_end_to_end(raster_pair, tiny_checkpoint, tmp_path, capsys):
    out, conf, summ = str(tmp_path / "lc.tif"), str(tmp_path / "conf.tif"), str(tmp_path / "s.json")
    rc = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
               tiny_checkpoint, "--output", out, "--confidence", conf, "--summary", summ, "--threads", "1",
               "--reference", raster_pair["labels"]])
    text = capsys.readouterr().out
    assert rc == 0
    assert "optical: bands 2->B02" in text and "SAR: bands 1->VV, 2->VH" in text
    assert out in text and conf in text and "water" in text and "OA" in text
    with rasterio.open(raster_pair["optical"]) as o, rasterio.open(out) as d:
        assert (d.crs, d.transform, d.shape) == (o.crs, o.transform, o.shape)
    with open(summ) as f:
        assert json.load(f)["summary"]["valid_pixels"] == 70 * 90


def test_classify_command_bad_input_exits_2_with_one_line(raster_pair, tiny_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "lc.tif")
    rc = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
               tiny_checkpoint, "--output", out, "--optical-bands", "1,2,3,4,5,6,7,8,9,99", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "band index 99 is out of range" in err and "Traceback" not in err
    assert not os.path.exists(out)
