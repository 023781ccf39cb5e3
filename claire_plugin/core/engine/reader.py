"""Reading a run's chunks ahead of the model: the optical window and the SAR window resampled onto the
optical grid, nodata/NaN masked, both normalised from the checkpoint card and cut into tiles.

`ChunkReader` reads in 1 to schedule.MAX_READERS threads of its own (each with its own datasets, taking
every n-th chunk, handed out in order), or in the caller between batches (0 threads: the phased schedule).
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

from ....models.predict import pad_tile
from ..errors import ClaireError
from ..inputs.validate import optical_nodata
from ..io.raster_io import numpy_dtype, read_window
from ..io.warp import has_dataset_mask, masked_out
from .phases import PhaseTimes


@dataclass(frozen=True)
class ChunkWindow:
    """The raster window of one chunk: top-left pixel (y, x), size read (h, w), the column of each of its
    tiles inside it and the forward window `shape` (th, tw) every tile is cut (or padded) to."""

    y: int
    x: int
    h: int
    w: int
    offsets: Tuple[int, ...]
    shape: Tuple[int, int]

    @property
    def n(self) -> int:
        """Tiles in the chunk."""
        return len(self.offsets)


@dataclass
class ChunkMasks:
    """Per-pixel masks of a chunk window (h x w, unpadded): `valid` (classified), `optical_bad` (optical
    nodata inside the region), `sar_bad` (SAR nodata inside it), `cloud` (models.cloud probability given to the
    model: 1 in the optical gaps filled from SAR; None when the optical lacks the bands it needs), `sar_only`
    (valid pixels without optical data, classified from SAR alone) and `snow_possible` (models.cloud.snow_possible;
    None without the snow check)."""

    valid: np.ndarray
    optical_bad: np.ndarray
    cloud: Optional[np.ndarray]
    sar_only: np.ndarray
    snow_possible: Optional[np.ndarray] = None
    sar_bad: Optional[np.ndarray] = None  # SAR nodata or NaN inside the region (those pixels stay nodata)

    def crop(self, h: int, c0: int, w: int, r0: int = 0) -> "ChunkMasks":
        """The masks of rows [r0, h) and columns [c0, c0 + w)."""
        cut = (slice(r0, h), slice(c0, c0 + w))
        return ChunkMasks(self.valid[cut], self.optical_bad[cut],
                          None if self.cloud is None else self.cloud[cut], self.sar_only[cut],
                          None if self.snow_possible is None else self.snow_possible[cut],
                          None if self.sar_bad is None else self.sar_bad[cut])


def drain(q: "queue.Queue") -> None:
    """Throw away everything waiting in a queue."""
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


class ChunkReader:
    """Reads, warps, normalises and tiles chunks ahead of the model: `readers` threads (0: in the caller,
    between batches), each with its own datasets, taking every `readers`-th chunk; `get` hands the chunks
    out in order. Bounded: each reader thread queues one chunk and, with `hold`, reads its next one meanwhile
    (holding it until the queue has room); without `hold` it starts a read only once its queue has room, so
    no read chunk waits outside the queue (forward lanes: the lanes keep every core busy while it reads).
    `plan` is a plan.RunPlan; `more_handles()` opens (optical, SAR on the optical grid, [to close]) for extra
    readers."""

    def __init__(self, plan, readers: int = 1, more_handles: Optional[Callable[[], tuple]] = None,
                 phases: Optional[PhaseTimes] = None, hold: bool = True) -> None:
        self.opt, self.sar_vrt, self.grid = plan.opt, plan.sar_vrt, plan.grid
        self.phases = phases or PhaseTimes()
        self.o_idx, self.s_idx = plan.optical_bands.indices, plan.sar_bands.indices
        self.o_prep, self.s_prep = plan.optical_prep, plan.sar_prep
        self.cloud_bands, self.uses_cloud = plan.cloud_bands, plan.uses_cloud
        if self.cloud_bands is not None:
            from ....models.cloud import used_bands

            self.cloud_idx = used_bands(self.cloud_bands)  # only these are converted to reflectance
        self.fill_from_sar = plan.fill_from_sar
        self.snow_check = bool(plan.snow_classes)  # empty without the cloud probability's bands
        self.threaded = readers > 0
        self._chunks = list(plan.grid.chunks(plan.tiles_per_chunk))
        self._next = 0
        dtypes = {numpy_dtype(self.opt.dtypes[i - 1]) for i in self.o_idx}
        self.int_optical = all(d.kind in "ui" for d in dtypes)
        self.o_dtype = dtypes.pop().name if self.int_optical and len(dtypes) == 1 else "float32"
        self.o_nodata = nodata_in(self.opt.nodata, numpy_dtype(self.o_dtype))
        # an internal mask or alpha band (not one read as data), with a nodata value or not
        self.o_masked = has_dataset_mask(self.opt, self.o_idx)
        n = max(1, readers)
        if n > 1 and more_handles is None:
            raise ValueError("more than one reader needs `more_handles`")
        self._more_handles = more_handles
        self.queues: List["queue.Queue"] = [queue.Queue(maxsize=1) for _ in range(n)]
        self._room = None if hold else [threading.Semaphore(1) for _ in range(n)]  # taken by a read, given by get
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._main, args=(k,), name=f"claire-reader-{k}", daemon=True)
                        for k in range(n)] if self.threaded else []

    def start(self) -> None:
        """Start the reader threads (none in the phased schedule)."""
        for t in self.threads:
            t.start()

    def _put(self, k: int, item) -> bool:
        """Queue `item` for reader `k`'s queue; False once the reader is stopped."""
        while not self._stop.is_set():
            try:
                self.queues[k].put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _wait_for_room(self, k: int) -> bool:
        """Without `hold`: wait until reader `k`'s last chunk has been taken; False once the reader is stopped."""
        if self._room is None:
            return True
        while not self._room[k].acquire(timeout=0.1):
            if self._stop.is_set():
                return False
        return True

    def _main(self, k: int) -> None:
        """Reader thread `k`: every n-th chunk, with its own datasets beyond the first reader."""
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
                if self._stop.is_set() or not self._wait_for_room(k):
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
        """One chunk: (r, j0, j1, optical tiles, SAR tiles, cloud tiles for the model or None, ChunkMasks)."""
        opt, sar_vrt = handles if handles is not None else (self.opt, self.sar_vrt)
        grid = self.grid
        y, x, h, w = grid.read_window(r, j0, j1)
        y, x = grid.row0 + y, grid.col0 + x
        win = ChunkWindow(y, x, h, w, tuple(grid.tile_offsets(j0, j1)), grid.shape)
        with self.phases.timed("read optical, cloud, normalise"):
            o, o_bad, cloud, snow = self._read_optical(opt, win)
        with self.phases.timed("read and warp SAR, normalise"):
            s, s_bad = self._read_sar(sar_vrt, win)
        has_sar = ~s_bad  # read windows lie inside the overlap region (TileGrid.read_window)
        sar_only = o_bad & has_sar if self.fill_from_sar else np.zeros_like(o_bad)
        if cloud is not None:
            # the cloud gate sends the optical gaps to SAR, and their zeros are not read as clear optical by the
            # neighbours' context (also with --no-sar-fill, where the gaps themselves are left nodata)
            cloud[o_bad] = 1.0
        o_in, o_bad_in, s_in, s_bad_in, c_in = outside_filled(o, o_bad, s, s_bad, cloud)
        with self.phases.timed("read optical, cloud, normalise"):
            o_t = torch_tiles(o_in, o_bad_in, self.o_prep, win)
        with self.phases.timed("read and warp SAR, normalise"):
            s_t = torch_tiles(s_in, s_bad_in, self.s_prep, win)
        c_t = None
        if self.uses_cloud:
            c = c_in if c_in is not None else np.where(o_bad_in, np.float32(1), np.float32(0))
            c_t = torch_tiles(c[None], None, None, win)
        if snow is not None:
            # C-band backscatter alone does not tell snow (dry snow is transparent to it, wet snow dark as calm
            # water): no snow / ice from SAR alone (it painted snow on the sea in swath gaps)
            snow[sar_only] = 0.0
        masks = ChunkMasks((~o_bad | sar_only) & has_sar, o_bad, cloud, sar_only, snow, s_bad)
        return r, j0, j1, o_t, s_t, c_t, masks

    def _read_optical(self, opt, win: ChunkWindow):
        """The optical window [C, h, w] as read, its nodata mask, models.cloud's probability of the window (None
        when the bands it needs are not there) and its snow_possible (None without the snow check; 1 in the
        optical gaps, 0 in those filled from SAR: set by _read)."""
        o = read_window(opt, self.o_idx, win.y, win.x, win.h, win.w, self.o_dtype)  # integers stay integers
        o_bad = np.zeros((win.h, win.w), dtype=bool) if self.int_optical else ~np.isfinite(o).all(axis=0)
        o_bad |= optical_nodata(o, self.o_nodata)
        if self.o_masked:
            from rasterio.windows import Window

            o_bad |= masked_out(opt, self.o_idx[0], Window(win.x, win.y, o.shape[2], o.shape[1]))
        cloud = snow = None
        if self.cloud_bands is not None:
            from ....models.cloud import cloud_probability, snow_possible

            refl = self.o_prep.physical(o[self.cloud_idx].astype(np.float32))  # scalar scale/offset/clip
            names = [self.cloud_bands[i] for i in self.cloud_idx]
            cloud = cloud_probability(refl, names)
            cloud[o_bad] = 0.0
            if self.snow_check:
                if o_bad.any():  # no data: no evidence of clear ground, and 1 there (nothing to go by)
                    refl[:, o_bad] = np.nan
                snow = snow_possible(refl, names, cloud, (win.y, win.x))
        return o, o_bad, cloud, snow

    def _read_sar(self, sar_vrt, win: ChunkWindow):
        """The SAR window [C, h, w] on the optical grid and its invalid mask."""
        s = read_window(sar_vrt, self.s_idx, win.y, win.x, win.h, win.w)
        return s, ~np.isfinite(s).all(axis=0)

    def get(self):
        """Next chunk in order, None at the end; re-raises a reader's exception in the caller."""
        if not self.threaded:
            return self._read_here()
        if self._next >= len(self._chunks):
            return None
        k = self._next % len(self.queues)
        while True:
            try:
                with self.phases.timed("model thread waits for the reader"):
                    item = self.queues[k].get(timeout=0.5)
            except queue.Empty:
                if not self.threads[k].is_alive() and self.queues[k].empty():
                    raise ClaireError("the raster reader stopped unexpectedly; see the log") from None
                continue
            if self._room is not None:
                self._room[k].release()
            if isinstance(item, BaseException):
                self.threads[k].join()
                raise_read_error(item)
            self._next += 1
            return item

    def _read_here(self):
        """The next chunk read in the caller's thread (phased schedule), None at the end."""
        import torch

        chunk = self._chunks[self._next] if self._next < len(self._chunks) else None
        self._next += 1
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the other core blends and writes the previous chunk meanwhile
        try:
            return None if chunk is None else self._read(*chunk)
        except Exception as exc:  # noqa: BLE001 - the same messages as from the thread
            raise_read_error(exc)
        finally:
            torch.set_num_threads(threads)

    def join(self) -> None:
        """Wait for the reader threads to end."""
        for t in self.threads:
            t.join()

    def stop(self) -> None:
        """Ask the threads to finish and wait for them."""
        self._stop.set()
        for q in self.queues:
            drain(q)
        for t in self.threads:
            t.join(timeout=30)


def outside_filled(o: np.ndarray, o_bad: np.ndarray, s: np.ndarray, s_bad: np.ndarray, cloud: Optional[np.ndarray]):
    """The model's view of a window (optical, its mask, SAR, its mask, cloud), so that missing data reads like the
    scene's edge: where neither raster has data (a reprojection's or clip's nodata frame, beyond a swath) every
    input, mask and cloud value is the nearest pixel's that has some (a rectangular frame: mirrored, as np.pad
    pads a scene's edge; a 20 px frame in both rasters had changed 20 % of a site's map and made all of it
    unfamiliar); where only the SAR is missing (beyond a SAR strip), its values mirrored across the strip's edge
    (within 64 px of it 17-21 % of the map had changed as the network read mean backscatter there). The outputs
    keep their nodata: only what the network sees changes. Optical gaps under valid SAR stay as they are (the
    cloud gate decides them from SAR). Unchanged without such pixels."""
    both = o_bad & s_bad
    if both.any() and not both.all():
        rows, cols = np.nonzero(~both.all(axis=1))[0], np.nonzero(~both.all(axis=0))[0]
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        pad = ((r0, both.shape[0] - r1), (c0, both.shape[1] - c1))
        if not both[r0:r1, c0:c1].any() and min(r1 - r0, c1 - c0) > max(max(pad)):
            def mirrored(a: np.ndarray) -> np.ndarray:  # a rectangular frame: np.pad's reflection, fast
                return np.pad(a[..., r0:r1, c0:c1], ((0, 0),) * (a.ndim - 2) + pad, mode="reflect")

            o, o_bad, s, s_bad = mirrored(o), mirrored(o_bad), mirrored(s), mirrored(s_bad)
            cloud = None if cloud is None else mirrored(cloud)
        else:  # the nearest pixel with data: closer to the full scene's map than a mirror along a wedge's edge
            src = mirror_sources(both, mirror=False)
            o, o_bad, s, s_bad = (_taken(a, src) for a in (o, o_bad, s, s_bad))
            cloud = None if cloud is None else _taken(cloud, src)
    if s_bad.any() and not s_bad.all():
        src = mirror_sources(s_bad)
        s, s_bad = _taken(s, src), _taken(s_bad, src)
    return o, o_bad, s, s_bad, cloud


def mirror_sources(invalid: np.ndarray, mirror: bool = True) -> Tuple[np.ndarray, ...]:
    """(rows, cols, source rows, source cols): for each `invalid` pixel the pixel its value is taken from: with
    `mirror`, its mirror image across the nearest valid pixel (2q - p, as np.pad reflects at a straight edge)
    where that is a valid pixel of the window, else (and without `mirror`) that nearest pixel. Measured on a
    2048 px mosaic of the bundled sites (docs/benchmark.md): beyond a SAR strip the mirror keeps more of the
    full scene's map near the edge, along a wedge missing in both rasters the nearest pixel does."""
    from scipy.ndimage import distance_transform_edt

    iy, ix = distance_transform_edt(invalid, return_distances=False, return_indices=True)
    py, px = np.nonzero(invalid)
    qy, qx = iy[py, px], ix[py, px]
    my, mx = 2 * qy - py, 2 * qx - px
    h, w = invalid.shape
    ok = (my >= 0) & (my < h) & (mx >= 0) & (mx < w) & mirror
    ok[ok] = ~invalid[my[ok], mx[ok]]
    return py, px, np.where(ok, my, qy), np.where(ok, mx, qx)


def _taken(a: np.ndarray, src: Tuple[np.ndarray, ...]) -> np.ndarray:
    """A copy of `a` ([..., h, w]) with the pixels of `src` (mirror_sources) taken from their sources."""
    py, px, sy, sx = src
    a = a.copy()
    a[..., py, px] = a[..., sy, sx]
    return a


def torch_tiles(raw: np.ndarray, bad: Optional[np.ndarray], prep, win: ChunkWindow):
    """`tiles` as a torch tensor."""
    import torch

    return torch.from_numpy(tiles(raw, bad, prep, win))


def tiles(raw: np.ndarray, bad: Optional[np.ndarray], prep, win: ChunkWindow) -> np.ndarray:
    """Cut a chunk window [C, h, w] into win.n tiles [n, C, th, tw], normalised by `prep` (None: as they are)
    straight into the batch (no separate copy of the chunk), `bad` pixels zeroed; a window larger than the
    region (an axis shorter than one tile window) is padded by models.predict.pad_tile, as the evaluation
    path pads it."""
    n, (th, tw) = win.n, win.shape
    out = np.empty((n, raw.shape[0], th, tw), np.float32)
    any_bad = bad is not None and bool(bad.any())
    for k, c0 in enumerate(win.offsets):
        cols = slice(c0, c0 + tw)
        part, part_bad = raw[:, :, cols], bad[:, cols] if any_bad else None
        if part.shape[-2:] != (th, tw):
            part = pad_tile(part, th, tw)
            part_bad = pad_tile(part_bad[None], th, tw)[0] if any_bad else None
        if prep is None:
            out[k] = part
        else:
            prep.into(part, out[k])
        if any_bad:
            out[k][:, part_bad] = 0.0
    return out


def nodata_in(nodata: Optional[float], dtype: np.dtype):
    """The nodata value as a scalar of `dtype` for comparisons, or None when no pixel can equal it (no
    nodata, NaN - found by the finiteness test -, or a value the integer type cannot hold)."""
    if nodata is None or not np.isfinite(nodata):
        return None
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
            return None
    return dtype.type(nodata)


def raise_read_error(exc: BaseException) -> None:
    """Re-raise a reader failure: user errors and KeyboardInterrupt/SystemExit as they are, anything
    else as a ClaireError that says what to check."""
    if isinstance(exc, (ClaireError, MemoryError)) or not isinstance(exc, Exception):
        raise exc  # out of memory: named as such by the run (core.engine.memory_fit), not blamed on the files
    raise ClaireError(f"reading the rasters failed: {exc}; check that the files are complete "
                      f"and readable") from exc
