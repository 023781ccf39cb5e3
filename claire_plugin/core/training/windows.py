"""Per-pixel predictions and features at sparse labelled pixels, one window of the scene at a time.

The labelled pixels are grouped into square cells; each cell is read with a margin of context
(`Scene.read`), optionally clouded (`models.augment.synthetic_clouds`, seeded per cell), and the
network's class and the pixel's physical values (the random forest's features) are taken at the
labelled pixels only. A cloud-gated network gets the window's cloud probability as the engine gives it
(`gate_input`), in training and evaluation alike. Memory is one window, whatever the raster size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .labels import LabelPixels
from .scene import Scene

CLOUD_COVERAGE = 0.6


def _ceil32(n: int) -> int:
    return max(32, (n + 31) // 32 * 32)


@dataclass
class Cell:
    """One window of the scene and the positions of the selected pixels in it."""

    r0: int
    c0: int
    h: int
    w: int
    index: np.ndarray  # positions in the pixel set
    local_rows: np.ndarray
    local_cols: np.ndarray


def cells(scene: Scene, pixels: LabelPixels, tile: int = 256, context: int = 32) -> Iterator[Cell]:
    """Windows of about `tile` px (multiples of 32) covering `pixels`, each with `context` px around its
    core cell; windows are clipped to the raster (reads pad by reflection)."""
    core = max(32, tile - 2 * context)
    h, w = min(tile, _ceil32(scene.height)), min(tile, _ceil32(scene.width))
    key = (pixels.rows // core).astype(np.int64) * (scene.width // core + 1) + pixels.cols // core
    order = np.argsort(key, kind="stable")
    for sel in np.split(order, np.nonzero(np.diff(key[order]))[0] + 1):
        if sel.size == 0:
            continue
        cr, cc = int(pixels.rows[sel[0]] // core * core), int(pixels.cols[sel[0]] // core * core)
        r0 = min(max(0, cr - context), max(0, scene.height - h))
        c0 = min(max(0, cc - context), max(0, scene.width - w))
        yield Cell(r0, c0, h, w, sel, pixels.rows[sel] - r0, pixels.cols[sel] - c0)


def cloud_window(opt_phys: np.ndarray, seed: int, cell_no: int) -> np.ndarray:
    """Deterministic synthetic clouds (60 % coverage) over one window's physical optical values."""
    from ....models.augment import synthetic_clouds

    return synthetic_clouds(opt_phys, np.random.default_rng([seed, cell_no]), coverage=CLOUD_COVERAGE)


def uses_cloud(model) -> bool:
    """Whether `model` takes models.cloud's probability (a CLAIRE network built with a cloud gate)."""
    return bool(getattr(model, "uses_cloud", False))


def gate_input(scene: Scene, opt_phys: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """[1,h,w] cloud input of a window for a cloud-gated network, as the engine makes it: models.cloud's
    probability of the physical optical (models.training.cloud_input, the one used by folder training too)
    over the card's band names, and 1 where the window has no data (the engine's default: gaps go to SAR)."""
    from ....models.training import cloud_input

    cloud = cloud_input(opt_phys, {"bands": list(scene.oc.names)})
    cloud[:, bad] = 1.0
    return cloud


def network_input(scene: Scene, opt_phys: np.ndarray, sar_phys: np.ndarray, bad: np.ndarray,
                  with_cloud: bool) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(optical, SAR, cloud or None) of a window as the network takes them (Scene.standardise, gate_input)."""
    on, sn = scene.standardise(opt_phys, sar_phys)
    return on, sn, gate_input(scene, opt_phys, bad) if with_cloud else None


def window_items(scene: Scene, pixels: LabelPixels, with_cloud: bool, tile: int = 256,
                 max_windows: int = 64) -> Iterator[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], np.ndarray]]:
    """The windows around `pixels` as models.familiarity items (optical, SAR, cloud, valid mask); at most
    `max_windows`, spread evenly over them, so that the cost stays bounded on any number of polygons."""
    windows = list(cells(scene, pixels, tile))
    keep = np.unique(np.linspace(0, len(windows) - 1, min(len(windows), max_windows)).round().astype(int))
    for i in keep:
        cell = windows[int(i)]
        o, s, bad = scene.read(cell.r0, cell.c0, cell.h, cell.w)
        yield network_input(scene, o, s, bad, with_cloud) + (~bad,)


def sample_pixels(scene: Scene, pixels: LabelPixels, models: Sequence[Tuple[object, Optional[np.ndarray]]] = (),
                  clouds: bool = False, seed: int = 0, device: str = "cpu", tile: int = 256,
                  is_cancelled: Optional[Callable[[], bool]] = None) -> Tuple[List[np.ndarray], np.ndarray]:
    """Predicted class indices per model and the physical features [N, Co+Cs] at `pixels`.

    `models` holds (network, channel map or None): with a map, the argmax runs over the mapped channels
    only and gives map[channel] (-1: a class the user's labels do not have). Invalid pixels get -1.
    """
    import torch

    n = len(pixels)
    preds = [np.full(n, -1, np.int64) for _ in models]
    feats = np.zeros((n, len(scene.oc.indices) + len(scene.sc.indices)), np.float32)
    for k, cell in enumerate(cells(scene, pixels, tile)):
        if is_cancelled is not None and is_cancelled():
            from ..errors import CancelledError
            raise CancelledError()
        o, s, bad = scene.read(cell.r0, cell.c0, cell.h, cell.w)
        if clouds:
            o = cloud_window(o, seed, k)
        rr, cc = cell.local_rows, cell.local_cols
        feats[cell.index] = np.concatenate([o[:, rr, cc], s[:, rr, cc]], axis=0).T
        ok = ~bad[rr, cc]
        if not models:
            continue
        on, sn, cloud = network_input(scene, o, s, bad, any(uses_cloud(net) for net, _ in models))
        with torch.no_grad():
            ot, st = torch.from_numpy(on)[None].to(device), torch.from_numpy(sn)[None].to(device)
            ct = None if cloud is None else torch.from_numpy(cloud)[None].to(device)
            for j, (net, cmap) in enumerate(models):
                logits = net(ot, st, cloud=ct)["logits"][0].float().cpu().numpy()[:, rr, cc]
                preds[j][cell.index] = np.where(ok, _pick(logits, cmap), -1)
    return preds, feats


def _pick(logits: np.ndarray, cmap: Optional[np.ndarray]) -> np.ndarray:
    """Argmax over channels, optionally restricted to the channels `cmap` maps to a user class."""
    if cmap is None:
        return logits.argmax(0)
    usable = np.nonzero(cmap >= 0)[0]
    return cmap[usable[logits[usable].argmax(0)]]
