"""Tiled, streaming optical + SAR classification (QGIS-free).

A run reads as plan -> stream -> finish: `plan.plan_run` opens and checks everything once (RunPlan),
`_Stream` runs the chunks through the model, `_finish` commits the outputs and writes the summary and
report. `classify(params, progress, is_cancelled)` is the one entry point used by the Processing algorithm,
the dock's background task and the command line. Whatever thread calls it, the run happens on the
process's one torch thread (core.runtime.torch_thread: a single OpenMP team) with the allocator keeping freed
buffers (core.runtime.memory); progress is reported in the caller's thread. Threads work on chunks of
tiles (one tile row, a few tile columns):

- readers read the optical window and the SAR window resampled onto the optical grid (core.io.warp:
  nothing is reprojected up front), mask nodata/NaN, normalise both from the checkpoint card and
  cut tiles: beside a GPU or free cores in 1 to MAX_READERS threads of their own (each with its own
  datasets, taking every n-th chunk, handed to the model in order), else in the torch thread between
  batches (see schedule.worker_threads);
- the torch thread runs the model in batches, keeps each tile's core (tiling: every tile is read with
  `context` px around the core it keeps) and turns its logits into class probabilities on the model's
  device, and checks for cancellation between batches; on a CPU of 2 to schedule.MAX_LANES cores, with a
  model that lets the GIL go, the chunks instead run in forward lanes (schedule.forward_lanes): one thread
  per core, one torch thread each, several chunks in the model at once, a reader thread beside them, handed
  on in order by the torch thread, which reports progress and checks for cancellation;
- a post-processing thread puts the kept cores of a chunk side by side (tiling.stitch) and hands the
  finished block to the writers and the summary.

Memory holds a bounded number of chunks, never the whole raster. Outputs (docs/benchmark.md): class
raster uint8 with the card's nodata, colour table and category names; confidence and reliance rasters
uint8 percent (0-100, nodata 255). Every file goes to a temporary name and is renamed when the run is
complete.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

from ....models.quoting import quoted
from ...paths import DEFAULT_CHECKPOINT
from ..errors import CancelledError, ClaireError
from ..io.atomic import OutputSet, refuse_binary
from ..io.block_cache import BASE_BYTES, CacheSize
from ..io.gdal_names import missing_message
from ..io.qml import style_classes, write_class_style
from ..io.writer import DESCRIPTIONS, check_output_path, check_outputs, set_classes, stage
from ..params import ClassifyParams
from ..runtime.torch_thread import busy, call, in_caller, interrupted, on_torch_thread
from . import schedule, tiling
from .memory_fit import is_out_of_memory, out_of_memory_error
from .phases import PhaseTimes
from .plan import RunPlan, class_colors, plan_run
from .post import UINT8_NODATA, PostWorker
from .reader import ChunkReader

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


@dataclass
class ClassifyResult:
    """What a run produced (paths are final names; None where not requested)."""

    output: str
    confidence: Optional[str]
    reliance: Optional[str]
    device: str
    band_choice: dict
    messages: list
    summary: dict
    summary_json: Optional[str] = None
    report: Optional[str] = None
    stats: dict = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    cloud: Optional[str] = None
    unfamiliar: Optional[str] = None


def load_model(checkpoint: Optional[str]):
    """(model in eval mode, card) from a checkpoint path (default checkpoint when None)."""
    path = checkpoint or DEFAULT_CHECKPOINT
    if not os.path.exists(path):
        if checkpoint:
            raise ClaireError(f"the checkpoint {quoted(path)} does not exist (moved or deleted?); check the path, or "
                              "use the bundled checkpoint")
        raise ClaireError(f"the default checkpoint {quoted(path)} is missing: the CLAIRE installation is incomplete; "
                          f"reinstall the plugin, or pass --checkpoint FILE")
    from ....models.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise ClaireError(str(exc)) from None


def classify(params: ClassifyParams, progress: Optional[ProgressFn] = None,
             is_cancelled: Optional[CancelFn] = None) -> ClassifyResult:
    """Classify `params.optical` + `params.sar` into `params.output` (see docs/architecture.md).
    Runs on the torch thread (core.runtime.torch_thread) whatever thread calls it."""
    _check_paths(params)
    _wait_note(progress)
    return call(_classify_here, params, progress, is_cancelled, stop_waiting=is_cancelled)


def _classify_here(params: ClassifyParams, progress: Optional[ProgressFn],
                   is_cancelled: Optional[CancelFn]) -> ClassifyResult:
    """On the torch thread: load the checkpoint, then run."""
    if progress is not None:  # the first run of a session also imports torch's kernels: seconds without a word
        in_caller(progress)(0.0, "loading the model")
    model, card = load_model(params.checkpoint)
    return _run_here(params, model, card, progress, is_cancelled)


def run(params: ClassifyParams, model, card: dict, progress: Optional[ProgressFn] = None,
        is_cancelled: Optional[CancelFn] = None) -> ClassifyResult:
    """Classify with an already loaded model and card (the seam tests and the benchmark use), on the
    torch thread (core.runtime.torch_thread). A Ctrl+C in the waiting thread stops the run cleanly."""
    _check_paths(params)
    _wait_note(progress)
    return call(_run_here, params, model, card, progress, is_cancelled, stop_waiting=is_cancelled)


def _wait_note(progress: Optional[ProgressFn]) -> None:
    """Tell the caller when its run waits for another one on the torch thread."""
    if progress is not None and busy() and not on_torch_thread():
        progress(0.0, "waiting for the classification already running in this program to finish")


def _check_paths(params: ClassifyParams) -> None:
    """Every input exists, every output can be written and differs from the inputs and the other outputs,
    the summary's and report's folders exist: checked once, before anything is opened."""
    for role, p in (("optical", params.optical), ("SAR", params.sar), ("reference", params.reference)):
        if not p and role != "reference":
            raise ClaireError(f"no {role} raster given; pass its path")
        problem = p and missing_message(p, role)
        if problem:
            raise ClaireError(problem)
    from ..explain.report import report_outputs

    inputs = [("optical raster", params.optical), ("SAR raster", params.sar), ("reference raster", params.reference),
              ("checkpoint", params.checkpoint or DEFAULT_CHECKPOINT)]
    if not params.output:
        check_output_path(params.output, inputs, "output")
    outs = [("output", params.output), ("confidence", params.confidence), ("reliance", params.reliance),
            ("cloud", params.cloud), ("unfamiliar", params.unfamiliar), ("summary", params.summary_json)]
    if params.report:
        outs += report_outputs(params.report)
    check_outputs(outs, inputs)
    for role, path in outs[:5]:  # the rasters
        check_geotiff_name(path, role)
    for role, path in outs[5:]:  # the summary and the report's two files: found at the end, the map lost
        if path:
            refuse_binary(path, role)


def check_geotiff_name(path: Optional[str], role: str) -> None:
    """ClaireError when a raster output's name ends in another format's extension (it is written as a GeoTIFF)."""
    ext = os.path.splitext(path or "")[1]
    if ext and ext.lower() not in (".tif", ".tiff"):
        raise ClaireError(f"the {role} path {quoted(path)} ends in {ext}, but the {role} is written as a GeoTIFF; "
                          f"give a name ending in .tif, e.g. {os.path.splitext(path)[0]}.tif")


def time_left(elapsed: float, done: int, remaining: int) -> str:
    """"about 3 min left" from the pace so far (`done` tiles in `elapsed` s since the first report); "" until
    there is a pace to go by (5 s and two tiles) or when nothing is left."""
    if remaining <= 0 or done < 2 or elapsed < 5.0:
        return ""
    seconds = elapsed / done * remaining
    if seconds < 60:
        return f"about {max(5, int(round(seconds / 5.0)) * 5)} s left"
    return f"about {int(round(seconds / 60.0))} min left"


def model_line(checkpoint: Optional[str], card: dict) -> str:
    """Which model a run classifies with, first in its messages: a run fed an empty checkpoint (a model step
    whose checkpoint came from a step that wrote none) otherwise used the bundled one without a word."""
    from ....models.card_schema import model_title

    n = len(card.get("classes") or [])
    if not checkpoint:
        where = f"{DEFAULT_CHECKPOINT} (the bundled checkpoint: none was given)"
    elif os.path.abspath(checkpoint) == os.path.abspath(DEFAULT_CHECKPOINT):
        where = f"{checkpoint} (the bundled checkpoint)"
    else:
        where = checkpoint
    return f"model: {where}, {model_title(card)}, {n} classes"


def _run_here(params: ClassifyParams, model, card: dict, progress: Optional[ProgressFn],
              is_cancelled: Optional[CancelFn]) -> ClassifyResult:
    """On the torch thread: the device, torch's thread count, the GDAL cache and the allocator set for
    the run (and put back after it), progress reported in the caller's thread, then plan, stream, finish."""
    import torch

    from ..runtime.device import resolve_device
    from ..runtime.memory import reuse_freed_memory

    t_start = time.perf_counter()
    progress = in_caller(progress) or (lambda f, m: None)  # reported in the caller's thread
    user_cancel = is_cancelled or (lambda: False)
    is_cancelled = lambda: user_cancel() or interrupted()  # noqa: E731
    device, why = resolve_device(params.device)
    messages: List[str] = [f"device: {device} ({why})", model_line(params.checkpoint, card)]
    old_threads = torch.get_num_threads()
    if params.threads is not None:
        from ..training.checks import check_threads  # one check of a thread count, training's and a run's

        torch.set_num_threads(check_threads(params.threads))
    cache = CacheSize()
    cache.at_most(BASE_BYTES)  # until the inputs are known: RSS stays flat whatever the caller had set
    try:
        with torch.inference_mode(), reuse_freed_memory():
            progress(0.0, "checking the inputs and planning the tiles")
            plan = plan_run(params, model, card, device, messages, cache)
            return _run(plan, messages, progress, is_cancelled, t_start)
    except ClaireError as exc:
        exc.run_messages = list(messages)  # what was planned, for the caller to show beside the error
        raise
    finally:
        torch.set_num_threads(old_threads)
        cache.restore()


def _run(plan: RunPlan, messages: List[str], progress: ProgressFn, is_cancelled: CancelFn,
         t_start: float) -> ClassifyResult:
    """Stream the planned run through the model and finish it; on any error or cancellation, stop the
    threads and remove every temporary output. The plan's datasets are closed either way."""
    stream = None
    try:
        stream = _Stream(plan, messages, progress, is_cancelled)
        stream.phases.add("plan: open, check, model on the device", time.perf_counter() - t_start)
        stream.run()
        if is_cancelled():
            raise CancelledError()
        return _finish(plan, stream, messages, progress, t_start)
    except BaseException as exc:
        if stream is not None:
            stream.stop()
        for w in plan.outputs.writers:
            w.abort()
        if isinstance(exc, MemoryError) or is_out_of_memory(exc):  # a buffer beside the forward's, or a read
            raise out_of_memory_error(plan.device, plan.tile, plan.batch) from None
        raise
    finally:
        plan.close()


class _Stream:
    """The chunks of a plan through the model: a ChunkReader ahead of it, forwards in batches on the
    torch thread, a PostWorker behind it (started at the first output, once the model shows whether it
    gives a SAR share)."""

    def __init__(self, plan: RunPlan, messages: List[str], progress: ProgressFn, is_cancelled: CancelFn) -> None:
        from ....models.networks import gives_cells

        self.plan, self.messages, self.progress, self.is_cancelled = plan, messages, progress, is_cancelled
        self.cells = gives_cells(plan.model)  # asked for its outputs at its cells (kept_outputs upsamples)
        self.reader: Optional[ChunkReader] = None
        self.post: Optional[PostWorker] = None
        self.has_share: Optional[bool] = None
        self.t_forward = 0.0
        self.n_tiles = 0
        self.n_skipped = 0  # tiles with nothing to classify, not run through the model
        self._channels: Optional[int] = None  # of the model's kept parts, known after the first forward
        self._first_report: Optional[Tuple[float, int]] = None  # (time, tiles done) at the first progress report
        self.steering = schedule.ThreadSteering(plan.device, messages, steer=plan.lanes == 1)
        self.phases = PhaseTimes()
        self._lock = threading.Lock()  # the lanes' shared counters and the post-processing thread's start
        self._lanes_stop = threading.Event()
        self._pool = None

    def run(self) -> None:
        """Every chunk read, run and handed to the post-processing thread; returns when all are written."""
        plan, grid = self.plan, self.plan.grid
        self.reader = ChunkReader(plan, readers=plan.readers, more_handles=plan.more_handles, phases=self.phases,
                                  hold=plan.lanes == 1)
        self.reader.start()
        self.progress(0.0, f"{grid.n_tiles} tiles in {grid.n_rows} rows")
        if plan.lanes > 1:
            self._run_lanes()
        else:
            while True:
                item = self.reader.get()
                if item is None:
                    break
                r, j0, j1, outs, masks = self._chunk(item, report=True)
                del item
                self.post.put((r, j0, j1, outs, masks))
                del outs  # before the next chunk is read: one chunk's inputs in memory at a time
        with self.phases.timed("writing the last chunks after the last forward"):
            self.post.finish()
        self.post = None
        self.reader.join()
        self.reader = None

    def _report(self, r: int, j: int) -> None:
        """Progress after tile column `j` of tile row `r`."""
        grid = self.plan.grid
        row, col = r + 1 - grid.row_range[0], j - grid.col_range[0]
        now = time.perf_counter()
        if self._first_report is None:
            self._first_report = (now, self.n_tiles)
        left = time_left(now - self._first_report[0], self.n_tiles - self._first_report[1],
                         grid.n_tiles - self.n_tiles)
        self.progress(min(0.98, 0.98 * self.n_tiles / grid.n_tiles),
                      f"tile row {row}/{grid.n_rows}, tile {col}/{grid.n_cols}" + (f", {left}" if left else ""))

    def _run_lanes(self) -> None:
        """The chunks run `plan.lanes` at a time, each in a lane thread with one torch thread
        (schedule.forward_lanes), and go to the post-processing thread in order; progress and cancellation are
        handled here, in the torch thread."""
        from collections import deque
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        import torch

        lanes = self.plan.lanes
        pending: deque = deque()
        self._pool = ThreadPoolExecutor(lanes, thread_name_prefix="claire-lane",
                                        initializer=torch.set_num_threads, initargs=(1,))
        read_all = False
        try:
            while pending or not read_all:
                if self.is_cancelled():
                    raise CancelledError()
                while pending and pending[0].done():
                    r, j0, j1, outs, masks = pending.popleft().result()
                    self._report(r, j1)
                    self.post.put((r, j0, j1, outs, masks))
                running = [f for f in pending if not f.done()]
                if len(running) >= lanes or (read_all and running):
                    wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    continue
                if not read_all:
                    item = self.reader.get()
                    if item is None:
                        read_all = True
                    else:
                        pending.append(self._pool.submit(self._lane_chunk, item))
                    del item
        finally:
            self._stop_lanes()

    def _lane_chunk(self, item) -> tuple:
        """In a lane thread: one chunk through the model, (r, j0, j1, kept outputs, masks)."""
        import torch

        with torch.inference_mode():
            return self._chunk(item, report=False)

    def _chunk(self, item, report: bool) -> tuple:
        """One chunk through the model in batches, (r, j0, j1, kept outputs, masks); progress after each batch
        with `report`. A tile whose kept part holds no pixel to classify (no data in the optical nor the SAR, e.g.
        a swath's nodata wedge) skips the model: its part is a placeholder the writers turn into nodata."""
        r, j0, j1, o_t, s_t, c_t, masks = item
        del item
        batch = self.plan.batch
        has_data = tiling.tiles_with_data(self.plan.grid, r, j0, j1, masks.valid)
        outs: List[np.ndarray] = []
        for b in range(0, o_t.shape[0], batch):
            cols = [j for j in range(j0 + b, min(j0 + b + batch, j1)) if self._channels is None or has_data[j - j0]]
            if cols:
                pick = [j - j0 for j in cols]
                if len(pick) == min(batch, o_t.shape[0] - b):
                    pick = slice(b, b + batch)
                parts = iter(self._batch(o_t[pick], s_t[pick], None if c_t is None else c_t[pick], r, cols))
            for j in range(j0 + b, min(j0 + b + batch, j1)):
                outs.append(next(parts) if j in cols else self._placeholder(r, j))
            if report:
                self._report(r, j0 + len(outs))
        return r, j0, j1, outs, masks

    def _placeholder(self, r: int, j: int) -> np.ndarray:
        """The kept part of a tile that skipped the model: any finite values (every pixel of it is written as
        nodata and counted as not valid), shaped as the model's parts."""
        rows, cols = self.plan.grid.kept_in_tile(r, j)
        with self._lock:
            self.n_tiles += 1
            self.n_skipped += 1
        return np.full((self._channels, rows.stop - rows.start, cols.stop - cols.start), 0.5, np.float32)

    def _stop_lanes(self) -> None:
        """Let the lanes finish the forward they are in and stop; none is left running the model."""
        pool, self._pool = self._pool, None
        if pool is not None:
            self._lanes_stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _batch(self, o_t, s_t, c_t, r: int, cols: List[int]) -> list:
        """One forward of tiles (r, j) for j in `cols`: the kept part of each tile's class probabilities (and SAR share,
        distance) on the CPU, [C, h, w] arrays; `c_t` the cloud probability tiles of a cloud-gated model."""
        plan = self.plan
        if self._lanes_stop.is_set() if plan.lanes > 1 else self.is_cancelled():
            raise CancelledError()
        if self.post is not None and plan.readers == 0:
            self.post.wait_idle()  # phased: nothing runs beside the model's threads
        t0 = time.perf_counter()
        try:
            dev = plan.device
            extra = {} if c_t is None else {"cloud": c_t.to(dev, non_blocking=True)}
            if plan.familiar is not None:
                extra["return_features"] = True
            if self.cells:
                extra["full_size"] = False
            res = plan.model(o_t.to(dev, non_blocking=True), s_t.to(dev, non_blocking=True), **extra)
        except RuntimeError as exc:
            if is_out_of_memory(exc):
                raise out_of_memory_error(plan.device, plan.tile, plan.batch) from None
            other = ("Run again with --device cpu, and if it fails again report" if plan.device.type != "cpu" else
                     "Run again with --runtime eager, and if it fails again report" if plan.runtime != "eager" else
                     "Report")
            first = (str(exc).strip().splitlines() or ["no message"])[0]
            raise ClaireError(f"the model failed on the tiles of row {r + 1} ({type(exc).__name__}: {first}); nothing "
                              f"was written. {other} it with the output of `claire diagnostics`") from exc
        logits, share = _unpack(res)
        size = tuple(o_t.shape[-2:])
        if self.has_share is None:
            with self._lock:
                if self.has_share is None:
                    self._start_post(share is not None)
        K = plan.model_classes
        if logits.shape[1] != K:
            raise ClaireError(f"the model outputs {logits.shape[1]} classes but its card lists {K}; "
                              f"the checkpoint is inconsistent: re-export it")
        ratio = _distance_ratio(res, plan.familiar) if plan.familiar is not None else None
        kept = [plan.grid.kept_in_tile(r, j) for j in cols]
        per_pixel = plan.groups is not None and plan.groups.per_pixel and plan.uses_cloud
        parts = kept_outputs(logits, share if self.has_share else None, kept, size, ratio, plan.groups,
                             c_t if per_pixel else None)
        seconds = time.perf_counter() - t0
        self.phases.add("model forward, keep the cores, softmax", seconds)
        with self._lock:
            self._channels = parts[0].shape[0]
            self.t_forward += seconds
            self.n_tiles += len(parts)
            self.steering.after_batch(seconds, len(parts), self.n_tiles)
        return parts

    def _start_post(self, has_share: bool) -> None:
        """At the first output: the reliance writer where asked for and possible, the post-processing thread."""
        plan, outputs = self.plan, self.plan.outputs
        self.has_share = outputs.has_share = has_share
        if plan.params.reliance and not has_share:
            self.messages.append("warning: this model has no fusion gate (a random forest, or one sensor only), so "
                                 "it gives no SAR gate weight; the reliance raster you asked for (--reliance) is not "
                                 "written")
        if plan.params.reliance and has_share:
            outputs.reliance = plan.writer(plan.params.reliance, "uint8", UINT8_NODATA, DESCRIPTIONS["reliance"])
        self.post = PostWorker(plan.grid, outputs, plan.opt.height, phases=self.phases)
        self.post.start()

    def stop(self) -> None:
        """Stop the lanes, the reader and post-processing threads (errors and cancellation)."""
        self._stop_lanes()
        if self.reader is not None:
            self.reader.stop()
        if self.post is not None:
            self.post.stop()


def _finish(plan: RunPlan, stream: _Stream, messages: List[str], progress: ProgressFn,
            t_start: float) -> ClassifyResult:
    """Close the rasters (class names and colours on the class raster), write the summary JSON and the
    report beside them, then commit every file together (core.io.atomic.OutputSet): all or none."""
    outputs, params = plan.outputs, plan.params
    colors = class_colors(plan.card)  # once: generating colours for many classes is not free
    with stream.phases.timed("close the rasters, class names, summary"):
        for w in outputs.writers:
            w.close()
        set_classes(outputs.classes.tmp, outputs.nodata, plan.classes, colors, params.output)
        summary = outputs.summary.result(with_reference=outputs.reference is not None)
        summary["optical_offset_suspected"] = bool(getattr(plan.optical_prep, "offset_suspected", False))
        summary["region_shape"] = [int(plan.region.height), int(plan.region.width)]
    band_choice = {"optical": plan.optical_bands.as_dict(), "sar": plan.sar_bands.as_dict()}
    elapsed = time.perf_counter() - t_start
    stats = {"seconds": elapsed, "forward_seconds": stream.t_forward, "tiles": stream.n_tiles,
             "tiles_without_data": stream.n_skipped,
             "pixels": _span(plan.keep_rows, plan.grid.height) * _span(plan.keep_cols, plan.grid.width),
             "tile_size": plan.tile, "context": plan.context,
             "window": list(plan.grid.shape),
             "batch_size": plan.batch, "worker_threads": plan.readers > 0, "reader_threads": plan.readers,
             "lanes": plan.lanes,
             "runtime": plan.runtime, "tiles_at_threads": dict(stream.steering.tiles_at),
             "phases": stream.phases.as_dict()}
    result = ClassifyResult(params.output, params.confidence if outputs.confidence else None,
                            params.reliance if outputs.reliance else None, str(plan.device), band_choice,
                            messages, summary, stats=stats, card=plan.card,
                            cloud=params.cloud if outputs.cloud else None,
                            unfamiliar=params.unfamiliar if getattr(outputs, "unfamiliar", None) else None)
    run = run_settings(plan, stats)
    result.stats["run"] = run
    with OutputSet() as files:
        stage(files, outputs.writers)
        if params.report:
            result.report, fallback = _report(params, summary, plan.card, files, run)
            if params.explainer and fallback:  # the model the user named: said, in --summary too
                messages.append(f"warning: {fallback.rstrip('.')}; the report's text is the deterministic "
                                f"template's")
        if params.summary_json:
            result.summary_json = files.add_json(params.summary_json, {
                "summary": summary, "band_choice": band_choice, "run": run,
                "outputs": {k: os.path.abspath(v) if v else v for k, v in (
                    ("classes", params.output), ("confidence", result.confidence), ("reliance", result.reliance),
                    ("cloud", result.cloud), ("unfamiliar", result.unfamiliar))},
                "confidence_encoding": "uint8 percent 0-100 rounded down, nodata 255", "messages": messages}, "summary")
        files.commit()
    styled = style_classes(plan.classes, colors)
    note = write_class_style(params.output, styled)
    if note:
        messages.append(note)
    progress(1.0, f"done in {elapsed:.1f} s")
    return result


def _span(keep, size: int) -> int:
    """Pixels of a region axis of `size` that a run keeps (`keep`: [start, stop), None: all)."""
    return size if keep is None else keep[1] - keep[0]


def kept_outputs(logits, share, kept, size, ratio=None, groups=None, cloud=None) -> list:
    """Per tile, its kept part [K(+1)(+1)(+1), h, w] float32 on the CPU as numpy: class probabilities (softmax;
    with `groups` (models.macroclass.Grouping) the macroclasses' instead), the SAR share clipped to 0..1, the
    feature distance / familiarity threshold and, given the `cloud` tiles the model took [n, 1, th, tw], the
    map's macroclass probability tempered per pixel (models.calibration.cloud_temperature); `kept` the (rows,
    cols) slices of each tile, `size` the tiles' (height, width). `logits` and `ratio` may be at a coarser stride
    than the tile and `share` a list of such gates (a network's `full_size=False` output): each is brought to
    the tile's size on the kept part only, with the values of upsampling the whole tile
    (models.networks.upsample_part). Computed where the model ran, by torch (why not numpy in the
    post-processing thread: docs/benchmark.md, "Why the engine is scheduled as it is")."""
    import torch

    from ....models.networks import share_part, upsample_part

    k = logits.shape[1] if groups is None else groups.count
    extra = int(share is not None) + int(ratio is not None) + int(groups is not None)
    parts = []
    for n, (rows, cols) in enumerate(kept):
        lg = upsample_part(logits[n:n + 1], size, rows, cols)[0]
        out = torch.empty((k + extra,) + tuple(lg.shape[1:]), dtype=torch.float32, device=logits.device)
        if groups is None:
            torch.softmax(lg.float(), dim=0, out=out[:k])  # straight into place: no concatenated copy
        else:
            _group(torch.softmax(lg.float(), dim=0), groups, out, None if cloud is None else cloud[n, 0, rows, cols])
        if isinstance(share, (list, tuple)):
            out[k:k + 1] = share_part([g[n:n + 1].float() for g in share], size, rows, cols)[0]
        elif share is not None:
            torch.clamp(upsample_part(share[n:n + 1], size, rows, cols)[0].float(), 0.0, 1.0, out=out[k:k + 1])
        if ratio is not None:
            out[k + int(share is not None)] = upsample_part(ratio[n:n + 1], size, rows, cols)[0, 0]
        parts.append(out.cpu().numpy())
    return parts


def _group(probs, groups, out, cloud) -> None:
    """The macroclasses' probabilities as the network gives them into `out`'s first channels (the map's
    macroclass: the calibration changes no map, and tempered first, near-uniform probabilities let a macroclass of
    several classes outweigh a one-class macroclass everywhere) and the chosen macroclass's probability tempered by
    the card's calibration into its last (per pixel given the pixels' `cloud` input): the confidence."""
    from ....models.calibration import cloud_temperature
    from ....models.macroclass import chosen_group_probability, group_probabilities

    group_probabilities(probs, groups.index, out[:groups.count])
    t = groups.temperature
    if cloud is not None:
        t = cloud_temperature(groups.temperature, groups.sar_only_temperature, cloud.to(probs.device).float())
    out[-1] = chosen_group_probability(probs, groups.index, out[:groups.count].argmax(dim=0), t)


def _distance_ratio(res, familiar):
    """[n,1,h,w]: the models.familiarity distance (a `Scorer`) of the card's features / its threshold at the
    features' resolution (stride 32 for the bottleneck), capped at 10 (kept_outputs brings it to the pixels)."""
    feats = familiar.features(res)
    if feats is None:
        raise ClaireError("the checkpoint's card has familiarity statistics but its model does not give the "
                          f"{familiar.key} features they measure; re-export the checkpoint or leave out --unfamiliar")
    return familiar.ratio(feats).clamp_(max=10.0)


def _unpack(res):
    """(logits, SAR share or None) from a model's output; from a network's `full_size=False` output the
    logits at its cells and its gates (a list) in place of the share."""
    from ....models.networks import at_cells

    if isinstance(res, dict):
        if at_cells(res):
            return res["logits"], list(res["gates"])
        return res["logits"], res.get("sar_share")
    return res, None


def run_settings(plan: RunPlan, stats: dict) -> dict:
    """The settings this run used, as its summary JSON and report record them (the card's tiling is the training's,
    not the run's): tiling, runtime (and the one asked for), threads, device, the switches, the checkpoint (path and
    SHA-256 of `params.checkpoint`, the bundled one when empty, as the run's model line says: which of several models
    made the map; a caller of `run` with a model of its own names its file there) and the software's versions."""
    import torch

    from ...paths import DEFAULT_CHECKPOINT
    from ..diagnostics import claire_version
    from ..provenance import checkpoint_record, software

    p = plan.params
    return {"tile_size": stats["tile_size"], "context": stats["context"], "window": stats["window"],
            "batch_size": stats["batch_size"], "lanes": stats["lanes"], "runtime": stats["runtime"],
            "runtime_asked": p.runtime, "threads": torch.get_num_threads(), "threads_given": p.threads,
            "device": str(plan.device), "level": p.level, "fill_from_sar": p.fill_from_sar,
            "snow_check": p.snow_check, "sar_units": p.sar_units, "optical_offset": p.optical_offset,
            "extent": p.extent, "claire_version": claire_version(),
            "checkpoint": checkpoint_record(p.checkpoint or DEFAULT_CHECKPOINT), "software": software()}


def _report(params, summary: dict, card: dict, files: OutputSet,
            run: Optional[dict] = None) -> Tuple[str, Optional[str]]:
    """Stage the explanation report of a finished run (core.explain.report) in `files`: (its path, why the language
    model was not used, or None)."""
    from ..explain.report import write_report

    inputs = {"optical": params.optical, "sar": params.sar, "output": params.output,
              "reference": params.reference}
    report = write_report(summary, card, params.report, explainer=params.explainer, device=params.device,
                          inputs={k: os.path.abspath(v) if k == "output" or os.path.exists(v) else v
                                  for k, v in inputs.items() if v},
                          outputs=files, run=run)
    return params.report, report["explanation"].get("fallback_reason")
