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
