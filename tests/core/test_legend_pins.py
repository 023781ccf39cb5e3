"""QA round 15 (mutation audit, fourth wave) of core/legend.py: survivor pinned.

The bundled legend is keyed by name_key, so that its 'snow/ice' matches a map's or a base's 'snow/ice',
'Snow / Ice' or 'SNOW/ICE' (name_key writes every one of them 'snow / ice'): a model coding snow/ice as 8 is told
to code the bundled model's class otherwise, as one coding water as 5 is.
"""
from claire.claire_plugin.core.legend import apart_from_bundled, apart_note, bundled_legend


def test_the_bundled_legend_matches_names_with_a_slash():
    assert bundled_legend()["snow / ice"] == (7, "snow/ice")
    for name in ("snow/ice", "Snow / Ice", "SNOW/ICE"):
        assert apart_from_bundled([(8, name)]) == [(name, 8, 7)]
    assert apart_from_bundled([(7, "snow/ice")]) == []
    note = apart_note([(1, "water"), (8, "snow/ice")], "the map", "CLASS_MAPPING")
    assert note is not None and "'snow/ice' is 8 there and 7 in the bundled legend" in note
    assert note.endswith("class mapping 7:8 (CLASS_MAPPING)")


def test_a_dataset_legend_is_not_taken_for_the_bundled_one(tmp_path):
    """QA round 16: a WHU-OPT-SAR model's map ('water' at 40) scored against its own unnamed labels was told it coded
    the bundled model's classes otherwise, with a class mapping 1:40 that would score the wrong classes. A map of
    mostly bundled names (a fine-tuned model) still gets the note."""
    import numpy as np

    from claire.claire_plugin.core.accuracy import legend_conflict_note
    from claire.claire_plugin.core.legend import mostly_bundled
    from claire.tests.fixtures.helpers import write_raster

    unnamed = write_raster(str(tmp_path / "labels.tif"), np.full((1, 8, 8), 40, np.uint8))
    whu = [{"value": 10 * (i + 1), "name": n} for i, n in
           enumerate(["farmland", "city", "village", "water", "forest", "road", "others"])]
    assert not mostly_bundled([c["name"] for c in whu]) and legend_conflict_note(whu, unnamed, "CLASS_MAPPING") is None
    tuned = [{"value": 1, "name": "trees"}, {"value": 2, "name": "water"}, {"value": 3, "name": "my crops"}]
    assert mostly_bundled([c["name"] for c in tuned])
    assert "class mapping 1:2" in legend_conflict_note(tuned, unnamed, "CLASS_MAPPING")
