"""The tile grid over the processing region: kept cores of `tile` px, each read with `context` px around it
(models.predict.context_axis, the same tiling as the evaluation path), and the stitching of the kept parts.

Tile rows are processed top to bottom, each in chunks of a few tiles left to right. A tile's kept part does
not overlap any other's, so a chunk's kept parts side by side are a finished block at once: nothing is
blended or carried from one tile row to the next. A window of the grid (`window`: rows for runs split by rows,
rows and columns for an extent) runs only the tile rows and columns that keep pixels of it, with the same
tiles as the whole grid, so its pixels are the whole run's.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ....models.predict import CONTEXT, check_context, context_axis, fitted_core, kept_slice
from ..errors import ClaireError
from ..params import BATCH_MAX, ClassifyParams

__all__ = ["CONTEXT", "DEFAULT_TILE", "card_tiling", "tiling_text", "resolve_tiling", "check_tiling",
           "tiles_per_chunk", "TileGrid", "Finished", "window", "stitch"]

#: Largest kept core of a tile when neither the run nor the card's `core` says (docs/model_card.md, "Tile size").
DEFAULT_TILE = 896

#: Input pixels a chunk of tiles should hold (four 256 px tiles): larger windows go one to a chunk.
CHUNK_PIXELS = 4 * 256 * 256


def check_tiling(tile: int, context: int) -> None:
    """Validate the kept core and the context (ClaireError with the fix)."""
    problem = check_context(tile, context)
    if problem:
        fix = "--tile-size 512" if problem.startswith("tile") else f"--context {CONTEXT}"
        raise ClaireError(f"{problem}; use e.g. {fix}")


def default_batch(window: int) -> int:
    """Tiles of `window` px in about CHUNK_PIXELS (4 up to 256 px, 1 from 512 px): the batch when none is
    given, and the least a chunk holds."""
    return max(1, min(4, CHUNK_PIXELS // (window * window)))


def tiles_per_chunk(batch: int, window: int = 256) -> int:
    """Tiles read and written together: whole batches, at least about CHUNK_PIXELS of input."""
    return -(-max(batch, default_batch(window)) // batch) * batch


@dataclass(frozen=True)
class TileGrid:
    """Tiles over the region (row0, col0, height, width) in grid pixels: kept cores of `tile` px read with
    `context` px around them; `rows` / `cols`: the tile rows / columns [first, stop) to process (None: all)."""

    row0: int
    col0: int
    height: int
    width: int
    tile: int
    context: int
    rows: Optional[Tuple[int, int]] = None
    cols: Optional[Tuple[int, int]] = None

    @classmethod
    def fitted(cls, row0: int, col0: int, height: int, width: int, tile: int, context: int) -> "TileGrid":
        """The grid over the region with the kept core fitted to it (models.predict.fitted_core: at most
        `tile` px, as few window pixels as the tile count allows)."""
        return cls(row0, col0, height, width, fitted_core(max(height, width), tile, context), context)

    @property
    def window(self) -> int:
        """Forward window of a full tile."""
        return self.tile + 2 * self.context

    @cached_property
    def row_axis(self) -> Tuple[List[int], List[int], int]:
        """(starts, kept bounds, window height) of the tile rows, region-relative (context_axis)."""
        return context_axis(self.height, self.tile, self.context)

    @cached_property
    def col_axis(self) -> Tuple[List[int], List[int], int]:
        """(starts, kept bounds, window width) of the tile columns, region-relative."""
        return context_axis(self.width, self.tile, self.context)

    @property
    def shape(self) -> Tuple[int, int]:
        """(height, width) of every forward window of the run."""
        return self.row_axis[2], self.col_axis[2]

    @property
    def row_range(self) -> Tuple[int, int]:
        """The tile rows processed: [first, stop)."""
        return self.rows or (0, len(self.row_axis[0]))

    @property
    def n_rows(self) -> int:
        """Tile rows processed."""
        a, b = self.row_range
        return b - a

    @property
    def col_range(self) -> Tuple[int, int]:
        """The tile columns processed: [first, stop)."""
        return self.cols or (0, len(self.col_axis[0]))

    @property
    def n_cols(self) -> int:
        """Tile columns processed."""
        a, b = self.col_range
        return b - a

    @property
    def n_tiles(self) -> int:
        return self.n_rows * self.n_cols

    def n_chunks(self, tiles_per_chunk: int) -> int:
        """How many chunks `chunks` yields: the windows a run's forward lanes take one at a time."""
        return self.n_rows * -(-self.n_cols // max(1, tiles_per_chunk))

    def chunks(self, tiles_per_chunk: int) -> Iterator[Tuple[int, int, int]]:
        """Yield (tile_row, first_col, end_col) in processing order."""
        first, stop = self.col_range
        for r in range(*self.row_range):
            for j0 in range(first, stop, tiles_per_chunk):
                yield r, j0, min(stop, j0 + tiles_per_chunk)

    def read_window(self, r: int, j0: int, j1: int) -> Tuple[int, int, int, int]:
        """(y, x, h, w) in region pixels of what tiles (r, j0..j1-1) read, clipped to the region."""
        ys, _, th = self.row_axis
        xs, _, tw = self.col_axis
        y, x = ys[r], xs[j0]
        return y, x, min(th, self.height - y), min(xs[j1 - 1] + tw, self.width) - x

    def kept(self, r: int, j0: int, j1: int) -> Tuple[int, int, int, int]:
        """(y0, y1, x0, x1) in region pixels that tiles (r, j0..j1-1) keep."""
        yb, xb = self.row_axis[1], self.col_axis[1]
        return yb[r], yb[r + 1], xb[j0], xb[j1]

    def tile_offsets(self, j0: int, j1: int) -> List[int]:
        """Column of each tile j0..j1-1 inside the chunk's read window."""
        xs = self.col_axis[0]
        return [xs[j] - xs[j0] for j in range(j0, j1)]

    def kept_in_chunk(self, r: int, j0: int, j: int) -> Tuple[slice, slice]:
        """The rows and columns that tile (r, j) keeps, inside the read window of the chunk of tiles (r, j0..)."""
        ys, yb = self.row_axis[0], self.row_axis[1]
        xs, xb = self.col_axis[0], self.col_axis[1]
        return slice(yb[r] - ys[r], yb[r + 1] - ys[r]), slice(xb[j] - xs[j0], xb[j + 1] - xs[j0])

    def kept_in_tile(self, r: int, j: int) -> Tuple[slice, slice]:
        """The rows and columns of tile (r, j)'s window that it keeps."""
        return kept_slice(self.row_axis, r), kept_slice(self.col_axis, j)


def tiles_with_data(grid: TileGrid, r: int, j0: int, j1: int, valid: np.ndarray) -> List[bool]:
    """For tiles (r, j0..j1-1), whether the part each keeps holds a pixel to classify (`valid`: the chunk's
    reader.ChunkMasks.valid over its read window)."""
    return [bool(valid[grid.kept_in_chunk(r, j0, j)].any()) for j in range(j0, j1)]


def _axis_window(bounds: List[int], origin: int, size: int, span: Tuple[int, int]):
    """((first, stop) tiles, (u0, u1) region pixels) of one axis for grid pixels `span` = [start, stop);
    ((0, 1), (0, 0)) when the span misses the region (one tile, nothing kept)."""
    u0 = min(max(0, span[0] - origin), size)
    u1 = min(max(0, span[1] - origin), size)
    if u1 <= u0:
        return (0, 1), (0, 0)
    first = max(r for r in range(len(bounds) - 1) if bounds[r] <= u0)
    stop = max(r for r in range(len(bounds) - 1) if bounds[r] < u1) + 1
    return (first, stop), (u0, u1)


def window(grid: TileGrid, rows: Optional[Tuple[int, int]] = None, cols: Optional[Tuple[int, int]] = None
           ) -> Tuple[TileGrid, Optional[Tuple[int, int]], Optional[Tuple[int, int]]]:
    """The tiles of `grid` that keep grid rows `rows` and columns `cols` ([start, stop); None: all), as the same
    grid limited to them, and the region rows and columns to write (None where not limited). Its tiles are the
    full grid's, so the kept pixels equal the full run's."""
    tile_rows = keep_rows = tile_cols = keep_cols = None
    if rows is not None:
        tile_rows, keep_rows = _axis_window(grid.row_axis[1], grid.row0, grid.height, rows)
    if cols is not None:
        tile_cols, keep_cols = _axis_window(grid.col_axis[1], grid.col0, grid.width, cols)
    sub = TileGrid(grid.row0, grid.col0, grid.height, grid.width, grid.tile, grid.context, tile_rows, tile_cols)
    return sub, keep_rows, keep_cols


@dataclass
class Finished:
    """A finished block of the region: rows [r0, r0 + h) x cols [c0, c0 + w) in region pixels, its blended
    channels `values` [C, h, w] (class probabilities, then the SAR share and the distance where there are)."""

    r0: int
    c0: int
    values: np.ndarray


def stitch(grid: TileGrid, r: int, j0: int, parts: List[np.ndarray]) -> Finished:
    """The kept parts [C, h, w_j] of tiles (r, j0..) side by side as one finished block."""
    y0, _, x0, _ = grid.kept(r, j0, j0 + len(parts))
    values = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    return Finished(y0, x0, values)


def card_tiling(card: dict) -> Tuple[int, int]:
    """(core, context) the engine uses for a checkpoint when the run does not choose them."""
    context = card.get("context")
    return int(card.get("core") or DEFAULT_TILE), int(CONTEXT if context is None else context)


def tiling_text(card: dict) -> str:
    """How the engine evaluates a checkpoint by default, in words (claire info, the picker)."""
    core, context = card_tiling(card)
    return f"cores of up to {core} px (fitted to the raster), each read with {context} px of context"


def resolve_tiling(params: ClassifyParams, card: dict) -> Tuple[int, int, int]:
    """(tile, context, batch): the parameters where given, else the card's `core` and `context`, else
    DEFAULT_TILE and CONTEXT; the batch by default about four 256 px tiles of input (tiling.default_batch).
    ClaireError for values that cannot work. (The card's `tile_size` / `overlap` describe the evaluation
    of older checkpoints, not the engine's tiling.)"""
    card_tile, card_context = card_tiling(card)
    tile = int(params.tile_size or card_tile)
    context = int(params.context if params.context is not None else card_context)
    check_tiling(tile, context)
    batch = int(params.batch_size or default_batch(tile + 2 * context))
    if not 1 <= batch <= BATCH_MAX:
        raise ClaireError(f"batch size must be 1 to {BATCH_MAX}, or 0 for the automatic one (got {batch}); e.g. "
                          f"--batch-size {1 if batch < 1 else BATCH_MAX}")
    return tile, context, batch
