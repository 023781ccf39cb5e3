"""QA round 13 (QGIS users on Windows and macOS), simulated on Linux: consoles in another code page, Windows'
ctypes, and files QGIS or a spreadsheet holds open."""
from __future__ import annotations

import io
import sys


def test_a_cp1252_console_prints_names_it_cannot_encode_as_escapes(tmp_path, monkeypatch):
    from claire.claire_plugin.cli.main import main
    from claire.tests.fixtures.helpers import make_tiny_checkpoint, tiny_card

    classes = [dict(c) for c in tiny_card()["classes"]]
    classes[0]["name"] = "Forêt 森林"
    path = make_tiny_checkpoint(str(tmp_path / "m.safetensors"), classes=classes)
    raw = io.BytesIO()
    console = io.TextIOWrapper(raw, encoding="cp1252", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", console)
    assert main(["info", path]) == 0
    console.flush()
    text = raw.getvalue().decode("cp1252")
    assert "Forêt \\u68ee\\u6797" in text


def test_diagnostics_survive_windows_ctypes(monkeypatch):
    """On Windows ctypes.CDLL(None) raises TypeError (CPython gh-83424): the Diagnostics report crashed."""
    import ctypes

    from claire.claire_plugin import deps

    def windows_cdll(name, *args, **kwargs):
        if name is None:
            raise TypeError("argument of type 'NoneType' is not iterable")
        return real(name, *args, **kwargs)

    real = ctypes.CDLL
    monkeypatch.setattr(ctypes, "CDLL", windows_cdll)
    assert deps.blas_in_program() is None


def test_an_output_open_in_another_program_on_windows_is_named_and_leaves_nothing(tmp_path, monkeypatch):
    """Windows cannot replace a file another program holds open (a QGIS layer showing it, a spreadsheet): the
    message blamed the folder's permissions and free space, and the roll-back left a `.partial.backup` beside
    the map that every later run took for another run's."""
    import os

    import claire.claire_plugin.core.io.atomic as atomic
    from claire.claire_plugin.core.errors import ClaireError

    first, second = tmp_path / "map.tif", tmp_path / "report.json"
    first.write_bytes(b"old map")
    second.write_text("old report", encoding="utf-8")
    real = os.replace

    def locked(src, dst, *args, **kwargs):
        if os.path.abspath(dst) == str(second):
            raise PermissionError(13, "[WinError 5] Access is denied", str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic, "WINDOWS", True)
    monkeypatch.setattr(atomic.os, "replace", locked)
    try:
        with atomic.OutputSet() as files:
            files.add_text(str(first), "new map", "land-cover map")
            files.add_text(str(second), "new report", "report")
            files.commit()
    except ClaireError as exc:
        message = str(exc)
    else:
        raise AssertionError("the commit did not fail")
    assert "open in another program" in message and "remove the QGIS layer" in message
    assert first.read_bytes() == b"old map" and second.read_text(encoding="utf-8") == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "report.json"]


class _Kernel32:
    """Windows' process calls as ctypes would give them, for one live and one finished process."""

    def __init__(self, alive: int, ended: int) -> None:
        self.alive, self.ended, self.closed = alive, ended, 0

    def OpenProcess(self, access, inherit, pid):  # noqa: N802 - Windows' name
        self.error = 0 if pid in (self.alive, self.ended) else 87  # ERROR_INVALID_PARAMETER: no such process
        return 0 if self.error else pid

    def GetExitCodeProcess(self, handle, code):  # noqa: N802
        code._obj.value = 259 if handle == self.alive else 0
        return 1

    def CloseHandle(self, handle):  # noqa: N802
        self.closed += 1
        return 1


class _Denied:
    def OpenProcess(self, access, inherit, pid):  # noqa: N802
        return 0


def test_windows_tells_a_killed_runs_process_from_a_live_one():
    """A run killed on Windows (End task, a closed console) left its temporaries for ever, and every later run
    warned of "another CLAIRE run" writing the map: the process was taken as alive whatever it was."""
    from claire.claire_plugin.core.io.atomic import _windows_pid_alive

    k32 = _Kernel32(alive=4242, ended=4343)
    error = lambda: k32.error  # noqa: E731
    assert _windows_pid_alive(4242, k32, error) is True
    assert _windows_pid_alive(4343, k32, error) is False  # exited: its exit code is not STILL_ACTIVE
    assert _windows_pid_alive(999999, k32, error) is False  # no such process
    assert k32.closed == 2
    assert _windows_pid_alive(7, _Denied(), lambda: 5) is True  # another user's process: alive
