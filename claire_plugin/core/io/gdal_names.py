"""GDAL dataset names that are not plain file paths, and the files on disk behind them.

QGIS layers and GDAL users name rasters inside archives (``/vsizip/scene.zip/B04.tif``), pages and
subdatasets of a file (``GTIFF_DIR:2:stack.tif``, ``SENTINEL2_L2A:/data/MTD_MSIL2A.xml:10m:EPSG_32633``,
``NETCDF:"file.nc":VV``) and remote files (``/vsicurl/https://...``). Such names are valid inputs although
``os.path.exists`` says no, and an output must never overwrite the file behind one of them.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple

from ....models.quoting import quoted

_SUBDATASET = re.compile(r"^([A-Za-z][A-Za-z0-9_]+):(.+)$")
_REMOTE = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "/vsihdfs",
           "/vsiwebhdfs")


def source_file(text: str) -> str:
    """The file of a QGIS data source text (or of an output not written yet): the longest part before a `|` (QGIS's
    separator of a source's options, `labels.gpkg|layername=x`) that exists, the whole text first (a file name may
    hold a `|`); else the text up to the first `|` that starts an option (`|name=`)."""
    parts = text.split("|")
    for k in range(len(parts), 0, -1):
        if os.path.exists("|".join(parts[:k])):
            return "|".join(parts[:k])
    option = re.search(r"\|[A-Za-z_]+=", text)
    return text[:option.start()] if option else text


def is_gdal_name(name: str) -> bool:
    """True for a /vsi... path or a DRIVER:... subdataset name (not for a Windows drive such as C:)."""
    return name.startswith("/vsi") or (bool(_SUBDATASET.match(name)) and not re.match(r"^[A-Za-z]:[\\/]", name))


def is_remote(name: str) -> bool:
    """True for a name GDAL reads over the network (nothing local to check)."""
    return any(name.startswith(p) for p in _REMOTE)


def local_files(name: str) -> List[str]:
    """The files on disk that hold the dataset `name` (the name itself for a plain path; the archive for
    /vsizip/ and friends; the file inside a DRIVER:file:part name). Empty when none can be found."""
    if not is_gdal_name(name):
        return [name]
    if name.startswith("/vsi"):
        if is_remote(name) or "/" not in name[1:]:
            return []
        inner = name[name.index("/", 1) + 1:]  # after "/vsizip/": relative, or absolute with a leading /
        if inner.startswith("{"):  # /vsizip/{archive}/member
            inner = inner[1:].split("}", 1)[0]
        return local_files(inner) if inner.startswith("/vsi") else _existing_prefix(inner)
    found = []
    for part in _SUBDATASET.match(name).group(2).split(":"):
        part = part.strip('"')
        if part and os.path.isfile(part):
            found.append(part)
        elif part and is_gdal_name(part):
            found.extend(local_files(part))
    if not found:  # a quoted path may itself contain ':' (Windows drives)
        m = re.search(r'"([^"]+)"', name)
        if m and os.path.isfile(m.group(1)):
            found.append(m.group(1))
    return found


def _existing_prefix(path: str) -> List[str]:
    """[the longest leading part of `path` that is an existing file], or []."""
    parts = path.split("/")
    for k in range(len(parts), 0, -1):
        p = "/".join(parts[:k])
        if p and os.path.isfile(p):
            return [p]
    return []


def missing_message(name: str, role: str) -> Optional[str]:
    """Problem-and-fix text when the file behind `name` is missing, else None (remote names are left to
    GDAL)."""
    if not is_gdal_name(name):
        if not os.path.exists(name):
            return f"the {role} raster {quoted(name)} does not exist; check the path"
        return None
    if is_remote(name) or local_files(name):
        return None
    m = re.search(r'"([^"]+)"', name)
    if m and os.path.isdir(m.group(1)):
        return folder_store_message(m.group(1), role)
    return (f"the {role} raster {quoted(name)} is a GDAL dataset name, but the file it refers to does not exist; "
            f"check the path inside the name")


def subdatasets(meta: dict) -> List[Tuple[str, str]]:
    """(name, description) of each subdataset in GDAL's SUBDATASETS metadata `meta`, in GDAL's order (rasterio's
    own list is ordered otherwise: names went beside other subdatasets' descriptions)."""
    return [(meta[f"SUBDATASET_{i}_NAME"], meta.get(f"SUBDATASET_{i}_DESC", "").strip())
            for i in range(1, len(meta) + 1) if f"SUBDATASET_{i}_NAME" in meta]


def folder_store_message(path: str, role: str) -> str:
    """Problem and fix for a folder given as the `role` raster: a store GDAL reads (Zarr) is read from a file made
    of it; anything else is no raster."""
    try:
        from osgeo import gdal

        store = gdal.OpenEx(path, gdal.OF_RASTER)
        driver = store.GetDriver().ShortName if store is not None else None
        meta = (store.GetMetadata("SUBDATASETS") or {}) if store is not None else {}
    except Exception:  # noqa: BLE001 - GDAL raises in exceptions mode for a folder it cannot read
        driver, meta = None, {}
    if not driver:
        return f"the {role} path {quoted(path)} is a folder; give a raster file"
    names = [name for name, _ in subdatasets(meta)]
    bands = sorted((n for n in names if re.search(r"band\d+$", n, re.I)),
                   key=lambda n: int(re.search(r"(\d+)$", n).group(1))) or names
    example = " ".join(f"'{n}'" for n in bands[:2]) + (" ..." if len(bands) > 2 else "")
    return (f"the {role} path {quoted(path)} is a {driver} store (a folder), which CLAIRE does not read directly; "
            + (f"stack its band arrays, in band order, into a VRT and give that: gdalbuildvrt -separate {role}.vrt "
               f"{example} (gdalinfo lists them)" if bands else f"make a GeoTIFF of it: gdal_translate {path} "
                                                                  f"{role}.tif"))
