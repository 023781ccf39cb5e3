"""Post-processing a run beside the model: the kept cores of a chunk's tiles side by side (tiling.stitch),
turned into class, confidence and reliance values, summary and confusion counts, and written."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ....models.calibration import cloud_temperature, tempered_confidence
from ..errors import ClaireError
from .phases import PhaseTimes
from .reader import drain
from .tiling import stitch

#: Nodata of the uint8 percent rasters (confidence, reliance).
UINT8_NODATA = 255


@dataclass
class Outputs:
    """Where finished blocks go: the writers (io.writer.GridWriter; reliance set once the model shows a
    SAR share; cloud where asked for and the optical has the bands models.cloud needs), the class values
    and nodata, the summary (summary.SummaryAccumulator) and the reference on the optical grid with its
    value -> class index lookup (None without a reference)."""

    classes: object
    confidence: Optional[object]
    reliance: Optional[object]
    class_values: np.ndarray
    nodata: int
    summary: object
    reference: Optional[object] = None
    reference_lut: Optional[np.ndarray] = None
    reference_nodata: Optional[float] = None
    reference_ignored: Sequence[int] = ()  # values the checkpoint's training ignored: not "left out" classes
    reference_path: str = ""
    cloud: Optional[object] = None
    unfamiliar: Optional[object] = None
    has_share: bool = False  # the model gives a SAR share: channel K
    has_distance: bool = False  # the card has familiarity statistics: distance / threshold after it
    #: macroclasses with a SAR-alone temperature: the map's macroclass probability tempered per pixel, last
    has_group_confidence: bool = False
    keep_rows: Optional[Tuple[int, int]] = None  # region rows [start, stop) to finish (a window); None: all
    keep_cols: Optional[Tuple[int, int]] = None  # region columns [start, stop) to finish (an extent); None: all
    temperature: float = 1.0  # the card's calibration: confidence tempered (models.calibration), classes not
    sar_only_temperature: float = 1.0  # the same from SAR alone: optical gaps, approached under cloud
    snow_classes: Optional[List[int]] = None  # classes the snow check rules out (models.cloud.rule_out_snow)

    @property
    def writers(self) -> list:
        """The writers in use, the class raster first."""
        return [w for w in (self.classes, self.confidence, self.reliance, self.cloud, self.unfamiliar)
                if w is not None]

    @property
    def channels(self) -> int:
        """Channels per pixel: class probabilities, then the SAR share, the distance and the macroclass
        confidence where there are."""
        return len(self.class_values) + int(self.has_share) + int(self.has_distance) + int(self.has_group_confidence)


def top_class(values: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(highest probability, its class index as uint8) over the first `k` channels of `values` [C, h, w]; the
    lowest class index wins ties, as numpy's argmax (the evaluation's) does."""
    top = values[:k].max(axis=0)
    idx = np.zeros(top.shape, np.uint8)
    for c in range(k - 1, -1, -1):
        np.copyto(idx, c, where=values[c] == top)
    return top, idx


def finish_block(fin, masks, outputs: Outputs, grid, window: Tuple[int, int]) -> None:
    """Turn a finished block `fin` of a chunk read at region pixel `window` = (y, x) into output values,
    summary counts and confusion counts; `masks` are the chunk's reader.ChunkMasks."""
    K = len(outputs.class_values)
    (a, b), (ca, cb) = _kept(fin.r0, fin.values.shape[1], outputs.keep_rows), _kept(fin.c0, fin.values.shape[2],
                                                                                     outputs.keep_cols)
    if b <= a or cb <= ca:  # a window: this block lies outside it
        return
    y, x = window
    m = masks.crop(fin.r0 - y + b, fin.c0 - x + ca, cb - ca, fin.r0 - y + a)
    valid = m.valid
    values, h, w = fin.values[:, a:b, ca:cb], b - a, cb - ca
    snow = _snow_check(values, outputs.snow_classes, m.snow_possible)
    top, idx = top_class(values, K)
    ruled_out = None if snow is None else (snow[1] > top) & ~np.isin(idx, outputs.snow_classes)
    conf = _confidence(values, top, snow, ruled_out, m, outputs)
    share = values[K] if outputs.has_share else None
    ratio = values[K + int(outputs.has_share)] if outputs.has_distance else None
    out = outputs.class_values[idx]
    out[~valid] = outputs.nodata
    row, col = grid.row0 + fin.r0 + a, grid.col0 + fin.c0 + ca
    outputs.classes.put(row, col, out)
    if outputs.confidence is not None:
        outputs.confidence.put(row, col, _percent(conf, valid))
    if outputs.reliance is not None and share is not None:
        outputs.reliance.put(row, col, _percent(np.clip(share, 0, 1), valid))
    if outputs.cloud is not None and m.cloud is not None:
        outputs.cloud.put(row, col, _percent(m.cloud, valid))
    if outputs.unfamiliar is not None and ratio is not None:
        outputs.unfamiliar.put(row, col, _percent(np.clip(ratio, 0, 1), valid))
    outputs.summary.add(idx, conf, share, m, ratio, ruled_out)
    if outputs.reference is not None:
        _add_reference(outputs, idx, valid, row, col, h, w)


def _confidence(values: np.ndarray, top: np.ndarray, snow, ruled_out, m, outputs: Outputs) -> np.ndarray:
    """The top class's probability after the card's calibration: tempered here (per pixel where the card has a
    SAR-alone temperature), or for macroclasses the channel tempered where the model ran, except where the snow
    check changed the macroclass (its probabilities there are the card's temperature's, renormalised)."""
    K = len(outputs.class_values)
    if outputs.has_group_confidence:
        conf = values[outputs.channels - 1]
        return conf if ruled_out is None else np.where(ruled_out, top / snow[0], conf)
    temperature = _temperature(m, outputs)
    if np.ndim(temperature) or temperature != 1.0:  # invariant to the renormalisation (a constant factor per pixel)
        return tempered_confidence(values[:K], temperature)
    return top if snow is None else top / snow[0]


def _temperature(m, outputs: Outputs):
    """The card's temperature, or per pixel one moved from it towards its SAR-alone one by the cloud probability the
    model was given (1 in the optical gaps classified from SAR alone, where a cloud-gated network's fused features no
    longer depend on the optical, inside a gap or cloud wider than the context window; the gaps alone without a cloud
    probability)."""
    t0, t1 = outputs.temperature, outputs.sar_only_temperature
    if t1 == t0:
        return t0
    weight = m.cloud if m.cloud is not None else m.sar_only
    if not weight.any():
        return t0
    return cloud_temperature(t0, t1, weight.astype(np.float64))


def _kept(start: int, n: int, keep: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """The [a, b) of a block's n rows (or columns) from region index `start` that lie in `keep` (all: None)."""
    return (0, n) if keep is None else (max(0, keep[0] - start), min(n, keep[1] - start))


def _snow_check(values: np.ndarray, classes: Optional[List[int]], possible: Optional[np.ndarray]):
    """models.cloud.rule_out_snow on a block's probabilities [K(+...), h, w] in place: (sum of the class
    probabilities after it, the snow / ice classes' largest probability before it), or None where the check is
    off or rules nothing out here. A pixel's class changed where that largest probability is above the new top."""
    if not classes or possible is None or bool((possible >= 1.0).all()):
        return None
    from ....models.cloud import rule_out_snow

    before = values[classes].max(axis=0)
    return rule_out_snow(values, classes, possible), before


def _percent(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """0..1 as uint8 percent, UINT8_NODATA where not valid. Rounded down, so that a percent compares with a
    threshold as its value does: a confidence of 49.6 % shows 49, below the summary's 50 % for low confidence,
    and the unfamiliar raster's 100 is the summary's "beyond the threshold"."""
    p = np.floor(x * 100).astype(np.uint8)
    p[~valid] = UINT8_NODATA
    return p


def _add_reference(outputs: Outputs, idx, valid, row: int, col: int, h: int, w: int) -> None:
    """Confusion counts of the block against the reference read at the same window."""
    from rasterio.windows import Window

    from ..accuracy import REFERENCE_FIX
    from ..map_accuracy import non_whole_problem

    ref = outputs.reference.read(1, window=Window(col, row, w, h))
    coded = np.isfinite(ref)
    if outputs.reference_nodata is not None:
        coded &= ref != np.float32(outputs.reference_nodata)
    problem = non_whole_problem(ref[coded], outputs.reference_path, "reference raster", REFERENCE_FIX)
    if problem:  # the check before the run samples the raster; truncating here would score 1.999 as class 1
        raise ClaireError(problem)
    ok = np.isfinite(ref) & (ref >= 0) & (ref < 65536)
    ref_i = np.full(ref.shape, -1, dtype=np.int64)
    ref_i[ok] = outputs.reference_lut[ref[ok].astype(np.int64)]
    pred_i = np.where(valid, idx, -1)
    other = ok & valid & (ref_i < 0)
    if outputs.reference_nodata is not None:
        other &= ref != np.float32(outputs.reference_nodata)
    if len(outputs.reference_ignored):
        other &= ~np.isin(ref, np.asarray(outputs.reference_ignored, np.float32))
    outputs.summary.add_reference(pred_i, ref_i, ref[other].astype(np.int64))


class PostWorker:
    """Background thread: stitching, finishing blocks, writing and statistics, so the model's
    thread only runs forwards. Errors are re-raised in the main thread by `put`, `wait_idle` and `finish`.

    Phased schedule (the model takes every core): the main thread calls `wait_idle` before each forward,
    so this thread works only while the main thread reads the next chunk, on the core the model is not
    using then."""

    def __init__(self, grid, outputs: Outputs, height: int, depth: int = 2,
                 phases: Optional[PhaseTimes] = None) -> None:
        self.grid, self.outputs, self.height = grid, outputs, height
        self.phases = phases or PhaseTimes()
        self.q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._main, name="claire-post", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def _main(self) -> None:
        """The thread: process queued chunks until None, keeping the first error for the main thread."""
        while True:
            item = self.q.get()
            try:
                if item is None or self._stop.is_set():
                    return
                with self.phases.timed("stitch, finish and write blocks"):
                    self._process(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.error = exc
                self._stop.set()
                return
            finally:
                self.q.task_done()

    def wait_idle(self) -> None:
        """Block until every queued chunk is processed."""
        t0 = time.perf_counter()
        with self.q.all_tasks_done:
            while self.q.unfinished_tasks and self.thread.is_alive():
                self.q.all_tasks_done.wait(0.1)
        self.phases.add("model thread waits for the writer", time.perf_counter() - t0)
        self._raise()

    def _process(self, r: int, j0: int, j1: int, parts: List, masks) -> None:
        """Stitch a chunk's kept parts, finish the block, release the rows every writer has."""
        g = self.grid
        y, x, _, _ = g.read_window(r, j0, j1)
        finish_block(stitch(g, r, j0, parts), masks, self.outputs, g, (y, x))
        if j1 >= g.col_range[1]:
            bounds = g.row_axis[1]
            complete = g.row0 + bounds[r + 1] if r + 2 < len(bounds) else self.height
            for w in self.outputs.writers:
                w.complete_until(complete)

    def _raise(self) -> None:
        """Re-raise the thread's error in the caller, once."""
        if self.error is not None:
            err, self.error = self.error, None
            if isinstance(err, ClaireError) or not isinstance(err, Exception):
                raise err  # user errors, and KeyboardInterrupt/SystemExit as they are
            raise ClaireError(f"writing the outputs failed: {err}; check the free space and permissions of the "
                              f"output folder") from err

    def put(self, item) -> None:
        """Queue a chunk's model outputs (blocks while two are waiting)."""
        with self.phases.timed("model thread waits for the writer"):
            self._put(item)

    def _put(self, item) -> None:
        while True:
            self._raise()
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait for every queued chunk to be written."""
        self.put(None)
        self.thread.join()
        self._raise()

    def stop(self) -> None:
        """Drop queued work and wait for the thread (used on errors and cancellation)."""
        self._stop.set()
        drain(self.q)
        try:
            self.q.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(timeout=60)
