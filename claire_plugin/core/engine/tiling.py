"""Tile grid over the processing region and streaming blending of overlapping tile predictions.

Tiles of size T advance by stride S = T - overlap from the region's top-left corner; the last row and
column of tiles may reach past the region (the reader pads them) so every stride is the same and only
`overlap` rows have to be carried from one tile row to the next. Within a tile row, tiles are processed
left to right in chunks; columns that no later tile of the row touches are finalised at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Tuple

import numpy as np

from ....models.predict import blend_weights
from ..errors import ClaireError

__all__ = ["blend_weights", "check_tiling", "tiles_per_chunk", "TileGrid", "Finished", "RowBlender"]


def check_tiling(tile: int, overlap: int) -> None:
    """Validate tile size and overlap (ClaireError with the fix)."""
    if tile < 32 or tile % 32:
        raise ClaireError(f"tile size {tile} is not a multiple of 32 (the model downsamples by 32); "
                          f"use e.g. --tile-size 256 or 512")
    if overlap < 0:
        raise ClaireError(f"overlap {overlap} is negative; use 0 or more, e.g. --overlap 32")
    if overlap * 2 > tile or tile <= overlap:
        raise ClaireError(f"tile size {tile} must be more than twice the overlap {overlap}; use a smaller "
                          f"--overlap (e.g. {tile // 8}) or a larger --tile-size")


def tiles_per_chunk(batch: int) -> int:
    """Tiles read and blended together: whole batches, at least 4 tiles."""
    return -(-max(batch, 4) // batch) * batch


@dataclass(frozen=True)
class TileGrid:
    """Tiles over the region (row0, col0, height, width) in grid pixels."""

    row0: int
    col0: int
    height: int
    width: int
    tile: int
    overlap: int

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    def _count(self, n: int) -> int:
        return max(1, int(math.ceil(max(0, n - self.overlap) / self.stride)))

    @property
    def n_rows(self) -> int:
        return self._count(self.height)

    @property
    def n_cols(self) -> int:
        return self._count(self.width)

    @property
    def n_tiles(self) -> int:
        return self.n_rows * self.n_cols

    def chunks(self, tiles_per_chunk: int) -> Iterator[Tuple[int, int, int]]:
        """Yield (tile_row, first_col, end_col) in processing order."""
        for r in range(self.n_rows):
            for j0 in range(0, self.n_cols, tiles_per_chunk):
                yield r, j0, min(self.n_cols, j0 + tiles_per_chunk)


def row_window(grid: TileGrid, rows: Tuple[int, int]) -> Tuple[TileGrid, Tuple[int, int]]:
    """The tile rows of `grid` that raster rows [start, stop) need, as a grid of their own, and the rows of
    that grid to keep. Its tiles are the full grid's tiles at the same places, blended in the same order, so
    the kept pixels equal the full run's: the tile row above is included for its carried overlap, the
    region's end stays where it was (same padding), and rows outside the window are dropped."""
    S = grid.stride
    u0 = min(max(0, rows[0] - grid.row0), grid.height)
    u1 = min(max(0, rows[1] - grid.row0), grid.height)
    if u1 <= u0:  # the window misses the overlap region: one tile row, nothing kept
        return TileGrid(grid.row0, grid.col0, min(grid.height, grid.tile), grid.width, grid.tile, grid.overlap), (0, 0)
    ra = max(0, u0 // S - 1)
    rb = min(grid.n_rows - 1, max(ra, (u1 - 1) // S))
    height = min(grid.height - ra * S, (rb - ra) * S + grid.tile)
    sub = TileGrid(grid.row0 + ra * S, grid.col0, height, grid.width, grid.tile, grid.overlap)
    return sub, (u0 - ra * S, u1 - ra * S)


@dataclass
class Finished:
    """A finalised block of the region: rows [r0, r0+h) x cols [c0, c0+w) in region pixels."""

    r0: int
    c0: int
    sums: np.ndarray  # [C, h, w]: weighted sums of the channels
    weight: np.ndarray  # [h, w]: sum of the weights (> 0)

    @property
    def values(self) -> np.ndarray:
        """Blended channels [C, h, w] (weighted sums divided by the weight sum)."""
        return self.sums / self.weight


class RowBlender:
    """Accumulates weighted tile outputs [C,T,T] and hands back finished blocks, keeping only the open
    tile row's unfinished columns and `overlap` carried rows (memory independent of the raster height,
    and only overlap x width carried values across tile rows).

    Plain numpy on purpose: single-threaded element-wise work that does not fight the model's
    OpenMP threads for the cores (torch element-wise ops on 2 busy cores were 10x slower here).
    """

    def __init__(self, grid: TileGrid, channels: int) -> None:
        self.g = grid
        self.C = channels
        self.w = blend_weights(grid.tile, grid.overlap)
        padded_w = grid.n_cols * grid.stride + grid.overlap
        self.carry = np.zeros((channels + 1, grid.overlap, padded_w), np.float32)
        self.next_carry = np.zeros_like(self.carry)
        self.acc = None
        self.acc_c0 = 0  # region column of acc[:, :, 0]
        self.fresh = 0  # first region column that has not received the carry yet
        self.row = -1

    def add(self, r: int, j0: int, outputs: np.ndarray, weighted: bool = False) -> List[Finished]:
        """Add outputs [n, C, T, T] (modified in place) of tiles (r, j0..j0+n-1); return finished blocks
        cropped to the region. `weighted`: the outputs are already multiplied by `self.w`."""
        g, T, S, ov = self.g, self.g.tile, self.g.stride, self.g.overlap
        n = outputs.shape[0]
        if r != self.row:
            if j0 != 0 or r != self.row + 1:
                raise ValueError("tiles must come in row-major order")
            self.row = r
            self.carry, self.next_carry = self.next_carry, self.carry
            self.next_carry[...] = 0.0
            self.acc_c0, self.fresh = 0, 0
            self.acc = None
        x_end = (j0 + n - 1) * S + T
        width = x_end - self.acc_c0
        acc = np.zeros((self.C + 1, T, width), np.float32)
        if self.acc is not None:
            acc[:, :, : self.acc.shape[2]] = self.acc
        if ov and r > 0 and x_end > self.fresh:
            a = self.fresh
            acc[:, :ov, a - self.acc_c0: x_end - self.acc_c0] += self.carry[:, :, a:x_end]
        self.fresh = max(self.fresh, x_end)
        if not weighted:
            outputs *= self.w
        for k in range(n):
            c = (j0 + k) * S - self.acc_c0
            acc[: self.C, :, c: c + T] += outputs[k]
            acc[self.C, :, c: c + T] += self.w
        last_col = j0 + n >= g.n_cols
        fin_end = x_end if last_col else (j0 + n) * S
        last_row = r >= g.n_rows - 1
        fin_rows = T if last_row else S
        fc = fin_end - self.acc_c0
        if not last_row and ov:
            self.next_carry[:, :, self.acc_c0: fin_end] = acc[:, S:, :fc]
        done = []
        r0 = r * S
        h = min(fin_rows, g.height - r0)
        w = min(fc, g.width - self.acc_c0)
        if h > 0 and w > 0:
            done.append(Finished(r0, self.acc_c0, acc[: self.C, :h, :w], acc[self.C, :h, :w]))
        self.acc = acc[:, :, fc:].copy() if not last_col else None
        self.acc_c0 = fin_end
        return done
