"""Whole-array prediction in tiles that keep a core and read context around it: the one tiler of the
evaluation path and the engine.

Every tile keeps its core of `tile` px and is read with `context` px more on every side (a forward window of
tile + 2 * context px); a pixel's class is taken from the one tile whose kept part holds it, at least
`context` px from that tile's borders inside the image. The first tile of an axis starts at the image's edge,
the next ones every `tile` px, and the last one is moved back to end at the image's edge rather than reaching
past it, so the image's edge is treated the same whatever the tile size, and all windows of a run have one
shape. An axis no longer than one window is read whole (padded to the next multiple of 32 by reflection).
With a context of 128 px the map no longer depends on the tile size (docs/model_card.md, "Tile size"): the
network's tile-wide operations (GRN, channel attention, pyramid pooling) see enough of the scene.

`predict_blended` is the earlier scheme (overlapping tiles blended with sin^2 weights), kept for the
tile-size study (tools/tile_invariance.py), with its options `blend="crop"` and `fit_edges`.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .card_schema import TILE_RANGE
from .quoting import quoted

BLENDS = ("taper", "crop")
#: Pixels of context read on every side of a tile's kept core (engine and evaluation default).
CONTEXT = 128
#: Weight of the pixels that `blend="crop"` leaves to the neighbouring tile (not zero: see blend_weights).
CROP_EPS = 1e-6


def blend_weights(tile: int, overlap: int, blend: str = "taper") -> np.ndarray:
    """2-D weight window [T,T]: 1 in the middle and, over `overlap` pixels at each edge, a sin^2 ramp
    ("taper") or CROP_EPS on the outer overlap // 2 pixels ("crop": adjacent tiles meet mid-overlap).

    Never zero, so pixels covered by one tile only keep their value.
    """
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {quoted(blend)}; choose one of {list(BLENDS)}")
    w = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        d = (np.arange(overlap) + 0.5) / overlap
        ramp = np.sin(0.5 * np.pi * d) ** 2
        if blend == "crop":
            ramp = np.where(np.arange(overlap) < overlap // 2, CROP_EPS, 1.0)
        w[:overlap] = ramp
        w[tile - overlap:] = np.minimum(w[tile - overlap:], ramp[::-1])
    return np.outer(w, w).astype(np.float32)


def pad_tile(x: np.ndarray, tile: int, width: Optional[int] = None) -> np.ndarray:
    """[C,h,w] with h <= tile, w <= width (default tile) -> [C,tile,width], padded at the bottom and right
    by reflection (by edge repetition when a side is one pixel)."""
    h, w = x.shape[-2:]
    width = tile if width is None else width
    if (h, w) == (tile, width):
        return x
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(x, ((0, 0), (0, tile - h), (0, width - w)), mode=mode)


def tile_starts(n: int, tile: int, overlap: int) -> List[int]:
    """First pixel of each tile along an axis of `n` px: every stride, the last one reaching past `n`
    rather than moved back (the engine's TileGrid)."""
    stride = tile - overlap
    count = max(1, int(math.ceil(max(0, n - overlap) / stride)))
    return [k * stride for k in range(count)]


def round32(n: int) -> int:
    """`n` rounded up to a multiple of 32 (the networks downsample by 32)."""
    return -(-n // 32) * 32


def _tile_shape(h: int, w: int, y: int, x: int, tile: int, fit_edges: bool) -> Tuple[int, int]:
    """Forward size of the tile at (y, x): the tile, or with `fit_edges` its part inside the image
    rounded up to a multiple of 32."""
    if not fit_edges:
        return tile, tile
    return round32(min(tile, h - y)), round32(min(tile, w - x))


def _batch(a: np.ndarray, chunk: List[Tuple[int, int]], th: int, tw: int, device: str) -> torch.Tensor:
    """The tiles of `a` at the origins in `chunk`, each cut to th x tw and padded (pad_tile), as a batch."""
    tiles = [pad_tile(a[:, y:y + th, x:x + tw], th, tw) for y, x in chunk]
    return torch.from_numpy(np.ascontiguousarray(np.stack(tiles), dtype=np.float32)).to(device)


def _forward(model: torch.nn.Module, opt: np.ndarray, sar: np.ndarray, cloud: Optional[np.ndarray],
             chunk: List[Tuple[int, int]], th: int, tw: int, device: str) -> Tuple[np.ndarray, np.ndarray]:
    """(class probabilities [n,K,th,tw], SAR share [n,1,th,tw], zeros without one) of the tiles at `chunk`."""
    cb = _batch(cloud, chunk, th, tw, device) if cloud is not None else None
    out = model(_batch(opt, chunk, th, tw, device), _batch(sar, chunk, th, tw, device), cloud=cb)
    prob = F.softmax(out["logits"].float(), dim=1).cpu().numpy()
    share = out.get("sar_share")
    return prob, share.float().cpu().numpy() if share is not None else np.zeros_like(prob[:, :1])


def _batches(coords: List[Tuple[int, int]], shape_of, batch_size: int):
    """Batches of tile origins that share a forward size, in order within each size."""
    groups: dict = {}
    for c in coords:
        groups.setdefault(shape_of(*c), []).append(c)
    for (th, tw), group in groups.items():
        for i in range(0, len(group), batch_size):
            yield th, tw, group[i:i + batch_size]


@torch.no_grad()
def predict_blended(model: torch.nn.Module, opt: np.ndarray, sar: np.ndarray, tile: int = 256,
                    overlap: int = 32, batch_size: int = 4, device: str = "cpu",
                    cloud: Optional[np.ndarray] = None, blend: str = "taper",
                    fit_edges: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised optical [Co,H,W] + SAR [Cs,H,W] -> (probabilities [K,H,W] float32, sar_share [H,W]).

    `cloud` [1,H,W]: models.cloud's probability, given to the model (used by cloud-gated models).
    The earlier scheme (module docstring): tiles of `tile` px (rounded up to a multiple of 32) every
    tile - overlap px, blended; `blend` and `fit_edges` as in blend_weights and _tile_shape.
    """
    model.eval()
    h, w = opt.shape[-2:]
    tile = round32(tile)
    weight = blend_weights(tile, overlap, blend)
    coords = [(y, x) for y in tile_starts(h, tile, overlap) for x in tile_starts(w, tile, overlap)]
    hp, wp = coords[-1][0] + tile, coords[-1][1] + tile
    acc, acc_s, wsum = None, np.zeros((hp, wp), np.float32), np.zeros((hp, wp), np.float32)
    shape_of = lambda y, x: _tile_shape(h, w, y, x, tile, fit_edges)  # noqa: E731
    for th, tw, chunk in _batches(coords, shape_of, batch_size):
        prob, share = _forward(model, opt, sar, cloud, chunk, th, tw, device)
        if acc is None:
            acc = np.zeros((prob.shape[1], hp, wp), np.float32)
        wt = weight[:th, :tw]
        for j, (y, x) in enumerate(chunk):
            acc[:, y:y + th, x:x + tw] += prob[j] * wt
            acc_s[y:y + th, x:x + tw] += share[j, 0] * wt
            wsum[y:y + th, x:x + tw] += wt
    return acc[:, :h, :w] / wsum[:h, :w], acc_s[:h, :w] / wsum[:h, :w]


def context_axis(n: int, tile: int, context: int) -> Tuple[List[int], List[int], int]:
    """Tiles along an axis of `n` px with kept cores of `tile` px and `context` px of context: (starts,
    bounds, size). Tile k reads [starts[k], starts[k] + size) and keeps [bounds[k], bounds[k + 1]); `size`
    is the forward window tile + 2 * context, or `n` rounded up to a multiple of 32 when one window holds it."""
    window = tile + 2 * context
    if n <= window:
        return [0], [0, n], round32(n)
    count = -(-(n - 2 * context) // tile)
    starts = [0] + [k * tile for k in range(1, count - 1)] + [n - window]
    bounds = [0] + [k * tile + context for k in range(1, count)] + [n]
    return starts, bounds, window


def kept_slice(axis: Tuple[List[int], List[int], int], k: int) -> slice:
    """The part of tile k's window that it keeps, along one `context_axis` axis."""
    starts, bounds, _ = axis
    return slice(bounds[k] - starts[k], bounds[k + 1] - starts[k])


def fitted_core(n: int, tile: int, context: int) -> int:
    """The kept core for an axis of `n` px (the raster's longer side): the smallest multiple of 32 that needs
    no more tiles than cores of `tile` px, so that the windows cover the axis with the fewest pixels."""
    if n <= tile + 2 * context:
        return tile
    count = -(-(n - 2 * context) // tile)
    return min(tile, round32(-(-(n - 2 * context) // count)))


def check_context(tile: int, context: int) -> Optional[str]:
    """What is wrong with a kept core of `tile` px and `context` px of context (None: nothing)."""
    if tile < 32:
        return f"tile size {tile} is below 32, the smallest tile the model can keep"
    if tile % 32:
        return f"tile size {tile} is not a multiple of 32 (the model downsamples by 32)"
    if tile > TILE_RANGE[1]:
        return f"tile size {tile} is above {TILE_RANGE[1]}, the largest a checkpoint's card can hold"
    if context < 0 or context % 16:
        return (f"context {context} is not a non-negative multiple of 16 (each tile's window, tile + 2 x context, "
                f"must be a multiple of 32)")
    if context > TILE_RANGE[1]:
        return f"context {context} is above {TILE_RANGE[1]}, the largest a checkpoint's card can hold"
    return None


@torch.no_grad()
def predict_arrays(model: torch.nn.Module, opt: np.ndarray, sar: np.ndarray, tile: int = 256,
                   context: int = CONTEXT, batch_size: int = 4, device: str = "cpu",
                   cloud: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised optical [Co,H,W] + SAR [Cs,H,W] -> (probabilities [K,H,W] float32, sar_share [H,W]),
    in tiles with kept cores of at most `tile` px (fitted_core) read with `context` px around them
    (context_axis; the engine's tiling). `cloud` [1,H,W]: models.cloud's probability, given to the model
    (used by cloud-gated models)."""
    problem = check_context(tile, context)
    if problem:
        raise ValueError(problem)
    model.eval()
    h, w = opt.shape[-2:]
    tile = fitted_core(max(h, w), tile, context)
    ax_y, ax_x = context_axis(h, tile, context), context_axis(w, tile, context)
    (ys, yb, th), (xs, xb, tw) = ax_y, ax_x
    coords = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    prob_out, share_out = None, np.zeros((h, w), np.float32)
    for b in range(0, len(coords), batch_size):
        chunk = [(ys[i], xs[j]) for i, j in coords[b:b + batch_size]]
        prob, share = _forward(model, opt, sar, cloud, chunk, th, tw, device)
        if prob_out is None:
            prob_out = np.zeros((prob.shape[1], h, w), np.float32)
        for k, (i, j) in enumerate(coords[b:b + batch_size]):
            rows, cols = slice(yb[i], yb[i + 1]), slice(xb[j], xb[j + 1])
            src = (kept_slice(ax_y, i), kept_slice(ax_x, j))
            prob_out[:, rows, cols] = prob[k][(slice(None),) + src]
            share_out[rows, cols] = share[k, 0][src]
    return prob_out, share_out
