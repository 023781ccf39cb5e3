"""`claire classify` through the real dispatcher: band choice, outputs, class table, exit codes."""
from __future__ import annotations

import json
import os

import pytest
import rasterio

from claire.claire_plugin.cli.classify import params_from_args
from claire.claire_plugin.cli.main import build_parser, main
from claire.claire_plugin.core.errors import ClaireError


def _classify_args(*extra):
    return build_parser().parse_args(["classify", "--optical", "o.tif", "--sar", "s.tif", "--output", "x.tif",
                                      *extra])


@pytest.mark.parametrize("text", ["2,3,4", "2;3;4", "2 3 4", " 2, 3 ;4 "])
def test_band_lists_read_alike_on_the_command_line(text):
    params = params_from_args(_classify_args("--optical-bands", text, "--sar-bands", "1 2"))
    assert params.optical_bands == [2, 3, 4] and params.sar_bands == [1, 2]


@pytest.mark.parametrize("text, match", [("0,1", "below 1"), ("two,three", "not a list of band numbers")])
def test_bad_band_lists_name_the_option(text, match):
    with pytest.raises(ClaireError, match=match) as info:
        params_from_args(_classify_args("--optical-bands", text))
    assert "--optical-bands" in str(info.value) and "2,3,4,8" in str(info.value)


@pytest.mark.parametrize("command", ["classify", "train"])
def test_the_optical_offset_is_read_as_the_dock_reads_it(command, capsys):
    """QA round 20: the command line read '-1.000' as -1 (the dock refuses it: minus one or minus one thousand) and
    refused a typographic minus; a script's text offset likewise."""
    from claire.claire_plugin.core.params import ClassifyParams

    base = (["classify", "--optical", "o.tif", "--sar", "s.tif", "--output", "x.tif"] if command == "classify" else
            ["train", "--optical", "o.tif", "--sar", "s.tif", "--labels", "l.gpkg", "--output", "m.safetensors"])
    assert build_parser().parse_args([*base, "--optical-offset", "\u22121000"]).optical_offset == -1000.0
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--optical-offset=-1.000"])
    assert "could be minus one or minus one thousand" in capsys.readouterr().err
    with pytest.raises(ClaireError, match="could be minus one or minus one thousand"):
        ClassifyParams("o.tif", "s.tif", "out.tif", optical_offset="-1.000")


def test_empty_run_options_come_from_the_checkpoint():
    params = params_from_args(_classify_args("--tile-size", "0", "--context", "-1"))
    assert (params.tile_size, params.context, params.batch_size, params.device) == (None, None, 0, "auto")
    assert params.checkpoint is None and params.optical_bands is None


def test_the_replaced_overlap_option_names_its_successor():
    with pytest.raises(ClaireError, match=r"--overlap 32 is no longer an option.*use --context"):
        params_from_args(_classify_args("--overlap", "32"))


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


def test_a_run_refused_after_planning_shows_what_was_planned(raster_pair, tiny_checkpoint, tmp_path, capsys):
    """QA (small machines): the plan lines (memory, tile, lanes, bands) were printed after a successful run only,
    so a user whose run failed never saw what had been planned."""
    rc = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
               tiny_checkpoint, "--output", str(tmp_path / "lc.tif"), "--tile-size", "8192", "--batch-size", "64",
               "--context", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs about" in err and "claire: planned: device: cpu" in err, err
    assert err.index("claire: planned:") < err.index("claire: error:")


@pytest.mark.parametrize("argv", [
    ["train", "--data", "nowhere", "--output", "x.safetensors", "--optical-bands", "2;x"],
    ["classify-folder", "--optical-folder", "o", "--sar-folder", "s", "--output-folder", "out",
     "--optical-bands", "2;x"],
])
def test_train_and_classify_folder_read_bands_with_the_same_rule(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--optical-bands '2;x' is not a list of band numbers" in err and "e.g. --optical-bands 2,3,4,8" in err
    assert os.listdir(tmp_path) == []


def test_snow_check_is_on_unless_turned_off():
    assert params_from_args(_classify_args()).snow_check is True
    assert params_from_args(_classify_args("--no-snow-check")).snow_check is False


def test_classify_command_with_an_extent_writes_that_extent(raster_pair, tiny_checkpoint, tmp_path, capsys):
    """Rows 10..29 and columns 20..49 of the 70 x 90 px scene (origin 500000, 4600000; 10 m pixels)."""
    out = str(tmp_path / "preview.tif")
    rc = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
               tiny_checkpoint, "--output", out, "--threads", "1", "--extent", "500200 4599700 500500 4599900"])
    assert rc == 0 and "classifying the extent only: optical rows 10..29, columns 20..49" in capsys.readouterr().out
    with rasterio.open(raster_pair["optical"]) as o, rasterio.open(out) as d:
        assert d.shape == (20, 30) and d.transform == o.transform * rasterio.Affine.translation(20, 10)


@pytest.mark.parametrize("extent, message", [("1,2,3", "is not four numbers"),
                                             ("500500,4599700,500200,4599900", "is empty")])
def test_classify_command_refuses_a_bad_extent_in_one_line(raster_pair, tiny_checkpoint, tmp_path, capsys,
                                                           extent, message):
    out = str(tmp_path / "preview.tif")
    rc = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
               tiny_checkpoint, "--output", out, "--extent", extent, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "xmin" in err and "Traceback" not in err
    assert not os.path.exists(out)


def test_a_requested_raster_the_run_cannot_write_is_a_warning_even_quiet(raster_pair, tiny_checkpoint, tmp_path,
                                                                         capsys):
    """QA round 14: `--unfamiliar` with a checkpoint without familiarity statistics exited 0 with no file and, with
    --quiet, no word (the note was an ordinary line)."""
    from claire.models.checkpoint import read_card

    assert not read_card(tiny_checkpoint).get("familiarity")
    out, unf = str(tmp_path / "m.tif"), tmp_path / "u.tif"
    rc = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
               tiny_checkpoint, "--output", out, "--unfamiliar", str(unf), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0 and not unf.exists()
    assert "warning:" in err and "the unfamiliar raster you asked for is not written" in err, err


def test_an_explainer_is_said_when_it_is_not_used(raster_pair, tiny_checkpoint, tmp_path, capsys):
    """QA round 14: `--explainer` without `--report` was ignored without a word, and an explainer folder that does not
    exist was named only inside the report's Markdown."""
    base = ["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--checkpoint",
            tiny_checkpoint, "--output", str(tmp_path / "m.tif"), "--explainer", str(tmp_path / "no_phi3"), "--quiet"]
    assert main(base) == 2
    assert "give --report" in capsys.readouterr().err
    assert main(base + ["--report", str(tmp_path / "r.json"), "--summary", str(tmp_path / "s.json")]) == 0
    err = capsys.readouterr().err
    import json

    said = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["messages"]
    assert any(m.startswith("warning: Explainer not used") for m in said), said
    assert "warning: Explainer not used: explainer folder" in err and "does not exist" in err, err
    assert "the report's text is the deterministic template's" in err
    assert (tmp_path / "r.json").exists()



def test_info_of_a_card_without_its_date_says_so_not_none(tmp_path, capsys):
    """QA (round 19): a card written elsewhere without `created` showed "created None (CLAIRE None)"."""
    import torch

    from claire.models.checkpoint import save_checkpoint
    from claire.models.registry import build_model
    from claire.tests.fixtures.helpers import tiny_card

    torch.manual_seed(0)
    card = {k: v for k, v in tiny_card().items() if k not in ("created", "claire_version")}
    path = str(tmp_path / "bare.safetensors")
    save_checkpoint(path, build_model("claire", card["config"]), card)
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    assert "None" not in out, out
