"""GDAL errors that do not raise: GDAL writes a GeoTIFF's last blocks and its sidecar when the file is closed or
flushed, and a failure there (a full disk, a file-size limit, a folder removed) only signals an error, which
rasterio logs and GDAL's Python bindings keep as the thread's last error; the file is left cut short."""
from __future__ import annotations

import contextlib
import logging
import re
import threading
from typing import Iterator, List

_LOGGER = "rasterio._env"
#: What a failed write says (GDAL and libtiff); other errors signalled meanwhile (PROJ without its database) are
#: not the file's and are left to their own checks.
_WRITE_FAILED = re.compile(r"write|no space|too large|disk|quota|i/o|auxiliary information|no such file|"
                           r"read-only|permission denied|flush", re.IGNORECASE)


_LEVEL_LOCK = threading.Lock()
_USERS = {"n": 0, "level": logging.NOTSET}


class _Collect(logging.Handler):
    def __init__(self, into: List[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into
        self.thread = threading.get_ident()  # GDAL's errors are per thread: another thread's are not this write's

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        text = record.getMessage()
        if "signalled an error" in text:
            message = text.split("msg=", 1)[-1].strip("'\"")
            if _WRITE_FAILED.search(message):
                self.into.append(message)


@contextlib.contextmanager
def gdal_failures() -> Iterator[List[str]]:
    """Collect the GDAL errors of failed writes signalled in this block: rasterio's, through its log inside a
    rasterio.Env, and those of GDAL's Python bindings where they share GDAL with rasterio."""
    import rasterio

    found: List[str] = []
    logger = logging.getLogger(_LOGGER)
    handler = _Collect(found)
    try:
        from osgeo import gdal
    except ImportError:  # pragma: no cover - GDAL's bindings come with QGIS and the venv
        gdal = None
    if gdal is not None:
        gdal.ErrorReset()
    with _LEVEL_LOCK:  # writers in several threads: the first lowers rasterio's log level, the last restores it
        if not _USERS["n"]:
            _USERS["level"] = logger.level
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
        _USERS["n"] += 1
    logger.addHandler(handler)
    try:
        with rasterio.Env():
            yield found
    finally:
        logger.removeHandler(handler)
        with _LEVEL_LOCK:
            _USERS["n"] -= 1
            if not _USERS["n"]:
                logger.setLevel(_USERS["level"])
        if gdal is not None and gdal.GetLastErrorType() >= gdal.CE_Failure and gdal.GetLastErrorMsg():
            message = gdal.GetLastErrorMsg()
            if message not in found and _WRITE_FAILED.search(message):
                found.append(message)
