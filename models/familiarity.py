"""How unlike its training data a scene looks to a model: per-pixel diagonal Mahalanobis distance of the
decoder's pre-classifier features (UPerDecoder.features, stride 4) from their training statistics.

`familiarity(model, train, heldout)` measures per-channel mean and variance of those features over the
training pixels and calibrates `threshold` as the `quantile` (0.99) of the distance on held-out pixels of
the training sites: about 1 % of familiar pixels lie beyond it. The card stores
`{"mean": [...], "var": [...], "threshold": t, "quantile": 0.99, "feature": "decoder", "pixels": n,
"heldout_pixels": m}`; `distance` is what the engine computes per tile.

    d(x) = sqrt( mean_c (f_c(x) - mean_c)^2 / var_c )

(averaged over channels rather than summed, so that d is about 1 on training pixels whatever the width).
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, Tuple

import numpy as np
import torch

from .cloud import cloud_probability
from .predict import pad_tile, tile_starts
from .spec import normalise, standardise, to_physical

FEATURE = "decoder"
TILE = 256
VAR_FLOOR = 1e-6
Item = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]  # normalised optical, SAR, cloud [1,H,W] or None


def distance(features: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """[B,C,h,w] features -> [B,1,h,w] diagonal Mahalanobis distance (module docstring)."""
    z = (features.float() - mean.view(1, -1, 1, 1)) ** 2 / var.view(1, -1, 1, 1)
    return z.mean(dim=1, keepdim=True).sqrt()


def card_tensors(fam: dict, device="cpu") -> Tuple[torch.Tensor, torch.Tensor, float]:
    """(mean, var, threshold) of a card's familiarity dict as tensors on `device`."""
    mean = torch.tensor(fam["mean"], dtype=torch.float32, device=device)
    var = torch.tensor(fam["var"], dtype=torch.float32, device=device).clamp_min(VAR_FLOOR)
    return mean, var, float(fam["threshold"])


@torch.no_grad()
def _features(model: torch.nn.Module, item: tuple, device: str, tile: int = TILE) -> np.ndarray:
    """Decoder features [C, n] of one item's pixels (stride 4; where its optional mask [H,W] is True), run
    in `tile` px tiles padded like the engine's (models.predict.pad_tile)."""
    o, s, c = item[:3]
    mask = item[3] if len(item) > 3 else None
    h, w = o.shape[-2:]
    fmap = None
    for y in tile_starts(h, tile, 0):
        for x in tile_starts(w, tile, 0):
            t = [None if a is None else torch.from_numpy(
                np.ascontiguousarray(pad_tile(a[:, y:y + tile, x:x + tile], tile), np.float32))[None].to(device)
                for a in (o, s, c)]
            f = model(t[0], t[1], cloud=t[2], return_features=True)["features"][0].float().cpu().numpy()
            if fmap is None:
                fmap = np.zeros((f.shape[0], -(-h // 4), -(-w // 4)), np.float32)
            part = fmap[:, y // 4:(y + tile) // 4, x // 4:(x + tile) // 4]
            part[...] = f[:, : part.shape[1], : part.shape[2]]
    keep = np.ones(fmap.shape[1:], bool) if mask is None else np.asarray(mask)[::4, ::4]
    return fmap[:, keep]


def prepared(items: Iterable[tuple], ospec: dict, sspec: dict, uses_cloud: bool) -> Iterator[tuple]:
    """(name, raw optical, raw SAR, labels) windows (core.training RasterPairSource.eval_items) -> items
    (optical, SAR, cloud, mask), normalised as models.training.evaluate does, with models.cloud's
    probability for cloud-gated models; the mask keeps the labelled pixels (255 = outside the region)."""
    for _name, o, s, labels in items:
        phys = to_physical(o, ospec)
        cloud = cloud_probability(phys, ospec["bands"])[None] if uses_cloud else None
        yield standardise(phys, ospec), normalise(s, sspec), cloud, labels != 255


@torch.no_grad()
def feature_stats(model: torch.nn.Module, items: Iterable[Item],
                  device: str = "cpu") -> Tuple[np.ndarray, np.ndarray, int]:
    """(mean [C], var [C], pixels) of the decoder features over every pixel of `items`."""
    model.eval()
    n, s1, s2 = 0, None, None
    for item in items:
        f = _features(model, item, device).astype(np.float64)
        s1 = f.sum(1) if s1 is None else s1 + f.sum(1)
        s2 = (f ** 2).sum(1) if s2 is None else s2 + (f ** 2).sum(1)
        n += f.shape[1]
    if not n:
        raise ValueError("no pixels to measure the training features on")
    mean = s1 / n
    return mean, np.maximum(s2 / n - mean ** 2, VAR_FLOOR), n


@torch.no_grad()
def distances(model: torch.nn.Module, items: Iterable[Item], mean: np.ndarray, var: np.ndarray,
              device: str = "cpu") -> np.ndarray:
    """Per-pixel distances (stride 4) of every item, concatenated."""
    model.eval()
    m, v = torch.from_numpy(mean).float(), torch.from_numpy(var).float()
    out = []
    for item in items:
        f = torch.from_numpy(_features(model, item, device))[None, :, :, None]
        out.append(distance(f, m, v).reshape(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def familiarity(model: torch.nn.Module, train: Iterable[Item], heldout: Iterable[Item], quantile: float = 0.99,
                device: str = "cpu") -> dict:
    """The card's familiarity dict: training statistics and the threshold calibrated on `heldout` (items
    of the training sites the statistics did not see; module docstring)."""
    mean, var, n = feature_stats(model, train, device)
    d = distances(model, heldout, mean, var, device)
    if not d.size:
        raise ValueError("no held-out pixels to calibrate the familiarity threshold on")
    return {"feature": FEATURE, "mean": [float(x) for x in mean], "var": [float(x) for x in var],
            "threshold": float(np.quantile(d.astype(np.float64), quantile)), "quantile": quantile, "pixels": int(n),
            "heldout_pixels": int(d.size)}
