"""Training polygons grown from labelled points (what SCP calls "multiple ROI creation"): every point of a
point layer (field survey, photo-interpreted points) becomes the magic wand's region around it
(`core.training.wand.grow_region`), with the point's class, so that a point trains on its uniform
neighbourhood instead of one pixel.

Points are taken in feature order; a region never takes the pixels of the regions grown before it, and a
point inside an earlier region, outside the scene, on a pixel without data or with too few similar pixels
around it is skipped with the reason. The polygons are written in the optical raster's CRS to a new
GeoPackage (layer `training`) with the class field (same name), `source_fid`, `pixels` and the point's other
fields (a macroclass, survey notes: integer, real and text; other kinds as text).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ....models.quoting import quoted
from ..errors import CancelledError, ClaireError
from ..io.block_cache import reads_rows_once
from ..io.gdal_mode import with_gdal_exceptions
from ..io.points import choose_layer, readable_text
from .wand import MAX_WIDTH, MIN_PIXELS, TOLERANCE, TakenPointError, check_tolerance, grow_region, normalisation_card

LAYER = "training"
SOURCE_FID = "source_fid"
#: Fields only a grown layer has: a `training` layer without them is the user's own, never replaced.
SIGNATURE = (SOURCE_FID, "pixels")


@dataclass
class GrownPolygons:
    """What `grow_from_points` made: polygons (WKT, class value, source fid, pixels) and the skipped points."""

    polygons: List[Tuple[str, Any, int, int]] = field(default_factory=list)
    skipped: List[Tuple[int, str]] = field(default_factory=list)
    #: the points' other fields (name, "int" | "int64" | "real" | "str") and, per source fid, their values
    extra_fields: List[Tuple[str, str]] = field(default_factory=list)
    attributes: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    crs_wkt: str = ""
    field: str = "class"  # after every field(...) above: this name hides dataclasses.field in the class body

    def per_class(self) -> Dict[str, int]:
        """Polygons per class value (as text), in first-seen order."""
        out: Dict[str, int] = {}
        for _wkt, value, _fid, _px in self.polygons:
            out[str(value)] = out.get(str(value), 0) + 1
        return out


def wand_card(checkpoint: Optional[str]) -> dict:
    """The normalisation card of `checkpoint` (None: the bundled one; see wand.normalisation_card)."""
    import os

    from ....models.checkpoint import read_card

    if checkpoint and not os.path.exists(checkpoint):
        raise ClaireError(f"checkpoint {checkpoint} does not exist; give an existing .safetensors file, or none for "
                          f"the bundled one")
    return normalisation_card(read_card(checkpoint) if checkpoint else None)


@reads_rows_once("optical", "sar", rows="max_width")
def grow_from_points(optical: str, sar: str, points: str, field_name: str, layer: Optional[str] = None,
                     checkpoint: Optional[str] = None, tolerance: float = TOLERANCE, max_width: int = MAX_WIDTH,
                     min_pixels: int = MIN_PIXELS, sar_units: str = "auto",
                     progress: Optional[Callable[[float, str], None]] = None,
                     is_cancelled: Optional[Callable[[], bool]] = None,
                     assigned_crs: Optional[str] = None) -> GrownPolygons:
    """Grow one polygon per point of `points` (field `field_name`, layer `layer`) over the optical raster
    (`assigned_crs`: the points' CRS where their file has none, as the user set it in QGIS)."""
    from .labels import read_vector_features, refuse_fractional_codes
    from .scene import Scene

    check_tolerance(tolerance, max_width)
    out = GrownPolygons(field=field_name)
    with Scene(optical, sar, wand_card(checkpoint), sar_units=sar_units) as scene:
        features, source = read_vector_features(points, scene.opt, field_name, None, layer, assigned_crs)
        if source["geometry"] != "point":
            raise ClaireError(f"{quoted(points)} holds polygons, not points: they are training polygons already (give "
                              f"them to training as they are), or give a point layer to grow polygons from")
        refuse_fractional_codes([value for _f, value, _n, _g, _s in features], field_name)
        out.crs_wkt = scene.opt.crs.to_wkt()
        out.extra_fields, out.attributes = point_attributes(points, source.get("layer"), field_name)
        reach = (max_width + 2) * max(abs(scene.opt.transform.a), abs(scene.opt.transform.e))
        grown: List[Tuple[float, float, str]] = []
        for k, (fid, value, _name, geometry, _shape) in enumerate(features):
            if is_cancelled is not None and is_cancelled():
                raise CancelledError()
            point = _one_point(geometry)
            if point is None:
                out.skipped.append((fid, "a multipoint of several points: give one point per feature (QGIS: Vector > "
                                         "Geometry Tools > Multipart to Singleparts)"))
                continue
            x, y = point
            taken = [wkt for gx, gy, wkt in grown if abs(gx - x) <= reach and abs(gy - y) <= reach]
            try:
                region = grow_region(scene, x, y, tolerance, max_width, min_pixels, taken)
            except TakenPointError:  # the wand's words speak of a training layer to edit
                out.skipped.append((fid, "it lies inside the polygon grown from an earlier point"))
                continue
            except ClaireError as exc:
                out.skipped.append((fid, str(exc)))
                continue
            grown.append((x, y, region.wkt))
            out.polygons.append((region.wkt, value, fid, region.pixels))
            if progress is not None:
                progress((k + 1) / len(features), f"{len(out.polygons)} polygon(s) from {k + 1} point(s)")
    return out


def _one_point(geometry: Dict[str, Any]) -> Optional[Tuple[float, float]]:
    """(x, y) of a point, or of a multipoint of one point (as exports often store points); None otherwise."""
    coords = geometry.get("coordinates")
    if geometry.get("type") == "MultiPoint" and coords and len(coords) == 1:
        coords = coords[0]
    elif geometry.get("type") != "Point":
        return None
    return float(coords[0]), float(coords[1])


@with_gdal_exceptions
def point_attributes(points: str, layer: Optional[str], class_field: str
                     ) -> Tuple[List[Tuple[str, str]], Dict[int, Dict[str, Any]]]:
    """The point layer's fields other than the class field and the names the grown layer uses itself, as
    (name, "int" | "int64" | "real" | "str"), and per feature id their values."""
    from osgeo import ogr

    kinds = {ogr.OFTInteger: "int", ogr.OFTInteger64: "int64", ogr.OFTReal: "real"}
    taken = {class_field.lower(), SOURCE_FID, "pixels", "fid"}
    ds = ogr.Open(points)
    try:
        lyr = choose_layer(ds, points, layer, "points")
        defn = lyr.GetLayerDefn()
        fields = [(defn.GetFieldDefn(i).GetName(), kinds.get(defn.GetFieldDefn(i).GetType(), "str"))
                  for i in range(defn.GetFieldCount()) if defn.GetFieldDefn(i).GetName().lower() not in taken]
        values = {f.GetFID(): {name: f.GetField(name) for name, _ in fields} for f in lyr}
        lyr = None
    finally:
        ds = None  # OGR layers must go before their data source
    for fid, row in values.items():  # checked once the layer is gone: an error's traceback would keep it alive
        for name, value in row.items():
            readable_text(value, fid, name, points)
    return fields, values


def write_grown(grown: GrownPolygons, path: str) -> str:
    """Write the polygons to a new GeoPackage at `path` (layer `training`); ClaireError when none was made."""
    from ..io.points import write_vector_layer

    if not grown.polygons:
        reasons = "; ".join(f"{_features(fids)}: {why}" for fids, why in skipped_by_reason(grown.skipped)[:3])
        raise ClaireError(f"no point gave a polygon ({reasons}); raise the tolerance, or check that the points lie "
                          f"on the optical raster")
    values = [v for _w, v, _f, _p in grown.polygons]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    kind = "str" if not numbers else "int" if all(float(v).is_integer() for v in values) else "real"
    fields = [(grown.field, kind), (SOURCE_FID, "int"), ("pixels", "int")] + grown.extra_fields
    records = ((wkt, {**grown.attributes.get(fid, {}), grown.field: value, SOURCE_FID: fid, "pixels": px})
               for wkt, value, fid, px in grown.polygons)
    return write_vector_layer(path, LAYER, grown.crs_wkt, fields, records, "the grown polygons", "polygon",
                              signature=SIGNATURE)


def check_grown_output(path: str) -> None:
    """The grown polygons' output refused before any work when write_grown would refuse it."""
    from ..io.points import check_vector_output

    check_vector_output(path, LAYER, "the grown polygons", SIGNATURE)


def summary_lines(grown: GrownPolygons, tolerance: float) -> List[str]:
    """What was made and what was skipped, for the CLI and the Processing log."""
    per = ", ".join(f"{k}: {n}" for k, n in grown.per_class().items())
    lines = [f"{len(grown.polygons)} polygon(s) grown at tolerance {tolerance:g} ({per or 'none'}); "
             f"{len(grown.skipped)} point(s) skipped"]
    groups = skipped_by_reason(grown.skipped)
    lines += [f"skipped {_features(fids)}: {why}" for fids, why in groups[:20]]
    if len(groups) > 20:
        lines.append(f"... and {sum(len(f) for f, _ in groups[20:])} more point(s) for {len(groups) - 20} other "
                     f"reason(s)")
    return lines


def skipped_by_reason(skipped: List[Tuple[int, str]]) -> List[Tuple[List[int], str]]:
    """The skipped points gathered by reason, in the order the reasons first came: [([fid, ...], why), ...]."""
    groups: Dict[str, List[int]] = {}
    for fid, why in skipped:
        groups.setdefault(why, []).append(fid)
    return [(fids, why) for why, fids in groups.items()]


def _features(fids: List[int], shown: int = 8) -> str:
    """'feature 3', 'features 3, 5, 7' or 'features 3, 5, ... (12 points)'."""
    if len(fids) == 1:
        return f"feature {fids[0]}"
    listed = ", ".join(str(f) for f in fids[:shown])
    return f"features {listed}" + (f", ... ({len(fids)} points)" if len(fids) > shown else "")
