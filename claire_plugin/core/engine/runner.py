"""Tiled, streaming optical + SAR classification (QGIS-free).

`classify(params, progress, is_cancelled)` is the one entry point used by the Processing algorithm,
the dock's background task and the command line. Whatever thread calls it, the run happens on the
process's one torch thread (core.torch_thread: a single OpenMP team) with the allocator keeping freed
buffers (core.memory); progress is reported in the caller's thread. Threads work on chunks of
tiles (one tile row, a few tile columns):

- readers read the optical window and the SAR window resampled onto the optical grid (core.warp:
  nothing is reprojected up front), mask nodata/NaN, normalise both from the checkpoint card and
  cut tiles: beside a GPU or free cores in 1 to MAX_READERS threads of their own (each with its own
  datasets, taking every n-th chunk, handed to the model in order), else in the torch thread between
  batches (see `_worker_threads`);
- the torch thread runs the model in batches, turns its logits into class probabilities times the
  blending weight on the model's device, and checks for cancellation between batches;
- a post-processing thread blends the probabilities and the SAR share of overlapping tiles
  (tiling.RowBlender) and hands finished blocks to the writers and the summary.

Memory holds a bounded number of chunks, the open tile row and `overlap` carried rows, never the
whole raster. Outputs (docs/benchmark.md): class raster uint8 with the card's nodata, colour table and
category names; confidence and reliance rasters uint8 percent (0-100, nodata 255). Every file goes to
a temporary name and is renamed when the run is complete.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..io.atomic import write_json
from ..io.block_cache import BASE_BYTES, CacheSize
from ..errors import CancelledError, ClaireError
from ...paths import DEFAULT_CHECKPOINT
from ..params import ClassifyParams

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

UINT8_NODATA = 255


def _drain(q: "queue.Queue") -> None:
    """Throw away everything waiting in a queue."""
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


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


def load_model(checkpoint: Optional[str]):
    """(model in eval mode, card) from a checkpoint path (default checkpoint when None)."""
    path = checkpoint or DEFAULT_CHECKPOINT
    if not os.path.exists(path):
        if checkpoint:
            raise ClaireError(f"the checkpoint {path!r} does not exist; check the path or leave it out to use "
                              f"the default checkpoint")
        raise ClaireError(f"the default checkpoint {path!r} is missing; run `make checkpoint` or pass "
                          f"--checkpoint FILE")
    from ....models.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise ClaireError(str(exc)) from None


def classify(params: ClassifyParams, progress: Optional[ProgressFn] = None,
             is_cancelled: Optional[CancelFn] = None) -> ClassifyResult:
    """Classify `params.optical` + `params.sar` into `params.output` (see docs/architecture.md).
    Runs on the torch thread (core.torch_thread) whatever thread calls it."""
    from ..runtime.torch_thread import call

    _check_paths(params)
    _wait_note(progress)
    return call(_classify_here, params, progress, is_cancelled)


def _classify_here(params: ClassifyParams, progress: Optional[ProgressFn],
                   is_cancelled: Optional[CancelFn]) -> ClassifyResult:
    model, card = load_model(params.checkpoint)
    return run(params, model, card, progress, is_cancelled)


def _wait_note(progress: Optional[ProgressFn]) -> None:
    from ..runtime.torch_thread import busy, on_torch_thread

    if progress is not None and busy() and not on_torch_thread():
        progress(0.0, "waiting for the classification already running in this program to finish")


def _check_paths(params: ClassifyParams) -> None:
    from ..io.gdal_names import missing_message
    from ..io.writer import check_output_path

    for role, p in (("optical", params.optical), ("SAR", params.sar), ("reference", params.reference)):
        if not p and role != "reference":
            raise ClaireError(f"no {role} raster given; pass its path")
        problem = p and missing_message(p, role)
        if problem:
            raise ClaireError(problem)
    inputs = [params.optical, params.sar, params.reference, params.checkpoint]
    outs = [("output", params.output), ("confidence", params.confidence), ("reliance", params.reliance)]
    for role, p in outs:
        if p or role == "output":
            check_output_path(p, inputs, role)
    named = [(r, os.path.abspath(p)) for r, p in outs if p]
    for i, (r1, p1) in enumerate(named):
        for r2, p2 in named[i + 1:]:
            if p1 == p2:
                raise ClaireError(f"the {r1} and {r2} outputs have the same path {p1!r}; give each its own file")
    for role, p in (("summary", params.summary_json), ("report", params.report)):
        if p:
            folder = os.path.dirname(os.path.abspath(p))
            if not os.path.isdir(folder):
                raise ClaireError(f"the {role} folder {folder!r} does not exist; create it or choose another path")


# ----------------------------------------------------------------------------------------------------
def _class_colors(card: dict, classes: List[dict]) -> Dict[int, tuple]:
    """{value: (r, g, b)} from the card's colours, generated where missing (models.palette)."""
    from ....models.palette import class_colors

    hexes = class_colors(card)
    return {int(c["value"]): tuple(int(h[k:k + 2], 16) for k in (1, 3, 5)) for c, h in zip(classes, hexes)}


def _card_classes(card: dict) -> List[dict]:
    classes = sorted(card.get("classes") or [], key=lambda c: int(c["index"]))
    if not classes:
        raise ClaireError("the checkpoint card lists no classes; re-export the checkpoint with its classes")
    nodata = int(card.get("nodata", 0))
    for c in classes:
        if int(c["value"]) == nodata or not 0 <= int(c["value"]) <= 254:
            raise ClaireError(f"class {c.get('name')!r} has value {c['value']}, which equals the nodata value "
                              f"or does not fit uint8; fix the checkpoint card")
    return classes


def run(params: ClassifyParams, model, card: dict, progress: Optional[ProgressFn] = None,
        is_cancelled: Optional[CancelFn] = None) -> ClassifyResult:
    """Classify with an already loaded model and card (the seam tests and the benchmark use), on the
    torch thread (core.torch_thread). A Ctrl+C in the waiting thread stops the run cleanly."""
    from ..runtime.torch_thread import call

    _check_paths(params)
    _wait_note(progress)
    return call(_run_here, params, model, card, progress, is_cancelled)


def _run_here(params: ClassifyParams, model, card: dict, progress: Optional[ProgressFn],
              is_cancelled: Optional[CancelFn]) -> ClassifyResult:
    import torch

    from ..runtime.device import resolve_device
    from ..runtime.memory import reuse_freed_memory
    from ..runtime.torch_thread import in_caller, interrupted

    t_start = time.perf_counter()
    progress = in_caller(progress) or (lambda f, m: None)  # reported in the caller's thread
    user_cancel = is_cancelled or (lambda: False)
    is_cancelled = lambda: user_cancel() or interrupted()  # noqa: E731
    messages: List[str] = []
    device, why = resolve_device(params.device)
    messages.append(f"device: {device} ({why})")
    old_threads = torch.get_num_threads()
    if params.threads:
        if int(params.threads) < 1:
            raise ClaireError(f"threads must be 1 or more (got {params.threads}); leave it out for the default")
        torch.set_num_threads(int(params.threads))
    cache = CacheSize()
    cache.at_most(BASE_BYTES)  # until the inputs are known: RSS stays flat whatever the caller had set
    try:
        with torch.inference_mode(), reuse_freed_memory():
            return _run(params, model, card, device, messages, progress, is_cancelled, t_start, cache)
    finally:
        torch.set_num_threads(old_threads)
        cache.restore()


def _run(params, model, card, device, messages, progress, is_cancelled, t_start, cache) -> ClassifyResult:
    import torch

    from ..io import raster_io as rio
    from ..inputs.bands import choose_bands
    from .memory_fit import check_fits, is_out_of_memory, out_of_memory_error
    from ..inputs.normalize import InputSpec, optical_preparer, sar_preparer
    from ..inputs.radiometry import optical_radiometry
    from .summary import SummaryAccumulator
    from .tiling import RowBlender, TileGrid, blend_weights, check_tiling, tiles_per_chunk
    from ..inputs.validate import require_valid_pixels, valid_pixels
    from ..io.writer import GridWriter, commit, set_classes

    classes = _card_classes(card)
    K = len(classes)
    nodata = int(card.get("nodata", 0))
    cfg = card.get("config") or {}
    opt_spec = InputSpec.from_card(card, "optical", cfg.get("optical_channels"))
    sar_spec = InputSpec.from_card(card, "sar", cfg.get("sar_channels"))
    tile = int(params.tile_size or card.get("tile_size") or 256)
    overlap = int(params.overlap if params.overlap is not None else card.get("overlap", tile // 8))
    check_tiling(tile, overlap)
    batch = int(params.batch_size or 4)
    if batch < 1:
        raise ClaireError(f"batch size must be 1 or more (got {batch}); e.g. --batch-size 4")

    opened = []
    writers: List[GridWriter] = []
    reader = post = None
    try:
        opt = rio.open_raster(params.optical, "optical")
        opened.append(opt)
        sar = rio.open_raster(params.sar, "SAR")
        opened.append(sar)
        rio.require_crs(opt, "optical")
        rio.require_crs(sar, "SAR")
        oc = choose_bands("optical", opt.count, opt.descriptions, opt_spec.bands, params.optical_bands,
                          cfg.get("optical_channels"), "--optical-bands")
        sc = choose_bands("SAR", sar.count, sar.descriptions, sar_spec.bands, params.sar_bands,
                          cfg.get("sar_channels"), "--sar-bands")
        messages += [oc.describe("optical"), sc.describe("SAR")]
        region = rio.overlap_window(opt, sar)
        ref_ds = ref_vrt = None
        if params.reference:
            ref_ds = rio.open_raster(params.reference, "reference")
            opened.append(ref_ds)
            rio.require_crs(ref_ds, "reference")
            rio.overlap_window(opt, ref_ds, "reference")
            ref_vrt = rio.warp_to_grid(ref_ds, opt, "nearest")
            opened.append(ref_vrt)
        sar_vrt = rio.warp_to_grid(sar, opt, "bilinear")
        opened.append(sar_vrt)
        if sar.crs != opt.crs or sar.transform != opt.transform or sar.shape != opt.shape:
            messages.append(f"SAR is warped onto the optical grid on the fly (bilinear; SAR CRS {sar.crs}, "
                            f"optical CRS {opt.crs})")
        s_sample = rio.sample(sar_vrt, sc.indices, region)
        o_sample = rio.sample(opt, oc.indices, region)
        for role, smp, src, idx, nd in (("SAR", s_sample, sar_vrt, sc.indices, None),
                                        ("optical", o_sample, opt, oc.indices, opt.nodata)):
            if not valid_pixels(smp, nd).any() and not rio.has_valid_data(src, idx, region, nd):
                require_valid_pixels(smp, role, nd)
        radiometry = optical_radiometry(opt, oc.indices, params.optical_offset)
        opt_prep = optical_preparer(opt_spec, len(oc.indices), opt.dtypes[oc.indices[0] - 1], o_sample, radiometry)
        sar_prep = sar_preparer(sar_spec, len(sc.indices), s_sample, rio.metadata_text(sar, sc.indices))
        messages += opt_prep.notes + sar_prep.notes
        del s_sample, o_sample
        grid = TileGrid(int(region.row_off), int(region.col_off), int(region.height), int(region.width),
                        tile, overlap)
        messages.append(f"processing the overlap: rows {grid.row0}..{grid.row0 + grid.height - 1}, cols "
                        f"{grid.col0}..{grid.col0 + grid.width - 1} of {opt.height} x {opt.width}; "
                        f"{grid.n_tiles} tiles of {tile} px, overlap {overlap}, batch {batch}")

        model = model.to(device).eval()
        fit = check_fits(model, device, tile, batch, (len(oc.indices), len(sc.indices)), K + 1)
        if fit:
            messages.append(fit)
        visible = [i for i, n in enumerate(oc.names) if str(n).upper() in ("B02", "B03", "B04")]
        visible = visible if len(visible) == 3 else None
        writers.append(GridWriter(params.output, opt, "uint8", nodata, "land cover class"))
        conf_w = rel_w = None
        if params.confidence:
            conf_w = GridWriter(params.confidence, opt, "uint8", UINT8_NODATA, "confidence (top-class probability, %)")
            writers.append(conf_w)
        want_rel = bool(params.reliance)
        summary = SummaryAccumulator(classes, rio.pixel_area_m2(opt), opt.width * opt.height)
        class_values = np.array([int(c["value"]) for c in classes], dtype=np.uint8)
        ref_lut = _reference_lut(classes, ref_ds.nodata if ref_ds is not None else None)

        has_sar_share = None
        tpc = tiles_per_chunk(batch)
        readers, why_threads = _worker_threads(device)
        threaded = readers > 0
        messages.append(why_threads)
        inputs = [("optical", opt, oc.indices, max(1, readers)), ("SAR", sar_vrt, sc.indices, max(1, readers))]
        if ref_vrt is not None:
            inputs.append(("reference", ref_vrt, [1], 1))  # read by the post-processing thread
        cache_note = cache.fit(inputs, grid)
        if cache_note:
            messages.append(cache_note)

        def more_handles():
            """Datasets of its own for each extra reader thread (GDAL handles are not shared)."""
            o = rio.open_raster(params.optical, "optical")
            s = rio.open_raster(params.sar, "SAR")
            return o, rio.warp_to_grid(s, o, "bilinear"), [s, o]

        reader = _ChunkReader(opt, sar_vrt, oc.indices, sc.indices, opt.nodata, opt_prep, sar_prep, grid,
                              tpc, visible, readers=readers, more_handles=more_handles)
        reader.start()
        t_forward = 0.0
        n_tiles = 0
        blend_w = torch.from_numpy(blend_weights(grid.tile, grid.overlap)).to(device)
        progress(0.0, f"{grid.n_tiles} tiles in {grid.n_rows} rows")
        while True:
            item = reader.get()
            if item is None:
                break
            r, j0, j1, o_t, s_t, flags = item
            outs = []
            for b in range(0, o_t.shape[0], batch):
                if is_cancelled():
                    raise CancelledError()
                if post is not None and not threaded:
                    post.wait_idle()  # phased: nothing runs beside the model's threads
                t0 = time.perf_counter()
                try:
                    res = model(o_t[b:b + batch].to(device, non_blocking=True),
                                s_t[b:b + batch].to(device, non_blocking=True))
                except RuntimeError as exc:
                    if is_out_of_memory(exc):
                        raise out_of_memory_error(device, tile, batch) from None
                    raise
                logits, share = _unpack(res)
                if has_sar_share is None:
                    has_sar_share = share is not None
                    if want_rel and not has_sar_share:
                        messages.append("this model gives no sar_share output; the reliance raster is not written")
                    if want_rel and has_sar_share:
                        rel_w = GridWriter(params.reliance, opt, "uint8", UINT8_NODATA, "SAR share of the fusion (%)")
                        writers.append(rel_w)
                    post = _PostWorker(RowBlender(grid, K + (1 if has_sar_share else 0)), grid, K, class_values,
                                       nodata, writers, conf_w, rel_w, summary, ref_vrt, ref_lut, opt.height)
                    post.start()
                if logits.shape[1] != K:
                    raise ClaireError(f"the model outputs {logits.shape[1]} classes but its card lists {K}; "
                                      f"the checkpoint is inconsistent: re-export it")
                weighted = _weighted_outputs(logits, share if has_sar_share else None, blend_w)
                outs.append(weighted)
                t_forward += time.perf_counter() - t0
                n_tiles += weighted.shape[0]
                progress(min(0.98, 0.98 * n_tiles / grid.n_tiles),
                         f"tile row {r + 1}/{grid.n_rows}, tile {j0 + b + weighted.shape[0]}/{grid.n_cols}")
            post.put((r, j0, j1, outs, flags))
            del item, o_t, s_t, outs  # before the next chunk is read: one chunk's inputs in memory at a time
        post.finish()
        post = None
        reader.join()
        reader = None
        if is_cancelled():
            raise CancelledError()
        for w in writers:
            w.close()
        set_classes(writers[0].tmp, nodata, classes, _class_colors(card, classes))
        commit(writers)
        result_summary = summary.result(with_reference=ref_vrt is not None)
        band_choice = {"optical": oc.as_dict(), "sar": sc.as_dict()}
        elapsed = time.perf_counter() - t_start
        stats = {"seconds": elapsed, "forward_seconds": t_forward, "tiles": n_tiles,
                 "pixels": grid.height * grid.width, "tile_size": tile, "overlap": overlap, "batch_size": batch,
                 "worker_threads": threaded, "reader_threads": readers}
        result = ClassifyResult(params.output, params.confidence if conf_w else None,
                                params.reliance if rel_w else None, str(device), band_choice, messages,
                                result_summary, stats=stats, card=card)
        if params.summary_json:
            write_json(params.summary_json, {"summary": result_summary, "band_choice": band_choice,
                                              "outputs": {"classes": params.output,
                                                          "confidence": result.confidence,
                                                          "reliance": result.reliance},
                                              "confidence_encoding": "uint8 percent 0-100, nodata 255",
                                              "messages": messages})
            result.summary_json = params.summary_json
        if params.report:
            result.report = _report(params, result_summary, card, messages)
        progress(1.0, f"done in {elapsed:.1f} s")
        return result
    except BaseException:
        if reader is not None:
            reader.stop()
        if post is not None:
            post.stop()
        for w in writers:
            w.abort()
        raise
    finally:
        for ds in reversed(opened):
            try:
                ds.close()
            except Exception:  # noqa: BLE001
                pass


#: Most reader threads. Reading a chunk costs about 1.6 times finishing and writing it on this project's
#: machine (docs/benchmark.md), so more readers would mostly wait for the one writing thread.
MAX_READERS = 4


def _cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker_threads(device) -> Tuple[int, str]:
    """How many reader threads run beside the model (0: none, the phased schedule), and why (a message
    for the user). Writing then has its own thread too.

    They run beside a GPU, or when the model leaves CPU cores free: one reader per core left after the
    model's thread(s) and the writing thread, up to MAX_READERS, at least one. When the model's threads
    take every core, a thread running beside them preempts one (and the others then wait for it at their
    next barrier): on two cores the run was 20-25 % faster with the phased schedule instead, where the next
    chunk is read between batches while the previous one is blended and written on the other core
    (docs/benchmark.md)."""
    import torch

    cores = _cpu_cores()
    if device.type != "cpu":
        n = max(1, min(MAX_READERS, cores - 2))
        return n, (f"reading ({n} thread{'s' if n > 1 else ''}) and writing run in their own threads beside "
                   f"the {device.type.upper()}")
    used = torch.get_num_threads()
    if used < cores:
        n = max(1, min(MAX_READERS, cores - used - 1))
        return n, (f"the model uses {used} of {cores} CPU cores; reading ({n} thread{'s' if n > 1 else ''}) "
                   f"and writing run beside it")
    return 0, (f"the model uses all {cores} CPU cores; reading and writing run between its batches, "
               f"not beside them")


def _weighted_outputs(logits, share, weight):
    """[n, K(+1), T, T] float32 on the CPU: class probabilities (softmax) and the SAR share clipped to
    0..1, both times the blending weight [T, T]. Computed where the model ran (GPU, or torch's CPU
    threads between forwards: on a busy CPU, single-threaded numpy next to the model was 5x slower)."""
    import torch

    n, k = logits.shape[:2]
    out = torch.empty((n, k + (1 if share is not None else 0)) + tuple(logits.shape[2:]), dtype=torch.float32,
                      device=logits.device)
    torch.softmax(logits.float(), dim=1, out=out[:, :k])  # straight into place: no concatenated copy
    if share is not None:
        torch.clamp(share.float(), 0.0, 1.0, out=out[:, k:])
    return out.mul_(weight).cpu()


def _unpack(res):
    if isinstance(res, dict):
        return res["logits"], res.get("sar_share")
    return res, None


def _reference_lut(classes: List[dict], ref_nodata) -> np.ndarray:
    """Lookup from reference value (0..65535) to class index, -1 for ignored values."""
    lut = np.full(65536, -1, dtype=np.int16)
    for k, c in enumerate(classes):
        lut[int(c["value"])] = k
    if ref_nodata is not None and float(ref_nodata).is_integer() and 0 <= ref_nodata < 65536:
        lut[int(ref_nodata)] = -1
    return lut


def _finish(fin, grid, j0, flags, K, has_share, class_values, nodata, cls_w, conf_w, rel_w, summary,
            ref_vrt, ref_lut) -> None:
    """Turn a finished blended block into output values, summary counts and confusion counts."""
    valid_all, opt_bad_all, cloud_all = flags
    h, w = fin.weight.shape
    lc = fin.c0 - j0 * grid.stride
    valid = valid_all[:h, lc:lc + w]
    opt_bad = opt_bad_all[:h, lc:lc + w]
    cloud = cloud_all[:h, lc:lc + w]
    sums = fin.sums
    best = sums[:K].max(axis=0)  # argmax and max on the sums: dividing by the weight changes neither
    idx = np.zeros(best.shape, np.uint8)
    for k in range(K - 1, -1, -1):  # lowest class index wins ties, like argmax
        np.copyto(idx, k, where=sums[k] == best)
    conf = best / fin.weight
    share = sums[K] / fin.weight if has_share else None
    out = class_values[idx]
    out[~valid] = nodata
    row, col = grid.row0 + fin.r0, grid.col0 + fin.c0
    cls_w.put(row, col, out)
    if conf_w is not None:
        c8 = np.rint(conf * 100).astype(np.uint8)
        c8[~valid] = UINT8_NODATA
        conf_w.put(row, col, c8)
    if rel_w is not None and share is not None:
        s8 = np.rint(np.clip(share, 0, 1) * 100).astype(np.uint8)
        s8[~valid] = UINT8_NODATA
        rel_w.put(row, col, s8)
    summary.add(idx, conf, share, valid, opt_bad, cloud)
    if ref_vrt is not None:
        from rasterio.windows import Window

        ref = ref_vrt.read(1, window=Window(col, row, w, h))
        ok = np.isfinite(ref) & (ref >= 0) & (ref < 65536)
        ref_i = np.full(ref.shape, -1, dtype=np.int64)
        ref_i[ok] = ref_lut[ref[ok].astype(np.int64)]
        pred_i = np.where(valid, idx, -1)
        summary.add_reference(pred_i, ref_i)


class _PostWorker:
    """Background thread: blending, finishing blocks, writing and statistics, so the model's
    thread only runs forwards. Errors are re-raised in the main thread by `put`, `wait_idle` and `finish`.

    Phased schedule (the model takes every core): the main thread calls `wait_idle` before each forward,
    so this thread works only while the main thread reads the next chunk, on the core the model is not
    using then."""

    def __init__(self, blender, grid, K, class_values, nodata, writers, conf_w, rel_w, summary, ref_vrt,
                 ref_lut, height: int, depth: int = 2) -> None:
        self.blender, self.grid, self.K = blender, grid, K
        self.args = (class_values, nodata, writers, conf_w, rel_w, summary, ref_vrt, ref_lut)
        self.height = height
        self.q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._main, name="claire-post", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        while True:
            item = self.q.get()
            try:
                if item is None or self._stop.is_set():
                    return
                self._process(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.error = exc
                self._stop.set()
                return
            finally:
                self.q.task_done()

    def wait_idle(self) -> None:
        """Block until every queued chunk is processed."""
        with self.q.all_tasks_done:
            while self.q.unfinished_tasks and self.thread.is_alive():
                self.q.all_tasks_done.wait(0.1)
        self._raise()

    def _process(self, r, j0, j1, outs, flags) -> None:
        class_values, nodata, writers, conf_w, rel_w, summary, ref_vrt, ref_lut = self.args
        K, g = self.K, self.grid
        has_share = outs[0].shape[1] > K
        j = j0
        for out in outs:  # batch by batch: no copy of the whole chunk
            for fin in self.blender.add(r, j, out.numpy(), weighted=True):
                _finish(fin, g, j0, flags, K, has_share, class_values, nodata, writers[0], conf_w, rel_w,
                        summary, ref_vrt, ref_lut)
            j += out.shape[0]
        if j1 >= g.n_cols:
            complete = g.row0 + (r + 1) * g.stride if r < g.n_rows - 1 else self.height
            for w in writers:
                w.complete_until(complete)

    def _raise(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            if isinstance(err, ClaireError) or not isinstance(err, Exception):
                raise err  # user errors, and KeyboardInterrupt/SystemExit as they are
            raise ClaireError(f"writing the outputs failed: {err}; check the free space and permissions of the "
                              f"output folder") from err

    def put(self, item) -> None:
        """Queue a chunk's model outputs (blocks while two are waiting)."""
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
        _drain(self.q)
        try:
            self.q.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(timeout=60)


class _ChunkReader:
    """Reads, warps, normalises and tiles chunks ahead of the model: `readers` threads (0: in the caller,
    between batches), each with its own datasets, taking every `readers`-th chunk; `get` hands the chunks
    out in order. Bounded: two chunks ahead with one reader, one per reader with more."""

    def __init__(self, opt, sar_vrt, o_idx, s_idx, opt_nodata, opt_prep, sar_prep, grid, tpc, visible,
                 readers: int = 1, more_handles: Optional[Callable[[], tuple]] = None) -> None:
        self.threaded = readers > 0
        self._chunks = list(grid.chunks(tpc))
        self._next = 0
        self.args = (opt, sar_vrt, o_idx, s_idx, opt_nodata, opt_prep, sar_prep, grid, tpc, visible)
        dtypes = {np.dtype(opt.dtypes[i - 1]) for i in o_idx}
        self.int_optical = all(d.kind in "ui" for d in dtypes)
        self.o_dtype = dtypes.pop().name if self.int_optical and len(dtypes) == 1 else "float32"
        self.o_nodata = _nodata_in(opt_nodata, np.dtype(self.o_dtype))
        n = max(1, readers)
        if n > 1 and more_handles is None:
            raise ValueError("more than one reader needs `more_handles`")
        self._more_handles = more_handles
        self.queues: List["queue.Queue"] = [queue.Queue(maxsize=2 if n == 1 else 1) for _ in range(n)]
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._main, args=(k,), name=f"claire-reader-{k}", daemon=True)
                        for k in range(n)] if self.threaded else []

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _put(self, k: int, item) -> bool:
        while not self._stop.is_set():
            try:
                self.queues[k].put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _main(self, k: int) -> None:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # its grid_sample: one thread, not a second OpenMP team as wide as the model's
        closers: list = []
        try:
            handles = None
            if k > 0:
                o, sv, closers = self._more_handles()
                handles = (o, sv)
            for chunk in self._chunks[k::len(self.queues)]:
                if self._stop.is_set():
                    return
                if not self._put(k, self._read(*chunk, handles=handles)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._put(k, exc)
        finally:
            for c in closers:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
            torch.set_num_threads(threads)  # also torch's default for threads started later

    def _read(self, r: int, j0: int, j1: int, handles=None):
        """One chunk: (r, j0, j1, optical tiles, SAR tiles, (valid, optical nodata, cloud-like) masks)."""
        opt, sar_vrt, _, _, _, _, _, grid, _, _ = self.args
        if handles is not None:
            opt, sar_vrt = handles
        T, S = grid.tile, grid.stride
        n = j1 - j0
        y, x = grid.row0 + r * S, grid.col0 + j0 * S
        span = (n - 1) * S + T
        win = (y, x, min(T, opt.height - y), min(span, opt.width - x), n, T, span)
        o_t, o_bad, cloud = self._read_optical(opt, win)
        s_t, s_bad = self._read_sar(sar_vrt, win)
        h, w = o_bad.shape
        region = np.zeros((h, w), dtype=bool)  # inside the overlap region only
        region[: max(0, grid.row0 + grid.height - y), : max(0, grid.col0 + grid.width - x)] = True
        valid = ~o_bad & ~s_bad & region
        return r, j0, j1, o_t, s_t, (valid, o_bad & region, cloud & valid)

    def _read_optical(self, opt, win):
        """Optical tiles [n, C, T, T] normalised (nodata zeroed), its nodata mask and the cloud-like mask
        of the window (unpadded, h x w)."""
        import torch

        from ..io.raster_io import read_window
        from .summary import cloud_like

        _, _, o_idx, _, _, o_prep, _, grid, _, visible = self.args
        y, x, h, w, n, T, span = win
        o = read_window(opt, o_idx, y, x, h, w, self.o_dtype)  # integers stay integers until normalised
        o_bad = np.zeros((h, w), dtype=bool) if self.int_optical else ~np.isfinite(o).all(axis=0)
        if self.o_nodata is not None:
            o_bad |= (o == self.o_nodata).all(axis=0)
        vis = o[visible] if visible else o
        cloud = cloud_like(o_prep.physical(vis.astype(np.float32)), None)  # physical values
        return torch.from_numpy(_tiles(o, o_bad, o_prep, n, T, span, grid.stride)), o_bad, cloud

    def _read_sar(self, sar_vrt, win):
        """SAR tiles [n, C, T, T] on the optical grid, normalised (invalid zeroed), and its invalid mask."""
        import torch

        from ..io.raster_io import read_window

        _, _, _, s_idx, _, _, s_prep, grid, _, _ = self.args
        y, x, h, w, n, T, span = win
        s = read_window(sar_vrt, s_idx, y, x, h, w)
        s_bad = ~np.isfinite(s).all(axis=0)
        return torch.from_numpy(_tiles(s, s_bad, s_prep, n, T, span, grid.stride)), s_bad

    def get(self):
        """Next chunk in order, None at the end; re-raises a reader's exception in the caller."""
        if not self.threaded:
            import torch

            chunk = self._chunks[self._next] if self._next < len(self._chunks) else None
            self._next += 1
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # the other core blends and writes the previous chunk meanwhile
            try:
                return None if chunk is None else self._read(*chunk)
            except Exception as exc:  # noqa: BLE001 - the same messages as from the thread
                _raise_read_error(exc)
            finally:
                torch.set_num_threads(threads)
        if self._next >= len(self._chunks):
            return None
        k = self._next % len(self.queues)
        while True:
            try:
                item = self.queues[k].get(timeout=0.5)
            except queue.Empty:
                if not self.threads[k].is_alive() and self.queues[k].empty():
                    raise ClaireError("the raster reader stopped unexpectedly; see the log") from None
                continue
            if isinstance(item, BaseException):
                self.threads[k].join()
                _raise_read_error(item)
            self._next += 1
            return item

    def join(self) -> None:
        for t in self.threads:
            t.join()

    def stop(self) -> None:
        """Ask the threads to finish and wait for them."""
        self._stop.set()
        for q in self.queues:
            _drain(q)
        for t in self.threads:
            t.join(timeout=30)


def _tiles(raw: np.ndarray, bad: np.ndarray, prep, n: int, T: int, span: int, S: int) -> np.ndarray:
    """Cut a chunk window [C, h, w] into n tiles [n, C, T, T], normalised by `prep` straight into the
    batch (no separate copy of the chunk), `bad` pixels zeroed; tiles past the raster's edge padded by
    reflection."""
    h, w = bad.shape
    if h < T or w < span:
        mode = "reflect" if min(h, w) > 1 else "edge"
        pad = ((0, T - h), (0, span - w))
        raw, bad = np.pad(raw, ((0, 0),) + pad, mode=mode), np.pad(bad, pad, mode=mode)
    out = np.empty((n, raw.shape[0], T, T), np.float32)
    any_bad = bool(bad.any())
    for k in range(n):
        cols = slice(k * S, k * S + T)
        prep.into(raw[:, :, cols], out[k])
        if any_bad:
            out[k][:, bad[:, cols]] = 0.0
    return out


def _nodata_in(nodata: Optional[float], dtype: np.dtype):
    """The nodata value as a scalar of `dtype` for comparisons, or None when no pixel can equal it (no
    nodata, NaN - found by the finiteness test -, or a value the integer type cannot hold)."""
    if nodata is None or not np.isfinite(nodata):
        return None
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
            return None
    return dtype.type(nodata)


def _raise_read_error(exc: BaseException) -> None:
    """Re-raise a reader failure: user errors and KeyboardInterrupt/SystemExit as they are, anything
    else as a ClaireError that says what to check."""
    if isinstance(exc, ClaireError) or not isinstance(exc, Exception):
        raise exc
    raise ClaireError(f"reading the rasters failed: {exc}; check that the files are complete "
                      f"and readable") from exc


def _report(params, summary: dict, card: dict, messages: List[str]) -> Optional[str]:
    """Call the report module when it exists (lazy import); otherwise note it in the messages."""
    try:
        from ..explain.report import write_report
    except ImportError:
        messages.append("report module not available yet; no report written")
        return None
    inputs = {"optical": params.optical, "sar": params.sar, "output": params.output,
              "reference": params.reference}
    write_report(summary, card, params.report, explainer=params.explainer,
                 inputs={k: v for k, v in inputs.items() if v})
    return params.report
