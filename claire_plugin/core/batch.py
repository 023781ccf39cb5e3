"""Classify every optical/SAR pair of two folders, carrying on past failures: the one folder loop.

`claire classify-folder` and the Processing algorithm `claire:classify_folder` both call `classify_pairs`;
they only translate their options in and the `BatchSummary` out. Every pair gets a record with a status:
"ok", "skipped" (output exists), "failed" (with the reason) or "cancelled" (the user stopped the batch:
the running pair and every pair not started yet). The summary is written as JSON and as CSV, atomically.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ...models.quoting import csv_cell, quoted
from .errors import USER_ERRORS, CancelledError, ClaireError
from .io.atomic import OutputSet
from .io.folder_lock import folder_lock
from .params import RunOptions

SUMMARY_JSON = "claire_batch_summary.json"
SUMMARY_CSV = "claire_batch_summary.csv"
CSV_COLUMNS = ["status", "key", "optical", "sar", "output", "confidence", "seconds", "reason", "valid_pixels",
               "area_ha_by_class", "cloud_share", "sar_only_share", "unfamiliar_share", "warnings"]
#: The shares of a pair's map the summary keeps (what tells one date's map from another's, beside the areas).
SHARES = ("cloud_share", "sar_only_share", "unfamiliar_share")

#: on_pair(index, count, record, result): after each pair; result is the engine's ClassifyResult when "ok".
PairCallback = Callable[[int, int, Dict[str, Any], Any], None]


_PATH_FIELDS = ("optical", "sar", "output", "confidence", "path")


@dataclass
class BatchSummary:
    """What a folder run did: one record per pair, the unmatched files, and the summary files written."""

    optical_folder: str
    sar_folder: str
    pairing_rule: str
    results: List[Dict[str, Any]] = field(default_factory=list)
    unmatched: List[Dict[str, str]] = field(default_factory=list)
    json_path: Optional[str] = None
    csv_path: Optional[str] = None

    def count(self, *statuses: str) -> int:
        """Pairs whose status is one of `statuses`."""
        return sum(r["status"] in statuses for r in self.results)

    @property
    def outputs(self) -> List[str]:
        """Land-cover rasters present after the run (written or skipped as existing)."""
        return [r["output"] for r in self.results if r["status"] in ("ok", "skipped")]

    def _absolute(self) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        """The records with absolute paths: the summaries lie in the output folder, so a path relative to the
        shell's folder led nowhere from there."""
        def fix(record: Dict[str, Any]) -> Dict[str, Any]:
            return {k: (os.path.abspath(v) if k in _PATH_FIELDS and isinstance(v, str) and v else v)
                    for k, v in record.items()}

        return [fix(r) for r in self.results], [fix(u) for u in self.unmatched]

    def as_dict(self) -> Dict[str, Any]:
        """The JSON summary."""
        results, unmatched = self._absolute()
        return {"optical_folder": os.path.abspath(self.optical_folder) if self.optical_folder else "",
                "sar_folder": os.path.abspath(self.sar_folder) if self.sar_folder else "",
                "pairing_rule": self.pairing_rule, "pairs": len(self.results),
                # succeeded: pairs whose map is there at the end, classified now or skipped as complete from before
                "succeeded": self.count("ok", "skipped"), "classified": self.count("ok"),
                "skipped": self.count("skipped"), "failed": self.count("failed"),
                "cancelled": self.count("cancelled"), "unmatched_count": len(self.unmatched),
                "totals": self.totals(), "results": results, "unmatched": unmatched}

    def totals(self) -> Dict[str, Any]:
        """Hectares per class and valid pixels summed over the pairs classified in this run (pairs skipped as
        complete from before keep their areas in their rows, and are not summed here). Where maps of the run cover
        the same ground (a time series, or overlapping scenes), a sum would count that ground once per map: the
        areas are then not summed."""
        area: Dict[str, float] = {}
        pixels, pairs, outputs = 0, 0, []
        for r in self.results:
            if r.get("status") != "ok":
                continue
            pairs += 1
            outputs.append(r.get("output"))
            pixels += int(r.get("valid_pixels") or 0)
            for name, ha in (r.get("area_ha") or {}).items():
                area[name] = round(area.get(name, 0.0) + float(ha), 4)
        shared = overlapping_maps(outputs)
        if shared:
            return {"pairs": pairs, "valid_pixels": None, "area_ha": None, "overlapping_maps": shared,
                    "note": f"areas and pixels not summed: {shared} of the {pairs} maps cover ground another map of "
                            f"this run covers too (a time series, or overlapping scenes), so a sum would count that "
                            f"ground once per map; each pair's area_ha is its own map's"}
        return {"pairs": pairs, "valid_pixels": pixels, "area_ha": area, "overlapping_maps": 0,
                "note": "summed over the pairs classified in this run; no two of their maps overlap"}

    def csv_text(self) -> str:
        """One row per pair, then one per unmatched file; after the fixed columns, one `ha <class>` column per class
        of the run's maps (a time series' areas side by side)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        results, unmatched = self._absolute()
        classes = list(dict.fromkeys(name for r in results for name in (r.get("area_ha") or {})))
        rows = [CSV_COLUMNS + [f"ha {name}" for name in classes]]
        for r in results:
            areas = r.get("area_ha") or {}
            rows.append([r["status"], r["key"], r["optical"], r["sar"], r.get("output") or "",
                         r.get("confidence") or "", r.get("seconds", ""), r.get("reason", ""),
                         r.get("valid_pixels", ""), "; ".join(f"{name}={ha:g}" for name, ha in areas.items())]
                        + ["" if r.get(k) is None else f"{r[k]:.4f}" for k in SHARES]
                        + [" | ".join(r.get("warnings") or [])]
                        + [f"{areas[name]:g}" if name in areas else "" for name in classes])
        for u in unmatched:
            rows.append(["unmatched", "", u["path"] if u["side"] == "optical" else "",
                         u["path"] if u["side"] == "sar" else "", "", "", "", u["reason"]]
                        + [""] * (len(CSV_COLUMNS) - 8 + len(classes)))
        w.writerows([csv_cell(cell) for cell in row] for row in rows)  # a file or class named "=..." stays text
        return buf.getvalue()

    def write(self, out_dir: str) -> None:
        """Write the JSON and CSV summaries into `out_dir`, both or neither, and remember their paths."""
        with OutputSet() as files:
            json_path = files.add_json(os.path.join(out_dir, SUMMARY_JSON), self.as_dict(), "batch summary")
            csv_path = files.add_text(os.path.join(out_dir, SUMMARY_CSV), self.csv_text(), "batch summary (CSV)")
            files.commit()
        self.json_path, self.csv_path = json_path, csv_path


def _footprint(path: str):
    """(CRS, (left, bottom, right, top)) of a written map, or None when it cannot be read."""
    import rasterio

    from .io.raster_io import envelope

    try:
        with rasterio.open(path) as ds:
            return ds.crs, envelope(ds)
    except Exception:  # noqa: BLE001 - a map removed since: it counts as not overlapping
        return None


def overlapping_maps(outputs: List[Optional[str]]) -> int:
    """How many of the maps `outputs` share more than a sliver (0.1 % of the smaller) of ground with another, by their
    boxes and, where the boxes share less than half, by their valid pixels (_data_meet). Maps in
    one CRS are compared in it (tiles of one zone that only touch share nothing); maps in different CRSs by their
    footprints brought to longitude/latitude once, also shifted by a turn of the globe (a map across the antimeridian
    ends past 180 degrees); a footprint with no longitude/latitude is compared with the maps of its own CRS only. All
    at once per map (the pairs reprojected one by one took 26 s for 400 maps)."""
    import numpy as np

    found = [(p, _footprint(p)) for p in outputs if p]
    found = [(p, f) for p, f in found if f is not None and f[0] is not None]
    paths, maps = [p for p, _ in found], [f for _, f in found]
    if len(maps) < 2:
        return 0
    crs_keys = np.asarray([crs.to_string() for crs, _ in maps])
    turns = np.asarray([bool(crs.is_geographic) for crs, _ in maps])
    native = np.asarray([_unwrapped(b, geographic) for (_, b), geographic in zip(maps, turns)], np.float64)
    lonlat = [_lonlat_box(crs, b) for crs, b in maps]
    has_lonlat = np.asarray([b is not None for b in lonlat])
    lonlat = np.asarray([b if b is not None else (0.0, 0.0, 0.0, 0.0) for b in lonlat], np.float64)
    shared = np.zeros(len(maps), bool)
    masks: Dict[int, Any] = {}
    for i in range(len(maps) - 1):
        same = crs_keys[i + 1:] == crs_keys[i]
        frac = np.where(same, _shares(native, i, turns[i]), 0.0)
        frac = np.where(~same & has_lonlat[i] & has_lonlat[i + 1:], _shares(lonlat, i, True), frac)
        for k in np.nonzero(frac > SLIVER)[0]:
            j = i + 1 + int(k)
            if shared[i] and shared[j]:
                continue
            # boxes that meet only in part: a reprojected granule's nodata frame reaches into its neighbour's box
            if frac[k] >= SURE or _data_meet(paths, masks, i, j):
                shared[i] = shared[j] = True
    return int(shared.sum())


#: Boxes sharing less than this (of the smaller) share nothing; from SURE on they share data without a look.
SLIVER, SURE = 1e-3, 0.5
#: The side of the coarse masks _data_meet compares.
MASK_SIDE = 512


def _data_mask(path: str):
    """(valid-pixel mask at most MASK_SIDE px a side, its transform, CRS) of a written map (from its overviews)."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as ds:
        scale = max(1.0, max(ds.width, ds.height) / MASK_SIDE)
        shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        mask = ds.read_masks(1, out_shape=shape, resampling=Resampling.nearest) > 0
        transform = ds.transform * ds.transform.scale(ds.width / shape[1], ds.height / shape[0])
        return mask, transform, ds.crs


def _data_meet(paths: List[str], masks: Dict[int, Any], i: int, j: int) -> bool:
    """Whether maps i and j have valid pixels on the same ground: j's coarse mask warped onto i's, more than a
    sliver of the smaller map's valid pixels in common (True when they cannot be read or warped: counted as
    overlapping, as before)."""
    import numpy as np
    from rasterio.warp import Resampling, reproject

    try:
        for k in (i, j):
            if k not in masks:
                masks[k] = _data_mask(paths[k])
        (mi, ti, ci), (mj, tj, cj) = masks[i], masks[j]
        warped = np.zeros(mi.shape, np.uint8)
        reproject(mj.astype(np.uint8), warped, src_transform=tj, src_crs=cj, dst_transform=ti, dst_crs=ci,
                  resampling=Resampling.nearest, src_nodata=None, dst_nodata=0)
        common = int((mi & (warped > 0)).sum())
        # j's valid pixels counted on i's grid: the two maps' pixel sizes may differ
        j_on_i = int((warped > 0).sum())
        return common > SLIVER * max(1, min(int(mi.sum()), j_on_i))
    except Exception:  # noqa: BLE001 - unreadable: the boxes decide, as before
        return True


def _unwrapped(b, geographic: bool) -> tuple:
    """(left, bottom, right, top) with a longitude span across the antimeridian ending past 180 degrees."""
    left, bottom, right, top = b
    return left, bottom, right + 360.0 if geographic and right < left else right, top


def _lonlat_box(crs, b) -> Optional[tuple]:
    """The footprint `b` in longitude/latitude (unwrapped), None where the CRS has none."""
    from rasterio.warp import transform_bounds

    from .io.raster_io import _quiet_gdal

    try:
        with _quiet_gdal():
            box = b if crs.is_geographic else transform_bounds(crs, "EPSG:4326", *b, densify_pts=21)
    except Exception:  # noqa: BLE001 - no longitude/latitude: compared with its own CRS's maps only
        return None
    return _unwrapped(box, True)


def _shares(box, i: int, turn: bool):
    """Per map after `i`: the share of the smaller box that its box and map `i`'s have in common."""
    import numpy as np

    rest, best = box[i + 1:], np.zeros(len(box) - i - 1)
    for shift in ((0.0, 360.0, -360.0) if turn else (0.0,)):
        w = np.minimum(box[i, 2], rest[:, 2] + shift) - np.maximum(box[i, 0], rest[:, 0] + shift)
        h = np.minimum(box[i, 3], rest[:, 3]) - np.maximum(box[i, 1], rest[:, 1])
        best = np.maximum(best, np.where((w > 0) & (h > 0), w * h, 0.0))
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    return best / np.maximum(np.minimum(area[i], area[i + 1:]), 1e-300)


def check_pairing(pairing, optical_dir: str, sar_dir: str, rule: Optional[str]) -> None:
    """ClaireError when there is nothing to classify: an empty folder, or no file found a partner."""
    from .io.pairing import RASTER_EXTENSIONS

    if pairing.pairs:
        return
    exts = ", ".join(RASTER_EXTENSIONS)
    n_opt, n_sar = len(pairing.unmatched_optical), len(pairing.unmatched_sar)
    if n_opt == 0:
        raise ClaireError(f"the optical folder {quoted(optical_dir)} contains no raster files ({exts}); put the "
                          "optical rasters there or choose the folder that holds them")
    if n_sar == 0:
        raise ClaireError(f"the SAR folder {quoted(sar_dir)} contains no raster files ({exts}); put the SAR rasters "
                          f"there or choose the folder that holds them")
    why = "; ".join(f"{os.path.basename(u.path)}: {u.reason}" for u in pairing.unmatched_optical[:5])
    more = f" (and {n_opt - 5} more)" if n_opt > 5 else ""
    raise ClaireError(f"none of the {n_opt} optical file(s) found a SAR partner among the {n_sar} SAR file(s) "
                      f"with the pairing rule {quoted(rule or 'identical names')} ({why}{more}); give a pairing rule "
                      f"(--pairing) that maps the names, e.g. _S2->_S1 or regex:(?P<key>T\\w{{5}}) "
                      f"for a tile id, with one optical and one SAR file per key, or nearest:12:(?P<key>T\\w{{5}}) for "
                      f"dates that differ (each optical with the SAR of the nearest date at most 12 days apart)")


def prepare_output_folder(out_dir: str) -> None:
    """Create the output folder; ClaireError when the path is a file."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ClaireError(f"the output folder {quoted(out_dir)} is a file; choose a folder")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise ClaireError(f"cannot create the output folder {quoted(out_dir)} ({exc.strerror or exc}); choose a folder "
                          f"you can write to") from None


def check_batch_outputs(jobs: List["PairJob"], pairing, out_dir: str, checkpoint: Optional[str],
                        folders: Tuple[str, str] = ("", "")) -> None:
    """Every file the batch will write (each pair's map and confidence, the JSON and CSV summaries) checked at
    once before any work, against every file of both folders, the checkpoint and each other
    (core.io.writer.check_outputs), and the output folder against the (optical, SAR) `folders`. Nothing can
    collide in an output folder that does not exist yet."""
    from ..paths import DEFAULT_CHECKPOINT
    from .io.writer import check_outputs

    if not os.path.isdir(out_dir):
        return
    for side, folder in zip(("optical", "SAR"), folders):
        if folder and os.path.isdir(folder) and os.path.samefile(out_dir, folder):
            example = os.path.join(os.path.dirname(os.path.abspath(out_dir)), "landcover")
            raise ClaireError(f"the output folder {quoted(out_dir)} is also the {side} folder: the maps written there "
                              f"would be read as {side} rasters by the next run of this folder; choose a separate "
                              f"output folder, e.g. {quoted(example)}")
    outputs = [(f"output of pair {quoted(j.key)}", j.output) for j in jobs if not j.skip]
    outputs += [(f"confidence output of pair {quoted(j.key)}", j.confidence) for j in jobs if not j.skip]
    outputs += [("batch summary", os.path.join(out_dir, SUMMARY_JSON)),
                ("batch summary (CSV)", os.path.join(out_dir, SUMMARY_CSV))]
    inputs = [("optical raster", p.optical) for p in pairing.pairs] + [("SAR raster", p.sar) for p in pairing.pairs]
    inputs += [(f"unmatched {u.side} raster", u.path) for u in pairing.unmatched]
    inputs.append(("checkpoint", checkpoint or DEFAULT_CHECKPOINT))
    check_outputs(outputs, inputs)


def check_batch_settings(options: RunOptions) -> None:
    """What every pair shares checked once, before any pair runs: the checkpoint can be read and its card is
    valid, the tile, context and batch sizes and the map level can work with it (ClaireError / CheckpointError
    naming the fix), so that a wrong setting is one message, not one failure per pair."""
    from ...models.checkpoint import read_card
    from ..paths import DEFAULT_CHECKPOINT
    from .engine.plan import level_card
    from .engine.tiling import resolve_tiling

    card = read_card(options.checkpoint or DEFAULT_CHECKPOINT)
    resolve_tiling(options.params("", "", ""), card)
    level_card(card, options.level)


@dataclass(frozen=True)
class PairJob:
    """One pair to classify: plain paths (cheap to send to a cluster worker) and whether it is skipped."""

    index: int
    key: str
    optical: str
    sar: str
    output: str
    confidence: Optional[str] = None
    skip: bool = False
    rows: Optional[Tuple[int, int]] = None  # a band of rows of one scene (core.cluster_scene); None: all
    note: str = ""  # why a complete earlier output is classified again
    inputs_seen: Optional[Dict[str, List[List[Any]]]] = None  # input_identity when the run began


#: The fields of a pair the user cancelled before it started, and of one skipped because its output exists.
CANCELLED_BEFORE = {"status": "cancelled", "reason": "cancelled by the user before this pair", "output": None,
                    "confidence": None}
SKIPPED = {"status": "skipped", "reason": "output exists"}


def run_pair(job: PairJob, options: RunOptions, progress=None, is_cancelled=None,
             catch_unexpected: bool = True) -> Tuple[Dict[str, Any], Any]:
    """(record fields, engine result or None) for one pair; a user error becomes a "failed" status.

    With `catch_unexpected` any other exception is a "failed" status too (the local loop); without it,
    the exception propagates so that a cluster can retry the pair elsewhere.
    """
    from .engine import classify

    start = time.perf_counter()
    try:
        params = options.params(job.optical, job.sar, job.output, confidence=job.confidence)
        params.rows = job.rows
        result = classify(params, progress, is_cancelled)
    except CancelledError:
        return {"status": "cancelled", "reason": "cancelled by the user", "output": None, "confidence": None}, None
    except USER_ERRORS as exc:
        return failed_fields(exc, time.perf_counter() - start), None
    except Exception as exc:  # noqa: BLE001 - carry on past a failing pair, with its reason
        if not catch_unexpected:
            raise
        return failed_fields(exc, time.perf_counter() - start), None
    summary = result.summary or {}
    return {"status": "ok", "seconds": round(time.perf_counter() - start, 2), "device": result.device,
            "valid_pixels": summary.get("valid_pixels"),
            "area_ha": {str(c["name"]): round(float(c["area_ha"]), 4) for c in summary.get("classes", [])},
            **{k: summary.get(k) for k in SHARES},
            "warnings": [m.removeprefix("warning: ") for m in result.messages if m.startswith("warning:")],
            **({"note": job.note} if job.note else {})}, result


def failed_fields(exc: BaseException, seconds: Optional[float]) -> Dict[str, Any]:
    """The record fields of a failed pair: a user error's own message, else the exception's type and text."""
    return failed_record(str(exc) if isinstance(exc, USER_ERRORS) else f"{type(exc).__name__}: {exc}", seconds)


def failed_record(reason: str, seconds: Optional[float] = None) -> Dict[str, Any]:
    """The record fields of a pair that failed for `reason` (no output)."""
    fields: Dict[str, Any] = {"status": "failed", "reason": reason, "output": None, "confidence": None}
    if seconds is not None:
        fields["seconds"] = round(seconds, 2)
    return fields


#: (job, record fields, engine result or None), one per job, in the order the pairs finish.
Outcome = Tuple[PairJob, Dict[str, Any], Any]


class LocalExecutor:
    """The pairs one after the other in this process: the default, and the loop of a single machine."""

    workers = 1

    def run(self, jobs: List[PairJob], options: RunOptions, progress: Optional[Callable[[float, str], None]],
            is_cancelled: Optional[Callable[[], bool]]) -> Iterator[Outcome]:
        """Classify `jobs` in order; once `is_cancelled()` is true every pair not started is cancelled."""
        n = len(jobs)
        for k, job in enumerate(jobs):
            if is_cancelled is not None and is_cancelled():
                yield job, dict(CANCELLED_BEFORE), None
            elif job.skip:
                yield job, dict(SKIPPED), None
            else:
                def pair_progress(fraction: float, message: str, k: int = k) -> None:
                    if progress is not None:
                        progress((k + max(0.0, min(1.0, fraction))) / n, message)

                yield (job, *run_pair(job, options, pair_progress, is_cancelled))


def make_jobs(pairing, out_dir: str, confidence: bool, skip_existing: bool,
              classes: Optional[Dict[int, str]] = None,
              earlier: Optional[Dict[str, Dict[str, Any]]] = None) -> List[PairJob]:
    """One PairJob per pair of `pairing`, with the output names in `out_dir`; with `skip_existing`, a pair whose
    outputs are complete is skipped, unless its map holds other classes than `classes` (value: name, the run's) or
    an input differs from the one the map was made from (`earlier`: the earlier summary's records by output file
    name, _earlier_records)."""
    from .io.pairing import output_name

    jobs = []
    for i, pair in enumerate(pairing.pairs):
        output = os.path.join(out_dir, output_name(pair))
        conf = os.path.join(out_dir, output_name(pair, "_confidence")) if confidence else None
        seen = input_identity(pair.optical, pair.sar)
        done = skip_existing and is_complete_raster(output) and (conf is None or is_complete_raster(conf))
        note = ""
        if done and classes is not None and map_classes(output) != classes:
            done, note = False, ("classified again: the map there from before holds other classes (another model's "
                                 "or level's), and a folder of maps in two class schemes would not compare")
        recorded = ((earlier or {}).get(os.path.basename(output)) or {}).get("inputs_seen")
        if done and (not _same_inputs(recorded, seen) if isinstance(recorded, dict)
                     else _newer_input(output, pair.optical, pair.sar)):
            done, note = False, ("classified again: an input is not the file the map there was made from (its size "
                                 "or modification time differs: a scene delivered again)")
        jobs.append(PairJob(i, pair.key, pair.optical, pair.sar, output, conf, skip=done, note=note, inputs_seen=seen))
    return jobs


def input_identity(optical: str, sar: str) -> Dict[str, List[List[Any]]]:
    """{"optical": [[file name, size, modification time in s], ...], "sar": [...]}: the files GDAL reads for each
    raster (a VRT's sources too; no sidecar), by name without folder: what --skip-existing compares with the
    record of the run that made a map (_same_inputs). A copy of the whole project elsewhere (`cp -a`), a chmod or
    statistics QGIS saved beside an input change none of it."""
    out: Dict[str, List[List[Any]]] = {}
    for role, path in (("optical", optical), ("sar", sar)):
        files = []
        for name in _input_files(path):
            try:
                st = os.stat(name)
            except OSError:
                continue
            files.append([os.path.basename(name), int(st.st_size), round(st.st_mtime, 3)])
        out[role] = sorted(files)
    return out


def _same_inputs(recorded: Any, seen: Dict[str, List[List[Any]]]) -> bool:
    """Whether the inputs `seen` now are those `recorded` by the run that made a map: the same files and sizes, and
    modification times within 2 s (a copy onto a FAT disk or an older rsync keeps them to 1-2 s)."""
    try:
        for role, files in seen.items():
            earlier = recorded[role]
            if len(earlier) != len(files):
                return False
            for (name, size, mtime), (name0, size0, mtime0) in zip(files, sorted(earlier)):
                if name != name0 or int(size) != int(size0) or abs(float(mtime) - float(mtime0)) > 2.0:
                    return False
        return True
    except (KeyError, TypeError, ValueError):  # a record of another shape: treated as other inputs
        return False


def _newer_input(output: str, *inputs: str) -> bool:
    """Whether a file of an input (a VRT's sources too) was modified after `output` (for maps whose summary
    recorded no input_identity, from versions before it). Unreadable inputs: no."""
    try:
        made = os.path.getmtime(output)
    except OSError:
        return False
    for path in inputs:
        for name in _input_files(path):
            try:
                if os.path.getmtime(name) > made:
                    return True
            except OSError:
                continue
    return False


#: Files GDAL lists beside a raster that are not its pixels: statistics, overviews and masks QGIS or gdaladdo
#: write (a map is not made again because QGIS saved statistics beside its input).
_SIDECARS = (".aux.xml", ".ovr", ".msk", ".aux", ".rrd")


def _input_files(path: str) -> List[str]:
    """The files GDAL reads for raster `path` (a VRT's sources, a zip's archive; no sidecar), or the path."""
    try:
        from osgeo import gdal

        ds = gdal.OpenEx(path, gdal.OF_RASTER)
        files = (ds.GetFileList() if ds is not None else None) or []
        ds = None
        from .io.gdal_names import local_files

        files = [found for f in files for found in (local_files(f) or [f])]  # /vsizip/, /vsitar/: the archive
        files = [f for f in dict.fromkeys(files) if not f.lower().endswith(_SIDECARS)]
        return files or [path]
    except Exception:  # noqa: BLE001 - unreadable here: the path itself
        return [path]


def map_classes(path: str) -> Dict[int, str]:
    """{value: name} of a classified map's classes (accuracy.classes_from_gdal; empty when it has none)."""
    from .accuracy import classes_from_gdal

    return {int(c["value"]): str(c["name"]) for c in classes_from_gdal(path)}


def run_classes(options: RunOptions) -> Optional[Dict[int, str]]:
    """{value: name} of the classes the run's maps get (checkpoint and level), or None when its card cannot be read
    here (a checkpoint that lies on a cluster's workers only)."""
    from ..paths import DEFAULT_CHECKPOINT
    from .engine.plan import card_classes, level_card

    try:
        from ...models.checkpoint import read_card

        card, _ = level_card(read_card(options.checkpoint or str(DEFAULT_CHECKPOINT)), options.level)
        return {int(c["value"]): str(c["name"]) for c in card_classes(card)}
    except Exception:  # noqa: BLE001 - the run itself says what is wrong with the checkpoint
        return None


def is_complete_raster(path: str) -> bool:
    """Whether `path` is a raster whose last block reads (core.io.raster_io.check_complete): an earlier run's
    finished output, not a cut-off or foreign file (what --skip-existing may skip)."""
    from .io.raster_io import check_complete

    if not os.path.isfile(path):
        return False
    try:
        check_complete(path, "earlier output")
    except ClaireError:
        return False
    return True


#: What a pair skipped as complete keeps from the earlier summary's record of its map.
KEPT = ("valid_pixels", "area_ha", "warnings", "device") + SHARES


def _earlier_records(out_dir: str) -> Dict[str, Dict[str, Any]]:
    """The earlier batch summary's records of maps written then, by output file name ({} without one; the names of
    one folder's maps differ, and a project copied elsewhere keeps them): a --skip-existing run that adds a date
    kept none of the earlier dates' areas."""
    path = os.path.join(out_dir, SUMMARY_JSON)
    try:
        with open(path, encoding="utf-8") as fh:
            records = json.load(fh).get("results") or []
    except (OSError, ValueError, AttributeError, RecursionError):  # unreadable: every pair is classified again
        return {}
    if not isinstance(records, list):
        return {}
    return {os.path.basename(str(r["output"])): r for r in records
            if isinstance(r, dict) and r.get("output") and r.get("status") in ("ok", "skipped") and _whole_record(r)}


def _whole_record(r: Dict[str, Any]) -> bool:
    """Whether the fields a skipped pair keeps from an earlier record (KEPT) have the types this batch writes: a
    summary edited by hand or by another program made the summary's CSV fail on a text 'area_ha'."""
    def number(v: Any) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    areas = r.get("area_ha")
    return (number(r.get("valid_pixels")) and all(number(r.get(k)) for k in SHARES)
            and (areas is None or (isinstance(areas, dict) and all(number(v) for v in areas.values())))
            and (r.get("warnings") is None or (isinstance(r.get("warnings"), list)
                                               and all(isinstance(w, str) for w in r["warnings"])))
            and (r.get("device") is None or isinstance(r.get("device"), str)))


def classify_pairs(pairing, options: RunOptions, out_dir: str, *, optical_folder: str = "", sar_folder: str = "",
                   rule: str = "", confidence: bool = False, skip_existing: bool = False,
                   progress: Optional[Callable[[float, str], None]] = None,
                   is_cancelled: Optional[Callable[[], bool]] = None,
                   on_pair: Optional[PairCallback] = None, executor=None) -> BatchSummary:
    """Classify each pair of `pairing` into `out_dir`, write the summaries and return them.

    `progress(fraction, message)` covers the whole batch; `is_cancelled()` stops it (the running pair
    and the pairs not started are recorded "cancelled"); `on_pair` hears about each pair when done, in
    the order they finish. `executor` runs the pairs: `LocalExecutor()` (default) or a
    `core.cluster.DaskExecutor`; the records and summary files are the same whichever runs them. The output
    folder is locked for the batch (core.io.folder_lock): a second batch into it is refused while this one runs.
    """
    with ExitStack() as held:
        locked = os.path.isdir(out_dir)
        if locked:  # before the earlier records are read: a batch writing there now would change them
            held.enter_context(folder_lock(out_dir))
        before = _earlier_records(out_dir) if skip_existing else {}
        jobs = make_jobs(pairing, out_dir, confidence, skip_existing, run_classes(options) if skip_existing else None,
                         before)
        check_batch_outputs(jobs, pairing, out_dir, options.checkpoint, (optical_folder, sar_folder))
        if executor is None or isinstance(executor, LocalExecutor):  # a cluster's workers check their own device
            from .runtime.device import check_device
            check_device(options.device)
            check_batch_settings(options)
        elif not options.checkpoint or os.path.isfile(options.checkpoint):  # else it may lie on the workers only
            check_batch_settings(options)
        prepare_output_folder(out_dir)
        if not locked:
            held.enter_context(folder_lock(out_dir))
        summary = BatchSummary(optical_folder, sar_folder, rule or "",
                               unmatched=[{"path": u.path, "side": u.side, "reason": u.reason}
                                          for u in pairing.unmatched])
        summary.results = [{"key": j.key, "optical": j.optical, "sar": j.sar, "output": j.output,
                            "confidence": j.confidence, "inputs_seen": j.inputs_seen} for j in jobs]
        runner = executor if executor is not None else LocalExecutor()
        for job, fields, result in runner.run(jobs, options, progress, is_cancelled):
            if fields.get("status") == "skipped":  # its areas and shares as the run that made the map recorded them
                fields = {**{k: v for k, v in before.get(os.path.basename(job.output), {}).items() if k in KEPT},
                          **fields}
            summary.results[job.index].update(fields)
            if on_pair is not None:
                on_pair(job.index, len(jobs), summary.results[job.index], result)
        summary.write(out_dir)
        return summary
