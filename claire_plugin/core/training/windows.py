"""Per-pixel predictions and features at sparse labelled pixels, one window of the scene at a time.

Nearby labelled pixels are grouped, and each group is read as one window fitted to it (`fitted_windows`:
the pixels' bounding box plus `MARGIN` px of context, on the raster's 32 px grid), optionally clouded
(`models.augment.synthetic_clouds` over a `CLOUD_FRAME` square, seeded per window); the network's class
and the pixel's physical values (the random forest's features) are taken at the labelled pixels only.
A `WindowSet` reads its windows once and serves every network and condition (clear, clouded) and every
epoch's validation from them, within a memory budget. A cloud-gated network gets the window's cloud
probability as the engine gives it (`gate_input`), in training and evaluation alike. Memory is a few
windows, whatever the raster size. `cells` (fixed 256 px cells) remain for the familiarity windows.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .labels import LabelPixels
from .scene import Scene

CLOUD_COVERAGE = 0.6
MARGIN = 96  # px of context around the labelled pixels of a fitted window (measured: docs/train_from_polygons.md)
CLOUD_FRAME = 256      # synthetic clouds are drawn over at least this square around a window (the former cells)
WINDOW_OVERHEAD_PX = 64 * 64  # the cost of one more network call, in pixels, when fitting windows


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


def cloud_window(opt_phys: np.ndarray, seed: int, cell_no: int, frame: int = 0) -> np.ndarray:
    """Deterministic synthetic clouds (60 % coverage) over one window's physical optical values. With
    `frame` larger than the window, the clouds are drawn over a `frame` x `frame` square centred on it and
    cut back, so that their size and coverage do not depend on how tightly the window is fitted."""
    from ....models.augment import synthetic_clouds

    rng = np.random.default_rng([seed, cell_no])
    c, h, w = opt_phys.shape
    fh, fw = max(frame, h), max(frame, w)
    if (fh, fw) == (h, w):
        return synthetic_clouds(opt_phys, rng, coverage=CLOUD_COVERAGE)
    a, b = (fh - h) // 2, (fw - w) // 2
    canvas = np.zeros((c, fh, fw), np.float32)
    canvas[:, a:a + h, b:b + w] = opt_phys
    return synthetic_clouds(canvas, rng, coverage=CLOUD_COVERAGE)[:, a:a + h, b:b + w]


def uses_cloud(model) -> bool:
    """Whether `model` takes models.cloud's probability (a CLAIRE network built with a cloud gate)."""
    return bool(getattr(model, "uses_cloud", False))


def gate_input(scene: Scene, opt_phys: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """[1,h,w] cloud input of a window for a cloud-gated network, as the engine makes it: models.cloud's
    probability of the physical optical (models.training.cloud_input, the one used by folder training too)
    over the card's band names, and 1 where the window has no data (the engine's default: gaps go to SAR)."""
    from ....models.training import cloud_input

    cloud = cloud_input(opt_phys, {"bands": list(scene.oc.names)})
    cloud[:, bad & ~np.isfinite(opt_phys).all(axis=0)] = 1.0  # a nodata frame carries its edge's (Scene.read)
    return cloud


def network_input(scene: Scene, opt_phys: np.ndarray, sar_phys: np.ndarray, bad: np.ndarray,
                  with_cloud: bool) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(optical, SAR, cloud or None) of a window as the network takes them (Scene.standardise, gate_input)."""
    on, sn = scene.standardise(opt_phys, sar_phys)
    return on, sn, gate_input(scene, opt_phys, bad) if with_cloud else None


def window_items(scene: Scene, pixels: LabelPixels, with_cloud: bool, tile: int = 256, max_windows: int = 64,
                 cells_seen: Optional[set] = None) -> Iterator[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray],
                                                                    np.ndarray]]:
    """The windows around `pixels` as models.familiarity items (optical, SAR, cloud, valid mask); at most
    `max_windows`, spread evenly over them, so that the cost stays bounded on any number of polygons. A window
    clipped to the raster onto another's place is given once. `cells_seen` gathers the scene's 32 px cells (row,
    column of the raster's grid) whose centre has data in a window: each once, however many windows hold it."""
    windows = list(dict.fromkeys((c.r0, c.c0, c.h, c.w) for c in cells(scene, pixels, tile)))
    keep = np.unique(np.linspace(0, len(windows) - 1, min(len(windows), max_windows)).round().astype(int))
    for i in (keep if windows else []):
        r0, c0, h, w = windows[int(i)]
        o, s, bad = scene.read(r0, c0, h, w)
        if cells_seen is not None:
            rows, cols = np.nonzero(~bad[16::32, 16::32])
            cells_seen.update(zip(((r0 + 16 + 32 * rows) // 32).tolist(), ((c0 + 16 + 32 * cols) // 32).tolist()))
        yield network_input(scene, o, s, bad, with_cloud) + (~bad,)


def fitted_windows(scene: Scene, pixels: LabelPixels, margin: int = MARGIN, max_side: int = 512) -> List[Cell]:
    """Windows fitted to `pixels`: nearby pixels are grouped on a square grid, and each group gets the
    bounding box of its pixels plus `margin` px of context on every side, sides rounded up to a multiple
    of 32 (at most `max_side`; never past the raster's rounded size). The grid size is the one of a few
    that gives the least total window area (plus a per-window overhead), so isolated polygons get small
    windows and dense labels larger ones."""
    best: Optional[List[Cell]] = None
    cost = np.inf
    for core in (64, 128, 192, 256, 384):
        if core + 2 * margin > max_side and best is not None:
            break
        wins = _grid_windows(scene, pixels, core, margin)
        c = sum(w.h * w.w + WINDOW_OVERHEAD_PX for w in wins)
        if c < cost:
            best, cost = wins, c
    return best or []


def _grid_windows(scene: Scene, pixels: LabelPixels, core: int, margin: int) -> List[Cell]:
    """One window per non-empty `core` x `core` grid cell: its pixels' bounding box + `margin`, centred."""
    if len(pixels) == 0:
        return []
    key = (pixels.rows // core).astype(np.int64) * (scene.width // core + 1) + pixels.cols // core
    order = np.argsort(key, kind="stable")
    starts = np.r_[0, np.nonzero(np.diff(key[order]))[0] + 1]
    rows, cols = pixels.rows[order].astype(np.int64), pixels.cols[order].astype(np.int64)
    rmin, rmax = np.minimum.reduceat(rows, starts), np.maximum.reduceat(rows, starts)
    cmin, cmax = np.minimum.reduceat(cols, starts), np.maximum.reduceat(cols, starts)
    out = []
    for g, sel in enumerate(np.split(order, starts[1:])):
        r0, h = _fit(int(rmin[g]), int(rmax[g]), margin, scene.height)
        c0, w = _fit(int(cmin[g]), int(cmax[g]), margin, scene.width)
        out.append(Cell(r0, c0, h, w, sel, pixels.rows[sel] - r0, pixels.cols[sel] - c0))
    return out


def _fit(lo: int, hi: int, margin: int, size: int) -> Tuple[int, int]:
    """(start, length) along one axis: [lo, hi] plus at least `margin` each side, both ends on the raster's
    32 px grid (a stride-32 network's output depends on where a pixel sits on that grid; the former
    fixed cells sat on it too), length capped at the raster's rounded size, shifted to stay inside it."""
    start = max(0, (lo - margin) // 32 * 32)
    n = min(_ceil32(hi + 1 + margin - start), _ceil32(size))
    return min(start, max(0, size - n)), n


class WindowSet:
    """The fitted windows around a fixed set of pixels (`fitted_windows`), each read once and kept in memory
    while the kept windows stay under `budget_mb` (read again beyond that): the per-epoch validation and
    the final scoring reuse them instead of reading the scene again."""

    def __init__(self, scene: Scene, pixels: LabelPixels, margin: int = MARGIN, budget_mb: float = 256.0,
                 snow_classes: Sequence[int] = ()) -> None:
        self.scene, self.pixels, self.margin = scene, pixels, margin
        self.snow_classes = list(snow_classes)  # user classes the engine's snow check applies to
        self.windows = fitted_windows(scene, pixels, margin)
        self._budget, self._used = budget_mb * 2 ** 20, 0
        self._kept: Dict[int, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._through: Optional[Tuple["WindowSet", List[int]]] = None  # a spread's whole set and window positions

    def spread(self, most_px: int) -> Tuple["WindowSet", np.ndarray]:
        """(windows of this set holding at most `most_px` window pixels, spread evenly over its windows, plus one
        for each class of the pixels they would leave out, as a WindowSet that reads through this one (its reads
        kept here); the positions of their pixels in this set's pixels). This set itself with every position when
        its windows hold no more than that."""
        area = np.array([w.h * w.w for w in self.windows], np.int64)
        if area.sum() <= most_px:
            return self, np.arange(len(self.pixels))
        n = max(1, int(len(area) * most_px / max(int(area.sum()), 1)))
        chosen = set(np.unique(np.linspace(0, len(area) - 1, n).round().astype(int)).tolist())
        have = set(np.unique(self.pixels.cls[np.concatenate([self.windows[k].index for k in chosen])]).tolist())
        for k, w in enumerate(self.windows):  # a class the even spread missed gets its first window
            new = set(np.unique(self.pixels.cls[w.index]).tolist()) - have
            if new:
                chosen.add(k)
                have |= new
        if len(chosen) == len(self.windows):
            return self, np.arange(len(self.pixels))
        order = sorted(chosen)
        sub = WindowSet.__new__(WindowSet)
        sub.scene, sub.margin, sub.snow_classes = self.scene, self.margin, self.snow_classes
        sub._budget, sub._used, sub._kept = 0, 0, {}
        sub._through = (self, order)
        positions = np.concatenate([self.windows[k].index for k in order])
        sub.pixels = self.pixels.subset(positions)
        sub.windows, at = [], 0
        for k in order:
            w = self.windows[k]
            sub.windows.append(Cell(w.r0, w.c0, w.h, w.w, np.arange(at, at + w.index.size), w.local_rows,
                                    w.local_cols))
            at += w.index.size
        return sub, positions

    def read(self, k: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(optical physical, SAR physical, invalid mask) of window `k` (do not modify them)."""
        if self._through is not None:
            return self._through[0].read(self._through[1][k])
        if k in self._kept:
            return self._kept[k]
        w = self.windows[k]
        item = self.scene.read(w.r0, w.c0, w.h, w.w)
        size = sum(a.nbytes for a in item)
        if self._used + size <= self._budget:
            self._kept[k] = item
            self._used += size
        return item


def stop_if_cancelled(is_cancelled: Optional[Callable[[], bool]]) -> None:
    """CancelledError when the user asked the training to stop."""
    if is_cancelled is not None and is_cancelled():
        from ..errors import CancelledError

        raise CancelledError("Training cancelled by the user; no checkpoint was written.")


def predict_pixels(wset: WindowSet, models: Sequence[Tuple[object, Optional[np.ndarray]]] = (),
                   conditions: Sequence[bool] = (False,), seed: int = 0, device: str = "cpu",
                   is_cancelled: Optional[Callable[[], bool]] = None,
                   logits: Optional[Dict[bool, np.ndarray]] = None,
                   progress: Optional[Callable[[int, int], None]] = None,
                   snow: Optional[Dict[bool, np.ndarray]] = None,
                   member_logits: Optional[Tuple[Dict[Tuple[int, bool], np.ndarray], Sequence[int]]] = None
                   ) -> Dict[bool, Tuple[List[np.ndarray], np.ndarray]]:
    """{clouds: (predicted class indices per model, physical features [N, Co+Cs], NaN where the optical or the SAR
    has no data)} at the window set's pixels, for each condition (False: clear, True: synthetic clouds seeded per
    window). Each window is read once for every model and condition; windows of one shape run through the networks
    together.

    `models` holds (network, channel map or None): with a map, the argmax over all channels (as the network maps)
    gives map[channel], ANOTHER_CLASS where that class is none of the user's. Invalid pixels get -1.
    With `logits` (a dict, filled here), the first model's logits at the pixels per condition ([N, K] float32, NaN
    at invalid pixels); with `member_logits` ((a dict, filled here; positions in `models`)) those of the models at
    those positions too, keyed (position, condition). The set's `snow_classes` get the engine's snow check
    (`window_snow_possible`, a logit bias); with `snow` (a dict, filled here) its value at the pixels per condition
    ([N] float32, 1 at invalid pixels), to score the forests as the engine maps them. `progress(windows done,
    windows)` after each group of windows."""
    from ....models.cloud import snow_logit_bias

    n = len(wset.pixels)
    scene = wset.scene
    out = {cl: ([np.full(n, -1, np.int64) for _ in models],
                np.zeros((n, len(scene.oc.indices) + len(scene.sc.indices)), np.float32)) for cl in conditions}
    with_cloud = any(uses_cloud(net) for net, _ in models)
    if snow is not None:
        snow.update({cl: np.ones(n, np.float32) for cl in conditions})
    done = 0
    for batch in _batches(wset.windows):
        stop_if_cancelled(is_cancelled)
        phys = [wset.read(k) for k in batch]
        for clouds in conditions:
            preds, feats = out[clouds]
            inputs, biases = [], []
            for k, (o, s, bad) in zip(batch, phys):
                cell = wset.windows[k]
                if clouds:
                    o = cloud_window(o, seed, k, CLOUD_FRAME)
                feats[cell.index] = np.concatenate([o[:, cell.local_rows, cell.local_cols],
                                                    s[:, cell.local_rows, cell.local_cols]], axis=0).T
                # no features where a raster has no data (the SAR mirrored into its gap is what the network reads
                # around it, not a value of the pixel): the forests predict -1 there, as the networks do
                feats[cell.index[bad[cell.local_rows, cell.local_cols]]] = np.nan
                possible = (window_snow_possible(scene, o, bad, (cell.r0, cell.c0))
                            if wset.snow_classes and (models or snow is not None) else None)
                if snow is not None and possible is not None:
                    snow[clouds][cell.index] = possible[cell.local_rows, cell.local_cols]
                if models:
                    inputs.append(network_input(scene, o, s, bad, with_cloud))
                    biases.append(None if possible is None else snow_logit_bias(possible))
            if models:
                _run_batch(models, inputs, [wset.windows[k] for k in batch], [p[2] for p in phys], preds, device,
                           logits, clouds, (biases, wset.snow_classes), member_logits)
        done += len(batch)
        if progress is not None:
            progress(done, len(wset.windows))
    return out


def predict_sar_only(wset: WindowSet, models: Sequence[Tuple[object, Optional[np.ndarray]]],
                     device: str = "cpu", logits: Optional[Dict[bool, np.ndarray]] = None,
                     is_cancelled: Optional[Callable[[], bool]] = None) -> List[np.ndarray]:
    """Predicted class indices per cloud-gated network (with its channel map, as in predict_pixels) at the window
    set's pixels with the optical missing everywhere, as the engine maps optical gaps from SAR alone: the optical
    input 0 (no data) and the cloud input 1. Invalid pixels get -1; the window set's `snow_classes` are ruled out
    (the engine maps no snow / ice from SAR alone). With `logits` the first network's logits go into
    `logits[False]` ([N, K], as _run_batch keeps them)."""
    from ....models.cloud import snow_logit_bias

    n = len(wset.pixels)
    preds = [np.full(n, -1, np.int64) for _ in models]
    for batch in _batches(wset.windows):
        stop_if_cancelled(is_cancelled)
        phys = [wset.read(k) for k in batch]
        inputs, biases = [], []
        for o, s, bad in phys:
            on, sn = wset.scene.standardise(np.full_like(o, np.nan), s)
            inputs.append((on, sn, np.ones((1,) + bad.shape, np.float32)))
            biases.append(snow_logit_bias(np.zeros(bad.shape, np.float32)) if wset.snow_classes else None)
        _run_batch(models, inputs, [wset.windows[k] for k in batch], [p[2] for p in phys], preds, device, logits,
                   snow=(biases, wset.snow_classes))
    return preds


def checked_snow_classes(scene: Scene, classes: Sequence) -> List[int]:
    """The user's classes (ClassInfo) the engine's snow check applies to on this scene: those named snow or ice,
    when the optical has the bands of the cloud probability (engine.plan's rule)."""
    from ....models.cloud import checked_snow_classes as checked

    return checked([c.name for c in classes], list(scene.oc.names))


def _snow_possible(scene: Scene, refl: np.ndarray, origin: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """models.cloud.snow_possible of physical optical [C, ...] with its cloud probability, as the engine's reader
    computes both (1 where a value is missing); `origin`: the window's first row and column in the scene."""
    from ....models.cloud import cloud_probability, snow_possible

    names = list(scene.oc.names)
    return snow_possible(refl, names, cloud_probability(refl, names), origin)


def window_snow_possible(scene: Scene, opt_phys: np.ndarray, bad: np.ndarray,
                         origin: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """[h,w] the engine's snow check in a window whose first row and column in the scene are `origin`
    (`_snow_possible` of its physical optical; 1 where the window has no data)."""
    if bad.any():  # no data: no evidence of clear ground, and 1 there (nothing to go by), as in the engine
        opt_phys = np.where(bad, np.float32(np.nan), opt_phys)
    return _snow_possible(scene, opt_phys, origin)


def _snow_channels(cmap: Optional[np.ndarray], snow: Sequence[int]) -> List[int]:
    """A network's channels that are the user's snow / ice classes (its channels are the user's classes, or
    `cmap` maps them)."""
    if cmap is None:
        return list(snow)
    wanted = set(snow)
    return [c for c, u in enumerate(cmap) if u in wanted]


def _batches(windows: Sequence[Cell], max_px: int = 4 * 256 * 256) -> Iterator[List[int]]:
    """Window indices in groups of one shape, at most `max_px` pixels per group."""
    order = sorted(range(len(windows)), key=lambda k: (windows[k].h, windows[k].w, k))
    group: List[int] = []
    for k in order:
        w = windows[k]
        if group and ((windows[group[0]].h, windows[group[0]].w) != (w.h, w.w) or
                      (len(group) + 1) * w.h * w.w > max_px):
            yield group
            group = []
        group.append(k)
    if group:
        yield group


def _run_batch(models, inputs, cells_: Sequence[Cell], bads: Sequence[np.ndarray], preds: List[np.ndarray],
               device: str, logits: Optional[Dict[bool, np.ndarray]] = None, key: bool = False,
               snow: Tuple[Sequence[Optional[np.ndarray]], Sequence[int]] = ((), ()),
               members: Optional[Tuple[Dict[Tuple[int, bool], np.ndarray], Sequence[int]]] = None) -> None:
    """Every network on a stack of same-shape windows; class indices written at the windows' pixels, and with
    `logits` the first network's logits into `logits[key]` ([N, K], NaN until written; made on first use), with
    `members` ((a dict, positions)) those of the networks at these positions into the dict at (position, key).
    `snow`: (per window the snow / ice logits' bias (models.cloud.snow_logit_bias) or None, the user's snow / ice
    classes)."""
    import torch

    with torch.inference_mode():
        ot = torch.from_numpy(np.stack([i[0] for i in inputs])).to(device)
        st = torch.from_numpy(np.stack([i[1] for i in inputs])).to(device)
        ct = None if inputs[0][2] is None else torch.from_numpy(np.stack([i[2] for i in inputs])).to(device)
        mask = np.zeros((len(cells_),) + tuple(ot.shape[2:]), bool)
        for b, cell in enumerate(cells_):
            mask[b, cell.local_rows, cell.local_cols] = True
        sweeps = {id(m._sweep.network): m._sweep for m, _ in models if hasattr(m, "_sweep")}
        for j, (net, cmap) in enumerate(models):
            with _forest_pixels(net, mask):  # a forest walks only the pixels scored (tens of minutes otherwise)
                raw = net(ot, st, cloud=ct)["logits"]
            if id(net) in sweeps:  # the weight sweep's network: handed over, not run again
                sweeps[id(net)].known = ((ot, st, ct), raw.detach().clone())
            lg = raw.float().cpu().numpy()
            channels = _snow_channels(cmap, snow[1])
            for b, bias in enumerate(snow[0]):
                if bias is not None:
                    lg[b, channels] += bias
            store, slot = (logits, key) if j == 0 else (members[0] if members and j in members[1] else None, (j, key))
            kept = None
            if store is not None:
                kept = store.get(slot)
                if kept is None:
                    kept = store[slot] = np.full((len(preds[0]), lg.shape[1]), np.nan, np.float32)
            for b, (cell, bad) in enumerate(zip(cells_, bads)):
                rr, cc = cell.local_rows, cell.local_cols
                ok = ~bad[rr, cc]
                preds[j][cell.index] = np.where(ok, _pick(lg[b][:, rr, cc], cmap), -1)
                if kept is not None:
                    kept[cell.index] = np.where(ok[:, None], lg[b][:, rr, cc].T, np.nan)
        for sweep in sweeps.values():
            sweep.known = None


@contextlib.contextmanager
def _forest_pixels(net, mask: np.ndarray):
    """Within: the random forest inside `net` (a ForestNet, an EnsembleNet's or a WeightSweep member's) computes
    only the pixels of `mask` [B, H, W]."""
    found = (net, getattr(net, "forest", None), getattr(getattr(net, "_sweep", None), "forest", None))
    forest = next((m for m in found if hasattr(m, "pixel_mask")), None)
    if forest is None:
        yield
        return
    forest.pixel_mask = mask
    try:
        yield
    finally:
        forest.pixel_mask = None


def sample_pixels(scene: Scene, pixels: LabelPixels, models: Sequence[Tuple[object, Optional[np.ndarray]]] = (),
                  clouds: bool = False, seed: int = 0, device: str = "cpu", margin: int = MARGIN,
                  is_cancelled: Optional[Callable[[], bool]] = None) -> Tuple[List[np.ndarray], np.ndarray]:
    """Predicted class indices per model and the physical features [N, Co+Cs] at `pixels`, in one condition
    (`predict_pixels` on fitted windows read once; without models only the pixels' bounding boxes are read)."""
    wset = WindowSet(scene, pixels, margin if models else 0, budget_mb=0)
    return predict_pixels(wset, models, (clouds,), seed, device, is_cancelled)[clouds]


#: A prediction of a class the user's labels do not have (the base checkpoint mapping a pixel as another of its
#: classes): an error where scored, unlike -1 (no prediction), which is left out.
ANOTHER_CLASS = -2


def _pick(logits: np.ndarray, cmap: Optional[np.ndarray]) -> np.ndarray:
    """Argmax over all channels, as the engine maps; with `cmap` (channel -> user class, -1 none) the user's class
    of that channel, ANOTHER_CLASS where the channel is none of theirs."""
    if cmap is None:
        return logits.argmax(0)
    mapped = cmap[logits.argmax(0)]
    return np.where(mapped >= 0, mapped, ANOTHER_CLASS)
