"""QGIS API calls that changed between the QGIS releases CLAIRE supports (3.22 LTR to 3.40 LTR): one place that
picks the current form, so that 3.40 prints no deprecation warnings (and QGIS 4, which drops the old forms, finds
the new ones)."""
from __future__ import annotations

from qgis.core import Qgis, QgsField, QgsMapLayerProxyModel

#: Field kinds by name: (QMetaType.Type name since QGIS 3.38, QVariant.Type name before)
_FIELD_KINDS = {"int": ("Int", "Int"), "int64": ("LongLong", "LongLong"), "double": ("Double", "Double"),
                "string": ("QString", "String")}


def new_field(name: str, kind: str, length: int = 0) -> QgsField:
    """A QgsField of `kind` (int, int64, double or string): QMetaType-typed since QGIS 3.38, where the QVariant
    constructor is deprecated, QVariant-typed before."""
    new, old = _FIELD_KINDS[kind]
    if Qgis.versionInt() >= 33800:
        from qgis.PyQt.QtCore import QMetaType

        return QgsField(name, getattr(QMetaType.Type, new), len=length)
    from qgis.PyQt.QtCore import QVariant

    return QgsField(name, getattr(QVariant, old), len=length)


def layer_filters(*names: str):
    """The layer combos' filter flags of `names` (e.g. "PolygonLayer", "PointLayer"): Qgis.LayerFilters since QGIS
    3.34 (flags of QgsMapLayerProxyModel.Filter are deprecated there), QgsMapLayerProxyModel.Filters before."""
    enum, flags_type = getattr(Qgis, "LayerFilter", None), getattr(Qgis, "LayerFilters", None)
    if enum is not None and flags_type is not None:
        value = 0
        for name in names:
            value |= getattr(enum, name)
        return flags_type(value)
    flags = getattr(QgsMapLayerProxyModel.Filter, names[0])
    for name in names[1:]:
        flags |= getattr(QgsMapLayerProxyModel.Filter, name)
    return flags
