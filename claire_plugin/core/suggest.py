"""Where to label next: the places of a classified map where a second map of the same grid disagrees with it (or
its confidence is low), away from the labels already drawn, for the user to draw training polygons there.

Two models that learnt from the same polygons in different ways (the fine-tuned network and the random forest
of a `claire train` run) disagree where the polygons did not teach them enough: a cover type nobody drew, a
boundary between two classes, a shade of a class not yet sampled. That is query by committee, the oldest
active-learning rule. With a confidence raster (tempered on the held-out polygons, so that it means what it
says) agreeing pixels add their doubt, 1 - confidence.

The map is read in bands of one square's height (memory bounded on any map size); each square of `square`
pixels scores the mean doubt of its valid pixels, leaving out those within half a square of a labelled pixel
(a square needs half of its pixels left); the best squares, at least `spacing` squares apart, become the
places, each at the pixel whose neighbourhood is the most doubtful.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ...models.quoting import quoted
from .errors import ClaireError
from .io.block_cache import reads_rows_once

SQUARE_PX = 16
SPACING = 3
MIN_DOUBT = 0.2
MAX_PLACES = 200
LABEL_PIXELS_READ = 10 ** 6  # per polygon (a sample beyond: the half-square buffer closes its gaps)
LAYER = "label_next"
CONFIDENCE_NODATA = 255  # the engine's uint8 nodata (core.engine.post.UINT8_NODATA)


@dataclass
class Place:
    """One place to label: rank (1 = most doubtful), pixel and map coordinates of its point, the share of its
    square in doubt, and what the maps say at the point."""
    rank: int
    row: int
    col: int
    x: float
    y: float
    doubt: float
    map_value: int
    other_value: Optional[int]
    confidence: Optional[int]


@dataclass
class Suggestions:
    """The places, the map's CRS, the square size and what was measured on the whole map."""
    places: List[Place]
    crs_wkt: str
    square_px: int
    square_m: float
    names: Dict[int, str]
    other_names: Dict[int, str]
    disagreement: Optional[float]  # share of the map's valid unlabelled pixels where the two maps differ
    mean_doubt: float
    notes: List[str] = field(default_factory=list)

    def name(self, value: Optional[int], other: bool = False) -> Optional[str]:
        """The class name of a value of the map (or of the second map), or None."""
        if value is None:
            return None
        return (self.other_names if other else self.names).get(int(value), f"class {int(value)}")

    def pairs(self) -> List[Tuple[str, str, int]]:
        """(map class, other map's class, places) for the places where the maps differ, most frequent first."""
        c = Counter((self.name(p.map_value), self.name(p.other_value, True)) for p in self.places
                    if p.other_value is not None and self.name(p.map_value) != self.name(p.other_value, True))
        return [(a, b, n) for (a, b), n in c.most_common()]


def _names(path: str) -> Dict[int, str]:
    from .accuracy import classes_from_gdal

    return {int(c["value"]): str(c["name"]) for c in classes_from_gdal(path)}


def _open_same_grid(path: str, grid, role: str, fix: str, class_map: bool = False):
    """`path` opened (as a classified map when `class_map`); a ClaireError unless it has the grid (size,
    transform, CRS) of the dataset `grid`."""
    from .io.raster_io import open_raster
    from .map_accuracy import open_class_map

    ds = open_class_map(path, role) if class_map else open_raster(path, role)
    same = (ds.width, ds.height) == (grid.width, grid.height) and ds.crs == grid.crs and \
        np.allclose(tuple(ds.transform)[:6], tuple(grid.transform)[:6], rtol=0, atol=1e-6 * abs(grid.transform.a))
    if not same:
        ds.close()
        raise ClaireError(f"the {role} {quoted(path)} ({ds.width} x {ds.height} px) is not on the grid of the map "
                          f"({grid.width} x {grid.height} px, same CRS and pixel corners needed); {fix}")
    return ds


class _Labelled:
    """The labelled pixels of `labels` on the map's grid, for masks of the pixels within `buffer` px of them."""

    def __init__(self, labels: str, grid, field_name: Optional[str], layer: Optional[str], buffer: int,
                 assigned_crs: Optional[str] = None) -> None:
        from .training.labels import read_labels

        got = read_labels(labels, grid, field_name, None, layer, None, max_pixels_per_polygon=LABEL_PIXELS_READ,
                          check_counts=False, assigned_crs=assigned_crs).pixels
        inside = (got.rows >= 0) & (got.cols >= 0) & (got.rows < grid.height) & (got.cols < grid.width)
        order = np.argsort(got.rows[inside], kind="stable")
        self.rows, self.cols = got.rows[inside][order], got.cols[inside][order]
        self.buffer, self.width = int(buffer), int(grid.width)

    def __len__(self) -> int:
        return int(self.rows.size)

    def near(self, r0: int, h: int) -> np.ndarray:
        """[h, width] mask of the pixels of rows r0..r0+h within `buffer` px (Chebyshev) of a labelled pixel."""
        from scipy.ndimage import maximum_filter

        b = self.buffer
        lo, hi = np.searchsorted(self.rows, [r0 - b, r0 + h + b])
        m = np.zeros((h + 2 * b, self.width), bool)
        if hi > lo:
            m[self.rows[lo:hi] - (r0 - b), self.cols[lo:hi]] = True
            m = maximum_filter(m, size=2 * b + 1, mode="constant")
        return m[b:b + h]


def _doubt(a: np.ndarray, valid: np.ndarray, differ: Optional[np.ndarray], conf: Optional[np.ndarray]) -> np.ndarray:
    """Per-pixel doubt in [0, 1]: 1 where the maps differ (`differ`, by class); else 1 - confidence (0 without a
    confidence)."""
    d = np.zeros(a.shape, np.float32)
    if conf is not None:
        d = 1.0 - conf.astype(np.float32) / 100.0
    if differ is not None:
        d[differ] = 1.0
    d[~valid] = 0.0
    return d


def same_class_lut(names: Dict[int, str], other_names: Dict[int, str]) -> Optional[np.ndarray]:
    """The second map's values translated to the map's by class name, where their legends differ (a network's
    own codes against the bundled checkpoint's: 1 is built area in one and water in the other); a value whose
    class the map does not have never agrees (-1). None when the codes mean the same or a map has no names."""
    if not names or not other_names:
        return None
    from .training.labels import name_key

    by_name = {name_key(n): v for v, n in names.items()}
    wanted = {v: by_name.get(name_key(n), -1) for v, n in other_names.items()}
    if all(v == w for v, w in wanted.items()):
        return None
    lut = np.arange(65536, dtype=np.int64)
    for v, w in wanted.items():
        if 0 <= v < lut.size:
            lut[v] = w
    return lut


def _check_settings(other, confidence, n, square, spacing, min_doubt) -> None:
    """A ClaireError naming the setting that cannot work."""
    if other is None and confidence is None:
        raise ClaireError("give a second classified map of the same scene (e.g. the random forest's map of a "
                          "claire train run) or the map's confidence raster, or both: places to label are where "
                          "they disagree or the confidence is low")
    if not 1 <= int(n) <= MAX_PLACES:
        raise ClaireError(f"the number of places must be 1 to {MAX_PLACES} (got {n})")
    if not 4 <= int(square) <= 512:
        raise ClaireError(f"the square must be 4 to 512 px (got {square}); 16 px is 160 m at 10 m")
    if int(spacing) < 1 or not 0.0 <= float(min_doubt) < 1.0:
        raise ClaireError(f"spacing must be at least 1 square and the least doubt 0 to 1 (got {spacing}, {min_doubt})")


@dataclass
class _Rasters:
    """The open map, second map and confidence raster (None where not given), read window by window."""
    map: Any
    other: Any = None
    conf: Any = None
    lut: Optional[np.ndarray] = None  # the second map's values as the map's (same_class_lut)

    def differ(self, a: np.ndarray, b: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Where the two maps give different classes (by name when their legends differ); None without b."""
        if b is None:
            return None
        return a != (self.lut[b] if self.lut is not None else b)

    def read(self, window) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
        """(map, valid mask, second map or None, confidence 0..100 or None) of a window; a ClaireError when a
        file cannot be read (damaged) or the confidence holds a value above 100."""
        from .map_accuracy import _valid, read_classes

        a = read_classes(self.map, window)
        valid = _valid(a, self.map.nodata)
        b = c = None
        if self.other is not None:
            b = read_classes(self.other, window)
            valid &= _valid(b, self.other.nodata)
        if self.conf is not None:
            c = read_classes(self.conf, window)
            has = c != (CONFIDENCE_NODATA if self.conf.nodata is None else self.conf.nodata)
            if (c[has] > 100).any():
                raise ClaireError(f"the confidence raster {quoted(self.conf.name)} holds {int(c[has].max())} where a "
                                  f"confidence (0 to 100 %) is expected; {CONFIDENCE_FIX}")
            valid &= has
        return a, valid, b, c


CONFIDENCE_FIX = ("give the confidence raster that claire classify writes with --confidence (CONFIDENCE in "
                  "Processing): one band of uint8 percent 0-100, nodata 255")


def check_confidence(ds, path: str) -> None:
    """A ClaireError unless the open raster `ds` can be a confidence raster: one band of uint8 percent, neither
    a class map (told by the engine's band description, a colour table or class names) nor another of the
    engine's percent rasters. Values above 100 are found as the map is read (`_Rasters.read`)."""
    from .map_accuracy import CLASS_DESCRIPTION, CONFIDENCE_DESCRIPTION, PERCENT_DESCRIPTIONS

    if ds.count != 1:
        raise ClaireError(f"the confidence raster {quoted(path)} has {ds.count} bands; {CONFIDENCE_FIX}")
    description = (ds.descriptions[0] or "").strip()
    if description == CLASS_DESCRIPTION or _colour_table(ds) or _names(path):
        told = f"band description {quoted(description)}" if description == CLASS_DESCRIPTION else \
            "it has a colour table or class names"
        raise ClaireError(f"the confidence raster {quoted(path)} is a class map ({told}), not a confidence raster: "
                          f"give class maps as the map and the second map; {CONFIDENCE_FIX}")
    if description in PERCENT_DESCRIPTIONS and description != CONFIDENCE_DESCRIPTION:
        raise ClaireError(f"the confidence raster {quoted(path)} is another raster of claire classify (band "
                          f"description {quoted(description)}); {CONFIDENCE_FIX}")
    if ds.dtypes[0] != "uint8":
        raise ClaireError(f"the confidence raster {quoted(path)} holds {ds.dtypes[0]} values, not uint8 percent; "
                          f"{CONFIDENCE_FIX}")


def _colour_table(ds) -> bool:
    """Whether band 1 of `ds` has a colour table (a class map's palette)."""
    try:
        return bool(ds.colormap(1))
    except ValueError:  # rasterio: "NULL color table"
        return False


@dataclass
class _Scores:
    """Per square: mean doubt and the flat index of its most doubtful neighbourhood; totals over the map."""
    score: np.ndarray
    best: np.ndarray
    differ: int = 0
    counted: int = 0
    doubt_sum: float = 0.0
    with_data: int = 0  # pixels with data in every raster, labelled ones included


def _score_squares(r: _Rasters, square: int, labelled: Optional[_Labelled]) -> _Scores:
    """Read the map in bands of one square's height and score every square (module docstring)."""
    from rasterio.windows import Window
    from scipy.ndimage import uniform_filter

    height, width = r.map.height, r.map.width
    gh, gw = -(-height // square), -(-width // square)
    out = _Scores(np.zeros((gh, gw), np.float32), np.zeros((gh, gw), np.int64))
    pad = (-width) % square
    for g in range(gh):
        r0, h = g * square, min(square, height - g * square)
        a, valid, b, c = r.read(Window(0, r0, width, h))
        out.with_data += int(valid.sum())
        if labelled is not None:
            valid &= ~labelled.near(r0, h)
        differ = r.differ(a, b)
        d = _doubt(a, valid, differ, c)
        if differ is not None:
            out.differ += int((valid & differ).sum())
        out.counted += int(valid.sum())
        out.doubt_sum += float(d[valid].sum())
        dp, vp = np.pad(d, ((0, square - h), (0, pad))), np.pad(valid, ((0, square - h), (0, pad)))
        sums = dp.reshape(square, gw, square).sum(axis=(0, 2))
        nval = vp.reshape(square, gw, square).sum(axis=(0, 2))
        out.score[g] = np.where(nval * 2 >= square * square, sums / np.maximum(nval, 1), 0.0)
        smooth = np.where(vp, uniform_filter(dp, size=5, mode="nearest"), -1.0)
        out.best[g] = smooth.reshape(square, gw, square).transpose(1, 0, 2).reshape(gw, -1).argmax(axis=1)
    return out


def _places(r: _Rasters, scores: _Scores, chosen: List[Tuple[int, int]], square: int) -> List[Place]:
    """The chosen squares as Places at their most doubtful pixel, with what each raster holds there."""
    from rasterio.windows import Window

    out: List[Place] = []
    for k, (g, q) in enumerate(chosen):
        rr, cc = divmod(int(scores.best[g, q]), square)
        row, col = g * square + rr, q * square + cc
        x, y = r.map.transform * (col + 0.5, row + 0.5)
        a, _, b, c = r.read(Window(col, row, 1, 1))
        out.append(Place(k + 1, row, col, float(x), float(y), float(scores.score[g, q]), int(a[0, 0]),
                         None if b is None else int(b[0, 0]), None if c is None else int(c[0, 0])))
    return out


@reads_rows_once("map_path", "other", "confidence", "labels", rows="square")
def suggest(map_path: str, other: Optional[str] = None, confidence: Optional[str] = None,
            labels: Optional[str] = None, field_name: Optional[str] = None, layer: Optional[str] = None,
            n: int = 10, square: int = SQUARE_PX, spacing: int = SPACING, min_doubt: float = MIN_DOUBT,
            labels_crs: Optional[str] = None) -> Suggestions:
    """Up to `n` places where `map_path` is most in doubt (module docstring): a second classified map `other`
    and/or the map's `confidence` raster (uint8 percent, as `claire classify` writes it) on the same grid;
    `labels` (vector with `field_name`, or a label raster) marks the places already labelled (`labels_crs`: the
    CRS to read a vector in where its file has none, as the user set it in QGIS)."""
    from contextlib import ExitStack

    from .io.raster_io import require_crs
    from .map_accuracy import open_class_map

    _check_settings(other, confidence, n, square, spacing, min_doubt)
    n, square, spacing = int(n), int(square), int(spacing)
    with ExitStack() as stack:
        ds = stack.enter_context(open_class_map(map_path))
        require_crs(ds, "classified map")
        fix = "classify both from the same optical raster (claire classify writes on the optical grid)"
        r = _Rasters(ds)
        if other:
            r.other = stack.enter_context(_open_same_grid(other, ds, "second map", fix, class_map=True))
            r.lut = same_class_lut(_names(map_path), _names(other))
        if confidence:
            r.conf = stack.enter_context(_open_same_grid(confidence, ds, "confidence raster", fix))
            check_confidence(r.conf, confidence)
        labelled = _Labelled(labels, ds, field_name, layer, square // 2, labels_crs) if labels else None
        scores = _score_squares(r, square, labelled)
        if not scores.with_data:  # labels or none: no place could be in doubt
            given = " and ".join(n for n, p in (("second map", other), ("confidence raster", confidence)) if p)
            raise ClaireError(f"no pixel of the map {quoted(map_path)} is classified where the {given} has data too "
                              f"(one of them is all nodata, or their data do not overlap); give rasters of one "
                              f"classification")
        out = _places(r, scores, _pick(scores.score, n, spacing, min_doubt), square)
        crs_wkt, square_m = ds.crs.to_wkt(), float(abs(ds.transform.a) * square)
    notes = []
    if labelled is not None:
        notes.append(f"{len(labelled)} labelled pixel(s) read; pixels within {square // 2} px of them are skipped")
    if not scores.counted:
        notes.append("no valid pixel away from the labels is left to score")
    if not out and scores.counted:
        notes.append(f"no square of {square} px is in doubt on {round(min_doubt * 100)} % or more of its pixels: "
                     f"nothing to suggest")
    elif len(out) < n:
        notes.append(f"only {len(out)} of {n} place(s): no other square of {square} px at least {spacing} squares "
                     f"from the others is in doubt on {round(min_doubt * 100)} % or more of its pixels")
    counted = scores.counted
    return Suggestions(out, crs_wkt, square, square_m, _names(map_path), _names(other) if other else {},
                       scores.differ / counted if (other and counted) else None,
                       scores.doubt_sum / counted if counted else 0.0, notes)


def _pick(score: np.ndarray, n: int, spacing: int, min_doubt: float) -> List[Tuple[int, int]]:
    """The best squares in score order, each at least `spacing` squares (Chebyshev) from those taken before."""
    order = np.argsort(-score, axis=None, kind="stable")
    chosen: List[Tuple[int, int]] = []
    for k in order:
        g, q = divmod(int(k), score.shape[1])
        if score[g, q] < min_doubt or score[g, q] <= 0:
            break
        if all(max(abs(g - g2), abs(q - q2)) >= spacing for g2, q2 in chosen):
            chosen.append((g, q))
            if len(chosen) == n:
                break
    return chosen


def write_places(s: Suggestions, path: str) -> str:
    """The places as the point layer `label_next` of a GeoPackage: rank, doubt (percent of its square),
    map_class / map_name, other_class / other_name, confidence (percent at the point)."""
    from .io.points import write_point_layer

    fields = [("rank", "int"), ("doubt", "int"), ("map_class", "int"), ("map_name", "str"),
              ("other_class", "int"), ("other_name", "str"), ("confidence", "int")]
    records = ((p.x, p.y, {"rank": p.rank, "doubt": round(p.doubt * 100), "map_class": p.map_value,
                           "map_name": s.name(p.map_value), "other_class": p.other_value,
                           "other_name": s.name(p.other_value, True), "confidence": p.confidence})
               for p in s.places)
    return write_point_layer(path, LAYER, s.crs_wkt, fields, records, "the places to label")


def check_places_output(path: str) -> None:
    """The places' output refused before any work when write_places would refuse it (not .gpkg, a file of the
    user's own)."""
    from .io.points import check_vector_output

    check_vector_output(path, LAYER, "the places to label")


def summary_lines(s: Suggestions) -> List[str]:
    """What to tell the user: the whole map's disagreement, the places and the most frequent class pairs."""
    lines = []
    if s.disagreement is not None:
        lines.append(f"the two maps disagree on {s.disagreement:.0%} of the unlabelled pixels")
    lines.append(f"{len(s.places)} place(s) to label, each the centre of a square of {s.square_px} px "
                 f"({s.square_m:g} m):")
    for p in s.places:
        says = s.name(p.map_value)
        if p.other_value is not None:
            says = f"map: {says}, second map: {s.name(p.other_value, True)}"
        else:
            says = f"map: {says}"
        conf = f", confidence {p.confidence} %" if p.confidence is not None else ""
        lines.append(f"  {p.rank:>2}. x {p.x:.1f}, y {p.y:.1f}: {p.doubt:.0%} of the square in doubt ({says}{conf})")
    pairs = s.pairs()
    if pairs:
        lines.append("most frequent disagreements: " + "; ".join(f"{a} vs {b} ({k})" for a, b, k in pairs[:3]))
    return lines + [f"note: {n}" for n in s.notes]


def short_summary(s: Suggestions, first: str = "the map", second: str = "the second map") -> str:
    """One sentence for a status line: disagreement, places, the most frequent pair (`first` and `second`
    name the two maps)."""
    parts = []
    if s.disagreement is not None:
        parts.append(f"{first} and {second} disagree on {s.disagreement:.0%} of the unlabelled pixels")
    parts.append(f"{len(s.places)} place(s) marked (each the centre of a {s.square_m:g} m square)")
    pairs = s.pairs()
    if pairs:
        a, b, k = pairs[0]
        parts.append(f"most often {first} says {a} where {second} says {b} ({k} of them)")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def as_dict(s: Suggestions) -> Dict[str, Any]:
    """The suggestions as plain JSON-able values; shares in percent, as the places layer and the confidence."""
    def pct(x: Optional[float]) -> Optional[float]:
        return None if x is None else round(100.0 * x, 1)

    return {"square_px": s.square_px, "square_m": s.square_m, "disagreement_pct": pct(s.disagreement),
            "mean_doubt_pct": pct(s.mean_doubt), "notes": list(s.notes),
            "places": [{"rank": p.rank, "row": p.row, "col": p.col, "x": p.x, "y": p.y, "doubt_pct": pct(p.doubt),
                        "map_class": p.map_value, "map_name": s.name(p.map_value), "other_class": p.other_value,
                        "other_name": s.name(p.other_value, True), "confidence_pct": p.confidence} for p in s.places],
            "pairs": [{"map": a, "other": b, "places": k} for a, b, k in s.pairs()]}


def require_forest(path: Optional[str]) -> None:
    """ClaireError unless `path` is a random-forest checkpoint (the `.forest.safetensors` a training run writes)."""
    import os

    from ...models.card_schema import FOREST
    from ...models.checkpoint import read_card

    fix = ("train with the baseline on (its forest is written beside the network as NAME.forest.safetensors), or "
           "map with both checkpoints and give the two maps to claire suggest")
    if not path or not os.path.isfile(path):
        raise ClaireError(f"the run's random forest {quoted(path)} is not there (deleted or moved since the training); "
                          f"{fix}")
    try:
        arch = read_card(path).get("arch")
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ClaireError(f"the run's random forest {quoted(path)} cannot be read ({exc}); {fix}") from None
    if arch != FOREST:
        raise ClaireError(f"{quoted(path)} is not a random forest (its card says {quoted(arch)}); {fix}")


def places_after_training(params, forest: str, output: str, n: int = 10, progress=None,
                          is_cancelled=None) -> Tuple[Suggestions, Dict[str, str]]:
    """After a `claire train` run (its PolygonTrainParams `params`): classify the training scene with the run's
    network (`params.output`) and its random forest `forest`, the maps written beside `output` as
    `<stem>_network.tif` and `<stem>_forest.tif`; then the places where they disagree, away from the run's
    labels, written to `output` (.gpkg). Returns the suggestions and the two maps' paths. The maps are made in a
    folder of their own beside `output` and replace the last run's only when both are done (a cancelled or failed
    run leaves the last maps and places as they were, matching each other)."""
    import os
    import tempfile

    from . import engine
    from .io.atomic import OutputSet
    from .training.polygons import scene_classify_params

    check_places_output(output)
    require_forest(forest)  # both maps are made first: a missing forest would be found after the network's
    stem = os.path.splitext(output)[0]
    maps = {"network": f"{stem}_network.tif", "forest": f"{stem}_forest.tif"}
    step = progress or (lambda *_a: None)
    folder = os.path.dirname(os.path.abspath(output))
    with tempfile.TemporaryDirectory(prefix=".claire-places-", dir=folder) as work:
        staged = {what: os.path.join(work, os.path.basename(path)) for what, path in maps.items()}
        for k, (what, checkpoint) in enumerate((("network", params.output), ("forest", forest))):
            def part(fraction: float, message: str, k=k, what=what) -> None:
                step(0.45 * (k + fraction), f"{what}: {message}")

            engine.classify(scene_classify_params(params, checkpoint, staged[what]), part, is_cancelled)
        step(0.92, "finding where the two maps disagree")
        s = suggest(staged["network"], staged["forest"], labels=params.labels, field_name=params.field,
                    layer=params.layer, n=n, labels_crs=getattr(params, "labels_crs", None))
        if is_cancelled is not None and is_cancelled():  # a Cancel at 92 % wrote everything
            from .errors import CancelledError

            raise CancelledError()
        with OutputSet() as out:  # the maps with their styles and legends, under their own names
            for name in sorted(os.listdir(work)):
                out.adopt(os.path.join(work, name), os.path.join(folder, name), "map of the places to label")
            out.commit()
    write_places(s, output)
    step(1.0, f"wrote {output}")
    return s, maps
