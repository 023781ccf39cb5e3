"""How unlike its training data a scene looks to a model: per-pixel Mahalanobis distance of the model's
features from their training statistics, and the threshold beyond which a pixel counts as unfamiliar.

Two kinds of card entry (the `feature` key):

- `"bottleneck"` (default since issue #18): the deepest fused encoder features (the decoder's PPM input,
  `return_features=True` gives them as `"bottleneck"`, stride 32). A low-rank Mahalanobis distance:
  the `rank` leading principal axes of their training covariance (`basis` [k,C], variances `pvar` [k];
  features interpolated to stride 8 to measure it) plus the mean remaining variance `residual_var` for
  everything off those axes,

      d(x) = sqrt( ( sum_j (b_j.(f - mean))^2 / pvar_j + |r|^2 / residual_var ) / C ),  r = the off-axis part

  computed per stride-32 cell and interpolated to the pixels. Of the scores measured, the one that best
  separates the training sites from scenes elsewhere (docs/model_card.md, "Unlike the training data").
- `"decoder"` (older cards): the diagonal distance of the decoder's pre-classifier features (stride 4),
  `sqrt(mean_c (f_c - mean_c)^2 / var_c)`, with `mean` and `var`.

`familiarity(model, train, heldout)` measures the statistics over the training pixels and calibrates
`threshold` as the `quantile` (0.99) of the distance on held-out pixels of the training sites, so that
about 1 % of familiar pixels lie beyond it. `Scorer` is what the engine computes per tile.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .blocks import local_mean
from .cloud import cloud_probability
from .predict import pad_tile, round32, tile_starts
from .quoting import quoted
from .spec import normalise, standardise, to_physical

FEATURE = "bottleneck"
#: the model output key of each feature kind and its stride
OUTPUT_KEY = {"bottleneck": "bottleneck", "decoder": "features"}
TILE = 256
VAR_FLOOR = 1e-6
RANK = 64
FIT_STRIDE = 8
#: Cells (stride 32) whose mean distance judges a cell in the `bottleneck` entries written from now on: 5 x 5
#: cells = 160 px, about the model's 128 px context window (docs/model_card.md has the measurement).
SMOOTH_CELLS = 5
Item = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]  # normalised optical, SAR, cloud [1,H,W] or None


def distance(features: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """[B,C,h,w] features -> [B,1,h,w] diagonal Mahalanobis distance (the `decoder` kind)."""
    z = (features.float() - mean.view(1, -1, 1, 1)) ** 2 / var.view(1, -1, 1, 1)
    return z.mean(dim=1, keepdim=True).sqrt()


def lowrank_distance(features: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, pvar: torch.Tensor,
                     residual_var: float) -> torch.Tensor:
    """[B,C,h,w] features -> [B,1,h,w] low-rank Mahalanobis distance (the `bottleneck` kind, module docstring)."""
    x = features.float() - mean.view(1, -1, 1, 1)
    p = torch.einsum("kc,bchw->bkhw", basis, x)
    on_axes = (p ** 2 / pvar.view(1, -1, 1, 1)).sum(1, keepdim=True)
    off_axes = ((x ** 2).sum(1, keepdim=True) - (p ** 2).sum(1, keepdim=True)).clamp_min(0.0) / residual_var
    return ((on_axes + off_axes) / x.shape[1]).sqrt()


class Scorer:
    """A card's familiarity on a device: `ratio(model_output)` -> [B,1,h,w] distance / threshold at the
    feature resolution (the engine interpolates it to the pixels)."""

    def __init__(self, fam: dict, device="cpu") -> None:
        self.feature = fam.get("feature", "decoder")
        if self.feature not in OUTPUT_KEY:
            raise ValueError(f"unknown familiarity feature {quoted(self.feature)}")
        self.key = OUTPUT_KEY[self.feature]
        self.threshold = float(fam["threshold"])
        self.smooth = int(fam.get("smooth_cells", 1))  # cards before it: per cell
        if not self.threshold > 0:
            raise ValueError("the familiarity threshold must be positive")

        def t(v):
            return torch.tensor(v, dtype=torch.float32, device=device)
        self.mean = t(fam["mean"])
        if self.feature == "decoder":
            self.var = t(fam["var"]).clamp_min(VAR_FLOOR)
            return
        self.basis, self.pvar = t(fam["basis"]).reshape(-1, self.mean.numel()), t(fam["pvar"]).clamp_min(VAR_FLOOR)
        self.residual_var = max(float(fam["residual_var"]), VAR_FLOOR)
        if self.basis.shape[0] != self.pvar.numel():
            raise ValueError("the familiarity basis and variances differ in length")

    def features(self, out: dict) -> Optional[torch.Tensor]:
        """The features this entry measures, from a model output (None when the model gives none)."""
        return out.get(self.key) if isinstance(out, dict) else None

    def distance(self, feats: torch.Tensor) -> torch.Tensor:
        """[B,C,h,w] -> [B,1,h,w] distance (not divided by the threshold)."""
        if self.feature == "decoder":
            return distance(feats, self.mean, self.var)
        return lowrank_distance(feats, self.mean, self.basis, self.pvar, self.residual_var)

    def ratio(self, feats: torch.Tensor) -> torch.Tensor:
        """[B,C,h,w] -> [B,1,h,w] distance / threshold; with `smooth_cells` n > 1 the distance is first averaged
        over the n x n cells around each cell (a neighbourhood, not a pixel, is judged: measured, that
        separates seen from unseen scenes more reliably than single cells)."""
        d = self.distance(feats)
        if self.smooth > 1:
            d = local_mean(d, self.smooth)
        return d / self.threshold


def card_tensors(fam: dict, device="cpu") -> Scorer:
    """A card's familiarity dict as a `Scorer` on `device` (ValueError/KeyError when unreadable)."""
    return Scorer(fam, device)


def _tiles(item: tuple, device: str, tile: int) -> Iterator[tuple]:
    """(y, x, optical, SAR, cloud) tensors of an item's `tile` px tiles; an item smaller than a tile is read
    whole, padded to the next multiple of 32, as the engine reads a raster smaller than its window."""
    o, s, c = item[:3]
    h, w = o.shape[-2:]
    th, tw = min(tile, round32(h)), min(tile, round32(w))
    for y in tile_starts(h, th, 0):
        for x in tile_starts(w, tw, 0):
            yield (y, x) + tuple(None if a is None else torch.from_numpy(np.ascontiguousarray(
                pad_tile(a[:, y:y + th, x:x + tw], th, tw), np.float32))[None].to(device) for a in (o, s, c))


@torch.no_grad()
def feature_map(model: torch.nn.Module, item: tuple, key: str = "features", device: str = "cpu",
                tile: int = TILE, fn=None) -> Tuple[np.ndarray, int]:
    """(One item's model output `key` as a map [C, ceil(H/s), ceil(W/s)], its stride s), run in `tile` px
    tiles; `fn(output, (th, tw))` (optional) maps each tile's [1,C,h,w] output first (e.g. to a distance at
    stride 4)."""
    h, w = item[0].shape[-2:]
    fmap = None
    for y, x, o, s, c in _tiles(item, device, tile):
        out = model(o, s, cloud=c, return_features=True)
        if out.get(key) is None:
            raise ValueError(f"the model gives no {quoted(key)} output to measure familiarity on")
        th, tw = o.shape[-2:]
        f = out[key] if fn is None else fn(out[key], (th, tw))
        stride = tw // f.shape[-1]
        f = f[0].float().cpu().numpy()
        if fmap is None:
            fmap = np.zeros((f.shape[0], -(-h // stride), -(-w // stride)), np.float32)
        part = fmap[:, y // stride:(y + th) // stride, x // stride:(x + tw) // stride]
        part[...] = f[:, : part.shape[1], : part.shape[2]]
    return fmap, stride


def cell_mask(item: tuple, shape, stride: int) -> np.ndarray:
    """The item's optional mask [H,W] at the centres of the cells of a [h,w] grid of `stride` px (all True
    without one; a last, partial cell takes the mask's edge)."""
    mask = item[3] if len(item) > 3 else None
    if mask is None:
        return np.ones(shape, bool)
    m = np.asarray(mask, bool)
    pad = ((0, max(0, shape[0] * stride - m.shape[0])), (0, max(0, shape[1] * stride - m.shape[1])))
    m = np.pad(m, pad, mode="edge") if any(p[1] for p in pad) else m
    return m[stride // 2::stride, stride // 2::stride][: shape[0], : shape[1]]


def _upsampled(stride: int, tile: int = TILE):
    """A feature_map `fn` that interpolates each tile's features (bilinear) to `stride` (`tile`: unused, the
    size comes with each tile)."""
    def fn(f: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        cells = (size[0] // stride, size[1] // stride)
        return f if tuple(f.shape[-2:]) == cells else F.interpolate(f, size=cells, mode="bilinear",
                                                                    align_corners=False)
    return fn


def _features(model: torch.nn.Module, item: tuple, device: str, tile: int = TILE,
              key: str = "features", stride: Optional[int] = None) -> np.ndarray:
    """Features [C, n] of one item's cells (where its optional mask [H,W] is True at the cell centre);
    `stride` interpolates them to that stride first."""
    fmap, s = feature_map(model, item, key, device, tile, None if stride is None else _upsampled(stride, tile))
    return fmap[:, cell_mask(item, fmap.shape[1:], s)]


def prepared(items: Iterable[tuple], ospec: dict, sspec: dict, uses_cloud: bool) -> Iterator[tuple]:
    """(name, raw optical, raw SAR, labels) windows (core.training RasterPairSource.eval_items) -> items
    (optical, SAR, cloud, mask), normalised as models.training.evaluate does, with models.cloud's
    probability for cloud-gated models; the mask keeps the labelled pixels (255 = outside the region)."""
    for _name, o, s, labels in items:
        phys = to_physical(o, ospec)
        cloud = cloud_probability(phys, ospec["bands"])[None] if uses_cloud else None
        yield standardise(phys, ospec), normalise(s, sspec), cloud, labels != 255


def _moments(model, items, device, key, stride=None) -> Tuple[np.ndarray, np.ndarray, int]:
    """(sum [C], sum of outer products [C,C], n) of the `key` features over the items' cells."""
    n, s1, s2 = 0, None, None
    for item in items:  # torch, not NumPy's BLAS: under models.determinism the sums are the same on any CPU
        f = torch.from_numpy(_features(model, item, device, key=key, stride=stride).astype(np.float64))
        s1 = f.sum(1) if s1 is None else s1 + f.sum(1)
        s2 = f @ f.T if s2 is None else s2 + f @ f.T
        n += f.shape[1]
    if not n:
        raise ValueError("no pixels to measure the training features on")
    return s1.numpy(), s2.numpy(), n


@torch.no_grad()
def feature_stats(model: torch.nn.Module, items: Iterable[Item],
                  device: str = "cpu") -> Tuple[np.ndarray, np.ndarray, int]:
    """(mean [C], var [C], pixels) of the decoder features over every pixel of `items` (the `decoder` kind)."""
    model.eval()
    s1, s2, n = _moments(model, items, device, "features")
    mean = s1 / n
    return mean, np.maximum(np.diag(s2) / n - mean ** 2, VAR_FLOOR), n


@torch.no_grad()
def lowrank_stats(model: torch.nn.Module, items: Iterable[Item], device: str = "cpu",
                  rank: int = RANK) -> dict:
    """The `bottleneck` kind's statistics: mean, the leading `rank` principal axes of the covariance and
    their variances, the mean variance left off them (floored at 1e-3 of the mean variance), cells. The
    features are interpolated to stride FIT_STRIDE first: measured on the shipped sites, statistics of the
    raw stride-32 cells (a few hundred) separate seen from unseen scenes less well (AUROC 0.95 vs 0.99)."""
    model.eval()
    s1, s2, n = _moments(model, items, device, "bottleneck", FIT_STRIDE)
    mean = s1 / n
    cov = s2 / n - np.outer(mean, mean)
    w, v = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(cov)))  # torch's LAPACK: pinned with torch
    w, v = np.maximum(w[::-1], 0.0), v[:, ::-1]
    k = max(1, min(rank, len(mean) - 1, n - 1))
    floor = max(1e-3 * float(w.mean()), VAR_FLOOR)
    return {"mean": mean, "basis": v[:, :k].T, "pvar": np.maximum(w[:k], floor),
            "residual_var": max(float(w[k:].mean()) if k < len(w) else floor, floor), "pixels": int(n)}


@torch.no_grad()
def ratios(model: torch.nn.Module, items: Iterable[Item], scorer: Scorer, device: str = "cpu",
           tile: int = TILE) -> np.ndarray:
    """Per-pixel distance (/ the scorer's threshold; 1 when it is 1) at stride 4 of every item where its
    mask is True, interpolated from the feature cells as the engine does, concatenated; items larger than
    `tile` are read in `tile` px tiles."""
    model.eval()

    def fn(feats, size):
        return _upsampled(4)(scorer.ratio(feats), size)
    out = []
    for item in items:
        dmap, s = feature_map(model, item, scorer.key, device, tile, fn)
        out.append(dmap[0][cell_mask(item, dmap.shape[1:], s)])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@torch.no_grad()
def distances(model: torch.nn.Module, items: Iterable[Item], mean: np.ndarray, var: np.ndarray,
              device: str = "cpu") -> np.ndarray:
    """Per-pixel diagonal distances (stride 4) of the decoder features of every item (the `decoder` kind)."""
    return ratios(model, items, Scorer({"feature": "decoder", "mean": list(mean), "var": list(var),
                                        "threshold": 1.0}, device), device)


def _entry(model, train, device, feature) -> dict:
    """The statistics part of the card entry for `feature`."""
    if feature == "decoder":
        mean, var, n = feature_stats(model, train, device)
        return {"feature": "decoder", "mean": mean, "var": var, "pixels": n}
    return dict(lowrank_stats(model, train, device), feature="bottleneck", smooth_cells=SMOOTH_CELLS)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return [round(float(x), 7) for x in v.ravel()] if v.ndim == 1 else [_jsonable(r) for r in v]
    return v


def familiarity(model: torch.nn.Module, train: Iterable[Item], heldout: Iterable[Item], quantile: float = 0.99,
                device: str = "cpu", feature: str = FEATURE) -> dict:
    """The card's familiarity dict: training statistics of `feature` ("bottleneck" or "decoder") and the
    threshold calibrated on `heldout` (items of the training sites the statistics did not see)."""
    if feature not in OUTPUT_KEY:
        raise ValueError(f"feature must be one of {', '.join(OUTPUT_KEY)}, got {quoted(feature)}")
    entry = _entry(model, train, device, feature)
    fam = {k: _jsonable(v) for k, v in entry.items()}
    d = ratios(model, heldout, Scorer(dict(fam, threshold=1.0), device), device)  # on the features' device
    if not d.size:
        raise ValueError("no held-out pixels to calibrate the familiarity threshold on")
    fam.update(threshold=float(np.quantile(d.astype(np.float64), quantile)), quantile=quantile,
               heldout_pixels=int(d.size))
    return fam
