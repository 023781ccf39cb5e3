"""Training labels from the user's polygons or points (any OGR vector) or a label raster, on the optical grid.

Only labelled pixels are kept, as sparse arrays (row, col, class index, polygon group): pixels outside the
labels are *ignored*, never background. Every feature is rasterised on its own bounding window, so memory
follows the labelled area, never the raster's size. Problems with the labels stop the run with one
ClaireError each, naming the problem and the fix.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import clean_name, name_key, quoted
from ..errors import ClaireError
from ..io.gdal_mode import quiet_gdal, with_gdal_exceptions
from ..io.points import choose_layer, layer_transform, readable_text

IGNORE = 255
MIN_POLYGONS = 3


class MissingFieldError(ClaireError):
    """A field named for the labels is not in the layer; `role` says which: 'class' or 'name' (class names)."""

    def __init__(self, message: str, role: str) -> None:
        super().__init__(message)
        self.role = role


@dataclass
class ClassInfo:
    """One class of the user's labels: model channel `index`, value in the output raster `code`, `name`, and the
    colour the user gave it (`#rrggbb`; None: the base checkpoint's for that name, if any)."""

    index: int
    code: int
    name: str
    color: Optional[str] = None


@dataclass(frozen=True)
class Units:
    """What messages call the user's label features: polygons, or points for a point layer."""

    one: str
    many: str


POLYGONS, POINTS = Units("polygon", "polygons"), Units("point", "points")


def units_of(source: Optional[Dict[str, object]]) -> Units:
    """The units of a labels' `source` (LabelSet.source, a report's "labels"): points for a point layer."""
    return POINTS if (source or {}).get("geometry") == "point" else POLYGONS


def labels_noun(source: Optional[Dict[str, object]]) -> str:
    """What a card's or report's training labels were: "polygons", "points" or "a label raster"."""
    return "a label raster" if (source or {}).get("kind") == "raster" else units_of(source).many


@dataclass
class LabelPixels:
    """Sparse labelled pixels on the optical grid: rows, cols, class index and polygon group, one per pixel;
    `units`: what the groups are called in messages (points for a point layer)."""

    rows: np.ndarray
    cols: np.ndarray
    cls: np.ndarray
    group: np.ndarray
    units: Units = POLYGONS

    def __len__(self) -> int:
        return int(self.rows.size)

    def subset(self, keep: np.ndarray) -> "LabelPixels":
        """The pixels where the boolean (or index) array `keep` selects."""
        return LabelPixels(self.rows[keep], self.cols[keep], self.cls[keep], self.group[keep], self.units)

    @staticmethod
    def concat(parts: Sequence["LabelPixels"]) -> "LabelPixels":
        """All pixels of `parts` in one set (empty parts allowed)."""
        if not parts:
            return LabelPixels(*(np.zeros(0, t) for t in (np.int32, np.int32, np.uint8, np.int32)))
        return LabelPixels(*(np.concatenate([getattr(p, a) for p in parts]) for a in ("rows", "cols", "cls", "group")),
                           units=parts[0].units)


@dataclass
class Footprint:
    """Every pixel a polygon (group) covers, where its stored pixels are a sample of them (a polygon over the
    per-polygon cap): its bounding box and the mask in it, one bit per pixel. The split's buffer is measured from
    it, so that no training pixel lies inside, or near, the unsampled part of a validation polygon."""

    group: int
    row0: int
    col0: int
    shape: Tuple[int, int]
    bits: np.ndarray
    count: int = 0  # covered pixels

    @staticmethod
    def of(group: int, rows: np.ndarray, cols: np.ndarray) -> "Footprint":
        """The footprint of the pixels (rows, cols)."""
        r0, c0 = int(rows.min()), int(cols.min())
        shape = (int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1)
        mask = np.zeros(shape, bool)
        mask[rows - r0, cols - c0] = True
        return Footprint(int(group), r0, c0, shape, np.packbits(mask, axis=None), int(np.count_nonzero(mask)))

    def mask(self) -> np.ndarray:
        """The bounding box's mask [h, w] (True: covered)."""
        return self.rows(0, self.shape[0])

    def rows(self, start: int, stop: int, cols: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """The mask of the box's rows start..stop-1 (relative to the box) [stop - start, w], or of its columns
        cols[0]..cols[1]-1 there; only those rows are unpacked (a long road's box is hundreds of MB unpacked)."""
        h, w = self.shape
        start, stop = max(0, start), min(h, stop)
        if stop <= start:
            return np.zeros((0, w if cols is None else cols[1] - cols[0]), bool)
        first, last = start * w, stop * w  # bit range
        chunk = np.unpackbits(self.bits[first // 8:(last + 7) // 8])
        out = chunk[first % 8:first % 8 + (last - first)].reshape(stop - start, w).astype(bool)
        return out if cols is None else out[:, cols[0]:cols[1]]


    def covers(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Whether each pixel (rows, cols), relative to the box and inside it, is covered: read from the packed
        bits directly (no mask unpacked)."""
        bit = rows.astype(np.int64) * self.shape[1] + cols
        return ((self.bits[bit >> 3] >> (7 - (bit & 7))) & 1).astype(bool)

    def pixels(self) -> Tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the covered pixels, on the grid."""
        r, c = np.nonzero(self.mask())
        return (r + self.row0).astype(np.int64), (c + self.col0).astype(np.int64)


class _GridIndex:
    """Pixels (rows, cols) sorted by blocks of 256 x 256 px once, so that a footprint looks only at the pixels of
    the blocks its box meets (a check over every pixel per footprint took 34 s for 800 large polygons)."""

    BLOCK = 256

    def __init__(self, rows: np.ndarray, cols: np.ndarray) -> None:
        self.r_min = int(rows.min()) if rows.size else 0
        self.c_min = int(cols.min()) if cols.size else 0
        self.blocks_across = (int(cols.max()) - self.c_min) // self.BLOCK + 1 if cols.size else 1
        key = ((rows.astype(np.int64) - self.r_min) // self.BLOCK * self.blocks_across
               + (cols.astype(np.int64) - self.c_min) // self.BLOCK)
        self.order = np.argsort(key, kind="stable")
        self.keys = key[self.order]

    def around(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """Indices of the pixels in the blocks that meet rows row0..row1-1 and columns col0..col1-1 (a superset of
        the pixels there)."""
        B = self.BLOCK
        c_lo = max(0, (col0 - self.c_min) // B)
        c_hi = min(self.blocks_across - 1, (col1 - 1 - self.c_min) // B)
        if c_hi < c_lo or row1 <= row0:
            return np.zeros(0, np.int64)
        parts = []
        for br in range(max(0, (row0 - self.r_min) // B), max(-1, (row1 - 1 - self.r_min) // B) + 1):
            lo, hi = self.keys.searchsorted(np.array([br * self.blocks_across + c_lo,
                                                      br * self.blocks_across + c_hi + 1], np.int64))
            if hi > lo:
                parts.append(self.order[lo:hi])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _offsets(distance: float) -> Tuple[int, List[Tuple[int, int]]]:
    reach = int(math.floor(max(distance, 0.0) + 1e-6))
    offsets = [(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)
               if dy * dy + dx * dx <= distance * distance + 1e-6] or [(0, 0)]
    return reach, offsets


def _near_one(fp: Footprint, rows: np.ndarray, cols: np.ndarray, idx: np.ndarray, reach: int,
              offsets: List[Tuple[int, int]]) -> np.ndarray:
    """Of the pixels `idx`, those inside the footprint or within the offsets of it."""
    h, w = fp.shape
    r, c = rows[idx] - fp.row0, cols[idx] - fp.col0
    keep = (r >= -reach) & (r < h + reach) & (c >= -reach) & (c < w + reach)
    idx, r, c = idx[keep], r[keep], c[keep]
    hit = np.zeros(idx.size, bool)
    for dy, dx in offsets:
        rr, cc = r + dy, c + dx
        ok = np.nonzero((rr >= 0) & (rr < h) & (cc >= 0) & (cc < w) & ~hit)[0]
        hit[ok] = fp.covers(rr[ok], cc[ok])
    return idx[hit]


def within(footprints: Sequence[Footprint], rows: np.ndarray, cols: np.ndarray, distance: float) -> np.ndarray:
    """Whether each pixel (rows, cols) lies in one of the footprints or within `distance` px (Euclidean) of one."""
    near = np.zeros(rows.size, bool)
    if not rows.size:
        return near
    reach, offsets = _offsets(distance)
    index = _GridIndex(rows, cols)
    for fp in footprints:
        idx = index.around(fp.row0 - reach, fp.row0 + fp.shape[0] + reach, fp.col0 - reach,
                           fp.col0 + fp.shape[1] + reach)
        idx = idx[~near[idx]]
        if idx.size:
            near[_near_one(fp, rows, cols, idx, reach, offsets)] = True
    return near


@dataclass
class LabelSet:
    """Labels read from one source: pixels, classes, per-group class and feature ids, provenance."""

    pixels: LabelPixels
    classes: List[ClassInfo]
    group_class: Dict[int, int]
    group_features: Dict[int, List[int]]
    source: Dict[str, object]
    notes: List[str] = field(default_factory=list)
    #: feature id -> digest of its geometry as stored in the layer (vector labels; core.training.split matches
    #: polygons of a validation layer that are copies of training polygons by it)
    feature_shapes: Dict[int, str] = field(default_factory=dict)
    #: the macroclass of each class (core.training.hierarchy.Hierarchy) when the run was given a macroclass field
    hierarchy: Optional[object] = None
    #: every pixel of the groups whose `pixels` are a sample (Footprint)
    footprints: List[Footprint] = field(default_factory=list)

    def counts(self) -> Dict[str, List[int]]:
        """Pixels and polygons (groups) per class index."""
        k = len(self.classes)
        px = np.bincount(self.pixels.cls, minlength=k)[:k]
        groups = np.unique(self.pixels.group)
        gcls = np.array([self.group_class[int(g)] for g in groups], dtype=np.int64)
        return {"pixels": [int(v) for v in px], "polygons": [int(v) for v in np.bincount(gcls, minlength=k)[:k]]}


def read_labels(path: str, grid, field_name: Optional[str] = None, name_field: Optional[str] = None,
                layer: Optional[str] = None, classes: Optional[List[ClassInfo]] = None,
                max_pixels_per_polygon: int = 20000, seed: int = 0, check_counts: bool = True,
                assigned_crs: Optional[str] = None, class_names: Optional[str] = None,
                known: Optional[Sequence[Tuple[int, str]]] = None, layer_flag: str = "--layer") -> LabelSet:
    """Labels of `path` on the grid of the rasterio dataset `grid` (the optical raster).

    A vector needs `field_name` (integer codes or text names); a raster is read as codes (0, 255 and its
    nodata ignored), named by `class_names` ('value:name[:#rrggbb],...', --classes) and its category names.
    `classes` imposes an existing class list (a separate validation layer must use the training classes).
    Polygons with more than `max_pixels_per_polygon` pixels keep a seeded sample of them. `assigned_crs`: the
    vector's CRS where its file has none (QGIS: the CRS the user gave the layer). `known`: the base checkpoint's
    (code, name) classes, whose codes text names it has take (`codes_for_names`). `layer_flag`: the command-line
    option naming `layer`, in the message when the file holds several layers.
    """
    from . import label_raster

    if label_raster.is_raster(path):
        return label_raster.read_label_raster(path, grid, classes, max_pixels_per_polygon, seed, check_counts,
                                              class_names)
    if class_names:
        label_raster.check_class_names_option(path, class_names)
    features, source = read_vector_features(path, grid, field_name, name_field, layer, assigned_crs, layer_flag)
    cls_list = classes or classes_from_values([f[1] for f in features], [f[2] for f in features], field_name, known)
    check_name_lengths(cls_list, path)
    by_key = class_lookup(cls_list)
    parts, group_class, group_features, slivers, outside = [], {}, {}, [], []
    skipped: Dict[int, int] = {}
    skipped_outside: Dict[int, int] = {}
    multipart: Dict[int, int] = {}
    footprints: List[Footprint] = []
    rng = np.random.default_rng(seed)
    for fid, value, _name, geom_json, _shape in features:
        ci = by_key.get(class_key(value))
        if ci is None:
            raise ClaireError(f"feature {fid} of {path} has class {quoted(value)}, which is not one of the training "
                              f"classes ({', '.join(c.name for c in cls_list)}); give the validation layer the "
                              f"same classes as the training labels")
        rows, cols = _burn(geom_json, grid)
        if rows.size == 0:
            off = _off_raster(geom_json, grid)
            (outside if off else slivers).append(fid)
            into = skipped_outside if off else skipped
            into[ci] = into.get(ci, 0) + 1
            continue
        if geom_json["type"].startswith("Multi") and len(geom_json["coordinates"]) > 1:
            multipart[ci] = multipart.get(ci, 0) + 1
        g = len(group_class)
        if rows.size > max_pixels_per_polygon:
            footprints.append(Footprint.of(g, rows, cols))
            pick = np.sort(rng.choice(rows.size, max_pixels_per_polygon, replace=False))
            rows, cols = rows[pick], cols[pick]
        group_class[g], group_features[g] = ci, [fid]
        parts.append(LabelPixels(rows, cols, np.full(rows.size, ci, np.uint8), np.full(rows.size, g, np.int32)))
    pixels = LabelPixels.concat(parts)
    if len(pixels) == 0:
        raise ClaireError(f"none of the {len(features)} features of {path} covers a pixel of the optical raster "
                          f"(extent {tuple(round(v, 1) for v in grid.bounds)} in {grid.crs}); draw the labels "
                          f"over the optical raster or check the layer's CRS")
    pixels, group_class, group_features = resolve_overlaps(pixels, group_class, group_features, cls_list, grid,
                                                           footprints)
    pixels.units = units_of(source)
    out = LabelSet(pixels, cls_list, group_class, group_features, source,
                   feature_shapes={f[0]: f[4] for f in features}, footprints=footprints)
    if slivers:
        out.notes.append(f"{len(slivers)} feature(s) cover no pixel centre and were skipped (smaller than a "
                         f"pixel): ids {', '.join(map(str, slivers[:10]))}")
    if outside:
        out.notes.append(f"{len(outside)} feature(s) lie outside the optical raster and were skipped (drawn "
                         f"elsewhere, or the layer's CRS is not the one its coordinates are in): ids "
                         f"{', '.join(map(str, outside[:10]))}")
    out.notes += spelling_notes(cls_list)
    if check_counts:
        check_class_counts(out, skipped=skipped, multipart=multipart, outside=skipped_outside)
    return out


def shape_digest(geom) -> str:
    """A digest of an OGR geometry as stored, the same for a polygon and the one-part multipolygon of it (the
    held-out layer stores a Shapefile's polygons as multipolygons: core.training.heldout)."""
    one = geom
    if geom.GetGeometryCount() == 1 and "MULTI" in geom.GetGeometryName():
        one = geom.GetGeometryRef(0)
    return hashlib.sha1(bytes(one.ExportToWkb())).hexdigest()


def check_name_lengths(classes: Sequence[ClassInfo], path: str) -> None:
    """ClaireError for a class name longer than a checkpoint's card may hold (models.card_schema.MAX_NAME)."""
    from ....models.card_schema import MAX_NAME

    for c in classes:
        if len(str(c.name)) > MAX_NAME:
            raise ClaireError(f"a class name of {quoted(path)} is {len(str(c.name))} characters long "
                              f"({quoted(str(c.name)[:40] + '...')}); class names have at most {MAX_NAME}: shorten it, "
                              f"or give the names in a shorter field")


def spelling_notes(classes: List[ClassInfo]) -> List[str]:
    """A note on class names equal when case and spaces are ignored ('A' / 'a'; ...), or none."""
    seen: Dict[str, List[str]] = {}
    for c in classes:
        seen.setdefault(name_key(c.name), []).append(str(c.name))
    twins = "; ".join(" / ".join(repr(n) for n in names) for names in seen.values() if len(names) > 1)
    return [f"class names that differ only in case or spacing are different classes: {twins}; if they are one "
            f"class, give them one spelling"] if twins else []


@with_gdal_exceptions
def read_vector_features(path: str, grid, field_name: Optional[str], name_field: Optional[str], layer: Optional[str],
                         assigned_crs: Optional[str] = None, layer_flag: str = "--layer"):
    """[(fid, class value, name or None, GeoJSON geometry in the grid CRS, shape digest)] and the provenance;
    `assigned_crs` as in read_labels."""
    from osgeo import ogr

    from ..io.gdal_names import is_gdal_name, source_file

    if not is_gdal_name(path) and not os.path.exists(source_file(path)):
        raise ClaireError(f"the labels {quoted(path)} do not exist; check the path")
    try:
        ds = ogr.Open(path)
    except RuntimeError as exc:  # GDAL 3.10 (Debian 13) raises where 3.6 returned None
        zipped = _zip_hint(path) if path.lower().endswith(".zip") else ""
        raise ClaireError(f"cannot open the labels {quoted(path)} ({exc}); give a vector file OGR reads "
                          f"(GeoPackage, shapefile, GeoJSON...) or a label raster{zipped}") from None
    if ds is None:
        zipped = _zip_hint(path) if path.lower().endswith(".zip") else ""
        raise ClaireError(f"cannot open the labels {quoted(path)}; give a vector or raster file{zipped}")
    problem = None
    try:
        features, bad, kinds, digest, layer_name = _read_layer(ds, path, field_name, name_field, layer, grid,
                                                               assigned_crs, layer_flag)
    except ClaireError as exc:  # raised again below: its traceback would keep the layer alive past `ds`
        problem = exc.with_traceback(None)
    finally:
        ds = None  # OGR layers must go before their data source
    if problem:
        raise problem from None
    if bad:
        listed = "; ".join(f"feature {f}: {why}" for f, why in bad[:5])
        tools = ("QGIS: Vector > Geometry Tools > Fix Geometries, which closes them" if any(
            "not closed" in why for _, why in bad) else "QGIS: Vector > Geometry Tools > Fix Geometries, or ogr2ogr "
                                                         "-makevalid")
        raise ClaireError(f"{len(bad)} feature(s) of {quoted(path)} have unusable geometry ({listed}); repair them "
                          f"({tools}) or delete them")
    if not features:
        raise ClaireError(f"the labels {quoted(path)} hold no features; draw polygons or points with a class field")
    _one_kind(kinds, path)
    source = {"path": path, "layer": layer_name, "field": field_name, "name_field": name_field,
              "kind": "vector", "geometry": "point" if set(kinds) == {"point"} else "polygon",
              "features": len(features), "sha256": digest,
              "hash_of": "feature ids, class values and WKB geometries as read"}
    if assigned_crs:
        source["assigned_crs"] = assigned_crs  # the CRS QGIS read the layer in (the file's, or the one the user set)
    return features, source


def _zip_hint(path: str) -> str:
    """How to name a vector file inside the archive `path` for GDAL: its /vsizip/ name of the first shapefile or
    GeoPackage GDAL lists in it (a folder zipped whole puts them below a folder)."""
    from osgeo import gdal

    inside = f"/vsizip/{os.path.abspath(path)}"
    members = [m for m in (gdal.ReadDirRecursive(inside) or []) if m.lower().endswith((".shp", ".gpkg", ".geojson"))]
    if not members:
        return " (the archive holds no shapefile, GeoPackage or GeoJSON GDAL can see)"
    return f" (a file inside the archive is named {inside}/{members[0]})"


def _one_kind(kinds: Dict[str, List[int]], path: str) -> None:
    """ClaireError for a layer of polygons and points together: each point would be a polygon of one pixel, held
    out or trained on as a whole polygon (and QGIS shows such a file as two layers, one of each kind)."""
    if len(kinds) < 2:
        return
    points = kinds["point"]
    raise ClaireError(f"the labels {quoted(path)} mix {len(kinds['polygon'])} polygon(s) and {len(points)} point(s) "
                      f"(ids {', '.join(map(str, points[:10]))}{', ...' if len(points) > 10 else ''}); training "
                      f"labels are areas or points, not both (a point would count as a polygon of one pixel): keep "
                      f"one kind in the file (QGIS: Processing > Extract by expression, geometry_type(@geometry) = "
                      f"'Polygon', saved as a file of its own), or draw the points' places as polygons")


def _read_layer(ds, path: str, field_name: Optional[str], name_field: Optional[str], layer: Optional[str], grid,
                assigned_crs: Optional[str] = None, layer_flag: str = "--layer"):
    """The chosen layer's features, checked fields and CRS (see _features), and the layer name."""
    lyr = choose_layer(ds, path, layer, "labels", layer_flag)
    defn = lyr.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    listed = ", ".join(fields) or "(none)"
    if not fields and path.lower().endswith(".shp") and not any(
            os.path.exists(path[:-4] + ext) for ext in (".dbf", ".DBF")):
        listed = "(none: the shapefile's attribute table, its .dbf file, is missing beside it; copy it too)"
    if field_name is not None and defn.GetFieldIndex(field_name) < 0:
        raise MissingFieldError(f"the labels {quoted(path)} have no field {quoted(field_name)}; their fields are "
                                f"{listed}: give the one holding the class as --field", "class")
    if name_field is not None and defn.GetFieldIndex(name_field) < 0:
        raise MissingFieldError(f"the labels {quoted(path)} have no field {quoted(name_field)}, given as the field of "
                                f"the class names; its fields are {listed}: give the one holding the class names of "
                                "the integer codes, or none", "name")
    if field_name is None:
        raise ClaireError(f"say which field of {quoted(path)} holds the class (--field); its fields are "
                          f"{', '.join(fields) or '(none)'}")
    kind = _unusable_kind(defn.GetFieldDefn(defn.GetFieldIndex(field_name)).GetType())
    if kind:
        raise ClaireError(f"the field {quoted(field_name)} of {quoted(path)} holds {kind}, not classes: a class field "
                          f"holds integer codes or class names; give the field that does (its fields are {listed})")
    grid_wkt = grid.crs.to_wkt()
    ct = layer_transform(lyr, grid_wkt, path, "labels", assigned_crs)
    layer_name = lyr.GetName()
    return _features(lyr, field_name, name_field, ct, path, grid_wkt) + (layer_name,)


def _to_lonlat(crs_wkt: str):
    """(the transformation from `crs_wkt` to WGS 84 in longitude, latitude order, or None where there is none;
    metres per linear unit, None for a geographic CRS): what core.training.continued.fingerprint takes."""
    from osgeo import osr

    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromWkt(crs_wkt)
    dst.ImportFromEPSG(4326)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        with quiet_gdal():
            ct = osr.CoordinateTransformation(src, dst)
    except RuntimeError:
        ct = None
    return ct, (None if src.IsGeographic() else src.GetLinearUnits())


def _unusable_kind(field_type: int) -> Optional[str]:
    """What an OGR field type holds when it cannot hold classes (dates, times, lists, binary), else None."""
    from osgeo import ogr

    return {ogr.OFTDate: "dates", ogr.OFTDateTime: "dates and times", ogr.OFTTime: "times",
            ogr.OFTBinary: "binary data", ogr.OFTIntegerList: "lists", ogr.OFTInteger64List: "lists",
            ogr.OFTRealList: "lists", ogr.OFTStringList: "lists"}.get(field_type)


def _unclosed(geom) -> bool:
    """Whether a polygon (or a part of a collection) has a ring whose last point is not its first (GeoJSON written
    by hand or by a tool that leaves rings open: OGR reads them, GEOS calls them invalid)."""
    from osgeo import ogr

    flat = ogr.GT_Flatten(geom.GetGeometryType())
    if flat in (ogr.wkbLineString, ogr.wkbLinearRing):
        n = geom.GetPointCount()
        return n > 0 and geom.GetPoint_2D(0) != geom.GetPoint_2D(n - 1)
    return any(_unclosed(geom.GetGeometryRef(i)) for i in range(geom.GetGeometryCount()))


def _kind(geom) -> str:
    """'point', 'line' or 'polygon' of a (linear) geometry; a collection is 'line' when any part is a line, 'point'
    when every part is a point, else 'polygon'."""
    from osgeo import ogr

    flat = ogr.GT_Flatten(geom.GetGeometryType())
    if flat == ogr.wkbGeometryCollection:
        kinds = {_kind(geom.GetGeometryRef(i)) for i in range(geom.GetGeometryCount())}
        return "line" if "line" in kinds else "point" if kinds == {"point"} else "polygon"
    if flat in (ogr.wkbPoint, ogr.wkbMultiPoint):
        return "point"
    if flat in (ogr.wkbLineString, ogr.wkbMultiLineString, ogr.wkbLinearRing):
        return "line"
    return "polygon"


def _features(lyr, field_name: str, name_field: Optional[str], ct, path: str, grid_wkt: Optional[str] = None):
    """The layer's features as (fid, value, name, GeoJSON in the grid CRS, shape: "SHA-1 of the stored geometry's
    WKB|fingerprint" (core.training.continued)), the unusable ones, the feature ids of each geometry kind and the
    SHA-256 of what was read."""
    from .continued import fingerprint

    to_lonlat, metres = _to_lonlat(grid_wkt) if grid_wkt else (None, None)
    features, bad, digest, lines = [], [], hashlib.sha256(), []
    kinds: Dict[str, List[int]] = {}
    for feat in lyr:
        fid, ref = feat.GetFID(), feat.GetGeometryRef()
        geom = None if ref is None else ref.Clone()
        if geom is None or geom.IsEmpty():
            bad.append((fid, "empty"))
            continue
        with quiet_gdal():  # GEOS's "Self-intersection at or near point ..." lines: the message below names them
            valid = geom.IsValid()
        if not valid:
            bad.append((fid, "a ring not closed (its last point is not its first)" if _unclosed(geom) else
                        "invalid (e.g. self-intersecting)"))
            continue
        value = readable_text(feat.GetField(field_name), fid, field_name, path)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ClaireError(f"feature {fid} of {quoted(path)} has no value in the class field {quoted(field_name)}; "
                              f"give every feature a class, or delete it")
        name = readable_text(feat.GetField(name_field), fid, name_field, path) if name_field else None
        wkb = geom.ExportToWkb()
        digest.update(f"{fid}|{value}|{name}|".encode() + wkb)
        shape = shape_digest(geom)
        if geom.HasCurveGeometry():
            geom = geom.GetLinearGeometry()  # arcs as straight segments (GeoJSON has no curves)
        kind = _kind(geom)
        if kind == "line":
            lines.append(fid)
            continue
        if ct is not None:
            ct.apply(geom, fid)
        if to_lonlat is not None:
            shape += "|" + fingerprint(geom, to_lonlat, metres)
        kinds.setdefault(kind, []).append(fid)
        features.append((fid, value, name, json.loads(geom.ExportToJson()), shape))
    if lines:
        raise ClaireError(f"{len(lines)} feature(s) of {quoted(path)} are lines or hold lines (ids "
                          f"{', '.join(map(str, lines[:10]))}{', ...' if len(lines) > 10 else ''}): training labels "
                          f"are areas (polygons) or points; turn closed lines into polygons (QGIS: Vector > Geometry "
                          f"Tools > Lines to Polygons) or draw polygons, and leave other lines out")
    return features, bad, kinds, digest.hexdigest()


#: Text that is a whole number: digits, optionally a zero fraction ("2.0", "2,0": a spreadsheet's or CSV's codes).
_WHOLE_NUMBER = re.compile(r"(-?\d+)(?:[.,]0{1,2})?")  # "1,000" stays text: a thousands separator?


def class_key(value) -> object:
    """Class values compare as integers when they are integral numbers (also as text: " 2 ", "2.0"), else as
    stripped text ("①", a digit that is no decimal digit, stays text)."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = clean_name(value)
    whole = _WHOLE_NUMBER.fullmatch(text)
    return int(whole.group(1)) if whole else text


def refuse_fractional_codes(values: Sequence, field_name: Optional[str]) -> None:
    """ClaireError when a class field holds numbers that are not whole (training, suggest and grow-polygons alike)."""
    fractional = [v for v in values if isinstance(v, (float, np.floating)) and not float(v).is_integer()]
    if fractional:
        raise ClaireError(f"field {quoted(field_name)} holds numbers that are not whole (e.g. {fractional[0]:g}); "
                          "class codes are whole numbers 0..254: round or recode the values (e.g. with the QGIS field "
                          "calculator), or use a field of integer codes or class names")


def classes_from_values(values: Sequence, names: Sequence, field_name: Optional[str],
                        known: Optional[Sequence[Tuple[int, str]]] = None) -> List[ClassInfo]:
    """Classes from the field values: integer codes (names from `names` when given) or text names (codes
    1..K in alphabetical order; with `known`, the base checkpoint's (code, name) classes, `codes_for_names`)."""
    refuse_fractional_codes(values, field_name)
    keys = [class_key(v) for v in values]
    if all(isinstance(k, int) for k in keys):
        bad = sorted({k for k in keys if not 0 <= k <= 254})
        if bad:
            shown = ", ".join(str(k) for k in bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
            given = any(n is not None for n in names)  # --name-field given: its names could be the classes
            text_field = (f"give {'the --name-field' if given else 'a field of class names'} as --field instead "
                          "(names the base checkpoint has take its codes, the others the codes after them)")
            raise ClaireError(f"{len(bad)} class code(s) in field {quoted(field_name)} are outside 0..254 ({shown}): "
                              f"the map stores one byte per pixel (255 is reserved); {text_field}, or recode them to "
                              "1..254 in a new field (QGIS field calculator) and give that field")
        given = [(k, clean_name(n)) for k, n in zip(keys, names) if n is not None]
        given = [(k, n) for k, n in given if n]  # an empty name: the code is named "class <code>"
        named: Dict[int, set] = {}
        for k, n in given:
            named.setdefault(k, set()).add(n)
        check_one_code_per_name(given, "give each class one code")
        for k, ns in named.items():
            if len(ns) > 1:
                raise ClaireError(f"class code {k} has several names ({', '.join(sorted(ns))}); give each code "
                                  f"one name")
        return [ClassInfo(i, k, (named.get(k) or {f"class {k}"}).pop()) for i, k in enumerate(sorted(set(keys)))]
    if any(isinstance(k, int) for k in keys):
        raise ClaireError(f"field {quoted(field_name)} mixes numbers and names; use either integer codes or class "
                          f"names throughout")
    if not known:
        return [ClassInfo(i, i + 1, n) for i, n in enumerate(sorted(set(keys)))]
    codes = codes_for_names(sorted(set(keys)), known)
    return [ClassInfo(i, code, n) for i, (code, n) in enumerate(sorted((codes[n], n) for n in codes))]


def codes_for_names(names: Sequence[str], known: Sequence[Tuple[int, str]]) -> Dict[str, int]:
    """Codes of text class names: a name the base checkpoint has (case, spacing and the separators _ - / aside) takes
    the base's code, so that a fine-tuned map codes water as the bundled map does; of names alike but for those only
    the one written as the base writes it (else the first in sort order), the others being classes of their own.
    Other names get the codes after the base's largest, alphabetically (the smallest codes the base does not use
    where those would pass 254)."""
    names = sorted(names, key=lambda n: (name_key(n), n))  # alphabetically as a reader sorts: grassland, Greenhouses
    base: Dict[str, Tuple[int, str]] = {}
    for code, name in known:
        base.setdefault(name_key(name), (int(code), str(name).strip()))
    out: Dict[str, int] = {}
    for key, (code, written) in base.items():
        twins = [n for n in names if name_key(n) == key]
        if twins:
            out[next((n for n in twins if n.strip() == written), twins[0])] = code
    new = [n for n in names if n not in out]
    start = max(code for code, _ in base.values()) + 1 if base else 1
    free = list(range(start, start + len(new)))
    if free and free[-1] > 254:
        taken = set(out.values()) | {code for code, _ in base.values()}
        free = [c for c in range(1, 255) if c not in taken][:len(new)]
        if len(free) < len(new):
            raise ClaireError(f"{len(names)} class names and the base checkpoint's {len(base)} classes need more "
                              "than the 254 class codes a map can hold; train fewer classes")
    out.update(zip(new, free))
    return out


def check_one_code_per_name(pairs: Sequence[Tuple[int, str]], fix: str) -> None:
    """ClaireError when one class name goes with several codes among the (code, name) `pairs`; `fix` ends the
    message."""
    by_name: Dict[str, set] = {}
    for code, name in pairs:
        by_name.setdefault(name, set()).add(code)
    for name, codes in by_name.items():
        if len(codes) > 1:
            raise ClaireError(f"class name {quoted(name)} has several codes ({', '.join(map(str, sorted(codes)))}); "
                              f"{fix}")


def class_lookup(classes: List[ClassInfo]) -> Dict[object, int]:
    """Field value -> class index, by code and by name."""
    out: Dict[object, int] = {}
    for c in classes:
        out[c.code] = c.index
        out[class_key(c.name)] = c.index
    return out


def _burn(geom_json: dict, grid) -> Tuple[np.ndarray, np.ndarray]:
    """Rows and cols of the grid pixels whose centres the geometry covers (points: the pixel holding it),
    rasterised on the geometry's own bounding window only."""
    from rasterio.features import rasterize
    from rasterio.windows import Window
    from rasterio.windows import transform as win_transform

    xs, ys = _coords(geom_json)
    inv = ~grid.transform
    cc, rr = zip(*(inv * (x, y) for x in (min(xs), max(xs)) for y in (min(ys), max(ys))))
    r0, c0 = max(0, int(math.floor(min(rr)))), max(0, int(math.floor(min(cc))))
    r1, c1 = min(grid.height, int(math.ceil(max(rr))) + 1), min(grid.width, int(math.ceil(max(cc))) + 1)
    if r1 <= r0 or c1 <= c0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    win = Window(c0, r0, c1 - c0, r1 - r0)
    mask = rasterize([(geom_json, 1)], out_shape=(r1 - r0, c1 - c0), transform=win_transform(win, grid.transform),
                     fill=0, dtype="uint8")
    rows, cols = np.nonzero(mask)
    return (rows + r0).astype(np.int32), (cols + c0).astype(np.int32)


def _coords(geom_json: dict) -> Tuple[List[float], List[float]]:
    """All x and y coordinates of a GeoJSON geometry."""
    flat: List[float] = []

    def walk(c) -> None:
        if c and isinstance(c[0], (int, float)):
            flat.extend(c[:2])
        else:
            for part in c:
                walk(part)

    if geom_json["type"] == "GeometryCollection":
        for g in geom_json["geometries"]:
            walk(g["coordinates"])
    else:
        walk(geom_json["coordinates"])
    return flat[0::2], flat[1::2]


def resolve_overlaps(pixels: LabelPixels, group_class: Dict[int, int], group_features: Dict[int, List[int]],
                     classes: List[ClassInfo], grid, footprints: Sequence[Footprint] = ()):
    """ClaireError where polygons of different classes share pixels (saying where); polygons of one class
    that overlap become one group (so a split never separates them), their shared pixels counted once (the
    `footprints` take their merged groups)."""
    idx = pixels.rows.astype(np.int64) * grid.width + pixels.cols
    order = np.argsort(idx, kind="stable")
    s_idx, s_cls, s_grp = idx[order], pixels.cls[order], pixels.group[order]
    dup = np.nonzero(s_idx[1:] == s_idx[:-1])[0]
    # a polygon over the cap is a sample of its pixels: what it covers comes from its footprint, so that whether two
    # polygons overlap does not depend on the sample (the seed)
    links = _footprint_links(pixels, group_class, footprints)
    if dup.size == 0 and not links:
        return pixels, group_class, group_features
    by_footprint = [(a, b, r, c) for a, b, r, c in links if group_class[a] != group_class[b]]
    shared = dup[s_cls[dup] != s_cls[dup + 1]]
    clashes = [(int(s_grp[j]), int(s_grp[j + 1])) + divmod(int(s_idx[j]), grid.width) for j in shared.tolist()]
    if by_footprint or clashes:  # pixels are counted where every clash is between stored pixels
        raise _overlap_error(clashes + by_footprint, 0 if by_footprint else len(clashes), classes, group_class,
                             group_features, grid)
    parent = {g: g for g in group_class}

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for ga, gb in [(int(s_grp[j]), int(s_grp[j + 1])) for j in dup] + [(a, b) for a, b, _, _ in links]:
        a, b = find(ga), find(gb)
        if a != b:
            parent[max(a, b)] = min(a, b)
    new_group = np.array([find(int(g)) for g in range(max(group_class) + 1)], dtype=np.int32)
    for fp in footprints:
        fp.group = int(new_group[fp.group])
    keep = np.ones(idx.size, bool)
    keep[order[dup + 1]] = False
    out = pixels.subset(keep)
    out.group = new_group[out.group]
    merged: Dict[int, List[int]] = {}
    for g, fids in group_features.items():
        merged.setdefault(int(new_group[g]), []).extend(fids)
    return out, {g: group_class[g] for g in merged}, merged


def _overlap_error(clashes: List[Tuple[int, int, int, int]], pixels: int, classes: List[ClassInfo],
                   group_class: Dict[int, int], group_features: Dict[int, List[int]], grid) -> ClaireError:
    """The error for polygons of different classes that overlap: (group, group, row, col) per clash found, the first
    as the example; `pixels`: how many stored pixels they share (0: not counted, a sampled polygon's footprint
    found the overlap)."""
    a, b, r, c = clashes[0]
    x, y = grid.transform * (c + 0.5, r + 0.5)
    pairs = sorted({tuple(sorted(p[:2])) for p in clashes})
    ids = sorted({f for pair in pairs for g in pair for f in group_features[g]})
    listed = ", ".join(str(f) for f in ids[:30]) + (f" and {len(ids) - 30} more" if len(ids) > 30 else "")
    where = f" on {pixels} pixel(s)" if pixels else ""
    return ClaireError(f"polygons of different classes overlap{where}, between {len(pairs)} pair(s) of polygons, e.g. "
                       f"feature(s) {group_features[a]} ({classes[group_class[a]].name}) and {group_features[b]} "
                       f"({classes[group_class[b]].name}) at x={x:.1f}, y={y:.1f} ({grid.crs}); the features "
                       f"involved: {listed}; fix the polygons so that each place has one class (in QGIS, select them "
                       f"by these ids with the expression $id IN (...) or Select by Location)")


def _footprint_links(pixels: LabelPixels, group_class: Dict[int, int],
                     footprints: Sequence[Footprint]) -> List[Tuple[int, int, int, int]]:
    """(group, other group, row, col) where a sampled polygon's footprint covers another polygon's stored pixel or
    footprint, one per pair of polygons."""
    found: Dict[Tuple[int, int], Tuple[int, int]] = {}
    if len(pixels):
        index = _GridIndex(pixels.rows, pixels.cols)
        for fp in footprints:
            idx = index.around(fp.row0, fp.row0 + fp.shape[0], fp.col0, fp.col0 + fp.shape[1])
            idx = idx[pixels.group[idx] != fp.group]
            for k in np.sort(_near_one(fp, pixels.rows, pixels.cols, idx, 0, [(0, 0)])):
                found.setdefault(tuple(sorted((fp.group, int(pixels.group[k])))),
                                 (int(pixels.rows[k]), int(pixels.cols[k])))
    by_row = sorted(footprints, key=lambda f: f.row0)
    covered: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}  # the covered pixels of footprints that meet another's
    for i, a in enumerate(by_row):
        for b in by_row[i + 1:]:
            if b.row0 >= a.row0 + a.shape[0]:
                break  # this and every later box start below a's box
            key = tuple(sorted((a.group, b.group)))
            r0, c0 = max(a.row0, b.row0), max(a.col0, b.col0)
            r1, c1 = min(a.row0 + a.shape[0], b.row0 + b.shape[0]), min(a.col0 + a.shape[1], b.col0 + b.shape[1])
            if a.group == b.group or r1 <= r0 or c1 <= c0 or key in found:
                continue
            small, other = (a, b) if a.count <= b.count else (b, a)
            if id(small) not in covered:
                covered[id(small)] = small.pixels()
            rows, cols = covered[id(small)]
            inside = np.nonzero((rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1))[0]
            hit = inside[other.covers(rows[inside] - other.row0, cols[inside] - other.col0)]
            if hit.size:
                found[key] = (int(rows[hit[0]]), int(cols[hit[0]]))
    return [(a, b, r, c) for (a, b), (r, c) in found.items()]


def _off_raster(geom_json: Dict[str, Any], grid) -> bool:
    """Whether a geometry (GeoJSON-like, in the grid's CRS) lies wholly outside the grid's bounds."""
    xs, ys = _coords(geom_json)
    if not len(xs):
        return False
    b = grid.bounds
    return max(xs) < b.left or min(xs) > b.right or max(ys) < b.bottom or min(ys) > b.top


def check_class_counts(labels: LabelSet, min_polygons: int = MIN_POLYGONS, min_pixels: Optional[int] = None,
                       skipped: Optional[Dict[int, int]] = None,
                       multipart: Optional[Dict[int, int]] = None,
                       outside: Optional[Dict[int, int]] = None) -> None:
    """ClaireError for a class with fewer than `min_polygons` polygons or `min_pixels` pixels (default 3 for
    points, 20 for polygons and rasters): an honest split needs whole polygons on both sides. Also for labels
    of a single class: a model learns to tell classes apart. `skipped` / `multipart` / `outside`: per class index,
    the features that cover no pixel centre, the multipart ones and those off the raster, which the message names."""
    points = labels.pixels.units is POINTS
    need_px = min_pixels if min_pixels is not None else (3 if points else 20)
    counts = labels.counts()
    what = labels.pixels.units.many
    raster = labels.source.get("kind") == "raster"
    leave_out = ("leave the class out (on a copy of the raster: gdal_calc.py -A FILE --calc \"A*(A!={code})\" "
                 "--NoDataValue=0 --outfile COPY, its pixels then no data)" if raster else "remove the class")
    if len(labels.classes) == 1:
        raise ClaireError(f"the labels hold one class ({quoted(labels.classes[0].name)}); draw {what} of at least two "
                          f"classes: a model learns to tell classes apart, and a map of one class says nothing")
    short = [c for c in labels.classes if counts["polygons"][c.index] < min_polygons]
    if short:
        units = labels.pixels.units

        def many(n: int) -> str:  # "1 polygon", "2 separate patches"
            return (f"{n} separate patch{'' if n == 1 else 'es'}" if raster else
                    f"{n} {units.one if n == 1 else units.many} on the raster")

        c = short[0]
        others = "".join(f"; class {quoted(o.name)} (code {o.code}) has {counts['polygons'][o.index]}"
                         for o in short[1:])
        leave = leave_out.format(code=c.code) if len(short) == 1 else "leave those classes out"
        raise ClaireError(f"class {quoted(c.name)} (code {c.code}) has {many(counts['polygons'][c.index])}"
                          f"{_count_hints(c, labels.classes, skipped, multipart, outside)}{others}; "
                          + (f"give {'it' if len(short) == 1 else 'each'} at least {min_polygons} separate patches"
                             if raster else
                             f"draw at least {min_polygons} separate {what} per class")
                          + f" (training and validation each need whole {'patches' if raster else what} of every "
                          f"class), or {leave}")
    for c in labels.classes:
        n_px = counts["pixels"][c.index]
        if n_px < need_px:
            raise ClaireError(f"class {quoted(c.name)} (code {c.code}) covers only {n_px} pixel(s); draw larger or "
                              f"more {what} (at least {need_px} pixels per class)")


def _count_hints(c: ClassInfo, classes: List[ClassInfo], skipped: Optional[Dict[int, int]],
                 multipart: Optional[Dict[int, int]], outside: Optional[Dict[int, int]] = None) -> str:
    """Why a class may have fewer polygons than drawn: features off the raster or smaller than a pixel,
    multipart features (one polygon each), a twin spelling of its name."""
    hints = []
    if (outside or {}).get(c.index):
        hints.append(f"{outside[c.index]} more lie outside the optical raster (drawn elsewhere, or the layer's CRS "
                     f"is not the one its coordinates are in) and were skipped")
    if (skipped or {}).get(c.index):
        hints.append(f"{skipped[c.index]} more cover no pixel centre (smaller than a pixel) and were skipped")
    if (multipart or {}).get(c.index):
        hints.append(f"{multipart[c.index]} are multipart features, which count as one polygon each (QGIS: Vector > "
                     f"Geometry Tools > Multipart to Singleparts splits them)")
    key = name_key(c.name)
    twins = [o.name for o in classes if o.index != c.index and name_key(o.name) == key]
    if twins:
        hints.append(f"{', '.join(map(repr, twins))} is another class: names are compared as written")
    return f" ({'; '.join(hints)})" if hints else ""
