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


def test_commands_to_paste_are_quoted_for_this_systems_shell(monkeypatch):
    """cmd.exe keeps single quotes as part of a name: `--points 'C:\\maps\\pts.gpkg'` named no file; and the
    install command put QGIS's `C:\\Program Files\\QGIS 3.34\\bin\\python3.exe` unquoted into the line."""
    import claire.claire_plugin.deps as deps
    from claire.models.quoting import shell_quote

    assert shell_quote("/home/John Smith/pts.gpkg") == "'/home/John Smith/pts.gpkg'"
    monkeypatch.setattr("os.name", "nt")
    assert shell_quote(r"C:\maps\pts.gpkg") == r"C:\maps\pts.gpkg"
    assert shell_quote(r"C:\Program Files\QGIS 3.34\bin\python3.exe") == r'"C:\Program Files\QGIS 3.34\bin\python3.exe"'
    monkeypatch.undo()
    monkeypatch.setattr(deps, "find_python", lambda: "/opt/QGIS 3.34/bin/python3")
    monkeypatch.setattr(deps, "profile_dir", lambda: "/home/Jürgen Müller/.local/share/QGIS/QGIS3/profiles/default")
    hint = deps._deps_command()
    assert "'/opt/QGIS 3.34/bin/python3' -m claire.claire_plugin.deps install --profile " \
           "'/home/Jürgen Müller/.local/share/QGIS/QGIS3/profiles/default'" in hint


def test_output_names_differing_in_case_are_one_file_where_the_system_says_so(tmp_path, monkeypatch):
    import claire.claire_plugin.core.io.raster_io as rio

    a, b = str(tmp_path / "out" / "Map.tif"), str(tmp_path / "out" / "map.tif")
    monkeypatch.setattr(rio, "CASE_INSENSITIVE", False)
    assert not rio.same_file(a, b)
    monkeypatch.setattr(rio, "CASE_INSENSITIVE", True)
    assert rio.same_file(a, b) and not rio.same_file(a, str(tmp_path / "out" / "map2.tif"))


VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                               12000.
Pages active:                            400000.
Pages inactive:                          150000.
Pages speculative:                         3000.
Pages throttled:                              0.
Pages wired down:                        200000.
Pages purgeable:                          10000.
"""


def test_macos_memory_is_read_from_vm_stat():
    """macOS has neither /proc/meminfo nor GlobalMemoryStatusEx: no run was planned against the memory there."""
    from claire.claire_plugin.core.runtime.resources import _macos_available

    assert _macos_available(VM_STAT) == 16384 * (12000 + 150000 + 3000 + 10000)
    assert _macos_available("nothing useful") is None


def test_install_finds_the_profile_where_qgis_looks_on_each_system(monkeypatch, tmp_path):
    """`install` on macOS or Windows reported success and linked the plugin into ~/.local/share, where QGIS there
    never looks."""
    import os

    from claire.claire_plugin.install import default_profile_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData" / "Roaming"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    tail = os.path.join("QGIS", "QGIS3", "profiles", "default")
    assert default_profile_dir("linux") == os.path.join(str(tmp_path), ".local", "share", tail)
    assert default_profile_dir("darwin") == os.path.join(str(tmp_path), "Library", "Application Support", tail)
    assert default_profile_dir("win32") == os.path.join(str(tmp_path), "AppData", "Roaming", tail)
