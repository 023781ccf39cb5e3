"""QGIS style files (.qml) beside a class raster: QGIS applies one to the file whenever it opens it, so a style an
earlier run left for other classes draws a new map with the wrong names and colours."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import List, Optional, Tuple


def style_path(raster: str) -> str:
    """The style file QGIS reads beside `raster` (same name, .qml)."""
    return os.path.splitext(raster)[0] + ".qml"


def palette_of(qml: str) -> Optional[List[Tuple[int, str]]]:
    """(value, label) of a paletted style's entries; None when the file is no paletted raster style."""
    try:
        root = ET.parse(qml).getroot()
    except (ET.ParseError, OSError):
        return None
    entries = [(e.get("value"), e.get("label") or "") for e in root.iter("paletteEntry")]
    try:
        return [(int(float(v)), label) for v, label in entries] if entries else None
    except (TypeError, ValueError):
        return None


def drop_stale_style(raster: str, classes: List[dict]) -> Optional[str]:
    """Remove the paletted style beside `raster` when its classes are not `classes` (value, name) and say so;
    None when there is none or it fits. A style of other kinds (not paletted) is left alone."""
    qml = style_path(raster)
    if not os.path.isfile(qml):
        return None
    palette = palette_of(qml)
    want = sorted((int(c["value"]), str(c["name"])) for c in classes)
    if palette is None or sorted(palette) == want:
        return None
    try:
        os.remove(qml)
    except OSError as exc:
        return (f"warning: {qml} beside the map is the style of an earlier run's classes, and QGIS will draw this map "
                f"with it; it could not be removed ({exc}): delete it")
    shown = ", ".join(f"{v} {name}" for v, name in sorted(palette)[:4]) + (", ..." if len(palette) > 4 else "")
    return (f"removed {qml}: the style an earlier run left beside the map ({shown}), whose classes are not this "
            f"map's; QGIS would have drawn the new map with it")
