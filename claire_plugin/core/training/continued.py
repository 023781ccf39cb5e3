"""Training again from one's own checkpoint: which polygons may score it.

A checkpoint trained from polygons records, by a digest of each geometry as stored, the polygons that trained it
and those that validated it (`split_shapes` on its card). A run started from it over the same layer holds out
the polygons that validated it that the layer still has (their classes as the layer has them now), draws the
other classes' held-out polygons from those that did not train it where it can, and counts the held-out
polygons that trained it whatever the split: a fresh draw, a layer the user gave, a link followed. Any such
polygon flatters both models (the new one starts from its weights), and the run is marked optimistic with the
count.

A polygon is recognised by its fingerprint: the longitude and latitude of its centroid and its area in square
metres, matched within SAME_M metres and SAME_AREA of the area, so that the same polygon saved again (another
CRS, another format, a ring started elsewhere or turned, Z added, coordinates rounded as RFC 7946 GeoJSON does) is
still the same; and its outline, so that a polygon edited, moved a little or cut out of it (mostly the same
pixels) counts too. Cards written before fingerprints keep SHA-1 digests of the stored geometry, matched exactly."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

import numpy as np

from .labels import LabelSet

#: Characters of a geometry digest kept on the card (SHA-1 hex: 20 of 40 are plenty to tell polygons apart).
DIGEST_CHARS = 20
#: Centroids closer than this (metres) with areas within SAME_AREA are one polygon (a reprojection moves a centroid
#: by micrometres, RFC 7946's seven decimals by a centimetre; two polygons of a layer never share a centroid).
SAME_M = 0.5
SAME_AREA = 0.02
#: Areas whose outlines overlap by this share of the smaller one are mostly the same pixels: an edited, slightly
#: moved or cut polygon still counts as the one that trained (or validated) the base.
SAME_OVERLAP = 0.5
_M_PER_DEG = 111_320.0
_CELL_DEG = 1e-4  # the index's cells (about 11 m): a match lies in a cell next to the fingerprint's


@dataclass
class Base:
    """The user's own base checkpoint, trained from polygons: its file name and the digests of the polygons that
    trained it and that validated it."""

    name: str
    trained: Set[str]
    held_out: Set[str]
    separate: Optional[Dict[str, Any]] = None  # the separate validation layer's source, where one validated it


def own_base(base_card: Optional[Dict[str, Any]], base_path: Optional[str]) -> Optional[Base]:
    """The base checkpoint as a Base when it is the user's own and trained from polygons or points with the digests
    recorded (a checkpoint from before they were, the bundled one, or a folder training: None)."""
    from ...paths import DEFAULT_CHECKPOINT

    if not base_card or not base_path or os.path.abspath(base_path) == os.path.abspath(DEFAULT_CHECKPOINT):
        return None
    training = base_card.get("training") or {}
    shapes = training.get("split_shapes")
    if training.get("data") != "polygons" or not isinstance(shapes, dict) or not shapes.get("trained"):
        return None  # a label raster's patches have no digests: compared as before
    split = training.get("split") or {}
    separate = split.get("val_source") if split.get("kind") == "separate layer" else None
    return Base(os.path.basename(base_path), set(shapes.get("trained") or ()), set(shapes.get("held_out") or ()),
                separate if isinstance(separate, dict) else None)


def fingerprint(geom, to_lonlat, metres_per_unit: Optional[float]) -> str:
    """"lon,lat,area_m2" of an OGR geometry in the grid's CRS, and for an area ",ring": the exterior ring of its
    largest part simplified to at most RING_POINTS vertices, "lon:lat" pairs (`to_lonlat`: that CRS to WGS 84 in
    longitude, latitude order; `metres_per_unit`: the CRS's linear unit, None for a geographic CRS); "" where the
    CRS has no way to WGS 84."""
    centre = geom.Centroid()
    try:
        lon, lat = to_lonlat.TransformPoint(centre.GetX(), centre.GetY())[:2]
        points = [to_lonlat.TransformPoint(x, y)[:2] for x, y in _outline(geom)]
    except Exception:  # noqa: BLE001 - an engineering CRS: no fingerprint, the stored digest alone
        return ""
    if not all(math.isfinite(v) for v in (lon, lat, *(c for xy in points for c in xy))):
        return ""
    area = geom.GetArea()
    area *= metres_per_unit ** 2 if metres_per_unit else _M_PER_DEG ** 2 * math.cos(math.radians(lat))
    outline = "," + " ".join(f"{x:.7f}:{y:.7f}" for x, y in points) if len(points) >= 3 and area > 0 else ""
    return f"{lon:.7f},{lat:.7f},{area:.1f}{outline}"


#: Vertices kept of a polygon's outline on the card (a drawn rectangle keeps its 4; a wand's region is simplified).
RING_POINTS = 24


def _outline(geom) -> List[Tuple[float, float]]:
    """The exterior ring of the largest polygon part of `geom`, simplified to at most RING_POINTS vertices (the
    closing vertex left out); [] for points."""
    from osgeo import ogr

    parts = [geom] if ogr.GT_Flatten(geom.GetGeometryType()) == ogr.wkbPolygon else \
        [geom.GetGeometryRef(i) for i in range(geom.GetGeometryCount())
         if ogr.GT_Flatten(geom.GetGeometryRef(i).GetGeometryType()) == ogr.wkbPolygon]
    if not parts:
        return []
    part = max(parts, key=lambda g: g.GetArea())
    x0, x1, y0, y1 = part.GetEnvelope()
    tol, shape = 0.0, part
    while True:
        ring = shape.GetGeometryRef(0) if shape is not None else None
        n = ring.GetPointCount() if ring is not None else 0
        if n - 1 <= RING_POINTS or tol > max(x1 - x0, y1 - y0):
            return [ring.GetPoint_2D(i) for i in range(max(n - 1, 0))] if ring is not None else []
        tol = tol * 2 if tol else max(x1 - x0, y1 - y0) / 200.0
        shape = part.SimplifyPreserveTopology(tol)


def digest(shape: str) -> str:
    """What the card keeps of a feature's shape ("SHA-1|fingerprint", core.training.labels): the fingerprint, or
    the SHA-1's first DIGEST_CHARS characters where there is none (and a card's own entry as it is)."""
    sha, sep, fp = str(shape).partition("|")
    if not sep:
        return sha if _parsed(sha) else sha[:DIGEST_CHARS]
    return fp or sha[:DIGEST_CHARS]


Print = Tuple[float, float, float, Optional[List[Tuple[float, float]]]]


def _parsed(entry: str) -> Optional[Print]:
    parts = entry.split(",")
    if len(parts) not in (3, 4):
        return None
    try:
        lon, lat, area = (float(p) for p in parts[:3])
        ring = [tuple(float(v) for v in xy.split(":")) for xy in parts[3].split()] if len(parts) == 4 else None
    except ValueError:
        return None
    if ring is not None and (len(ring) < 3 or any(len(xy) != 2 for xy in ring)):
        return None
    return lon, lat, area, ring


class ShapeIndex:
    """Card entries (fingerprints, or SHA-1 digests of cards before them) to test features' shapes against: the
    same polygon (its centroid and area, within SAME_M and SAME_AREA), or with `outlines` (what trained or validated
    a base) also an area whose outline and the other's overlap by at least SAME_OVERLAP of the smaller one (a polygon
    edited, moved by a pixel, or cut out of the other: mostly the same pixels). Without, a validation polygon drawn
    over part of a training polygon is another polygon: the buffer leaves out the pixels it covers
    (core.training.split)."""

    def __init__(self, entries: Iterable[str] = (), outlines: bool = False):
        self.use_outlines = outlines
        self.exact: Set[str] = set()
        self.cells: Dict[Tuple[int, int], List[Print]] = {}
        self.rings: List[List[Tuple[float, float]]] = []
        self._polygons: Dict[int, Any] = {}
        bounds = []
        for entry in entries:
            fp = _parsed(digest(str(entry)))
            if fp is None:
                self.exact.add(digest(str(entry))[:DIGEST_CHARS])
                continue
            self.cells.setdefault(_cell(fp), []).append(fp)
            if fp[3] is not None:
                self.rings.append(fp[3])
                bounds.append(_bounds(fp[3]))
        self.boxes = np.asarray(bounds, np.float64).reshape(-1, 4)

    def __contains__(self, shape: str) -> bool:
        sha, _, text = str(shape).partition("|")
        if sha[:DIGEST_CHARS] in self.exact:
            return True
        fp = _parsed(text or sha)
        if fp is None:
            return False
        i, j = _cell(fp)
        if any(_same(fp, other) for di in (-1, 0, 1) for dj in (-1, 0, 1)
               for other in self.cells.get((i + di, j + dj), ())):
            return True
        return self.use_outlines and fp[3] is not None and bool(self.boxes.size) and self._overlaps(fp[3])

    def _overlaps(self, ring: List[Tuple[float, float]]) -> bool:
        """Whether the outline `ring` and a recorded one overlap by SAME_OVERLAP of the smaller's area."""
        box = _bounds(ring)
        w = np.minimum(box[2], self.boxes[:, 2]) - np.maximum(box[0], self.boxes[:, 0])
        h = np.minimum(box[3], self.boxes[:, 3]) - np.maximum(box[1], self.boxes[:, 1])
        near = np.flatnonzero((w > 0) & (h > 0))
        mine = _polygon(ring) if near.size else None
        for k in near if mine is not None else ():
            other = self._polygons.get(int(k))
            if other is None:
                other = self._polygons[int(k)] = _polygon(self.rings[int(k)])
            if other is None:
                continue
            try:
                shared = mine.Intersection(other)
            except RuntimeError:
                continue
            if shared is not None and shared.GetArea() >= SAME_OVERLAP * min(mine.GetArea(), other.GetArea()) > 0:
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.exact or self.cells)


def _bounds(ring: List[Tuple[float, float]]) -> Tuple[float, float, float, float]:
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def _polygon(ring: List[Tuple[float, float]]):
    """An OGR polygon of an outline in longitude, latitude (None when GEOS cannot use it)."""
    from osgeo import ogr

    line = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in list(ring) + [ring[0]]:
        line.AddPoint_2D(x, y)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(line)
    if not poly.IsValid():
        poly = poly.Buffer(0)
    return poly if poly is not None and not poly.IsEmpty() else None


def _cell(fp: Print) -> Tuple[int, int]:
    return int(math.floor(fp[0] / _CELL_DEG)), int(math.floor(fp[1] / _CELL_DEG))


def _same(a: Print, b: Print) -> bool:
    dy = (a[1] - b[1]) * _M_PER_DEG
    dx = (a[0] - b[0]) * _M_PER_DEG * math.cos(math.radians(a[1]))
    return math.hypot(dx, dy) <= SAME_M and abs(a[2] - b[2]) <= max(1.0, SAME_AREA * max(a[2], b[2]))


def groups_among(labels: LabelSet, entries: Iterable[str], outlines: bool = False) -> List[int]:
    """The label groups (polygons, merged where they overlap) with a feature whose shape is among `entries` (a
    ShapeIndex as it is, or card entries, matched by their outlines too with `outlines`)."""
    index = entries if isinstance(entries, ShapeIndex) else ShapeIndex(entries, outlines)
    if not index:
        return []
    return sorted(g for g, fids in labels.group_features.items()
                  if any(f in labels.feature_shapes and labels.feature_shapes[f] in index for f in fids))


def split_shapes(labels: LabelSet, train_groups, held_out: Iterable[str], base: Optional[Base] = None
                 ) -> Dict[str, List[str]]:
    """The card's `split_shapes`: what trained the model (the polygons with a pixel left after the buffer, and
    everything that trained `base`, whose weights it starts from) and the polygons that validated it."""
    inherited = sorted(base.trained) if base else []
    known = ShapeIndex(inherited)
    trained = {digest(labels.feature_shapes[f]) for g in train_groups for f in labels.group_features.get(int(g), ())
               if f in labels.feature_shapes and labels.feature_shapes[f] not in known}
    return {"trained": sorted(trained | set(inherited)), "held_out": sorted({digest(s) for s in held_out})}


def leak_note(base: Base, leaked: int, held: int, units_many: str, advice: str) -> str:
    """The label note of a split whose held-out polygons include some that trained the base."""
    return (f"{leaked} of the {held} held-out {units_many} trained {base.name}, the checkpoint this run starts from: "
            f"the held-out scores of both models are optimistic on them{advice}")
