"""Training labels from a label raster: class codes resampled (nearest) onto the optical grid, block by block.

Codes 0 and 255 and the raster's nodata are unlabelled (ignored). Each connected patch of one class is one
group for the split, also where it crosses the edge of the blocks the raster is read in (until 2026-12-06 it
became a group per block, so one field could train on one side of a block edge and validate on the other).
The classes are named by `--classes value:name[:#rrggbb],...` where given, else by
the raster's own names (GDAL category names, `class_<value>` tags, a raster attribute table's name column),
else "class N".
"""
from __future__ import annotations

import math
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError
from ..io.atomic import file_sha256
from ..io.gdal_mode import with_gdal_exceptions
from .labels import (
    IGNORE,
    ClassInfo,
    Footprint,
    LabelPixels,
    LabelSet,
    check_class_counts,
    check_name_lengths,
    check_one_code_per_name,
    spelling_notes,
)

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
CLASSES_EXAMPLE = "--classes 1:water:#419bdf,2:crops"
#: GeoTIFF colour tables have 256 entries, the ones never set opaque black: black is read as no colour
UNSET_COLOR = "#000000"

BLOCK = 1024


@with_gdal_exceptions
def is_raster(path: str) -> bool:
    """Whether GDAL opens `path` as a raster (and not as a vector)."""
    from osgeo import gdal

    from ..io.gdal_names import is_gdal_name

    if not is_gdal_name(path) and not os.path.exists(path):  # a /vsizip/ member: GDAL says below whether it opens
        raise ClaireError(f"the labels {quoted(path)} do not exist; give the path of a vector layer or label raster")
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER)
    except RuntimeError:
        return False
    ok = ds is not None and ds.RasterCount > 0
    ds = None
    return ok


def read_label_raster(path: str, grid, classes: Optional[List[ClassInfo]], max_pixels_per_polygon: int,
                      seed: int, check_counts: bool = True, class_names: Optional[str] = None) -> LabelSet:
    """Labels from the first band of raster `path` on `grid`'s pixels (see the module docstring); `classes`
    imposes a class list (a validation raster), else the codes found are named by `class_names` (--classes)
    and the file (raster_classes)."""
    from scipy import ndimage

    from ..io import raster_io as rio

    ds = rio.open_raster(path, "label")
    try:
        rio.require_crs(ds, "label")
        rio.overlap_window(grid, ds, "label")
        warped = rio.warp_to_grid(ds, grid, "nearest")
        nodata = ds.nodata
        parts: List[LabelPixels] = []
        group_class: Dict[int, int] = {}
        lookup = None if classes is None else {c.code: c.index for c in classes}
        codes_seen: set = set()
        rng = np.random.default_rng(seed)
        footprints: List[Footprint] = []
        joins = _EdgeJoins(grid.width)
        share = _class_shares(warped, grid, nodata, path)
        for r0 in range(0, grid.height, BLOCK):
            for c0 in range(0, grid.width, BLOCK):
                h, w = min(BLOCK, grid.height - r0), min(BLOCK, grid.width - c0)
                a, ok = _labelled(warped, _window(r0, c0, h, w), nodata, path)
                gid = np.full((h, w), -1, np.int64)
                found = np.unique(a[ok]).astype(np.int64)
                wide = [int(c) for c in found if not 0 < c < 255]
                if wide:
                    shown = ", ".join(map(str, wide[:8])) + (f" and {len(wide) - 8} more" if len(wide) > 8 else "")
                    raise ClaireError(f"the label raster {quoted(path)} holds code(s) outside 1..254 ({shown}, in its "
                                      f"block at row {r0}, column {c0}): the map stores one byte per pixel; renumber "
                                      f"the classes to 1..254 (QGIS: Processing Toolbox > Raster analysis > Reclassify "
                                      f"by table, or gdal_calc.py) and name them with --classes")
                for code in found:
                    codes_seen.add(int(code))
                    if lookup is not None and int(code) not in lookup:
                        continue
                    comp, n = ndimage.label(ok & (a == code))
                    to_group = _add_components(parts, group_class, comp, n, int(code), r0, c0, rng,
                                               max_pixels_per_polygon, footprints, share.get(int(code), 1.0))
                    gid[comp > 0] = to_group[comp[comp > 0]]
                joins.add_block(gid, r0, c0)
    finally:
        ds.close()
    if not codes_seen:
        raise ClaireError(f"the label raster {quoted(path)} has no labelled pixel over the optical raster (0, 255 and "
                          f"nodata are unlabelled); check that it covers the optical raster")
    notes: List[str] = []
    if classes is None:
        classes, notes = raster_classes(path, sorted(codes_seen), class_names)
        check_name_lengths(classes, path)
    index = {c.code: c.index for c in classes}
    pixels = LabelPixels.concat(parts)
    pixels.cls = _to_index(pixels.cls, index)  # the parts hold class codes
    root = joins.roots(group_class)  # a patch read in several blocks is one group again
    _, root = np.unique(root, return_inverse=True)  # numbered 0..G-1 again
    root = root.reshape(-1)
    if len(pixels):
        pixels.group = root[pixels.group].astype(np.int32)
    for fp in footprints:
        fp.group = int(root[fp.group])
    pixels = _cap_groups(pixels, max_pixels_per_polygon, rng, footprints)  # a patch over several blocks
    group_class = {int(root[g]): index[code] for g, code in group_class.items()}
    source = {"path": path, "kind": "raster", "field": None, "sha256": file_sha256(path), "hash_of": "the file"}
    out = LabelSet(pixels, classes, group_class, {g: [g] for g in group_class}, source, notes, footprints=footprints)
    if check_counts:
        check_class_counts(out)
    return out


def parse_class_names(text: str) -> list:
    """--classes for a label raster, 'value:name[:#rrggbb],...', as datasets.ClassDef records; ClaireError for an
    entry that does not parse, a code given twice, an empty name or a colour that is not #rrggbb."""
    from .sources import parse_classes

    defs = parse_classes(text)
    seen: Dict[int, str] = {}
    for d in defs:
        if d.value in seen:
            raise ClaireError(f"--classes gives code {d.value} twice ({quoted(seen[d.value])} and {quoted(d.name)}); "
                              f"give each code once, e.g. {CLASSES_EXAMPLE}")
        d.color = d.color or None
        if d.color is not None and not _COLOR.match(d.color):
            raise ClaireError(f"--classes gives code {d.value} the colour {quoted(d.color)}, which is not #rrggbb; "
                              "write it like #419bdf, or leave it out (value:name)")
        seen[d.value] = d.name
    return defs


def check_class_names_option(labels: str, text: Optional[str], fields: Sequence[Tuple[str, Optional[str]]] = ()
                             ) -> None:
    """ClaireError for naming options that cannot apply: --classes for labels that are a vector layer (their
    classes are the values of its class field), an entry parse_class_names refuses, or a field option
    (`fields`: (flag, value)) for a label raster, which has no fields (it was ignored without a word)."""
    given = [flag for flag, value in fields if value]
    if not (given or text):
        return
    raster = is_raster(labels)  # opens the file: once
    if given and raster:
        flags = " and ".join(given)
        verb = "names a field" if len(given) == 1 else "name fields"
        macro = ("; macroclasses need polygons or points with a class and a macroclass field"
                 if "--macro-field" in given else "")
        raise ClaireError(f"{flags} {verb} of a vector layer, but the labels {quoted(labels)} are a label raster, "
                          f"whose classes are its pixel values: drop {flags}, and name the codes with --classes "
                          f"value:name,... (e.g. {CLASSES_EXAMPLE.split(' ')[1]}){macro}")
    if not text:
        return
    if not raster:
        raise ClaireError(f"--classes names the codes of a label raster, but the labels {quoted(labels)} are a vector "
                          f"layer, whose classes are the values of --field (integer codes or names): drop --classes, "
                          f"and name integer codes with --name-field, the field that holds the class names")
    parse_class_names(text)


def raster_classes(path: str, codes: Sequence[int], class_names: Optional[str]) -> Tuple[List[ClassInfo], List[str]]:
    """The classes of the label raster's (sorted) `codes`, named and coloured by `class_names` (--classes) where
    it names them, else by the file itself (core.accuracy.classes_from_gdal), else "class N"; and the notes on
    the names taken from the file or missing. ClaireError for a code of --classes the raster does not hold, or
    one name for two codes."""
    from ..accuracy import classes_from_gdal

    given = {d.value: d for d in parse_class_names(class_names)} if class_names else {}
    absent = sorted(set(given) - set(codes))
    if absent:
        raise ClaireError(f"--classes names code(s) {', '.join(map(str, absent))}, which the label raster "
                          f"{quoted(path)} does not hold over the optical raster (its codes there: "
                          f"{', '.join(map(str, codes))}; 0, 255 and its nodata are unlabelled): drop them from "
                          "--classes or fix their codes")
    in_file = {int(c["value"]): c for c in classes_from_gdal(path)}
    classes = []
    for i, code in enumerate(codes):
        mine, theirs = given.get(code), in_file.get(code) or {}
        name = mine.name if mine else str(theirs.get("name") or f"class {code}").strip()
        color = theirs.get("color") if theirs.get("color") != UNSET_COLOR else None
        classes.append(ClassInfo(i, code, name, (mine.color if mine else None) or color))
    check_one_code_per_name([(c.code, c.name) for c in classes],
                            "give each code its own name (--classes value:name,...), or recode the label raster so "
                            "that each class has one code")
    return classes, _naming_notes(classes, set(given), set(in_file)) + spelling_notes(classes)


def _naming_notes(classes: List[ClassInfo], given: set, in_file: set) -> List[str]:
    """Where the names of a label raster's classes came from when --classes did not name them all."""
    from_file = [c for c in classes if c.code not in given and c.code in in_file]
    unnamed = [c for c in classes if c.code not in given and c.code not in in_file]
    notes = []
    if from_file:
        notes.append(f"class names read from the label raster{' for the codes --classes leaves out' if given else ''}"
                     f": {', '.join(f'{c.code} {c.name}' for c in from_file)}")
    if unnamed:
        codes = ", ".join(str(c.code) for c in unnamed)
        example = ",".join(f"{c.code}:NAME" for c in unnamed[:3]) + (",..." if len(unnamed) > 3 else "")
        notes.append(f"the label raster's code(s) {codes} have no name{' in --classes or' if given else ''} in the "
                     f"file, so they are called \"class N\"; name them with --classes {example} so that the "
                     f"checkpoint's card, the report and the map legends say what they are (a name as the base "
                     f"checkpoint's card writes it, see claire info, keeps what it knows of that class)")
    return notes


def _window(r0: int, c0: int, h: int, w: int):
    from rasterio.windows import Window

    return Window(c0, r0, w, h)


def _to_index(codes: np.ndarray, index: Dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for code, i in index.items():
        lut[code] = i
    return lut[codes]


class _EdgeJoins:
    """The groups of one class that touch across the edges of the blocks a label raster is read in (4-connected,
    as scipy.ndimage.label joins pixels), merged by union-find."""

    def __init__(self, width: int) -> None:
        self.above = np.full(width, -1, np.int64)  # group ids of the row just above the current block row
        self.left: Optional[np.ndarray] = None  # group ids of the column just left of the current block
        self.pairs: List[Tuple[int, int]] = []

    def add_block(self, gid: np.ndarray, r0: int, c0: int) -> None:
        h, w = gid.shape
        if c0 == 0:
            self.left = None
        top, up = gid[0], self.above[c0:c0 + w]
        meet = (top >= 0) & (up >= 0)
        self.pairs += list(zip(top[meet].tolist(), up[meet].tolist()))
        if self.left is not None:
            first, prev = gid[:, 0], self.left
            meet = (first >= 0) & (prev >= 0)
            self.pairs += list(zip(first[meet].tolist(), prev[meet].tolist()))
        self.left = gid[:, -1].copy()
        self.above[c0:c0 + w] = gid[-1]

    def roots(self, group_class: Dict[int, int]) -> np.ndarray:
        """Each group's representative (the smallest id of the groups of its class joined with it)."""
        n = len(group_class)
        parent = np.arange(max(n, 1), dtype=np.int64)

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = int(parent[x])
            return x

        for a, b in self.pairs:
            if group_class[a] != group_class[b]:  # neighbours of two classes: two patches
                continue
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        return np.array([find(i) for i in range(n)], dtype=np.int64)


#: The most pixels a class of a label raster keeps (a land-cover map of a whole scene as labels): beyond it each
#: class keeps this share of its pixels, drawn evenly over the raster, so memory and time do not grow with the scene.
CLASS_PIXELS_MAX = 500_000


def _labelled(warped, window, nodata, path: str = "label raster") -> Tuple[np.ndarray, np.ndarray]:
    """(values, labelled mask) of a window of the warped label raster (0, 255, NaN and nodata are unlabelled); a
    ClaireError for a value with a fraction (no class code: 1.999 would match no class and train nothing)."""
    from ..map_accuracy import non_whole_problem
    from .datasets import LABEL_FIX

    a = warped.read([1], window=window)[0]
    ok = np.isfinite(a) & (a != 0) & (a != IGNORE)
    if nodata is not None and np.isfinite(nodata):
        ok &= a != np.float32(nodata)
    problem = non_whole_problem(a[ok], path, "label raster", LABEL_FIX)
    if problem:
        raise ClaireError(problem)
    return a, ok


def _class_shares(warped, grid, nodata, path: str = "label raster") -> Dict[int, float]:
    """Per class code, the share of its labelled pixels kept (CLASS_PIXELS_MAX / its count, at most 1): a first,
    cheap pass over the raster counting the codes of the labelled pixels (codes outside 0..254 are named later)."""
    counts = np.zeros(256, np.int64)
    for r0 in range(0, grid.height, BLOCK):
        for c0 in range(0, grid.width, BLOCK):
            h, w = min(BLOCK, grid.height - r0), min(BLOCK, grid.width - c0)
            a, ok = _labelled(warped, _window(r0, c0, h, w), nodata, path)
            v = a[ok]
            v = v[(v > 0) & (v < 255)].astype(np.int64)
            counts += np.bincount(v, minlength=256)[:256]
    return {c: min(1.0, CLASS_PIXELS_MAX / int(n)) for c, n in enumerate(counts) if n}


def _cap_groups(pixels: LabelPixels, cap: int, rng: np.random.Generator, footprints: List[Footprint]) -> LabelPixels:
    """Groups joined across blocks over `cap` pixels keep a seeded sample of `cap` of them (with a Footprint of all
    their pixels, for the held-out buffer), as a polygon does."""
    if not len(pixels):
        return pixels
    sizes = np.bincount(pixels.group)
    big = np.nonzero(sizes > cap)[0]
    if not big.size:
        return pixels
    keep = np.ones(len(pixels), bool)
    for g in big:
        idx = np.nonzero(pixels.group == g)[0]
        footprints.append(Footprint.of(int(g), pixels.rows[idx], pixels.cols[idx]))
        keep[idx] = False
        keep[np.sort(rng.choice(idx, cap, replace=False))] = True
    return pixels.subset(keep)


#: In a class over CLASS_PIXELS_MAX (a dense map), pieces of fewer pixels than this in a block are left out: the
#: speckle of a per-pixel classification made millions of one-pixel patches (7 GB, minutes, twice the class cap).
SPECKLE_PX = 4


def _add_components(parts: List[LabelPixels], group_class: Dict[int, int], comp: np.ndarray, n: int, code: int,
                    r0: int, c0: int, rng: np.random.Generator, cap: int, footprints: List[Footprint],
                    share: float = 1.0) -> np.ndarray:
    """One group per connected component; pixels stored with their class *code* (mapped to indices later); a
    component over `cap` pixels, or over `share` of its pixels (at least one), keeps a sample of them and its
    Footprint. With `share` below 1, components under SPECKLE_PX pixels are left out. Returns each component
    label's group (-1: left out; index 0 is the background)."""
    to_group = np.full(n + 1, -1, np.int64)
    rows, cols = np.nonzero(comp)
    lab = comp[rows, cols]
    order = np.argsort(lab, kind="stable")
    rows, cols, lab = rows[order], cols[order], lab[order]
    starts = np.searchsorted(lab, np.arange(1, n + 2))
    sizes = np.diff(starts)
    for k in np.nonzero(sizes >= (SPECKLE_PX if share < 1.0 else 1))[0]:
        a, b = starts[k], starts[k + 1]
        sel = np.arange(a, b)
        g = len(group_class)
        keep = min(cap, max(1, int(math.ceil(sel.size * share))))
        if sel.size > keep:
            footprints.append(Footprint.of(g, rows[sel] + r0, cols[sel] + c0))
            sel = np.sort(rng.choice(sel, keep, replace=False))
        group_class[g] = code
        to_group[k + 1] = g
        parts.append(LabelPixels((rows[sel] + r0).astype(np.int32), (cols[sel] + c0).astype(np.int32),
                                 np.full(sel.size, code, np.uint8), np.full(sel.size, g, np.int32)))
    return to_group
