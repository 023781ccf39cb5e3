"""GDAL's block cache sized for a run, so that each block of the inputs is decoded once.

GDAL decodes whole blocks (a 1024 x 1024 tile of a Sentinel-2 COG or JPEG 2000, a strip of rows) and
keeps them in one process-wide LRU cache. The engine reads tile rows from left to right; consecutive tile
rows share the block row between them, and a block taller than a tile is touched by several tile rows.
With a cache smaller than those block rows, every tile row decodes them again: at 4096² a deflate optical
with 1024-row blocks was read in 8.2 s with a 32 MB cache and 1.2-1.6 s with 256 MB (docs/benchmark.md).

An LRU simulation of the engine's read order (run when the engine read tiles of 256 px at stride 224 in chunks
of four; it now reads windows of a kept core plus its context, left to right in rows of windows: the same order)
decodes every block exactly once when the cache holds `ceil(tile rows in the source / block height) + 1` block
rows of the columns read, plus two blocks, for blocks from 1-row strips to 2048 x 2048 tiles; with fewer block
rows it decodes them 1.4 to 6 times.

Uncompressed files whose blocks are no taller than a tile are re-read from the operating system's file
cache at copying speed (0.25 s instead of 0.14 s at 4096²), so they keep the base cache and the run's
memory stays flat as the raster grows; compressed files (deflate, LZW, JPEG 2000, ...) and taller blocks
get the cache they need, up to SHARE of the available memory.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import re
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ..runtime.resources import available_bytes
from .raster_io import numpy_dtype

#: The cache a run keeps at least (bytes); also the most it keeps when no input needs more.
BASE_BYTES = 32 * 1024 * 1024
#: Largest share of the available memory the cache may take.
SHARE = 0.25
#: Largest cache when the available memory cannot be read (bytes).
UNKNOWN_CAP = 1024 ** 3
#: Formats whose blocks are stored as raw pixels when the file reports no compression.
RAW_DRIVERS = {"GTiff", "ENVI", "EHdr", "MEM", "ISIS3", "PAux", "BT"}
#: A VRT with more source files than this (a mosaic) is sized by its own blocks: opening them all would take
#: long, and most of them lie in other tile rows.
MAX_VRT_FILES = 64


@dataclass
class Layout:
    """How one file of an input stores the bands the run reads."""

    name: str
    block_h: int
    block_w: int
    bytes_per_px: int  # bytes decoded per pixel of a block (every band when pixel-interleaved)
    width: int
    height: int
    compressed: bool


@dataclass
class Need:
    """Cache bytes one file needs to decode each block once (0 when re-reading is cheap)."""

    layout: Layout
    bytes: int
    role: str = ""

    def describe(self) -> str:
        lay = self.layout
        role = f"{self.role} " if self.role else ""
        return (f"{role}{os.path.basename(lay.name)} ({lay.block_w} x {lay.block_h} blocks, "
                f"{'compressed' if lay.compressed else 'uncompressed'})")


def layouts(ds, indexes: Sequence[int]) -> List[Layout]:
    """The storage layout of bands `indexes` (1-based) of a rasterio dataset; for a VRT, that of the files
    its bands come from (a Sentinel-2 band stack built with gdalbuildvrt, say), where they can be opened."""
    if getattr(ds, "driver", "") == "VRT":
        found = _vrt_source_layouts(ds, indexes)
        if found:
            return found
    return [_layout(ds, indexes)]


def _layout(ds, indexes: Sequence[int]) -> Layout:
    bh, bw = ds.block_shapes[indexes[0] - 1]
    interleave = getattr(getattr(ds, "interleaving", None), "name", None)
    decoded = range(1, ds.count + 1) if interleave == "pixel" and ds.count > 1 else indexes
    bpp = sum(numpy_dtype(ds.dtypes[i - 1]).itemsize for i in decoded)
    compressed = ds.driver not in RAW_DRIVERS or getattr(ds, "compression", None) is not None
    return Layout(str(ds.name), int(bh), int(bw), int(bpp), int(ds.width), int(ds.height), compressed)


def _vrt_source_layouts(ds, indexes: Sequence[int]) -> List[Layout]:
    """Layouts of the files behind the VRT bands `indexes` (each file once), [] when unknown."""
    try:
        import rasterio
        from osgeo import gdal
    except ImportError:
        return []
    try:
        vrt = gdal.Open(str(ds.name))
        texts = [" ".join((vrt.GetRasterBand(i).GetMetadata("vrt_sources") or {}).values()) for i in indexes]
    except Exception:  # noqa: BLE001 - None from Open, or GDAL's exception mode: the VRT's own layout
        return []
    files: dict = {}
    for text in texts:
        for attrs, path, band in re.findall(
                r"<SourceFilename([^>]*)>([^<]+)</SourceFilename>\s*<SourceBand>(\d+)</SourceBand>", text):
            if 'relativeToVRT="1"' in attrs:
                path = os.path.join(os.path.dirname(str(ds.name)), path)
            files.setdefault(path, set()).add(int(band))
    if len(files) > MAX_VRT_FILES:
        return []
    out = []
    for path, bands in files.items():
        try:
            with rasterio.open(path) as src:
                out.append(_layout(src, sorted(bands)))
        except Exception:  # noqa: BLE001 - an unreadable source: the VRT's own layout is used instead
            return []
    return out


def need(layout: Layout, rows: float, cols: float, copies: int = 1, role: str = "") -> Need:
    """Cache for one file: `rows` x `cols` is the part of it one tile row reads (in its own pixels),
    `copies` the number of readers that each open it; `role` (optical, SAR, ...) names it in the note."""
    block_rows = math.ceil(max(rows, 1) / layout.block_h) + 1
    n_cols = min(math.ceil(max(cols, 1) / layout.block_w) + 1, math.ceil(layout.width / layout.block_w))
    n_rows = min(block_rows, math.ceil(layout.height / layout.block_h))
    block = layout.block_h * layout.block_w * layout.bytes_per_px
    costly = layout.compressed or layout.block_h > rows
    size = (n_rows * n_cols + 2) * block * copies if costly else 0
    return Need(layout, int(size), role)


def plan(needs: Iterable[Need], available: Optional[int]) -> Tuple[int, Optional[str]]:
    """(cache bytes for the run, a note for the log or None). The cache holds what the inputs need, at
    least BASE_BYTES, and at most SHARE of `available` (UNKNOWN_CAP when that is unknown)."""
    needs = [n for n in needs if n.bytes]
    total = sum(n.bytes for n in needs)
    if total <= BASE_BYTES:
        return BASE_BYTES, None
    cap = int(SHARE * available) if available else UNKNOWN_CAP
    size = max(BASE_BYTES, min(total, cap))
    what = ", ".join(n.describe() for n in needs[:3]) + (f" and {len(needs) - 3} more files" if len(needs) > 3 else "")
    if size < total:
        limit = f"{SHARE:.0%} of the memory available" if available else "the available memory is unknown"
        return size, (f"reading: the block cache is limited to {_mb(size)} ({limit}), "
                      f"less than the {_mb(total)} that would decode each block of {what} once; some blocks are "
                      f"decoded several times, which is slower. Free memory to make it faster")
    return size, f"reading: {_mb(size)} block cache so that each block of {what} is decoded once"


def _mb(n: int) -> str:
    return f"{n / 2 ** 20:.0f} MB"


#: The sizes the runs and jobs under way ask for (CacheSize id -> bytes) and the size to give back when the last ends:
#: GDAL's cache is one per process, and a job in a Processing background task can run beside a classification in the
#: dock; each giving back the size it had found left the cache lowered (or unbounded) for the session (review of
#: round 21).
_ASKED: Dict[int, int] = {}
_BEFORE: List[Optional[int]] = [None]
_LOCK = threading.Lock()


class CacheSize:
    """Sets GDAL's block cache for a run and gives the size before back afterwards. Runs under way at once share it:
    the cache is the largest any of them asks for, and the size before the first is given back when the last
    ends."""

    def set(self, size: int) -> None:
        """Ask for `size` bytes from now on."""
        try:
            from osgeo import gdal
        except ImportError:  # rasterio alone: its GDAL keeps its own setting (GDAL_CACHEMAX)
            return
        with _LOCK:
            if not _ASKED:
                _BEFORE[0] = gdal.GetCacheMax()
            _ASKED[id(self)] = int(size)
            gdal.SetCacheMax(max(_ASKED.values()))

    def fit(self, inputs: list, grid) -> Optional[str]:
        """Size the cache so that each block of `inputs` [(role, dataset or GridWarp, band indexes, readers
        that open it)] is decoded once when `grid` (tiling.TileGrid) is read one tile row at a time; returns
        the note for the log, if any."""
        import torch

        from .warp import GridWarp

        needs = []
        rows = grid.shape[0]  # a tile row's read window
        for role, ds, idx, copies in inputs:
            src, r, c = ds, rows, grid.width
            if isinstance(ds, GridWarp):
                src = ds.src
                r, c = ds.source_span(grid.row0, grid.col0, rows, grid.width)
            needs += [need(lay, r, c, copies, role) for lay in layouts(src, idx)]
        size, note = plan(needs, available_bytes(torch.device("cpu"))[0])  # the cache is in system memory
        if size > BASE_BYTES:
            self.set(size)
        return note

    def at_most(self, size: int) -> None:
        """Lower the cache to `size` bytes if it is larger."""
        try:
            from osgeo import gdal
        except ImportError:
            return
        if gdal.GetCacheMax() > size:
            self.set(size)

    def restore(self) -> None:
        """This run's request withdrawn: the cache is the largest the others ask for, or the size before them all."""
        with _LOCK:
            if _ASKED.pop(id(self), None) is None:  # never asked (or rasterio alone): nothing to give back
                return
            from osgeo import gdal

            if _ASKED:
                gdal.SetCacheMax(max(_ASKED.values()))
            elif _BEFORE[0] is not None:
                gdal.SetCacheMax(_BEFORE[0])
                _BEFORE[0] = None


def rows_once_bytes(paths: Iterable[Optional[str]], rows: int = 1) -> int:
    """The cache a job that reads `paths` once, top to bottom in bands of `rows` rows of the whole width (or block by
    block: rows 1), needs to decode each block once (`need`, every band of each file; at least BASE_BYTES); files
    that cannot be opened count for nothing."""
    import rasterio

    total = 0
    for path in paths:
        if not path:
            continue
        try:
            with rasterio.open(path) as ds:
                total += sum(need(lay, rows, lay.width).bytes for lay in layouts(ds, list(range(1, ds.count + 1))))
        except Exception:  # noqa: BLE001 - the job's own open says what is wrong with the file
            continue
    return max(BASE_BYTES, total)


@contextlib.contextmanager
def reading_rows_once(paths: Iterable[Optional[str]], rows: int = 1, size: Optional[int] = None) -> Iterator[None]:
    """Within: GDAL's block cache at most `size` (default `rows_once_bytes(paths, rows)`; never raised), restored on
    exit. For the jobs that read their rasters once (suggest, the sample and accuracy of a map, evaluate,
    grow-polygons): GDAL's default (5 % of the machine's memory) let them keep the whole scene's blocks, so their
    memory grew with the scene (QA round 21: 208-628 MiB at 10980 px against 162-337 with 64 MB, in the same time)."""
    cache = CacheSize()
    cache.at_most(rows_once_bytes(list(paths), rows) if size is None else max(BASE_BYTES, int(size)))
    try:
        yield
    finally:
        cache.restore()


def reads_rows_once(*names: str, rows: Union[int, str] = 1):
    """Decorator: the function runs within `reading_rows_once` of the rasters its parameters `names` give (paths or
    None), read in bands of `rows` rows (a number, or the name of the parameter that gives it)."""
    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            height = int(bound.arguments[rows]) if isinstance(rows, str) else rows
            with reading_rows_once([bound.arguments[n] for n in names], max(1, height)):
                return fn(*args, **kwargs)
        return run
    return wrap
