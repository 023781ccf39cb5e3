"""QGIS style files (.qml) beside a class raster: QGIS applies one to the file whenever it opens it. Every run
writes the map's (its classes, names and colours only: a GeoTIFF's colour table has 256 entries, and its category
names live in an .aux.xml QGIS ignores when GDAL_PAM_ENABLED=NO), and a style an earlier run left for other
classes, which would draw the new map with the wrong names and colours, is replaced."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple


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


def style_classes(classes: List[dict], colors: Dict[int, tuple]) -> List[dict]:
    """`classes` (value, name) with their colour "#rrggbb" from `colors` {value: (r, g, b)}; grey where none."""
    return [{"value": int(c["value"]), "name": str(c["name"]),
             "color": "#{:02x}{:02x}{:02x}".format(*colors.get(int(c["value"]), (128, 128, 128))[:3])}
            for c in classes]


def palette_style(classes: List[dict]) -> str:
    """A QGIS raster style (.qml text): a paletted renderer of `classes` (value, name, colour "#rrggbb"),
    nearest-neighbour resampling, other values (nodata) not drawn."""
    root = ET.Element("qgis", {"version": "3.22.0", "styleCategories": "AllStyleCategories"})
    pipe = ET.SubElement(root, "pipe")
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(provider, "resampling", {"enabled": "false", "zoomedInResamplingMethod": "nearestNeighbour",
                                           "zoomedOutResamplingMethod": "nearestNeighbour", "maxOversampling": "2"})
    renderer = ET.SubElement(pipe, "rasterrenderer", {"type": "paletted", "band": "1", "opacity": "1",
                                                      "alphaBand": "-1", "nodataColor": ""})
    palette = ET.SubElement(renderer, "colorPalette")
    for c in sorted(classes, key=lambda c: int(c["value"])):
        ET.SubElement(palette, "paletteEntry", {"value": str(int(c["value"])), "label": str(c["name"]),
                                                "color": str(c["color"]).lower(), "alpha": "255"})
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    ET.SubElement(root, "blendMode").text = "0"
    body = ET.tostring(root, encoding="unicode")
    return f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n"


def write_class_style(raster: str, classes: List[dict]) -> Optional[str]:
    """Write the map's paletted style beside `raster` (`classes`: value, name, colour), so QGIS draws the file with
    its classes however it is opened. A paletted style of the same classes (value, name) is kept (its colours
    may be the user's), one of other classes replaced and said; a style of another kind (the user's own) is
    left alone and said. Returns what to tell the user, or None."""
    from .atomic import temp_name

    qml = style_path(raster)
    said = None
    if os.path.isfile(qml):
        palette = palette_of(qml)
        if palette is None:  # the user's own style (or a file no style): theirs to keep, but QGIS will apply it
            return (f"warning: kept {qml}, a style beside the map that is no class palette: QGIS draws the map with "
                    f"it (not with its classes' names and colours); delete or rename it to get the class style")
        want = sorted((int(c["value"]), str(c["name"])) for c in classes)
        if sorted(palette) == want:
            return None
        shown = ", ".join(f"{v} {name}" for v, name in sorted(palette)[:4]) + (", ..." if len(palette) > 4 else "")
        said = (f"replaced {qml}: the style an earlier run left beside the map ({shown}), whose classes are not this "
                f"map's; QGIS would have drawn the new map with it")
    tmp = temp_name(qml, ".qml")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(palette_style(classes))
        os.replace(tmp, qml)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        stale = " (the one there is an earlier run's, of other classes: delete it)" if said else ""
        return f"warning: could not write the map's QGIS style {qml} ({exc}){stale}"
    return said
