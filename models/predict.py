"""Whole-array prediction with padding and overlapping tiles (for evaluation; the engine has its own)."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _round_up(v: int, m: int = 32) -> int:
    return ((v + m - 1) // m) * m


@torch.no_grad()
def predict_arrays(model: torch.nn.Module, opt: np.ndarray, sar: np.ndarray, tile: int = 256,
                   overlap: int = 32, batch_size: int = 4, device: str = "cpu",
                   cloud: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised optical [Co,H,W] + SAR [Cs,H,W] -> (probabilities [K,H,W] float32, sar_share [H,W]).

    `cloud` [1,H,W]: models.cloud's probability, given to the model (used by cloud-gated models).

    Images up to `tile` (rounded up to 32) run in one pass; larger ones in overlapping tiles whose
    softmax outputs are blended with a tent weight.
    """
    model.eval()
    h, w = opt.shape[-2:]
    o = torch.from_numpy(np.ascontiguousarray(opt, dtype=np.float32))[None]
    s = torch.from_numpy(np.ascontiguousarray(sar, dtype=np.float32))[None]
    c = torch.from_numpy(np.ascontiguousarray(cloud, dtype=np.float32))[None] if cloud is not None else None
    tile = _round_up(tile)
    if h <= tile and w <= tile:
        hh, ww = _round_up(h), _round_up(w)
        cp = _pad_to(c, hh, ww).to(device) if c is not None else None
        out = model(_pad_to(o, hh, ww).to(device), _pad_to(s, hh, ww).to(device), cloud=cp)
        prob = F.softmax(out["logits"].float(), dim=1)[0, :, :h, :w].cpu().numpy()
        share = out["sar_share"]
        share = share[0, 0, :h, :w].float().cpu().numpy() if share is not None else np.zeros((h, w), np.float32)
        return prob, share
    step = max(32, tile - overlap)
    hp, wp = max(h, tile), max(w, tile)
    o, s = _pad_to(o, hp, wp), _pad_to(s, hp, wp)
    c = _pad_to(c, hp, wp) if c is not None else None
    ys = list(range(0, hp - tile + 1, step))
    xs = list(range(0, wp - tile + 1, step))
    if ys[-1] != hp - tile:
        ys.append(hp - tile)
    if xs[-1] != wp - tile:
        xs.append(wp - tile)
    ramp = np.minimum(np.arange(tile) + 1, np.arange(tile)[::-1] + 1).astype(np.float32)
    weight = torch.from_numpy(np.minimum(ramp[:, None], ramp[None, :]) / (tile / 2))
    acc, acc_s, wsum = None, torch.zeros(hp, wp), torch.zeros(hp, wp)
    coords = [(y, x) for y in ys for x in xs]
    for i in range(0, len(coords), batch_size):
        chunk = coords[i:i + batch_size]
        ob = torch.cat([o[..., y:y + tile, x:x + tile] for y, x in chunk]).to(device)
        sb = torch.cat([s[..., y:y + tile, x:x + tile] for y, x in chunk]).to(device)
        cb = torch.cat([c[..., y:y + tile, x:x + tile] for y, x in chunk]).to(device) if c is not None else None
        out = model(ob, sb, cloud=cb)
        prob = F.softmax(out["logits"].float(), dim=1).cpu()
        share = out["sar_share"].float().cpu() if out["sar_share"] is not None else torch.zeros_like(prob[:, :1])
        if acc is None:
            acc = torch.zeros(prob.shape[1], hp, wp)
        for j, (y, x) in enumerate(chunk):
            acc[:, y:y + tile, x:x + tile] += prob[j] * weight
            acc_s[y:y + tile, x:x + tile] += share[j, 0] * weight
            wsum[y:y + tile, x:x + tile] += weight
    prob = (acc / wsum)[:, :h, :w].numpy()
    return prob, (acc_s / wsum)[:h, :w].numpy()
