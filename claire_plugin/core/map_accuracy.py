"""Map accuracy you can publish: a stratified random sample of a classified map for the user to label, and
the area-weighted evaluation of the labelled points (QGIS-free: numpy, rasterio and osgeo.ogr).

This is map accuracy (design-based inference on a probability sample, Olofsson et al. 2014; Wadoux et al.
2021), not the held-out-polygon score of training, which validates the model on polygons that were never a
probability sample of the map. The estimators live in `area_estimate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ...models.quoting import name_key, quoted
from .area_estimate import FEW_POINTS, area_weighted_accuracy
from .errors import ClaireError
from .io.block_cache import reads_rows_once
from .io.gdal_mode import with_gdal_exceptions
from .io.points import choose_layer, layer_transform, readable_text
from .io.raster_io import numpy_dtype, open_raster, pixel_area_m2, read_pixels, require_crs, same_file
from .io.writer import DESCRIPTIONS

__all__ = ["SamplePoints", "area_weighted_accuracy", "class_pixel_counts", "evaluate_points",
           "stratified_sample", "write_points"]

MAX_CLASSES = 1000
POINTS_LAYER = "accuracy_points"
#: The field the user fills with the class seen on the ground.
REF_FIELD = "ref_class"
#: The fields sample-points writes besides REF_FIELD: the map's class at the point and the point's number.
MAP_FIELD, ID_FIELD, MAP_NAME_FIELD = "map_class", "sample_id", "map_name"


@dataclass
class SamplePoints:
    """Sample points in the map CRS (pixel centres), with the map's class counts and notes."""
    x: np.ndarray
    y: np.ndarray
    row: np.ndarray
    col: np.ndarray
    value: np.ndarray
    class_pixels: Dict[int, int]
    crs_wkt: str
    notes: List[str] = field(default_factory=list)
    names: Dict[int, str] = field(default_factory=dict)  # the map's class names (its categories / class_N tags)

    def __len__(self) -> int:
        return int(self.value.size)

    def legend(self) -> str:
        """'1 = water, 2 = trees' for the map's classes in the sample (codes alone where the map names none)."""
        return ", ".join(f"{c} = {self.names[c]}" if c in self.names else str(c) for c in sorted(self.class_pixels))


#: Band descriptions of the engine's rasters (core.engine.plan._outputs writes them): its class map, and its
#: percent rasters, which are no class map (a confidence raster given as a map is told apart by these).
CLASS_DESCRIPTION = DESCRIPTIONS["class"]
CONFIDENCE_DESCRIPTION = DESCRIPTIONS["confidence"]
PERCENT_DESCRIPTIONS = tuple(v for k, v in DESCRIPTIONS.items() if k != "class")
CLASS_FIX = "give the class raster that `claire classify` writes"


def open_class_map(map_path: str, role: str = "classified map", integer: bool = True, fix: str = CLASS_FIX):
    """The classified map as an open rasterio dataset; a ClaireError unless it is one band of class codes
    (integers, unless `integer` is False) and not one of the engine's percent rasters (a confidence raster)."""
    ds = open_raster(map_path, role)
    problem = class_map_problem(ds, map_path, role, integer, fix)
    if problem:
        ds.close()
        raise ClaireError(problem)
    return ds


def class_map_problem(ds, path: str, role: str, integer: bool = True, fix: str = CLASS_FIX) -> Optional[str]:
    """Why the open raster `ds` is no class map (problem and fix), or None."""
    if ds.count != 1:
        return (f"the {role} {quoted(path)} has {ds.count} bands; a {role} has one band of class codes: {fix}")
    description = (ds.descriptions[0] or "").strip()
    if description in PERCENT_DESCRIPTIONS:
        what = "confidence raster" if description == CONFIDENCE_DESCRIPTION else "percent raster"
        return (f"the {role} {quoted(path)} is a {what} written by claire classify (band description "
                f"{quoted(description)}), not a map of class codes: {fix} (the map itself, not the {what} written "
                "beside it)")
    if integer and not np.issubdtype(numpy_dtype(ds.dtypes[0]), np.integer):
        return (f"the {role} {quoted(path)} holds {ds.dtypes[0]} values, not class codes; {fix} (a class map saved "
                f"as floats, e.g. by the raster calculator, can be converted: gdal_translate -ot Byte, or QGIS "
                f"Raster > Conversion > Translate with output type Byte)")
    return None


def non_whole_problem(values: np.ndarray, path: str, role: str, fix: str) -> Optional[str]:
    """Why the finite, non-nodata `values` of a raster of class codes are no class codes (a value with a fraction,
    e.g. 1.999 left by a raster calculator or a bilinear resampling), or None. Truncating it would move its pixels
    to the class below."""
    v = np.asarray(values)
    if v.dtype.kind != "f" or not v.size:
        return None
    odd = v != np.round(v)
    if not odd.any():
        return None
    return (f"the {role} {quoted(path)} holds values such as {float(v[odd][0]):g}, not class codes; {fix} (a class "
            f"raster saved as floats can be converted: gdal_translate -ot Byte, or QGIS Raster > Conversion > "
            f"Translate with output type Byte; resample class rasters with nearest neighbour only)")


def read_classes(ds, window) -> np.ndarray:
    """Band 1 of `window` in the raster's own type; a ClaireError naming the file when the read fails (a
    truncated or damaged file: core.io.raster_io.read_pixels)."""
    return read_pixels(ds, [1], window, ds.dtypes[0])[0]


def _valid(block: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """Mask of the pixels that carry a class (not nodata)."""
    return np.ones(block.shape, bool) if nodata is None else block != nodata


def class_pixel_counts(map_path: str, nodata: Optional[float] = None) -> Dict[int, int]:
    """Number of pixels of each class of band 1 of the map, read block by block (nodata: the map's own
    nodata value when None)."""
    ds = open_class_map(map_path)
    try:
        nodata = ds.nodata if nodata is None else nodata
        counts: Dict[int, int] = {}
        for _, window in ds.block_windows(1):
            block = read_classes(ds, window)
            values, n = np.unique(block[_valid(block, nodata)], return_counts=True)
            for v, k in zip(values.tolist(), n.tolist()):
                counts[int(v)] = counts.get(int(v), 0) + int(k)
                if len(counts) > MAX_CLASSES:
                    raise ClaireError(f"the map {quoted(map_path)} has more than {MAX_CLASSES} distinct values; it "
                                      "does not look like a classified map (give the class raster, not a probability "
                                      "or reflectance raster)")
    finally:
        ds.close()
    return dict(sorted(counts.items()))


def _draw_ranks(counts: Dict[int, int], per_class: int, seed: int) -> Dict[int, np.ndarray]:
    """For each class, the sorted ranks (in block-then-row order) of the pixels to sample."""
    rng = np.random.default_rng(seed)
    return {c: np.sort(rng.choice(n, size=min(per_class, n), replace=False)) for c, n in counts.items()}


def _find_ranked(ds, nodata, ranks: Dict[int, np.ndarray]) -> Dict[int, List[Tuple[np.ndarray, np.ndarray]]]:
    """Second block-wise pass: the (rows, cols) of the ranked pixels of every class."""
    seen = {c: 0 for c in ranks}
    found: Dict[int, List[Tuple[np.ndarray, np.ndarray]]] = {c: [] for c in ranks}
    for _, window in ds.block_windows(1):
        block = read_classes(ds, window)
        valid = _valid(block, nodata)
        for c, wanted in ranks.items():
            rr, cc = np.nonzero(valid & (block == c))
            if rr.size == 0:
                continue
            lo, hi = np.searchsorted(wanted, [seen[c], seen[c] + rr.size])
            pick = wanted[lo:hi] - seen[c]
            seen[c] += rr.size
            if pick.size:
                found[c].append((rr[pick] + window.row_off, cc[pick] + window.col_off))
    return found


@reads_rows_once("map_path")
def stratified_sample(map_path: str, per_class: int = 50, seed: int = 0,
                      min_per_class: int = FEW_POINTS, nodata: Optional[float] = None) -> SamplePoints:
    """Stratified random sample of the map: `per_class` pixels of each class (all of them when a class has
    fewer), drawn uniformly without replacement; the same map and seed give the same points.

    Points are pixel centres in the map's CRS, in a seeded random order (so the sample id does not give
    the map class away). A note names every class left with fewer than `min_per_class` points.
    """
    if int(per_class) < 1:
        raise ClaireError(f"points per class must be at least 1 (got {per_class}); 50 or more is advised")
    if int(seed) < 0:
        raise ClaireError(f"the random seed must be 0 or more (got {seed}); any whole number from 0 up gives "
                          f"its own reproducible sample")
    counts = class_pixel_counts(map_path, nodata)
    if not counts:
        raise ClaireError(f"the map {quoted(map_path)} has no classified pixel (all nodata); give a classified map")
    ranks = _draw_ranks(counts, int(per_class), seed)
    ds = open_class_map(map_path)
    try:
        require_crs(ds, "classified map")
        found = _find_ranked(ds, ds.nodata if nodata is None else nodata, ranks)
        rows = np.concatenate([np.concatenate([r for r, _ in found[c]]) for c in counts])
        cols = np.concatenate([np.concatenate([k for _, k in found[c]]) for c in counts])
        values = np.concatenate([np.full(ranks[c].size, c, np.int64) for c in counts])
        order = np.random.default_rng([seed, 1]).permutation(values.size)
        rows, cols, values = rows[order], cols[order], values[order]
        x, y = ds.transform * (cols + 0.5, rows + 0.5)
        crs_wkt = ds.crs.to_wkt()
    finally:
        ds.close()
    notes = [f"class {c} has only {counts[c]} pixel(s): all of them are in the sample, fewer than "
             f"{min_per_class} points" for c in counts if counts[c] < min_per_class]
    from .accuracy import classes_from_gdal

    names = {int(c["value"]): str(c["name"]) for c in classes_from_gdal(map_path) if c.get("name")}
    return SamplePoints(np.asarray(x, float), np.asarray(y, float), rows, cols, values, counts, crs_wkt, notes,
                        names)


def write_points(points: SamplePoints, path: str, crs_wkt: Optional[str] = None) -> str:
    """Write the sample as a GeoPackage point layer with fields sample_id, map_class, map_name (the map's name of
    its class, empty where it names none) and ref_class (NULL, for the user to fill with a class code of the map;
    the file appears only once complete."""
    from .io.points import write_point_layer

    labelled = _labelled_points(path)
    if labelled:
        raise ClaireError(f"{quoted(path)} already holds {labelled} sample point(s) with a reference label in "
                          f"'{REF_FIELD}': a new sample there would lose those labels; choose another file name "
                          f"(or delete or rename the labelled file first)")
    records = ((points.x[k], points.y[k], {ID_FIELD: k + 1, MAP_FIELD: int(points.value[k]),
                                           MAP_NAME_FIELD: points.names.get(int(points.value[k]), "")})
               for k in range(len(points)))
    return write_point_layer(path, POINTS_LAYER, crs_wkt or points.crs_wkt,
                             [(ID_FIELD, "int"), (MAP_FIELD, "int"), (MAP_NAME_FIELD, "str"), (REF_FIELD, "int")],
                             records, "the sample points")


def _labelled_points(path: str) -> int:
    """How many features of an existing vector file at `path` have a REF_FIELD value (0: no such file, not a
    vector file, or no labels)."""
    import os

    from osgeo import gdal

    if not os.path.isfile(path):
        return 0
    try:
        ds = gdal.OpenEx(path, gdal.OF_VECTOR)
    except RuntimeError:  # not a vector file (with GDAL's exceptions on)
        return 0
    if ds is None:
        return 0
    count = 0
    for i in range(ds.GetLayerCount()):
        layer = ds.GetLayer(i)
        if layer.GetLayerDefn().GetFieldIndex(REF_FIELD) < 0:
            continue
        count += sum(1 for f in layer if f.GetField(REF_FIELD) not in (None, ""))
    return count


def _ref_value(value: Any, fid: int, field_name: str, path: str,
               names: Optional[Dict[int, str]] = None, by_name: Optional[Dict[str, int]] = None) -> Optional[int]:
    """A reference label as an int, None when empty: a class code, or one of the map's class `names` (`by_name`:
    their codes by `name_key`, matched case, spacing and _ - / aside); a ClaireError for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and by_name and name_key(value) in by_name:
        return by_name[name_key(value)]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or not number.is_integer():
        listed = "; ".join(f"{v} {n}" for v, n in sorted((names or {}).items()))
        raise ClaireError(f"point {fid} of {quoted(path)} has {quoted(value)} in {quoted(field_name)}, neither a class "
                          "code nor a class name of the map" + (f" (its classes: {listed})" if listed else "") +
                          "; write the class value or name (or leave it empty to skip the point)")
    return int(number)


def _open_points(points_path: str):
    """The sample points as an open OGR data source; a ClaireError naming the problem (missing, a folder, not
    a vector file) and the fix."""
    import os

    from osgeo import ogr

    from .io.gdal_names import is_gdal_name

    fix = "give the GeoPackage written by sample-points (with ref_class filled) or another vector point layer"
    if not points_path:
        raise ClaireError(f"no sample points given; {fix}")
    if not is_gdal_name(points_path) and not os.path.exists(points_path):
        raise ClaireError(f"the sample points {quoted(points_path)} do not exist; check the path, or {fix}")
    if not is_gdal_name(points_path) and os.path.isdir(points_path):
        raise ClaireError(f"the sample points {quoted(points_path)} are a folder; {fix}")
    try:
        ds = ogr.Open(points_path)
    except RuntimeError as exc:
        raise ClaireError(f"the sample points {quoted(points_path)} are not a vector file GDAL can read ({exc}); "
                          f"{fix}") from None
    if ds is None or ds.GetLayerCount() == 0:
        ds = None
        raise ClaireError(f"the sample points {quoted(points_path)} are not a vector file GDAL can read; {fix}")
    return ds


def _check_field(defn, field_name: str, points_path: str) -> bool:
    """ClaireError when `field_name` is missing or is one sample-points wrote itself (the map's class, the
    point's number); whether the layer has the MAP_FIELD to check the map against."""
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if field_name not in fields:
        raise ClaireError(f"the sample points {quoted(points_path)} have no field {quoted(field_name)}; their fields "
                          f"are {', '.join(fields) or '(none)'}: pass the one holding the reference class")
    if field_name in (MAP_FIELD, ID_FIELD):
        what = "the map's own class at each point" if field_name == MAP_FIELD else "the points' numbers"
        raise ClaireError(f"{quoted(field_name)} holds {what}, written by sample-points, not a reference label; pass "
                          f"the field you filled with the class seen on the ground or imagery ({quoted(REF_FIELD)} in "
                          "a sample-points file)")
    return MAP_FIELD in fields


def _point_of(feat, points_path: str):
    """The feature's point (a one-part multipoint too, as QGIS exports often store them); a ClaireError
    otherwise."""
    from osgeo import ogr

    geom = feat.GetGeometryRef()
    flat = None if geom is None or geom.IsEmpty() else ogr.GT_Flatten(geom.GetGeometryType())
    if flat == ogr.wkbMultiPoint and geom.GetGeometryCount() == 1:
        return geom.GetGeometryRef(0).Clone()
    if flat == ogr.wkbMultiPoint:
        raise ClaireError(f"feature {feat.GetFID()} of {quoted(points_path)} is a multipoint of "
                          f"{geom.GetGeometryCount()} points; the evaluation needs one point per sample (QGIS: "
                          f"Vector > Geometry Tools > Multipart to Singleparts)")
    if flat != ogr.wkbPoint:
        raise ClaireError(f"feature {feat.GetFID()} of {quoted(points_path)} is not a point; the evaluation "
                          f"needs the sample points, one point per sample")
    return geom.Clone()


@with_gdal_exceptions
def _read_labels(points_path: str, field_name: str, crs_wkt: str, layer: Optional[str],
                 assigned_crs: Optional[str] = None, names: Optional[Dict[int, str]] = None):
    """[(x, y in the map CRS, reference label or None, the point's MAP_FIELD or None)] of the point layer (labels
    given as the map's class `names` read as their codes); a ClaireError for a point given twice (it
    would be counted twice)."""
    by_name = {name_key(n): int(v) for v, n in (names or {}).items()}
    ds = _open_points(points_path)
    try:
        lyr = choose_layer(ds, points_path, layer, "sample points")
        has_map = _check_field(lyr.GetLayerDefn(), field_name, points_path)
        ct = layer_transform(lyr, crs_wkt, points_path, "sample points", assigned_crs)
        out, seen = [], {}
        for feat in lyr:
            geom = _point_of(feat, points_path)
            if ct is not None:
                ct.apply(geom, feat.GetFID())
            key = (round(geom.GetX(), 6), round(geom.GetY(), 6))
            if key in seen:
                raise ClaireError(f"features {seen[key]} and {feat.GetFID()} of {quoted(points_path)} are the same "
                                  "point; each sample point must be counted once: delete the copies (QGIS: Vector > "
                                  "Data Management Tools > Delete Duplicate Geometries)")
            seen[key] = feat.GetFID()
            mapped = feat.GetField(MAP_FIELD) if has_map else None
            ref = readable_text(feat.GetField(field_name), feat.GetFID(), field_name, points_path)
            out.append((geom.GetX(), geom.GetY(), _ref_value(ref, feat.GetFID(), field_name, points_path, names,
                                                              by_name), mapped))
    finally:
        lyr = ds = None
    return out


def _one_point_per_pixel(ds, points, points_path: str) -> None:
    """ClaireError when two sample points fall in one map pixel: the pixel is the sampling unit, and a pixel counted
    twice (a class of one pixel "labelled" twice) reads as a census with no uncertainty."""
    from rasterio.transform import rowcol

    if not points:
        return
    rows, cols = rowcol(ds.transform, [p[0] for p in points], [p[1] for p in points])
    seen: Dict[Tuple[int, int], int] = {}
    for k, pixel in enumerate(zip(rows, cols)):
        if pixel in seen:
            (xa, ya), (xb, yb) = points[seen[pixel]][:2], points[k][:2]
            raise ClaireError(f"the labelled sample points at ({xa:.2f}, {ya:.2f}) and ({xb:.2f}, {yb:.2f}) of "
                              f"{quoted(points_path)} fall in one map pixel (row {pixel[0]}, column {pixel[1]}); a "
                              "pixel is one sampling unit and is counted once: keep one of the two points")
        seen[pixel] = k


def _values_at(ds, points: List[Tuple[float, float]]) -> List[int]:
    """Band 1 of the map at each (x, y) inside it, read pixel by pixel through `read_classes` (a damaged file
    is a ClaireError naming it)."""
    from rasterio.transform import rowcol
    from rasterio.windows import Window

    if not points:
        return []
    rows, cols = rowcol(ds.transform, [x for x, _ in points], [y for _, y in points])
    return [int(read_classes(ds, Window(min(max(int(c), 0), ds.width - 1), min(max(int(r), 0), ds.height - 1),
                                        1, 1))[0, 0]) for r, c in zip(rows, cols)]


def _check_drawn_from(values: List[int], drawn: List[Optional[int]], map_path: str, points_path: str) -> None:
    """ClaireError when the points' MAP_FIELD (the class sample-points read from the map it sampled) differs from
    this map at them: the strata, and so the area weights, would be another map's."""
    def code(m) -> Optional[int]:
        try:
            return int(float(m))
        except (TypeError, ValueError):
            return None
    differ = [k for k, (v, m) in enumerate(zip(values, drawn)) if code(m) is not None and code(m) != v]
    if differ:
        raise ClaireError(f"{len(differ)} of {len(values)} sample points have a {MAP_FIELD} that differs from "
                          f"{quoted(map_path)} at them: the points were drawn from another map (or this one changed "
                          f"since), and an area-weighted estimate needs the map they were drawn from; evaluate that "
                          f"map, or draw a new sample of this one with sample-points")


@reads_rows_once("map_path")
def evaluate_points(map_path: str, points_path: str, field: str = "ref_class",
                    layer: Optional[str] = None, nodata: Optional[float] = None,
                    assigned_crs: Optional[str] = None) -> Dict[str, Any]:
    """Area-weighted accuracy of the map from labelled sample points (see `area_weighted_accuracy`).

    The map class of each point is read from the raster; where the points carry sample-points' map_class it
    must agree (else they were drawn from another map: a ClaireError). Points outside the map or on nodata
    are skipped and counted in the warnings. `assigned_crs`: the points' CRS where their file has none (QGIS: the
    layer's, set by the user).
    """
    from .accuracy import classes_from_gdal

    if same_file(map_path, points_path):
        raise ClaireError("the map and the sample points are the same file; give the labelled points layer")
    ds = open_class_map(map_path)
    try:
        require_crs(ds, "classified map")
        names = {c["value"]: c["name"] for c in classes_from_gdal(map_path) if c.get("name")}
        labels = _read_labels(points_path, field, ds.crs.to_wkt(), layer, assigned_crs, names)
        if not labels:
            raise ClaireError(f"the sample points {quoted(points_path)} hold no points")
        nd = ds.nodata if nodata is None else nodata
        inside = [(x, y, r, m) for x, y, r, m in labels if ds.bounds.left <= x < ds.bounds.right
                  and ds.bounds.bottom < y <= ds.bounds.top]
        _one_point_per_pixel(ds, [p for p in inside if p[2] is not None], points_path)  # unlabelled: skipped
        values = _values_at(ds, [(x, y) for x, y, _, _ in inside])
        area = pixel_area_m2(ds)
        geographic = ds.crs.is_geographic
    finally:
        ds.close()
    counts = class_pixel_counts(map_path, nodata)  # reads the whole map: a damaged one is named first
    _check_drawn_from(values, [m for _, _, _, m in inside], map_path, points_path)
    kept = [(v, r) for v, (_, _, r, _) in zip(values, inside) if nd is None or v != nd]
    if not kept:
        raise ClaireError(f"none of the sample points {quoted(points_path)} falls on a classified pixel of "
                          f"{quoted(map_path)}; evaluate the points against the map they were drawn from")
    result = area_weighted_accuracy([v for v, _ in kept], [r for _, r in kept],
                                    counts, area, names)
    dropped = len(labels) - len(kept)
    if dropped:
        result["warnings"].append(f"{dropped} point(s) fall outside the map or on nodata and were skipped")
    if geographic:
        result["warnings"].append("the map has a geographic CRS: areas use the pixel area at its centre latitude")
    result.update(map=map_path, points=points_path, field=field)
    return result
