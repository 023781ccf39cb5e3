"""Keeping input folders free of GDAL's PAM sidecars (FILE.aux.xml).

GDAL's persistent auxiliary metadata (PAM) saves statistics and histograms computed on a dataset as
FILE.aux.xml next to it when the dataset is closed. CLAIRE never computes statistics through GDAL on its
inputs, but QGIS does whenever it loads a raster as a layer (the default renderer's contrast stretch), and
`qgis_process` loads every raster parameter as a layer before any algorithm code runs: the sidecars are
written when the process exits. Two tools, both leaving the class map's own sidecar (its category names,
core.io.writer) alone:

- `pam_off()`: PAM off in this thread while a block opens or reads inputs (our reads, layers we load);
- `quiet_qgis_process(arguments)`: PAM off for a whole `qgis_process run claire:...` process, the only way
  to reach the layers qgis_process loads itself; a `GDAL_PAM_ENABLED` the user set wins.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional, Sequence

PAM = "GDAL_PAM_ENABLED"


@contextmanager
def pam_off() -> Iterator[None]:
    """GDAL's PAM off in this thread for the block (thread-local: other threads, outputs written elsewhere,
    are not affected)."""
    try:
        from osgeo import gdal
    except ImportError:  # rasterio alone: its Env is scoped to the block
        import rasterio

        with rasterio.Env(**{PAM: "NO"}):
            yield
        return
    old = gdal.GetThreadLocalConfigOption(PAM, None)
    gdal.SetThreadLocalConfigOption(PAM, "NO")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption(PAM, old)


def runs_claire_algorithm(arguments: Sequence[str]) -> bool:
    """True for a `qgis_process run claire:<algorithm> ...` command line (program name first)."""
    words = [str(a) for a in arguments[1:] if not str(a).startswith("-")]
    return len(words) >= 2 and words[0] == "run" and words[1].startswith("claire:")


def quiet_qgis_process(arguments: Sequence[str], environ: Optional[Mapping[str, str]] = None) -> bool:
    """Switch PAM off for this whole process when it is `qgis_process run claire:...` and the user did not set
    GDAL_PAM_ENABLED; returns whether it did. The class map keeps its category names (the writer turns PAM
    on for that file in its own thread)."""
    environ = os.environ if environ is None else environ
    if PAM in environ or not runs_claire_algorithm(arguments):
        return False
    from osgeo import gdal

    gdal.SetConfigOption(PAM, "NO")
    return True
