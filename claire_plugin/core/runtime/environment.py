"""The environment a run needs beyond the Python packages: PROJ's database (coordinate systems are read
through it) and a writable cache folder. Checked once, cheaply; each problem is reported as such (a warning:
rasters whose files spell out their CRS still work without the database)."""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Optional

#: Where PROJ's database usually lives (a system PROJ; rasterio and pyproj wheels bundle their own).
_PROJ_CANDIDATES = ("/usr/share/proj", "/usr/local/share/proj", "/opt/homebrew/share/proj")


def _proj_folders() -> list:
    """Folders holding a proj.db, the wheel's first (rasterio/proj_data, pyproj's data dir)."""
    found = []
    try:
        import rasterio
        found.append(os.path.join(os.path.dirname(rasterio.__file__), "proj_data"))
    except ImportError:
        pass
    return [d for d in found + list(_PROJ_CANDIDATES) if os.path.isfile(os.path.join(d, "proj.db"))]


@lru_cache(maxsize=1)
def proj_problem() -> Optional[str]:
    """Why GDAL/PROJ cannot read coordinate systems here (its proj.db is not found), or None."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        CRS.from_epsg(4326)
        return None
    except CRSError as exc:
        if "proj.db" not in str(exc):
            return None
    told = ", ".join(f"{k}={os.environ[k]}" for k in ("PROJ_DATA", "PROJ_LIB") if os.environ.get(k)) or \
        "PROJ_DATA is not set"
    folders = _proj_folders()
    where = f"set PROJ_DATA={folders[0]}" if folders else "set PROJ_DATA to the folder holding proj.db"
    return (f"PROJ's database proj.db cannot be found ({told}): coordinate systems are read only as far as the "
            f"files spell them out, and one named by its EPSG code alone may be refused or misread; {where} (or "
            f"unset a PROJ_DATA / PROJ_LIB that points elsewhere), or reinstall PROJ (apt install proj-data)")


def writable_folder_problem(folder: str, what: str, variable: str) -> Optional[str]:
    """Why `folder` (created if missing) cannot be written, naming `variable` that moves it; None when it can."""
    probe = folder
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.isdir(probe) and os.access(probe, os.W_OK):
        return None
    return (f"the {what} folder {folder} cannot be written ({probe} is read-only: a read-only home?); set "
            f"{variable} to a writable folder")


def state_gdal_error_mode() -> bool:
    """In a command-line process: say GDAL's error mode out loud without changing it, so that GDAL 3.9 and later
    do not print, in the middle of a run, that the default changes in GDAL 4.0 ("Neither gdal.UseExceptions() nor
    gdal.DontUseExceptions() has been explicitly called"). Returns True when the default was stated; a mode
    someone already chose is left as it is. Not called inside QGIS, whose GDAL state other plugins share."""
    try:
        from osgeo import gdal
    except ImportError:
        return False
    if gdal.GetUseExceptions():
        return False
    gdal.DontUseExceptions()
    return True
