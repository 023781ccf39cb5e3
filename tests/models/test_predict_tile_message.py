"""The tile-size check says what is wrong with a tile below the least one (not "not a multiple of 32")."""
from claire.models.predict import check_context


def test_tile_below_32_is_named_as_too_small():
    assert check_context(-32, 16) == "tile size -32 is below 32, the smallest tile the model can keep"
    assert check_context(0, 16).startswith("tile size 0 is below 32")
    assert "not a multiple of 32" in check_context(50, 16)
    assert check_context(64, 16) is None
