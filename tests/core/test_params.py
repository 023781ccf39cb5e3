"""The one band-list rule and the one "empty = from the checkpoint" rule every front door uses."""
from __future__ import annotations

import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.params import RunOptions, parse_bands, run_options


@pytest.mark.parametrize("text, bands", [
    ("2,3,4,8", [2, 3, 4, 8]), ("2;3;4", [2, 3, 4]), ("2 3 4", [2, 3, 4]), ("2, 3;\t4", [2, 3, 4]),
    ("12", [12]), ([1, 2], [1, 2]),
])
def test_separators_are_commas_semicolons_or_spaces(text, bands):
    assert parse_bands(text, "--optical-bands") == bands


@pytest.mark.parametrize("text", [None, "", "   ", " , ; "])
def test_empty_means_automatic(text):
    assert parse_bands(text, "OPTICAL_BANDS") is None


@pytest.mark.parametrize("text, match", [
    ("0,1", r"band number 0 below 1"), ("2,-3", r"band number -3 below 1"),
    ("2,x", r"not a list of band numbers"), ("2.5", r"not a list of band numbers"),
    ("1,1", r"names band 1 more than once"),  # QA round 18: VV read as VH was a map without a word
])
def test_bad_lists_name_the_parameter_and_give_an_example(text, match):
    with pytest.raises(ClaireError, match=match) as info:
        parse_bands(text, "SAR_BANDS")
    assert "SAR_BANDS" in str(info.value) and "e.g. SAR_BANDS 1,2" in str(info.value)  # the SAR's own example
    with pytest.raises(ClaireError, match=match) as info:
        parse_bands(text, "--optical-bands")
    assert "e.g. --optical-bands 2,3,4,8" in str(info.value)


def test_run_options_empty_values_come_from_the_checkpoint():
    opts = run_options(checkpoint="", tile_size=0, context=-1, batch_size=None, device="")
    assert opts == RunOptions()
    assert run_options(tile_size=None, context=None) == RunOptions()


def test_run_options_keep_given_values_and_leave_other_negatives_to_the_engine():
    opts = run_options(checkpoint="c.safetensors", tile_size=64, context=0, batch_size=2, device="cpu",
                       threads=1, optical_bands=[2, 3], optical_offset=-1000.0)
    assert (opts.tile_size, opts.context, opts.batch_size, opts.device, opts.threads) == (64, 0, 2, "cpu", 1)
    assert run_options(context=-5).context == -5


def test_params_carry_options_and_the_pair_specific_outputs():
    params = run_options(tile_size=64, sar_bands=[1, 2]).params("o.tif", "s.tif", "out.tif",
                                                                 confidence="c.tif")
    assert (params.optical, params.sar, params.output, params.confidence) == ("o.tif", "s.tif", "out.tif", "c.tif")
    assert params.tile_size == 64 and params.sar_bands == [1, 2] and params.context is None
