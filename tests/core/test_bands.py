"""Band selection: explicit indices, descriptions, known layouts, errors."""
from __future__ import annotations

import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.inputs.bands import S2_L1C, S2_L2A, canonical_band, choose_bands

CARD10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


@pytest.mark.parametrize("text,want", [("B2", "B02"), ("b02", "B02"), ("B8A", "B8A"), ("B08", "B08"),
                                       ("Band 4 (B4)", "B04"), ("red", "B04"), ("NIR", "B08"),
                                       ("SWIR1", "B11"), ("Sigma0_VV_db", "VV"), ("vh", "VH"), (None, None)])
def test_canonical_band_names(text, want):
    assert canonical_band(text) == want


def test_l1c_and_l2a_layouts_by_band_count():
    l1c = choose_bands("optical", 13, [None] * 13, CARD10)
    assert l1c.indices == [S2_L1C.index(b) + 1 for b in CARD10] == [2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
    l2a = choose_bands("optical", 12, [None] * 12, CARD10)
    assert l2a.indices == [S2_L2A.index(b) + 1 for b in CARD10] == [2, 3, 4, 5, 6, 7, 8, 9, 11, 12]
    assert "L1C" in l1c.method and "L2A" in l2a.method


def test_descriptions_win_over_layout():
    desc = ["B8", "B4", "B3", "B2"]  # reversed RGBN stack
    c = choose_bands("optical", 4, desc, ["B02", "B03", "B04", "B08"])
    assert c.indices == [4, 3, 2, 1] and "descriptions" in c.method
    assert "optical: bands 4->B02" in c.describe("optical")


def test_four_band_layout_and_sar_order():
    assert choose_bands("optical", 4, [None] * 4, ["B02", "B03", "B04", "B08"]).indices == [1, 2, 3, 4]
    assert choose_bands("SAR", 2, ["VH", "VV"], ["VV", "VH"]).indices == [2, 1]
    assert choose_bands("SAR", 2, [None, None], ["VV", "VH"]).indices == [1, 2]


def test_explicit_indices_and_their_errors():
    assert choose_bands("optical", 13, [None] * 13, ["B02", "B03"], explicit=[3, 2]).indices == [3, 2]
    with pytest.raises(ClaireError, match="band index 14 is out of range.*13 band"):
        choose_bands("optical", 13, [None] * 13, ["B02", "B03"], explicit=[2, 14], flag="--optical-bands")
    with pytest.raises(ClaireError, match="lists 1 band.*needs 2"):
        choose_bands("optical", 13, [None] * 13, ["B02", "B03"], explicit=[2], flag="--optical-bands")


def test_too_few_or_ambiguous_bands_are_clear_errors():
    with pytest.raises(ClaireError, match="has 3 band.*needs 10"):
        choose_bands("optical", 3, [None] * 3, CARD10)
    with pytest.raises(ClaireError, match="--optical-bands"):
        choose_bands("optical", 11, [None] * 11, CARD10, flag="--optical-bands")


def test_same_count_without_names_keeps_checkpoint_order():
    c = choose_bands("optical", 5, [None] * 5, [], needed=5)
    assert c.indices == [1, 2, 3, 4, 5] and "order" in c.method


@pytest.mark.parametrize("ratio", ["Sigma0_VV_db_minus_VH", "VV/VH", "VV_VH_ratio"])
def test_a_ratio_band_beside_vv_and_vh_is_neither(ratio):
    """A third band naming both polarisations (SNAP's VV - VH, a VV/VH ratio) made the names ambiguous, and the
    run was refused as if the bands were unnamed."""
    assert canonical_band(ratio) not in ("VV", "VH")
    c = choose_bands("SAR", 3, ["Sigma0_VV_db", "Sigma0_VH_db", ratio], ["VV", "VH"])
    assert c.indices == [1, 2] and "descriptions" in c.method
