"""A macroclass -> class hierarchy from the labels (SCP's MC ID / C ID): a second field of the training layer
says which macroclass each class belongs to. The network learns the classes; the report scores the macroclasses
as well (the class confusion matrices summed), and the checkpoint's card carries the hierarchy so that a map can
be made at either level (models.macroclass).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ....models.macroclass import collapse_confusion
from ....models.quoting import quoted
from ..errors import ClaireError
from ..io.gdal_mode import with_gdal_exceptions
from ..io.points import choose_layer
from .labels import ClassInfo, class_key, class_lookup, classes_from_values, name_key
from .scorecard import score_confusion


@dataclass
class Hierarchy:
    """The macroclasses (index, code, name) of a labels' field and, per class index, its macroclass index."""

    field: str
    macroclasses: List[ClassInfo]
    of_class: List[int]

    def card_entries(self, classes: Sequence[ClassInfo], colors: Dict[str, Optional[str]]) -> List[Dict[str, Any]]:
        """The card's `macroclasses`: value, name, colour (the base card's colour of that name, else of its first
        class) and the class values in it."""
        out = []
        for m in self.macroclasses:
            members = [c for c in classes if self.of_class[c.index] == m.index]
            color = colors.get(name_key(m.name)) or colors.get(name_key(members[0].name))
            out.append({"index": m.index, "value": m.code, "name": m.name, **({"color": color} if color else {}),
                        "classes": [c.code for c in members]})
        return out

    def report_entry(self, classes: Sequence[ClassInfo], arms: Dict[str, Dict[str, Any]],
                     sar_only: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The report's `macroclasses`: the field, each macroclass with its classes' codes and names, and every
        arm's held-out scores at the macroclass level (its class confusion matrices summed), also those from SAR
        alone (`sar_only`: core.training.sar_alone's result)."""
        groups = np.array(self.of_class, dtype=np.int64)
        names = [m.name for m in self.macroclasses]
        scored = {arm: {cond: macro_score(m, groups, names) for cond, m in conds.items()}
                  for arm, conds in arms.items()}
        alone = {arm: macro_score(m, groups, names) for arm, m in ((sar_only or {}).get("arms") or {}).items()}
        return {"field": self.field, "sar_only": alone,
                "classes": [{"index": m.index, "code": m.code, "name": m.name,
                             "classes": [c.name for c in classes if self.of_class[c.index] == m.index]}
                            for m in self.macroclasses],
                "arms": scored}


def macro_score(scores: Dict[str, Any], groups: np.ndarray, names: Sequence[str]) -> Dict[str, Any]:
    """Scores (scorecard.score's keys) at the macroclass level from class-level `scores`: its confusion matrix
    summed into macroclasses."""
    cm = collapse_confusion(np.asarray(scores["confusion"]), groups, len(names))
    another = scores.get("another_class_pixels")
    if another is not None:
        another = np.bincount(groups, weights=np.asarray(another, np.float64), minlength=len(names)).astype(np.int64)
    return score_confusion(cm, names, scores.get("unscored_pixels", 0), another)


def read_hierarchy(source: Dict[str, Any], classes: List[ClassInfo], macro_field: Optional[str]) -> Optional[Hierarchy]:
    """The hierarchy in field `macro_field` of the vector labels `source` (LabelSet.source) whose classes are
    `classes` (None without a field). ClaireError when the labels are a raster, the field does not exist, a
    feature has no macroclass, or a class has features in two macroclasses (naming them and the fix)."""
    if not macro_field:
        return None
    if source.get("kind") != "vector":
        raise ClaireError("macroclasses come from a field of vector labels; a label raster has none: leave out "
                          "the macroclass field, or give the labels as polygons with a class and a macroclass field")
    pairs = _read_pairs(str(source["path"]), source.get("layer"), str(source["field"]), macro_field)
    lookup = class_lookup(classes)
    found: Dict[int, Dict[object, List[int]]] = {}
    for fid, value, macro in pairs:
        ci = lookup.get(class_key(value))
        if ci is not None:
            found.setdefault(ci, {}).setdefault(class_key(macro), []).append(fid)
    for ci, by_macro in found.items():
        if len(by_macro) > 1:
            listed = "; ".join(f"{quoted(m)} (features {', '.join(map(str, fids[:5]))})"
                               for m, fids in by_macro.items())
            raise ClaireError(f"class {quoted(classes[ci].name)} is in several macroclasses of field "
                              f"{quoted(macro_field)}: {listed}; a class belongs to one macroclass: give its features "
                              "the same macroclass, or split it into two classes")
    keys = [next(iter(found[c.index])) for c in classes if c.index in found]
    macros = classes_from_values(keys, [None] * len(keys), macro_field)
    if len(macros) < 2:
        raise ClaireError(f"every class is in one macroclass ({quoted(macros[0].name)}) in field "
                          f"{quoted(macro_field)}: its map would be that macroclass everywhere; give two macroclasses "
                          "or more, or leave the macroclass field out")
    by_key = class_lookup(macros)
    return Hierarchy(macro_field, macros, [by_key[next(iter(found[c.index]))] for c in classes])


@with_gdal_exceptions
def _read_pairs(path: str, layer: Optional[str], field_name: str, macro_field: str) -> List[tuple]:
    """(feature id, class value, macroclass value) of every feature of the labels' layer."""
    from osgeo import ogr

    ds = ogr.Open(path)
    problem, pairs = None, []
    try:
        lyr = choose_layer(ds, path, layer, "labels")
        defn = lyr.GetLayerDefn()
        if defn.GetFieldIndex(macro_field) < 0:
            fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
            problem = (f"the labels {quoted(path)} have no field {quoted(macro_field)} for the macroclasses; its "
                       f"fields are {', '.join(fields)}: pass the one holding the macroclass, or leave it out")
        else:
            for feat in lyr:
                macro = feat.GetField(macro_field)
                if macro is None or (isinstance(macro, str) and not macro.strip()):
                    problem = (f"feature {feat.GetFID()} of {quoted(path)} has no value in the macroclass field "
                               f"{quoted(macro_field)}; give every feature a macroclass, or leave the field out")
                    break
                pairs.append((feat.GetFID(), feat.GetField(field_name), macro))
        lyr = None
    finally:
        ds = None  # OGR layers must go before their data source
    if problem:
        raise ClaireError(problem)
    return pairs
