"""Point layers written for the user to open in QGIS (sample points, places to label next): a GeoPackage that
appears only once complete."""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

from ....models.quoting import quoted
from ..errors import ClaireError
from .atomic import temp_name
from .gdal_mode import gdal_exceptions, with_gdal_exceptions


def write_point_layer(path: str, layer: str, crs_wkt: str, fields: Sequence[Tuple[str, str]],
                      records: Iterable[Tuple[float, float, Dict[str, Any]]], role: str) -> str:
    """Write `records` (x, y, {field: value or None}) as the point layer `layer` of the GeoPackage `path`
    with `fields` [(name, "int" | "int64" | "real" | "str")] in the CRS `crs_wkt`; None is written as NULL. `role`
    names the points in error messages ("the sample points")."""
    points = ((f"POINT ({quoted(float(x))} {quoted(float(y))})", values) for x, y, values in records)
    return write_vector_layer(path, layer, crs_wkt, fields, points, role, "point")


def readable_text(value: Any, fid: int, field: str, path: str) -> Any:
    """`value` as read from a vector field; ClaireError when it is text GDAL could not decode (a Shapefile written
    in a Windows code page without the .cpg file that names it: 'forêt' arrives as undecodable bytes)."""
    if not isinstance(value, str) or _utf8(value):
        return value
    # raised outside any `except`: a chained exception's traceback would keep the caller's OGR layer alive
    shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    stem = os.path.splitext(os.path.basename(path))[0]
    raise ClaireError(f"feature {fid} of {quoted(path)}: the text {quoted(shown)} of field {quoted(field)} is in an "
                      f"encoding the file does not name; for a Shapefile put a file {stem}.cpg beside it holding its "
                      f"code page (e.g. 1252 for Windows Western European), or save the layer as a GeoPackage "
                      f"(QGIS: set the layer's encoding in its Properties > Source, then Export > Save Features As)")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def choose_layer(ds, path: str, layer: Optional[str], what: str, flag: str = "--layer"):
    """The layer of the open OGR data source `ds` to read: `layer` by name, else its only layer with geometry
    (a style table QGIS keeps in the file does not count). ClaireError naming the layers when `layer` is not
    there, or when several layers could be meant (`what` names the file in the message: "labels"; `flag` the
    command-line option that names the layer)."""
    from osgeo import ogr

    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    if layer:
        lyr = ds.GetLayerByName(layer)
        if lyr is None:
            raise ClaireError(f"the {what} {quoted(path)} have no layer {quoted(layer)}; choose one of "
                              f"{', '.join(names)} ({flag})")
        return lyr
    spatial = [ds.GetLayer(i) for i in range(ds.GetLayerCount()) if ds.GetLayer(i).GetGeomType() != ogr.wkbNone]
    if len(spatial) > 1:
        listed = _listed({lyr.GetName(): lyr.GetFeatureCount() for lyr in spatial})
        raise ClaireError(f"the {what} {quoted(path)} hold {len(spatial)} layers ({listed}); say which one to use "
                          f"({flag}), or, to use them all (a layer per class), merge them into one (QGIS: Vector > "
                          f"Data Management Tools > Merge Vector Layers)")
    return spatial[0] if spatial else ds.GetLayer(0)


def undefined_crs(srs) -> bool:
    """Whether a layer's CRS says nothing: none, a GeoPackage's "Undefined geographic / Cartesian SRS" (srs_id 0 /
    -1, what GDAL writes for a layer without one), or another engineering (local) CRS."""
    if srs is None:
        return True
    return bool(srs.IsLocal()) or (srs.GetName() or "").strip().lower().startswith("undefined")


def layer_srs(lyr, assigned: Optional[str] = None):
    """`assigned` (WKT or an authority code: the CRS QGIS shows the layer in, the file's or the one its user set in
    the layer's properties) when given and valid, else the OGR layer's spatial reference; may be undefined (see
    undefined_crs). QGIS's wins where the two differ (a GeoJSON of UTM coordinates without a "crs" member, which GDAL
    reads as WGS 84, given its CRS in QGIS), so that the run reads the features where the user sees them."""
    from osgeo import osr

    src = lyr.GetSpatialRef()
    if assigned:
        given = osr.SpatialReference()
        try:
            given.SetFromUserInput(assigned)
        except RuntimeError:
            given = None
        if given is not None and not undefined_crs(given):
            src = given
    return src


def layer_transform(lyr, crs_wkt: str, path: str, what: str, assigned: Optional[str] = None):
    """The transformation (a LayerTransform) from layer `lyr`'s CRS to `crs_wkt` (traditional x/y axis order),
    None when they are the same; ClaireError when the layer has no CRS (see undefined_crs) or no transformation
    exists (`what` names the file in the message: "labels"). `assigned` (WKT or an authority code): the CRS QGIS
    reads the layer in (see layer_srs)."""
    from osgeo import osr

    src = layer_srs(lyr, assigned)
    if undefined_crs(src):
        named = "" if src is None else f" ({quoted(src.GetName())})"
        if path.lower().endswith((".csv", ".txt")):  # a CSV holds no CRS (GDAL ignores a .prj beside it)
            raise ClaireError(f"the {what} {quoted(path)} have no coordinate reference system{named}: a CSV cannot "
                              f"hold one; save it as a GeoPackage in the CRS its coordinates are in (QGIS: give the "
                              f"layer its CRS, then Export > Save Features As; ogr2ogr -a_srs EPSG:xxxx out.gpkg "
                              f"FILE, with -oo X_POSSIBLE_NAMES=lon -oo Y_POSSIBLE_NAMES=lat for coordinates in "
                              f"columns named so), or use the layer in QGIS with its CRS set")
        raise ClaireError(f"the {what} {quoted(path)} have no coordinate reference system{named}; assign one in the "
                          f"file (QGIS: the Processing tool 'Define Shapefile projection', which writes the .prj of "
                          f"a shapefile; or Export > Save Features As with the CRS the coordinates are in; ogr2ogr "
                          f"-a_srs EPSG:xxxx)")
    dst = osr.SpatialReference()
    dst.ImportFromWkt(crs_wkt)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        return None if src.IsSame(dst) else LayerTransform(osr.CoordinateTransformation(src, dst), src.GetName(), path)
    except RuntimeError as exc:
        raise ClaireError(f"the {what} {quoted(path)} are in a CRS ({quoted(src.GetName())}) that cannot be "
                          f"transformed to {quoted(dst.GetName())}: {str(exc)[:160]}; give the layer the CRS its "
                          "coordinates are in, or reproject it") from None


class LayerTransform:
    """The transformation of a layer's geometries to a raster's CRS (from layer_transform), naming the CRS it
    transforms from in its message."""

    def __init__(self, ct, crs_name: str, path: str) -> None:
        self.ct, self.crs_name, self.path = ct, crs_name, path

    def apply(self, geom, fid: int) -> None:
        """Transform `geom` in place; ClaireError naming the feature where its coordinates do not fit the layer's
        CRS (e.g. metres of a UTM zone in a layer said to be in degrees)."""
        try:
            failed = geom.Transform(self.ct) != 0
        except RuntimeError:
            failed = True
        if failed:
            x0, x1, y0, y1 = geom.GetEnvelope()
            raise ClaireError(f"feature {fid} of {quoted(self.path)} cannot be transformed to the raster's CRS: its "
                              f"coordinates (x {x0:.6g}..{x1:.6g}, y {y0:.6g}..{y1:.6g}) do not fit the layer's CRS "
                              f"({quoted(self.crs_name)}); give the layer the CRS its coordinates are in (e.g. metres "
                              "of a UTM zone, not degrees)")


def _listed(layers: Dict[str, int]) -> str:
    """"'name' (n features), ..." of {layer name: feature count}, for a message."""
    return ", ".join(f"'{name}' ({n} feature{'s' if n != 1 else ''})" for name, n in layers.items())


def check_replaceable(path: str, layer: str, role: str, fields: Sequence[str] = ()) -> None:
    """ClaireError when `path` exists and holds a layer other than `layer` (QGIS's layer_styles table aside), or a
    layer `layer` without the `fields` an earlier output has: a file of the user's own (training polygons, survey
    points) that writing `role` there would replace, not an earlier output of the same kind."""
    from osgeo import gdal

    if not os.path.isfile(path):
        return
    try:
        with gdal_exceptions():
            ds = gdal.OpenEx(path, gdal.OF_VECTOR)
    except RuntimeError:
        ds = None
    if ds is None:
        return  # not a vector file: check_output_path decides
    others = {}
    for i in range(ds.GetLayerCount()):
        lyr = ds.GetLayer(i)
        defn = lyr.GetLayerDefn()
        ours = lyr.GetName() == layer and all(defn.GetFieldIndex(f) >= 0 for f in fields)
        if not ours and lyr.GetName() != "layer_styles":  # QGIS keeps styles in that table, with the data
            others[lyr.GetName()] = lyr.GetFeatureCount()
    ds = None
    if others:
        raise ClaireError(f"{quoted(path)} already holds layer {_listed(others)}, which {role} would replace (their "
                          f"layer is '{layer}'); choose another file name so that your data is not lost")


def check_vector_output(path: str, layer: str, role: str, signature: Sequence[str] = ()) -> None:
    """What write_vector_layer refuses, checked before any work: a path not ending in .gpkg, and a file of the
    user's own there (check_replaceable)."""
    if not str(path).lower().endswith(".gpkg"):
        raise ClaireError(f"{role} go to a GeoPackage; give a path ending in .gpkg (got {quoted(path)})")
    check_replaceable(path, layer, role, signature)


@with_gdal_exceptions
def write_vector_layer(path: str, layer: str, crs_wkt: str, fields: Sequence[Tuple[str, str]],
                       records: Iterable[Tuple[str, Dict[str, Any]]], role: str, kind: str = "point",
                       signature: Sequence[str] = ()) -> str:
    """Write `records` (WKT geometry, {field: value or None}) as the `kind` ("point" or "polygon") layer `layer`
    of the GeoPackage `path`, which appears only once complete; see write_point_layer."""
    from osgeo import ogr, osr

    check_vector_output(path, layer, role, signature)
    kinds = {"int": ogr.OFTInteger, "int64": ogr.OFTInteger64, "real": ogr.OFTReal, "str": ogr.OFTString}
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    tmp = temp_name(path, ".gpkg")
    ds = lyr = None
    try:
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
        lyr = ds.CreateLayer(layer, srs, {"point": ogr.wkbPoint, "polygon": ogr.wkbPolygon}[kind])
        for name, ftype in fields:
            lyr.CreateField(ogr.FieldDefn(name, kinds[ftype]))
        defn = lyr.GetLayerDefn()
        lyr.StartTransaction()
        for wkt, values in records:
            feat = ogr.Feature(defn)
            for name, ftype in fields:
                value: Optional[Any] = values.get(name)
                if value is None:
                    feat.SetFieldNull(name)
                else:
                    feat.SetField(name, {"int": int, "int64": int, "real": float, "str": str}[ftype](value))
            feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
            lyr.CreateFeature(feat)
        lyr.CommitTransaction()
        lyr = ds = None
        os.replace(tmp, path)
    except (RuntimeError, OSError) as exc:
        raise ClaireError(f"cannot write {role} to {quoted(path)} ({exc}); choose a writable folder") from None
    finally:
        lyr = ds = None
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
