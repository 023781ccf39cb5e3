"""Messages quote a user's names and paths as written: repr() doubled every backslash of a Windows path."""
from __future__ import annotations

from pathlib import PureWindowsPath

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.io.writer import check_output_path
from claire.models.quoting import quoted


def test_a_windows_path_keeps_single_backslashes():
    assert quoted(r"C:\Users\anna\maps\out.tif") == r"'C:\Users\anna\maps\out.tif'"
    assert quoted(PureWindowsPath(r"D:\data\s2.tif")) == r"'D:\data\s2.tif'"


def test_accents_stay_and_what_does_not_print_shows():
    assert quoted("forêt dense") == "'forêt dense'"
    assert quoted("class\nname") == r"'class\nname'"
    assert quoted(3) == "3" and quoted(None) == "None"


def test_an_engine_message_names_the_path_as_given(tmp_path):
    folder = tmp_path / "a\\b"  # a backslash in a POSIX name: the character a Windows path is made of
    folder.write_text("x")
    try:
        check_output_path(str(folder / "map.tif"), [])
    except ClaireError as exc:
        assert "a\\b" in str(exc) and "a\\\\b" not in str(exc), str(exc)
    else:
        raise AssertionError("an output inside a file was accepted")
