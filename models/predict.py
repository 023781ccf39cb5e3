"""Whole-array prediction in overlapping tiles: the one tiler of the evaluation path and the engine.

Tiles of `tile` px advance by stride `tile - overlap` from the top-left corner; a tile reaching past the
image is padded on its own by reflection (`pad_tile`), even when the image is smaller than one tile, and
the tiles' softmax outputs are blended with `blend_weights`. The engine (claire_plugin/core/engine)
streams the same tiles with the same padding and weights, so both give the same map.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """2-D weight window [T,T]: 1 in the middle, a sin^2 ramp over `overlap` pixels at each edge.

    Never zero (the ramp starts at half a pixel), so pixels covered by one tile only keep their value.
    """
    w = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        d = (np.arange(overlap) + 0.5) / overlap
        ramp = np.sin(0.5 * np.pi * d) ** 2
        w[:overlap] = ramp
        w[tile - overlap:] = np.minimum(w[tile - overlap:], ramp[::-1])
    return np.outer(w, w).astype(np.float32)


def pad_tile(x: np.ndarray, tile: int) -> np.ndarray:
    """[C,h,w] with h, w <= tile -> [C,tile,tile], padded at the bottom and right by reflection (by edge
    repetition when a side is one pixel)."""
    h, w = x.shape[-2:]
    if (h, w) == (tile, tile):
        return x
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(x, ((0, 0), (0, tile - h), (0, tile - w)), mode=mode)


def tile_starts(n: int, tile: int, overlap: int) -> List[int]:
    """First pixel of each tile along an axis of `n` px: every stride, the last one reaching past `n`
    rather than moved back (the engine's TileGrid)."""
    stride = tile - overlap
    count = max(1, int(math.ceil(max(0, n - overlap) / stride)))
    return [k * stride for k in range(count)]


def _tile(a: Optional[np.ndarray], y: int, x: int, tile: int) -> Optional[np.ndarray]:
    return None if a is None else pad_tile(a[:, y:y + tile, x:x + tile], tile)


def _batch(arrays: List[np.ndarray], device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32)).to(device)


@torch.no_grad()
def predict_arrays(model: torch.nn.Module, opt: np.ndarray, sar: np.ndarray, tile: int = 256,
                   overlap: int = 32, batch_size: int = 4, device: str = "cpu",
                   cloud: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised optical [Co,H,W] + SAR [Cs,H,W] -> (probabilities [K,H,W] float32, sar_share [H,W]).

    `cloud` [1,H,W]: models.cloud's probability, given to the model (used by cloud-gated models).
    `tile` is rounded up to a multiple of 32; see the module docstring for the tiling.
    """
    model.eval()
    h, w = opt.shape[-2:]
    tile = ((tile + 31) // 32) * 32
    weight = blend_weights(tile, overlap)
    coords = [(y, x) for y in tile_starts(h, tile, overlap) for x in tile_starts(w, tile, overlap)]
    hp, wp = coords[-1][0] + tile, coords[-1][1] + tile
    acc, acc_s, wsum = None, np.zeros((hp, wp), np.float32), np.zeros((hp, wp), np.float32)
    for i in range(0, len(coords), batch_size):
        chunk = coords[i:i + batch_size]
        cb = _batch([_tile(cloud, y, x, tile) for y, x in chunk], device) if cloud is not None else None
        out = model(_batch([_tile(opt, y, x, tile) for y, x in chunk], device),
                    _batch([_tile(sar, y, x, tile) for y, x in chunk], device), cloud=cb)
        prob = F.softmax(out["logits"].float(), dim=1).cpu().numpy()
        share = out.get("sar_share")
        share = share.float().cpu().numpy() if share is not None else np.zeros_like(prob[:, :1])
        if acc is None:
            acc = np.zeros((prob.shape[1], hp, wp), np.float32)
        for j, (y, x) in enumerate(chunk):
            acc[:, y:y + tile, x:x + tile] += prob[j] * weight
            acc_s[y:y + tile, x:x + tile] += share[j, 0] * weight
            wsum[y:y + tile, x:x + tile] += weight
    return (acc / wsum)[:, :h, :w], (acc_s / wsum)[:h, :w]
