"""Keeping input folders free of GDAL's PAM sidecars (FILE.aux.xml).

GDAL's persistent auxiliary metadata (PAM) saves statistics and histograms computed on a dataset as
FILE.aux.xml next to it when the dataset is closed (a VRT gets them written into itself, PAM or not). CLAIRE
never computes statistics through GDAL on its inputs, but QGIS does whenever it loads a raster as a layer
(its renderer's contrast stretch). So the Processing algorithms never have QGIS load an input given as a file
(processing.common.RasterFileParameter, raster_path), and where CLAIRE itself has QGIS open an input layer, or
reads inputs for the dock's fit check, `pam_off()` turns PAM off in that thread for the block. Outputs are
written outside such blocks (the class map keeps its category names in its own sidecar, core.io.writer).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

PAM = "GDAL_PAM_ENABLED"


@contextmanager
def pam_off() -> Iterator[None]:
    """GDAL's PAM off in this thread for the block (thread-local: other threads, outputs written elsewhere,
    are not affected)."""
    with _pam("NO"):
        yield


@contextmanager
def pam_on() -> Iterator[None]:
    """GDAL's PAM on in this thread for the block, even where the user turned it off with GDAL_PAM_ENABLED=NO:
    a GeoTIFF's category names live in its sidecar (reading them writes nothing; core.io.writer writes a class
    map's)."""
    with _pam("YES"):
        yield


@contextmanager
def _pam(value: str) -> Iterator[None]:
    try:
        from osgeo import gdal
    except ImportError:  # rasterio alone: its Env is scoped to the block
        import rasterio

        with rasterio.Env(**{PAM: value}):
            yield
        return
    old = gdal.GetThreadLocalConfigOption(PAM, None)
    gdal.SetThreadLocalConfigOption(PAM, value)
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption(PAM, old)
