"""Outputs committed together or not at all: every file of a run (rasters, summaries, reports, checkpoints) is
written to a hidden temporary name in its own folder and renamed over its final name only when all are
complete (`OutputSet`). A failure while writing or renaming removes every temporary and puts back any file
that was already replaced, so earlier files stay intact and no new file appears; a Ctrl+C, SIGTERM or
SIGHUP (the command line turns both into the same interruption) cleans up the same way.

Temporary names are `.NAME.HOST-PID-RANDOM.partial[.EXT]`: a later run writing NAME removes those of its
own machine whose process is gone (a run killed with SIGKILL), and never one of a live process.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import socket
import uuid
import zlib
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError

_TEMP = re.compile(r"\.(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-[0-9a-f]{6}\.partial(\..*)?$")


def _host_tag() -> str:
    """Four hex digits naming this machine (temporaries of other machines sharing a folder are left alone)."""
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes, read in 1 MB pieces."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def temp_name(path: str, ext: str = "") -> str:
    """The hidden temporary name a file is written to before it is renamed to `path`; `ext` is appended
    (e.g. ".tif", so that GDAL recognises the format)."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:6]}.partial{ext}")


#: Windows (signal 0 there is CTRL_C_EVENT, and a file open in another program cannot be replaced).
WINDOWS = os.name == "nt"


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs."""
    if WINDOWS:
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _windows_pid_alive(pid: int, kernel32=None, last_error=None) -> bool:
    """Whether process `pid` runs, asked of Windows (OpenProcess, then its exit code); True when it cannot tell,
    so that nothing of a live run is removed."""
    import ctypes

    still_active, no_such_process = 259, 87  # STILL_ACTIVE; ERROR_INVALID_PARAMETER: no process has that id
    try:
        k32 = kernel32 or _kernel32()
        handle = k32.OpenProcess(0x1000, False, int(pid))  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return (last_error or ctypes.get_last_error)() != no_such_process
        try:
            code = ctypes.c_ulong()
            if not k32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == still_active
        finally:
            k32.CloseHandle(handle)
    except (AttributeError, OSError, ValueError):
        return True


def _kernel32():
    """Windows' kernel32 with the types of the three process calls (a HANDLE is pointer-sized on 64-bit Windows)."""
    import ctypes
    from ctypes import wintypes

    k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    k32.OpenProcess.restype = wintypes.HANDLE
    k32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    k32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    k32.CloseHandle.argtypes = (wintypes.HANDLE,)
    return k32


def _temporaries(folder: str) -> List[Tuple[str, str, int]]:
    """(file name, the final name it is written for, process id) of this machine's temporaries in `folder`."""
    host, found = _host_tag(), []
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        m = _TEMP.search(name) if name.startswith(".") else None
        if m and m["host"] == host:
            found.append((name, name[1:m.start()], int(m["pid"])))
    return found


def remove_stale_temporaries(path: str) -> List[str]:
    """Remove the temporaries in the folder of `path` left by killed runs of this machine (their process is
    gone), whatever file they were for: a run killed while writing a confidence raster left it hidden beside the
    maps, and the next run without one never removed it. Returns their paths."""
    folder = os.path.dirname(os.path.abspath(path))
    removed = []
    for name, _final, pid in _temporaries(folder):
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
            except OSError:
                pass
    return removed


def other_writers(path: str) -> List[int]:
    """Process ids of other live runs of this machine writing `path` now (their temporaries of it exist)."""
    folder, base = os.path.split(os.path.abspath(path))
    return sorted({pid for _name, final, pid in _temporaries(folder)
                   if final == base and pid != os.getpid() and _pid_alive(pid)})


def write_error(path: str, exc: BaseException, role: str = "") -> ClaireError:
    """A ClaireError for a failed write of `path` (the `role` output): says so plainly when the disk is full."""
    what = f"the {role} {quoted(path)}" if role else quoted(path)
    text = str(exc) or type(exc).__name__
    low = text.lower()
    full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "no space left" in low \
        or "disk full" in low or "free disk space" in low or "os error 28" in low or _folder_full(path)
    if full:
        return ClaireError(f"writing {what} failed: the disk is full ({text}); free some disk space or choose "
                           f"an output folder on another disk. Nothing was written and any earlier file at that "
                           f"path is unchanged")
    if WINDOWS and isinstance(exc, PermissionError):
        return ClaireError(f"writing {what} failed ({text}): on Windows a file open in another program cannot be "
                           f"replaced; remove the QGIS layer that shows it (or close it in the program that has it "
                           f"open) and run again, or give another output name. Nothing was written and any earlier "
                           f"file at that path is unchanged")
    return ClaireError(f"writing {what} failed ({text}); check that the folder is writable and has free space. "
                       f"Nothing was written and any earlier file at that path is unchanged")


def _folder_full(path: str) -> bool:
    """Whether the disk holding `path`'s folder has (almost) no room left: a writer that failed without saying
    why (GDAL's CreateDataSource) failed for this, most likely."""
    import shutil

    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < 1024 * 1024
    except OSError:
        return False


def _is_write_failure(exc: BaseException) -> bool:
    """Whether a writer's exception is a failed write: OSError, GDAL's RuntimeError in exceptions mode, or
    safetensors' SafetensorError ("I/O error: No space left on device (os error 28)"), matched by name."""
    return isinstance(exc, (OSError, RuntimeError)) or type(exc).__name__ == "SafetensorError"


#: example file names by extension and by a word of the output's role, for "give a file name such as ..."
_EXT_EXAMPLES = {".tif": "landcover.tif", ".tiff": "landcover.tiff", ".safetensors": "model.safetensors",
                 ".json": "report.json", ".gpkg": "points.gpkg", ".md": "report.md", ".html": "report.html",
                 ".htm": "report.htm", ".csv": "table.csv", ".resume": "model.safetensors.resume"}
_ROLE_EXAMPLES = (("resume", "model.safetensors.resume"), ("checkpoint", "model.safetensors"),
                  ("twin", "report.md"), ("json", "report.json"), ("summary", "summary.json"),
                  ("report", "report.json"), ("places", "places.gpkg"), ("polygons", "polygons.gpkg"),
                  ("points", "points.gpkg"), ("geopackage", "output.gpkg"), ("confidence", "confidence.tif"))


def example_name(path: str, role: str = "") -> str:
    """A file name to suggest for the `role` output given as `path` (e.g. "report.json" for a JSON report,
    "model.safetensors" for a checkpoint, "landcover.tif" for a map): the role's kind of file, with the
    extension of `path` when it has a known one."""
    ext = os.path.splitext(str(path or "").rstrip("/\\"))[1].lower()
    low = (role or "").lower()
    name = next((n for word, n in _ROLE_EXAMPLES if word in low), None) or _EXT_EXAMPLES.get(ext, "landcover.tif")
    if ext in _EXT_EXAMPLES and not name.endswith(ext):
        name = os.path.splitext(name)[0] + ext
    return name


def folder_error(path: str, role: str = "") -> ClaireError:
    """The ClaireError for an output path that is an existing folder: names it and asks for a file name."""
    what = f"the {role} path" if role else "the output path"
    return ClaireError(f"{what} {quoted(path)} is a folder; give a file name such as "
                       f"{quoted(os.path.join(path, example_name(path, role)))}. Nothing was written and the folder "
                       f"is unchanged")


def refuse_folder(path: str, role: str = "") -> None:
    """Raise `folder_error` when `path` is an existing folder (or a link to one): an output never replaces one."""
    if os.path.isdir(path):
        raise folder_error(path, role)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


#: The final names committed since `forget_commits` (the command line reports them when interrupted afterwards).
_COMMITTED: List[str] = []


def forget_commits() -> None:
    """Start a new record of committed outputs (a command's start)."""
    _COMMITTED.clear()


def committed() -> List[str]:
    """The final names every OutputSet committed since `forget_commits`, in order."""
    return list(_COMMITTED)


@contextlib.contextmanager
def _signals_held():
    """On the main thread, hold SIGINT and SIGTERM until the block ends, then deliver them to their handlers (a
    Ctrl+C among the renames left some files new, some old and their backups behind); elsewhere no signal
    handler runs, so nothing to hold."""
    import signal
    import threading

    sigs = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or any(signal.getsignal(s) is None for s in sigs):
        yield  # (None: a handler set outside Python, as a host application's, which could not be put back)
        return
    caught: List[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum)) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


class OutputSet:
    """The outputs of one run: staged under temporary names, renamed together by `commit`, removed by `abort`.

    Used as a context manager, an exception inside the block aborts the set. Each staged entry is
    (temporary or None, final, role): None removes the final file at commit (a stale sidecar)."""

    def __init__(self) -> None:
        self._staged: List[Tuple[Optional[str], str, str]] = []

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:
            self.abort()

    def temp_for(self, final: str, role: str = "", ext: Optional[str] = None) -> str:
        """Stage `final` and return the temporary name to write it to (`ext` default: the final's extension)."""
        refuse_folder(final, role)
        remove_stale_temporaries(final)
        tmp = temp_name(final, os.path.splitext(final)[1] if ext is None else ext)
        self._staged.append((tmp, final, role))
        return tmp

    def adopt(self, tmp: str, final: str, role: str = "") -> None:
        """Stage a temporary written by someone else (a GridWriter) to be renamed to `final`; a ClaireError
        (the temporary removed) when `final` is a folder."""
        if os.path.isdir(final):
            _remove_temporary(tmp)
            raise folder_error(final, role)
        self._staged.append((tmp, final, role))

    def drop_at_commit(self, final: str) -> None:
        """Remove `final` when the set is committed (a sidecar that would describe the old file)."""
        self._staged.append((None, final, ""))

    def write_with(self, final: str, write: Callable[[str], Any], role: str = "", ext: Optional[str] = None) -> str:
        """Stage `final` by calling `write(temporary path)`; a failed write is a ClaireError (disk full named)."""
        tmp = self.temp_for(final, role, ext)
        try:
            write(tmp)
        except Exception as exc:  # noqa: BLE001 - a failed write (full disk...) is named; anything else re-raised
            _remove_temporary(tmp)
            if not _is_write_failure(exc) or isinstance(exc, ClaireError):
                raise
            raise write_error(final, exc, role) from None
        return final

    def add_text(self, final: str, text: str, role: str = "") -> str:
        """Stage a text file with the content `text`; never over a binary file (a report named like a raster)."""
        refuse_binary(final, role)

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
        return self.write_with(final, write, role, "")

    def add_json(self, final: str, data: Any, role: str = "", **dump: Any) -> str:
        """Stage `data` as indented JSON (numpy values converted)."""
        return self.add_text(final, json.dumps(data, indent=2, default=json_default, **dump), role)

    def commit(self) -> None:
        """Rename every temporary over its final name. On a failure the files already replaced are put back,
        every temporary is removed and a ClaireError names the file (the disk-full message when it is); a final
        name that is a folder is refused before anything is renamed (a folder is never moved away)."""
        with _signals_held():
            self._commit()

    def _commit(self) -> None:
        moved: List[List] = []  # [final, backup, backup is a link (final still in place), final replaced]
        final, role = "", ""
        try:
            for _tmp, final, role in self._staged:
                refuse_folder(final, role)
            for tmp, final, role in self._staged:  # noqa: B007 - role names the file that failed
                backup, linked = _backup(final)
                moved.append([final, backup, linked, False])
                if tmp is not None:
                    os.replace(tmp, final)
                elif os.path.lexists(final):
                    os.remove(final)
                moved[-1][3] = True
        except BaseException as exc:
            _roll_back(moved)
            self.abort()
            if isinstance(exc, OSError):
                raise write_error(final, exc, role) from None
            raise
        _COMMITTED.extend(final for tmp, final, _ in self._staged if tmp is not None)
        for _, backup, _, _ in moved:
            if backup:
                _remove(backup)
        self._staged = []

    def abort(self) -> None:
        """Remove every temporary of the set (nothing is renamed)."""
        for tmp, _, _ in self._staged:
            if tmp is not None:
                _remove_temporary(tmp)
        self._staged = []


def _remove_temporary(tmp: str) -> None:
    """Remove a temporary and what was made beside it under its name (GDAL's .aux.xml, a writer's own .tmp)."""
    for p in [tmp] + glob.glob(glob.escape(tmp) + "?*"):
        _remove(p)


def _backup(final: str) -> Tuple[Optional[str], bool]:
    """(a hard link keeping the earlier `final`, True), or where links are not possible (the file itself renamed,
    False); (None, False) when there is none. A folder is never moved (IsADirectoryError)."""
    if not os.path.lexists(final):
        return None, False
    if os.path.isdir(final):
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", final)
    backup = temp_name(final, ".backup")
    try:
        os.link(final, backup, follow_symlinks=False)
        return backup, True
    except OSError:
        os.replace(final, backup)
        return backup, False


def _roll_back(moved: List[List]) -> None:
    """Put back every file a failed commit had replaced, removed or moved aside; remove what it had added. A
    final name never replaced (its rename failed: on Windows, a file open in QGIS) is left alone and its link
    removed, where renaming the link back would fail the same way and leave it beside the map."""
    for final, backup, linked, replaced in reversed(moved):
        try:
            if backup and (replaced or not linked):
                os.replace(backup, final)
            elif backup:
                _remove(backup)
            elif replaced and os.path.lexists(final):
                os.remove(final)
        except OSError:  # a backup that cannot be put back stays: the earlier file's only copy
            pass


def refuse_binary(path: str, role: str = "output") -> None:
    """ClaireError when `path` is an existing file that is not text (a raster, a checkpoint, a GeoPackage): a text
    output (report, JSON, HTML, CSV) never replaces one, whatever its name says."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError:  # none there, or a folder / unreadable file, which the writers' own checks name
        return
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text has NULs too
        what, other = f"the {role}" if role else "a text output", os.path.splitext(path)[0] + "_report.json"
        raise ClaireError(f"{what} would replace {quoted(path)}, which is not a text file (a raster, checkpoint or "
                          f"other data); choose another name, e.g. {quoted(other)}")


def require_suffix(path: Optional[str], suffixes: Sequence[str], role: str) -> None:
    """ClaireError, before any work, when the text output `path` (if given) does not end in one of `suffixes`
    (".json", ...) or would replace a binary file (refuse_binary)."""
    if not path:
        return
    root, ext = os.path.splitext(path)
    if ext.lower() not in suffixes:
        kinds = " or ".join(dict.fromkeys({".htm": "HTML"}.get(x, x[1:].upper()) for x in suffixes))
        raise ClaireError(f"the {role} {quoted(path)} does not end in {', '.join(suffixes)}; it is written as "
                          f"{kinds}, never over another kind of file: name it e.g. {quoted(root + suffixes[0])}")
    refuse_binary(path, role)


def write_text(path: str, text: str, role: str = "output") -> str:
    """Write `text` to `path` atomically (a set of one file); ClaireError when it cannot be written."""
    with OutputSet() as outputs:
        outputs.add_text(path, text, role)
        outputs.commit()
    return path


def json_default(o: Any) -> Any:
    """JSON for numpy scalars and arrays."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def write_json(path: str, data: Any, role: str = "output") -> str:
    """Write `data` as indented JSON to `path` atomically (numpy values converted)."""
    return write_text(path, json.dumps(data, indent=2, default=json_default), role)
