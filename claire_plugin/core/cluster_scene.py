"""One large scene split over the workers of a cluster: bands of rows, each classified into its own part.

`classify_scene` cuts the optical grid into bands of rows (`ClassifyParams.rows`: each band runs the tiles that
keep its rows, each read with its context, so its pixels equal the same rows of a single run), sends one
task per band through an executor (core.cluster.DaskExecutor, or core.batch.LocalExecutor), and assembles the
parts: into one GeoTIFF written like the engine's (io.writer.GridWriter, colour table, atomic rename), or with
`vrt` into a GDAL VRT over the parts kept in `<output stem>_parts/`. A failing band fails the run with its
reason; nothing is left at the output paths then.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, List, Optional, Tuple

from ...models.quoting import quoted
from .batch import PairJob
from .errors import CancelledError, ClaireError
from .io.atomic import OutputSet, temp_name
from .params import RunOptions

ROW_ALIGN = 256  # band edges on GeoTIFF block rows where the scene is large enough


@dataclass
class SceneResult:
    """What a split run produced: final paths, the bands and where their parts are (kept only for a VRT)."""

    output: str
    confidence: Optional[str]
    bands: List[Tuple[int, int]]
    parts: List[str]
    device: str = ""
    messages: List[str] = field(default_factory=list)


def most_parts(height: int, width: int, options: RunOptions) -> int:
    """The most bands of rows worth making: one per row of the engine's tiles (a band runs every tile that
    keeps one of its rows, so two bands within one tile row would run the same tiles twice; the tile as the
    run's options give it, else the checkpoint's as the engine takes it, before any memory fitting makes it
    smaller)."""
    from .engine.tiling import TileGrid, card_tiling

    core, card_context = card_tiling(_card_here(options.checkpoint))
    context = card_context if options.context is None or options.context < 0 else options.context
    grid = TileGrid.fitted(0, 0, height, width, int(options.tile_size or core), context)
    return max(1, len(grid.row_axis[0]))


def _card_here(checkpoint: Optional[str]) -> dict:
    """The card of the run's checkpoint (the bundled one by default) where this machine can read it, else {} (the
    engine's defaults): a checkpoint may lie on the workers only."""
    from ...models.checkpoint import read_card
    from ..paths import DEFAULT_CHECKPOINT

    try:
        return read_card(checkpoint or DEFAULT_CHECKPOINT)
    except Exception:  # noqa: BLE001 - unreadable here: each worker says why when it loads it
        return {}


def split_rows(height: int, parts: int, align: int = ROW_ALIGN) -> List[Tuple[int, int]]:
    """[start, stop) bands covering `height` rows in at most `parts` bands, edges on `align` rows when each
    band is at least that tall."""
    if parts < 1:
        raise ClaireError(f"--parts {parts}: give 1 or more bands")
    step = math.ceil(height / parts)
    if step > align:
        step = math.ceil(step / align) * align
    return [(start, min(height, start + step)) for start in range(0, height, step)]


def bands_note(parts: int, most: int, used: int) -> Optional[str]:
    """Why fewer bands of rows run than `parts` asked for (`most` rows of tiles, `used` bands made), or None."""
    if used >= parts:
        return None
    why = ([f"the scene's tiles make {most} row(s) of tiles, and a band within a row of tiles would run the same "
            f"tiles again"] if parts > most else []) + \
        ([f"bands are cut on {ROW_ALIGN}-row edges"] if used < min(parts, most) else [])
    return f"{parts} bands of rows asked for; using {used}: {'; '.join(why)}"


def classify_scene(options: RunOptions, optical: str, sar: str, output: str, executor, *, parts: int,
                   confidence: Optional[str] = None, vrt: bool = False,
                   progress: Optional[Callable[[float, str], None]] = None,
                   is_cancelled: Optional[Callable[[], bool]] = None) -> SceneResult:
    """Classify `optical` + `sar` in `parts` bands of rows (at most `most_parts`) on `executor` and assemble
    `output` (and `confidence`): a GeoTIFF, or with `vrt` a VRT over the parts."""
    from .io import raster_io as rio
    from .io.writer import check_output_path

    for role, path in (("output", output), ("confidence", confidence)):
        if path:
            check_output_path(path, [optical, sar, options.checkpoint], role)
            ext, wanted = os.path.splitext(path)[1].lower(), (".vrt",) if vrt else (".tif", ".tiff")
            if ext and ext not in wanted:
                kind = "a VRT over the parts (--vrt)" if vrt else "a GeoTIFF"
                raise ClaireError(f"the {role} path {quoted(path)} ends in {ext}, but the {role} is written as {kind}; "
                                  f"give a name ending in {wanted[0]}, e.g. {os.path.splitext(path)[0]}{wanted[0]}")
    kept = check_parts_folder(output, [optical, sar, options.checkpoint]) if vrt else None
    with rio.open_raster(optical, "optical") as ds:
        height, width = ds.height, ds.width
    rio.open_raster(sar, "SAR").close()
    most = most_parts(height, width, options)
    bands = split_rows(height, min(parts, most))
    note = bands_note(parts, most, len(bands))
    if note and progress is not None:  # said before the bands run
        progress(0.0, note)
    folder = os.path.join(os.path.dirname(os.path.abspath(output)),
                          f".{os.path.basename(output)}.parts-{uuid.uuid4().hex[:8]}")
    os.makedirs(folder)
    try:
        jobs = [PairJob(k, f"rows {a}..{b - 1}", optical, sar, os.path.join(folder, f"part_{k:03d}.tif"),
                        os.path.join(folder, f"part_{k:03d}_confidence.tif") if confidence else None, rows=(a, b))
                for k, (a, b) in enumerate(bands)]
        results = _run_bands(executor, jobs, options, progress, is_cancelled)
        card = results[0].card
        if vrt:
            return _as_vrt(jobs, folder, kept, output, confidence, bands, results)
        _as_geotiff([j.output for j in jobs], optical, output, card, with_classes=True)
        if confidence:
            _as_geotiff([j.confidence for j in jobs], optical, confidence, card, with_classes=False)
        return SceneResult(output, confidence, bands, [], results[0].device, results[0].messages)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_bands(executor, jobs: List[PairJob], options: RunOptions, progress, is_cancelled) -> list:
    """The engine results of every band, in order; the first failure or a cancel raises."""
    results: list = [None] * len(jobs)
    failures = []
    for job, fields, result in executor.run(jobs, options, progress, is_cancelled):
        if fields["status"] == "ok":
            results[job.index] = result
        else:
            failures.append((job, fields))
    if any(f["status"] == "cancelled" for _, f in failures):
        raise CancelledError()
    if failures:
        job, fields = min(failures, key=lambda jf: jf[0].index)
        raise ClaireError(f"{len(failures)} of {len(jobs)} band(s) failed; {job.key}: {fields['reason']}")
    return results


def _as_geotiff(parts: List[str], grid_path: str, final: str, card: dict, with_classes: bool) -> None:
    """Copy the parts, top to bottom, into one GeoTIFF on the optical grid written like the engine's."""
    import rasterio
    from rasterio.windows import Window

    from .engine.plan import card_classes, class_colors
    from .io.qml import style_classes, write_class_style
    from .io.writer import BLOCK, GridWriter, commit, set_classes

    with rasterio.open(grid_path) as grid_ds, rasterio.open(parts[0]) as first:
        writer = GridWriter(final, grid_ds, first.dtypes[0], first.nodata, first.descriptions[0] or "")
    try:
        row = 0
        for part in parts:
            with rasterio.open(part) as ds:
                for r in range(0, ds.height, BLOCK):
                    h = min(BLOCK, ds.height - r)
                    writer.put(row + r, 0, ds.read(1, window=Window(0, r, ds.width, h)))
                    writer.complete_until(row + r + h)
                row += ds.height
        writer.close()
        if with_classes:
            set_classes(writer.tmp, int(card.get("nodata", 0)), card_classes(card), class_colors(card), writer.final)
        commit([writer])
        if with_classes:
            write_class_style(final, style_classes(card_classes(card), class_colors(card)))
    except BaseException:
        writer.abort()
        raise


PART_NAME = re.compile(r"part_\d{3}((_confidence)?\.tif(\.aux\.xml)?|\.qml)$")  # each part's map, style


def check_parts_folder(output: str, inputs: List[Optional[str]]) -> str:
    """`<output stem>_parts/`, the folder a VRT's parts go to; a ClaireError when it exists as anything but an
    earlier run's parts (which are replaced): a file, or a folder holding other files or an input."""
    kept = f"{os.path.splitext(os.path.abspath(output))[0]}_parts"
    if not os.path.lexists(kept):
        return kept
    fix = "move them, or give another output name"
    if not os.path.isdir(kept) or os.path.islink(kept):
        raise ClaireError(f"the parts of the VRT go to {quoted(kept)}, which exists and is not a folder; {fix}")
    inside = [p for p in inputs if p and os.path.abspath(p).startswith(kept + os.sep)]
    others = sorted(n for n in os.listdir(kept) if not PART_NAME.match(n))
    if inside or others:
        listed = ", ".join((inside or others)[:3]) + (" ..." if len(inside or others) > 3 else "")
        raise ClaireError(f"the parts of the VRT go to {quoted(kept)}, which holds files that are not an earlier run's "
                          f"parts ({listed}) and would be replaced; {fix}")
    return kept


def _as_vrt(jobs, folder: str, kept: str, output: str, confidence: Optional[str], bands, results) -> SceneResult:
    """Move the parts to `kept` (`<output stem>_parts/`, an earlier run's parts replaced: check_parts_folder) and
    write VRT(s) over them (relative paths, atomic), the class VRT with the map's colours and class names."""
    try:
        from osgeo import gdal  # noqa: F401 - checked here, before any part moves
    except ImportError:
        raise ClaireError("writing a VRT needs GDAL's Python bindings (osgeo); install python3-gdal or leave "
                          "out --vrt to get one GeoTIFF") from None
    check_parts_folder(output, [])  # nothing else has appeared there while the bands ran
    earlier = _set_aside(kept)
    os.replace(folder, kept)
    os.makedirs(folder)  # the caller removes it
    written: List[str] = []
    try:
        with OutputSet() as files:  # both VRTs or neither
            for final, suffix in ((output, ""), (confidence, "_confidence")):
                if final:
                    sources = [os.path.join(kept, f"part_{j.index:03d}{suffix}.tif") for j in jobs]
                    files.write_with(final, partial(_build_vrt, sources, None if suffix else results[0].card),
                                     "VRT", ".vrt")
                    written.extend(sources)
            files.commit()
    except BaseException:  # the earlier parts back under the earlier VRTs, which point at them
        if earlier:
            shutil.rmtree(kept, ignore_errors=True)
            os.replace(earlier, kept)
        raise
    if earlier:  # the new VRTs are written: nothing points at the earlier parts any more
        shutil.rmtree(earlier, ignore_errors=True)
    from .engine.plan import card_classes, class_colors
    from .io.qml import style_classes, write_class_style

    write_class_style(output, style_classes(card_classes(results[0].card), class_colors(results[0].card)))
    return SceneResult(output, confidence, bands, written, results[0].device, results[0].messages)


def _build_vrt(sources: List[str], card: Optional[dict], tmp: str) -> None:
    """A VRT at `tmp` over the part files `sources` (relative paths); with the map's `card`, described as the
    engine's class GeoTIFF is (_vrt_classes)."""
    from osgeo import gdal

    ds = gdal.BuildVRT(tmp, sources)
    if ds is None:
        raise ClaireError(f"GDAL could not build a VRT over {quoted(os.path.dirname(sources[0]))}; check the folder is "
                          "writable")
    ds = None
    if card is not None:
        _vrt_classes(tmp, card)


def _set_aside(kept: str) -> Optional[str]:
    """Move an earlier run's parts folder aside (removed once the new VRTs are written) and return where; a folder
    that cannot be moved (on Windows, a part open in QGIS) stops the run before anything of the earlier map is
    lost: it was deleted part by part until the open one failed, and its VRT then pointed at missing files."""
    if not os.path.isdir(kept):
        return None
    aside = temp_name(kept)
    try:
        os.replace(kept, aside)
    except OSError as exc:
        raise ClaireError(f"the earlier run's parts in {quoted(kept)} cannot be replaced ({exc}); remove the QGIS "
                          f"layers showing that map (or close the program that has a part open) and run again. The "
                          f"earlier map is unchanged") from None
    return aside


def _vrt_classes(path: str, card: dict) -> None:
    """The class VRT described as the engine's GeoTIFF is: band description, colour table, class names (as GDAL
    categories and class_N tags), nodata, all in the VRT's XML."""
    from osgeo import gdal

    from .engine.plan import card_classes, class_colors
    from .io.writer import DESCRIPTIONS

    nodata = int(card.get("nodata", 0))
    classes = card_classes(card)
    ds = gdal.Open(path, gdal.GA_Update)
    band = ds.GetRasterBand(1)
    band.SetDescription(DESCRIPTIONS["class"])
    table = gdal.ColorTable()
    for value, rgb in class_colors(card).items():
        table.SetColorEntry(int(value), tuple(int(c) for c in rgb)[:3] + (255,))
    table.SetColorEntry(nodata, (0, 0, 0, 0))
    band.SetColorTable(table)
    top = max([nodata] + [int(c["value"]) for c in classes])
    names = [""] * (top + 1)
    for c in classes:
        names[int(c["value"])] = str(c["name"])
    names[nodata] = "nodata"
    band.SetCategoryNames(names)
    band.SetMetadata({f"class_{c['value']}": str(c["name"]) for c in classes})
    ds = None
