"""Accuracy of a classified raster against a reference raster (QGIS-free).

The reference is read onto the classified raster's grid (nearest neighbour, window by window, so memory
does not grow with the raster), its values are mapped to the classified values when they differ
(e.g. "10:1,20:2"), and a confusion matrix is accumulated; metrics come from `models.metrics`.
"""
from __future__ import annotations

import html
import json
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ...models.quoting import clean_name, quoted
from .errors import ClaireError
from .io.block_cache import reads_rows_once


def _integer(text: str) -> int:
    """'10' or '10.0' -> 10; ValueError for anything else (0.5, nan, inf, words)."""
    value = float(text)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(text)
    return int(value)


def parse_class_mapping(text: Optional[str], name: str = "CLASS_MAPPING") -> Dict[int, int]:
    """'10:1, 20:2' → {10: 1, 20: 2} (reference value → classified value); empty → {}. `name`: the option
    holding the text, named in the messages."""
    mapping: Dict[int, int] = {}
    text = (text or "").strip()
    if not text:
        return mapping
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        bits = part.replace("=", ":").replace("->", ":").split(":")
        try:
            src, dst = (_integer(b) for b in bits)
        except ValueError:
            raise ClaireError(
                f"{name}: the entry {quoted(part)} is not REFERENCE:CLASSIFIED. Fix: write pairs of integers "
                "such as 10:1,20:2 (reference value 10 is class 1 of the map).") from None
        if src in mapping and mapping[src] != dst:
            raise ClaireError(f"{name} gives reference value {src} twice ({mapping[src]} and {dst}); keep one.")
        mapping[src] = dst
    return mapping


def parse_values(text: Optional[str], name: str = "REFERENCE_NODATA") -> List[int]:
    """'0, 255', '0;255' or '0 255' → [0, 255]; empty → []. `name`: the option holding the text, named in the
    message."""
    import re

    text = (text or "").strip()
    if not text:
        return []
    try:
        return [_integer(v) for v in re.split(r"[,;\s]+", text) if v]
    except ValueError:
        raise ClaireError(f"{name}: {quoted(text)} is not a list of integer values; write e.g. 0 or 0,255.") from None


def classes_from_gdal(path: str) -> List[Dict[str, Any]]:
    """Classes (value, name, colour) from a GeoTIFF's category names and colour table, if it has them.

    Category names come from GDAL (the GTiff driver keeps them in the .aux.xml sidecar, read even where
    GDAL_PAM_ENABLED=NO); then the `class_<value>` tags inside the TIFF, then the name column of a raster
    attribute table. Reads `gdal.Info` JSON because `Band.GetCategoryNames()` of Debian's GDAL 3.6 bindings
    returns None.
    """
    from .io.pam import pam_on

    try:
        from osgeo import gdal
    except ImportError:
        return []
    try:
        with pam_on():
            info = gdal.Info(path, format="json")
    except RuntimeError:
        return []
    if not info or not info.get("bands"):
        return []
    band = info["bands"][0]
    nodata = band.get("noDataValue")
    names = {v: n for v, n in enumerate(band.get("categories") or []) if n}
    for key, value in (band.get("metadata", {}).get("") or {}).items():
        if key.startswith("class_") and key[6:].isdigit():
            names.setdefault(int(key[6:]), value)
    for value, name in _rat_names(band.get("rat") or info.get("rat")).items():
        names.setdefault(value, name)
    entries = (band.get("colorTable") or {}).get("entries") or []
    out = []
    for value in sorted(names):
        name = clean_name(names[value])
        if not name or (nodata is not None and value == int(nodata)):
            continue
        color = "#{:02x}{:02x}{:02x}".format(*entries[value][:3]) if value < len(entries) else None
        out.append({"value": value, "name": name, "color": color})
    return out


#: GDAL's field usages in a raster attribute table (GDALRATFieldUsage): the class name, and the pixel value
_RAT_NAME, _RAT_VALUES = 2, (5, 3)  # GFU_Name; GFU_MinMax, GFU_Min


def _rat_names(rat: Optional[Dict[str, Any]]) -> Dict[int, str]:
    """value -> name of a raster attribute table as `gdal.Info` JSON gives it: its name column (usage Name, else
    a text column called like "class name"), its value column (usage MinMax or Min, else the row number)."""
    fields = (rat or {}).get("fieldDefn") or []
    text = [f for f in fields if f.get("type") == 2]
    named = [f for f in text if f.get("usage") == _RAT_NAME] or \
        [f for f in text if any(w in str(f.get("name", "")).lower() for w in ("name", "class", "label"))]
    if not named:
        return {}
    col = named[0]["index"]
    value_cols = [f["index"] for u in _RAT_VALUES for f in fields if f.get("usage") == u]
    out: Dict[int, str] = {}
    for row in (rat or {}).get("row") or []:
        cells = row.get("f") or []
        raw = cells[value_cols[0]] if value_cols else row.get("index")
        name = cells[col] if col < len(cells) else None
        if isinstance(raw, (int, float)) and float(raw).is_integer() and isinstance(name, str) and name.strip():
            out.setdefault(int(raw), name.strip())
    return out


_OFFSET = 2 ** 31
REFERENCE_FIX = "give the single-band raster of reference class codes"
MAPPING_FIX = "give a class mapping (e.g. 10:1,20:2) from reference values to the map's values"


def listed(values: Sequence[int], most: int = 20) -> str:
    """Sorted values for a message, the first `most` and how many more."""
    values = sorted(values)
    text = ", ".join(str(v) for v in values[:most])
    return f"[{text}" + (f", … and {len(values) - most} more]" if len(values) > most else "]")


def no_common_class(reference: str, found: Iterable[int], classes: Iterable[int], fix: str = MAPPING_FIX) -> str:
    """The problem and fix when no value of the reference raster is a class of the map (`found`: the
    reference values seen, `classes`: the map's class values)."""
    found = list(found)
    return (f"No pixel of the reference {quoted(reference)} has a class value of the map, so nothing can be compared. "
            f"Fix: {fix}. Reference values found: {listed(found) if found else 'none'}; map values: "
            f"{listed(classes)}.")


RECODE_FIX = ("give a reference raster coded in the map's class values (recode it first, e.g. with Reclassify "
              "by table in QGIS), or classify without it and compare the map afterwards with the Processing "
              "tool Evaluate land cover against a reference, which takes a class mapping")


def check_reference(ds, grid_ds, path: str, lut: np.ndarray) -> None:
    """Before a classify run: a ClaireError unless the open reference raster `ds` is one band of whole-number
    codes of which at least one, where it meets `grid_ds`, is a class of the map (`lut`: value -> class index,
    -1 when no class, as core.engine.plan.reference_lut). A sparse sample first, then block by block until a
    class value turns up (a float reference: every block, for a value with a fraction)."""
    from .map_accuracy import class_map_problem, non_whole_problem

    problem = class_map_problem(ds, path, "reference raster", integer=False, fix=REFERENCE_FIX)
    if problem:
        raise ClaireError(problem)
    seen: set = set()
    found = False
    floats = not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer)  # every block read: a fraction anywhere is said now
    for block in _reference_blocks(ds, grid_ds):
        v = block[np.isfinite(block)]
        if ds.nodata is not None:
            v = v[v != np.float32(ds.nodata)]
        problem = non_whole_problem(v, path, "reference raster", f"{REFERENCE_FIX} (not the optical or SAR raster)")
        if problem:
            raise ClaireError(problem)
        if found:  # a float reference read on for fractions only
            continue
        v = v.astype(np.int64)
        found = bool((lut[v[(v >= 0) & (v < lut.size)]] >= 0).any())
        if found and not floats:
            return
        if not found and len(seen) < 1000:  # for the message of a reference with no class of the map
            seen.update(np.unique(v).tolist())
    if not found:
        raise ClaireError(no_common_class(path, seen, np.nonzero(lut >= 0)[0].tolist(), RECODE_FIX))


def _reference_blocks(ds, grid_ds, step: int = 512):
    """Values (float32, flat) of the reference where it meets `grid_ds`: a sparse sample, then every block."""
    from rasterio.windows import Window

    from .io import raster_io as rio

    try:
        window = rio.overlap_window(ds, grid_ds, "optical")
    except ClaireError:  # less than one reference pixel: read all of it
        window = Window(0, 0, ds.width, ds.height)
    yield rio.sample(ds, [1], window)[0]
    r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
    for r in range(r0, r0 + h, step):
        for c in range(c0, c0 + w, step):
            yield rio.read_pixels(ds, [1], Window(c, r, min(step, c0 + w - c), min(step, r0 + h - r)))[0].ravel()


def _block_codes(pred: np.ndarray, raw: np.ndarray, masked: np.ndarray, nodata, mapping: Dict[int, int],
                 ignore_ref: Iterable[int], reference: str = "reference"):
    """(pair codes of the valid pixels of a block, pixels the map has, pixels the reference has); a ClaireError
    when the reference (path `reference`) holds a value that is no whole number there."""
    from .map_accuracy import non_whole_problem

    cls_nodata, ref_nodata = nodata
    valid = masked & np.isfinite(raw)  # NaN / infinity: no reference there
    if ref_nodata is not None and math.isfinite(ref_nodata):
        valid &= raw != ref_nodata
    problem = non_whole_problem(raw[valid], reference, "reference raster", REFERENCE_FIX)
    if problem:
        raise ClaireError(problem)
    ref = np.where(valid, raw, 0).astype(np.int64)
    for v in ignore_ref:
        valid &= ref != v
    has_ref = int(valid.sum())
    has_map = pred != int(cls_nodata) if cls_nodata is not None else np.ones(pred.shape, bool)
    valid &= has_map
    if mapping:
        mapped = np.full_like(ref, -(2 ** 31))
        for src, dst in mapping.items():
            mapped[ref == src] = dst
        # values absent from the mapping stay as they are (identity), so partial maps work
        mapped[mapped == -(2 ** 31)] = ref[mapped == -(2 ** 31)]
        ref = mapped
    return (ref[valid] << 32) + (pred[valid] + _OFFSET), int(has_map.sum()), has_ref


def _check_overlap(cls_ds, ref_ds) -> None:
    """A ClaireError when either raster has no CRS or the reference does not overlap the map."""
    from rasterio.warp import transform_bounds

    if ref_ds.crs is None or cls_ds.crs is None:
        raise ClaireError("The classified or the reference raster has no CRS. Fix: assign the CRS "
                          "(Raster > Projections > Assign Projection) and run again.")
    rb = transform_bounds(ref_ds.crs, cls_ds.crs, *ref_ds.bounds)
    cb = cls_ds.bounds
    if rb[0] >= cb[2] or rb[2] <= cb[0] or rb[1] >= cb[3] or rb[3] <= cb[1]:
        raise ClaireError("The reference raster does not overlap the classified raster. Fix: choose the "
                          "reference of the same area.")


def _pair_counts(classified: str, reference: str, mapping: Dict[int, int], ignore_ref: Iterable[int],
                 progress=None, is_cancelled=None) -> Dict[str, Any]:
    """Count (reference value, classified value) pairs over the classified grid, and the pixels each raster
    has there. Both must be one band of class codes (map_accuracy.open_class_map); a read that fails (a
    truncated or damaged file) is a ClaireError naming the file."""
    from contextlib import ExitStack

    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from .io.raster_io import read_pixels
    from .map_accuracy import open_class_map, read_classes

    counts: Dict[int, int] = {}
    has = [0, 0]
    with ExitStack() as stack:
        cls_ds = stack.enter_context(open_class_map(classified, "classified raster"))
        ref_ds = stack.enter_context(open_class_map(reference, "reference raster", integer=False, fix=REFERENCE_FIX))
        _check_overlap(cls_ds, ref_ds)
        nodata = cls_ds.nodata, ref_ds.nodata
        # without a nodata value of its own the warp fills the map's area beyond the reference with 0, which would
        # be scored as a reference class: an alpha band marks what the reference covers instead
        extra = {"nodata": nodata[1]} if nodata[1] is not None else {"add_alpha": True}
        vrt = stack.enter_context(WarpedVRT(ref_ds, crs=cls_ds.crs, transform=cls_ds.transform, width=cls_ds.width,
                                            height=cls_ds.height, resampling=Resampling.nearest, **extra))
        windows = [w for _, w in cls_ds.block_windows(1)]
        for i, window in enumerate(windows):
            if is_cancelled is not None and is_cancelled():
                from .errors import CancelledError
                raise CancelledError()
            raw = read_pixels(vrt, [1], window, "float64")[0]
            codes, n_map, n_ref = _block_codes(read_classes(cls_ds, window).astype(np.int64), raw,
                                               vrt.read_masks(1, window=window) > 0, nodata, mapping, ignore_ref,
                                               reference)
            has[0], has[1] = has[0] + n_map, has[1] + n_ref
            for code, count in zip(*(v.tolist() for v in np.unique(codes, return_counts=True))):
                counts[code] = counts.get(code, 0) + count
            if progress is not None:
                progress((i + 1) / len(windows), "Comparing with the reference")
        from .io.raster_io import pixel_area_m2

        pixel_area = pixel_area_m2(cls_ds)  # ground area, as the map's summary counts it (degrees, feet, Mercator)
    pairs = {(code >> 32, (code & 0xFFFFFFFF) - _OFFSET): c for code, c in counts.items()}
    return {"pairs": pairs, "pixel_area_m2": pixel_area, "classified_nodata": nodata[0],
            "reference_nodata": nodata[1], "classified_pixels": has[0], "reference_pixels": has[1]}


@reads_rows_once("classified", "reference")
def evaluate(classified: str, reference: str, classes: Optional[Sequence[Dict[str, Any]]] = None,
             mapping: Optional[Dict[int, int]] = None, ignore_reference: Iterable[int] = (),
             progress=None, is_cancelled=None) -> Dict[str, Any]:
    """Compare ``classified`` with ``reference``; return metrics, per-class rows and what was ignored.

    ``classes``: the classes of the map (value, name, colour); default the GeoTIFF's category names, else
    the values found in either raster (a reference value the map never gives is then a class it missed:
    omission errors, listed in ``reference_only``). Reference pixels whose (mapped) value is not a class of the
    given or named classes are left out and counted in ``ignored_reference``.
    """
    from ...models.metrics import metrics_with_other
    from .io.gdal_names import missing_message

    for path, what in ((classified, "classified"), (reference, "reference")):
        if not path or missing_message(path, what):
            raise ClaireError(f"The {what} raster {quoted(path)} does not exist. Fix: choose an existing file.")
    mapping = mapping or {}
    data = _pair_counts(classified, reference, mapping, list(ignore_reference), progress, is_cancelled)
    _check_has_pixels(data, classified, reference)
    pairs = data["pairs"]
    classes = [dict(c) for c in (classes or classes_from_gdal(classified))]
    reference_only: Dict[int, int] = {}
    if not classes:  # no legend: every value of either raster is a class, and one the map never gives is missed
        mapped, found = {p for _, p in pairs}, {r for r, _ in pairs}
        nd = data["classified_nodata"]
        found -= {int(nd)} if nd is not None and float(nd).is_integer() else set()  # never a class of the map
        values = sorted(mapped | found if mapped & found else mapped)  # no value in common: other codes, refused
        classes = [{"value": v, "name": f"class {v}", "color": None} for v in values]
        for (r, _), n in pairs.items():
            if r not in mapped and r in values:
                reference_only[r] = reference_only.get(r, 0) + n
    index = {int(c["value"]): i for i, c in enumerate(classes)}
    cm, other, other_values, ignored_ref = _confusion(pairs, index, len(classes))
    if cm.sum() + other.sum() == 0:
        raise ClaireError(no_common_class(reference, ignored_ref, index))
    names = [str(c.get("name")) for c in classes]
    metrics = metrics_with_other(cm, names, other, OTHER_VALUE)
    for row, c in zip(metrics["per_class"], classes):
        row["value"] = int(c["value"])
        row["color"] = c.get("color")
        row["predicted"] = int(cm[:, index[int(c["value"])]].sum())
    metrics["confusion"] = cm.tolist()
    metrics["confusion_rows"], metrics["confusion_columns"] = "reference", "map"  # as the classify summary says
    metrics["class_values"] = [int(c["value"]) for c in classes]
    metrics["compared_pixels"] = int(cm.sum() + other.sum())
    metrics["compared_area_ha"] = float(metrics["compared_pixels"] * data["pixel_area_m2"] / 1e4)
    metrics["ignored_reference"] = {str(k_): v for k_, v in sorted(ignored_ref.items())}
    metrics["other_map_values"] = {str(k_): v for k_, v in sorted(other_values.items())}
    metrics["other_map_pixels"] = [int(v) for v in other]  # per class (row), beside the K x K confusion
    metrics["reference_only"] = {str(k_): v for k_, v in sorted(reference_only.items())}
    metrics["mapping"] = {str(k_): v for k_, v in mapping.items()}
    metrics["legend_note"] = None if mapping else legend_conflict_note(classes, reference, "CLASS_MAPPING")
    metrics["classified"] = classified
    metrics["reference"] = reference
    return metrics


def legend_conflict_note(map_classes: Sequence[Dict[str, Any]], reference: str, how: str) -> Optional[str]:
    """A warning where the reference's own class names (categories, class_N tags, attribute table) give a value
    another class than the map's names do (a map of a model whose classes were coded otherwise): values are compared
    as they are, so those classes are scored against others. `how` says where the user gives the mapping; the note
    names it by name where the map has the reference's names. A reference without names is taken to follow the
    bundled legend where the map codes the bundled model's classes otherwise (core.legend). None where the legends
    agree or the map has no names."""
    from .training.labels import name_key

    ref = {int(c["value"]): str(c["name"]).strip() for c in classes_from_gdal(reference) if c.get("name")}
    mine = {int(c["value"]): str(c["name"]).strip() for c in map_classes if c.get("name")}
    from .legend import apart_note, mapping_by_name, mostly_bundled

    if not ref:  # no legend of its own: the bundled one is the likeliest for a map of the bundled model's kind
        if not mostly_bundled(list(mine.values())):  # a dataset's model (WHU-OPT-SAR's 'water' at 40): its labels
            return None
        note = apart_note(list(mine.items()), "the map", how)
        return None if note is None else f"warning: {note}"
    clash = [(v, ref[v], mine[v]) for v in sorted(ref) if v in mine and name_key(ref[v]) != name_key(mine[v])]
    if not clash:
        return None
    pairs = mapping_by_name(ref, mine)
    said = "; ".join(f"{v} is {quoted(r)} there and {quoted(m)} in the map" for v, r, m in clash[:6])
    more = f" (and {len(clash) - 6} more)" if len(clash) > 6 else ""
    fix = (f"compare by name with the class mapping {','.join(pairs)} ({how})" if pairs else
           "recode the reference to the map's classes (claire info lists the model's codes)")
    return (f"warning: the reference names its classes otherwise than the map: {said}{more}. Values are compared as "
            f"they are, so these classes are scored against other classes; {fix}")


def _confusion(pairs: Dict[Tuple[int, int], int], index: Dict[int, int], k: int
               ) -> Tuple[np.ndarray, np.ndarray, Dict[int, int], Dict[int, int]]:
    """(the k x k confusion (rows = reference) of the (reference, map) value pairs' counts over the classes of
    `index` (value -> row; a class list naming a value twice leaves a row empty), per class the pixels the map gave
    a value that is no class (errors), those values' counts, the reference values that are no class (left out))."""
    cm, other = np.zeros((k, k), np.int64), np.zeros(k, np.int64)
    ignored_ref: Dict[int, int] = {}
    other_values: Dict[int, int] = {}
    for (r, p), n in pairs.items():
        if r not in index:
            ignored_ref[r] = ignored_ref.get(r, 0) + n
        elif p not in index:
            other_values[p] = other_values.get(p, 0) + n
            other[index[r]] += n
        else:
            cm[index[r], index[p]] += n
    return cm, other, other_values, ignored_ref


#: The confusion column of map pixels whose value is none of the classes compared.
OTHER_VALUE = "a value that is no class"


def other_values_note(metrics: Dict[str, Any]) -> Optional[str]:
    """What an evaluation says of map values that are none of its classes at reference pixels of a class (counted as
    errors), or None."""
    found = metrics.get("other_map_values") or {}
    if not found:
        return None
    listed = ", ".join(f"{v} ({n} pixels)" for v, n in found.items())
    return (f"The map gives values that are none of the classes compared where the reference has a class: {listed}. "
            f"They are counted as errors of those reference classes (the column '{OTHER_VALUE}'). If such a value is "
            f"a class of the map that the class list leaves out, give the checkpoint the map was made with (its card "
            f"lists every class) or name the map's classes (GDAL category names)")


def reference_only_note(metrics: Dict[str, Any]) -> str:
    """What an evaluation of a map without a legend says of reference values the map never gives."""
    only = metrics.get("reference_only") or {}
    listed = ", ".join(f"{v} ({n} pixels)" for v, n in only.items())
    return (f"Reference values the map never gives, counted as classes it missed (the map has no class names, so "
            f"every value of either raster is a class): {listed}. If one of them means 'unlabelled', give it as a "
            f"reference value to ignore (REFERENCE_NODATA).")


def _check_has_pixels(data: Dict[str, Any], classified: str, reference: str) -> None:
    """A ClaireError when the map, or the reference over it, has no valid pixel (all nodata)."""
    if not data["classified_pixels"]:
        raise ClaireError(f"The classified raster {quoted(classified)} has no valid pixel (every pixel is its nodata "
                          f"value {data['classified_nodata']}), so nothing can be compared. Fix: give a classified "
                          f"map with data (e.g. the output of Classify land cover).")
    if not data["reference_pixels"]:
        raise ClaireError(f"The reference raster {quoted(reference)} has no valid pixel over the classified raster "
                          "(all nodata, or values left out), so nothing can be compared. Fix: give the reference of "
                          "the map's area, or leave fewer reference values out.")


def write_report(metrics: Dict[str, Any], path: str) -> str:
    """A JSON (``.json``) or HTML (``.html``, ``.htm``: the front doors refuse other endings) report of the
    evaluation."""
    from .io.atomic import write_json, write_text

    if path.lower().endswith(".json"):
        return write_json(path, metrics, "evaluation report")
    e = html.escape

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * float(v):.1f} %"

    rows = "".join(
        f"<tr><td><span style='display:inline-block;width:12px;height:12px;background:{e(r.get('color') or '#888')}'>"
        f"</span> {e(str(r['name']))}</td><td>{r['value']}</td><td>{pct(r['iou'])}</td><td>{pct(r['precision'])}</td>"
        f"<td>{pct(r['recall'])}</td><td>{pct(r['f1'])}</td><td>{r['support']}</td></tr>"
        for r in metrics["per_class"])
    names = [str(r["name"]) for r in metrics["per_class"]]
    other = metrics.get("other_map_pixels") if metrics.get("other_map_values") else None
    cm_rows = "".join(f"<tr><th>{e(n)}</th>" + "".join(f"<td>{v}</td>" for v in row)
                      + (f"<td>{other[i]}</td>" if other else "") + "</tr>"
                      for i, (n, row) in enumerate(zip(names, metrics["confusion"])))
    heads = names + ([OTHER_VALUE] if other else [])
    ignored = metrics.get("ignored_reference") or {}
    legend = (metrics.get("legend_note") or "").removeprefix("warning: ")
    doc = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>CLAIRE evaluation</title>
<style>body{{font-family:sans-serif;margin:24px;}}
td,th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}}
td:first-child,th:first-child{{text-align:left}} table{{border-collapse:collapse}}</style></head><body>
<h1>Accuracy of {e(os.path.basename(metrics['classified']))}</h1>
<p>Reference: {e(os.path.basename(metrics['reference']))}. Compared pixels: {metrics['compared_pixels']}
({metrics['compared_area_ha']:.1f} ha).</p>
{'<p><b>Warning:</b> ' + e(legend) + '</p>' if legend else ''}
<p><b>Overall accuracy {pct(metrics['oa'])}</b> · mean IoU {pct(metrics['miou'])}
· Cohen's kappa {metrics['kappa']:.3f}</p>
<h2>Per class</h2><table><tr><th>Class</th><th>Value</th><th>IoU</th><th>Precision</th><th>Recall</th><th>F1</th>
<th>Reference pixels</th></tr>{rows}</table>
<h2>Confusion matrix</h2><p>Rows: reference; columns: map.</p>
<table><tr><th></th>{''.join(f'<th>{e(n)}</th>' for n in heads)}</tr>{cm_rows}</table>
{'<p>' + e(other_values_note(metrics) or '') + '</p>' if other else ''}
{'<p>Reference values left out (not a class of the map): ' + e(json.dumps(ignored)) + '</p>' if ignored else ''}
{'<p>' + e(reference_only_note(metrics)) + '</p>' if metrics.get('reference_only') else ''}
</body></html>"""
    return write_text(path, doc, "evaluation report")
