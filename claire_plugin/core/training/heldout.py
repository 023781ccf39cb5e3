"""The held-out polygons of a polygon split written back as a layer, so that the user can see which polygons
scored the model and give the same ones as the validation layer of the next training (its scores then compare
with this run's; core.training.split.layer_split leaves those polygons out of training)."""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence

from ....models.quoting import quoted
from ..errors import ClaireError
from ..io.gdal_mode import with_gdal_exceptions
from ..io.points import choose_layer, layer_srs, undefined_crs

#: Layer name inside the GeoPackage.
LAYER = "held_out"
#: Field with the feature id the polygon has in the training layer.
SOURCE_FID = "source_fid"


def held_out_path_for(output: str) -> str:
    """`<checkpoint stem>.heldout.gpkg` beside the checkpoint."""
    return os.path.splitext(output)[0] + ".heldout.gpkg"


def held_out_output(output: str, labels: str, validation: Optional[str]) -> Optional[str]:
    """Where a run writes its held-out polygons: None when it has none of its own to write (a separate
    validation layer was given, or the labels are a raster)."""
    from .label_raster import is_raster

    if validation or is_raster(labels):
        return None
    return held_out_path_for(output)


@with_gdal_exceptions
def write_held_out(source: Dict[str, object], fids: Sequence[int], path: str) -> int:
    """Copy the features `fids` of the vector labels `source` (LabelSet.source: path, layer, field, name_field)
    as they are stored (geometry, CRS, class field, name field) into a new GeoPackage `path` with their
    feature id in SOURCE_FID; returns how many were written."""
    from osgeo import ogr

    wanted = {int(f) for f in fids}
    src = ogr.Open(str(source["path"]))
    if src is None:
        raise ClaireError(f"cannot reopen the labels {quoted(source['path'])} to write the held-out polygons")
    written, lyr = 0, None
    try:
        lyr = choose_layer(src, str(source["path"]), source.get("layer"), "labels")
        fields = [f for f in (source.get("field"), source.get("name_field")) if f]
        out_ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
        try:
            # a Shapefile's "Polygon" layer also holds multipolygons: written as a multipolygon layer, or a
            # multi-part feature became one invalid polygon (its parts as holes outside its shell)
            gtype = _multi(lyr.GetGeomType())
            srs = layer_srs(lyr, source.get("assigned_crs"))  # a CRS set in QGIS travels to the held-out file
            out = out_ds.CreateLayer(LAYER, srs=None if undefined_crs(srs) else srs, geom_type=gtype)
            defn = lyr.GetLayerDefn()
            for name in fields:
                out.CreateField(defn.GetFieldDefn(defn.GetFieldIndex(name)))
            out.CreateField(ogr.FieldDefn(SOURCE_FID, ogr.OFTInteger64))
            out_defn = out.GetLayerDefn()
            out.StartTransaction()
            for feat in lyr:
                if feat.GetFID() not in wanted:
                    continue
                copy = ogr.Feature(out_defn)
                copy.SetGeometry(_as_layer_type(feat.GetGeometryRef(), gtype))
                for name in fields:
                    copy.SetField(name, feat.GetField(name))
                copy.SetField(SOURCE_FID, feat.GetFID())
                out.CreateFeature(copy)
                written += 1
            out.CommitTransaction()
            out = None
        except RuntimeError as exc:
            raise ClaireError(f"cannot write the held-out polygons to {quoted(path)} ({exc}); check the folder's free "
                              f"space and permissions") from None
        finally:
            out_ds = None
    finally:
        lyr = None  # OGR layers must go before their data source
        src = None
    return written


def _multi(gtype: int) -> int:
    """The collection type of a single-part geometry type (Polygon -> MultiPolygon, with its Z / M flags); other
    types as they are."""
    from osgeo import ogr

    if ogr.GT_Flatten(gtype) in (ogr.wkbPoint, ogr.wkbLineString, ogr.wkbPolygon):
        return ogr.GT_GetCollection(gtype)
    return gtype


def _as_layer_type(geom, gtype):
    """`geom` as the layer's declared geometry type (a polygon in a MultiPolygon layer becomes a one-part
    multipolygon, as GDAL would otherwise warn the user about); unchanged for layers of any type."""
    from osgeo import ogr

    if geom is None or ogr.GT_Flatten(gtype) in (ogr.wkbUnknown, ogr.GT_Flatten(geom.GetGeometryType())):
        return geom
    return ogr.ForceTo(geom.Clone(), gtype)
