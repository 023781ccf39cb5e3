"""GDAL's Python error mode for a block of the plugin's code, given back afterwards.

The osgeo modules are shared with QGIS and every other plugin in the process, whose code expects the mode it
chose (GDAL 3.x returns None on a failure unless exceptions were turned on). The plugin's OGR and GDAL calls
that need exceptions run inside `gdal_exceptions()` (or a function decorated with `with_gdal_exceptions`), so
that a training or an accuracy run in QGIS leaves the mode as it found it.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def gdal_exceptions() -> Iterator[None]:
    """Within the block, gdal, ogr and osr raise RuntimeError on errors; the modes before it come back after."""
    from osgeo import gdal, ogr, osr

    turned_on = [m for m in (gdal, ogr, osr) if not m.GetUseExceptions()]
    for m in turned_on:
        m.UseExceptions()
    try:
        yield
    finally:
        for m in reversed(turned_on):  # GDAL 3.6 keeps the modes' error handlers on a stack: last in, first out
            try:
                m.DontUseExceptions()
            except RuntimeError:  # someone else turned a mode on meanwhile: leave the stack as it is
                break


def with_gdal_exceptions(fn: F) -> F:
    """Decorator: `fn` runs inside gdal_exceptions()."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with gdal_exceptions():
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_gdal() -> Iterator[None]:
    """Within the block GDAL prints nothing (its errors still reach the caller as return values or exceptions)."""
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()
