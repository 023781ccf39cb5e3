"""Per-pixel cloud, cirrus, haze, cloud-shadow and snow probabilities from optical reflectance.

Pure numpy, physically based spectral tests in the spirit of Fmask (Zhu & Woodcock 2012) and ESA's
Sen2Cor scene classification, with soft ramps instead of hard thresholds so that the result is a
probability-like score in [0, 1]. It runs on top-of-atmosphere (Level-1C) and bottom-of-atmosphere
(Level-2A) reflectance alike (thresholds sit where both levels agree) and is what training and inference
both call, so that the model sees one definition of "cloud".

Tests (b, g, r, n, s1 = B02, B03, B04, B08, B11 reflectance; B10 cirrus used when given):
- thick cloud: bright in the visible (min(b, g, r)), white (visible bands flat: Fmask's whiteness),
  blue in excess of red (Fmask's haze-optimised transform HOT = b - 0.5 r), bright in SWIR, not sand
  (blue below red and SWIR above NIR) and not snow;
- snow / ice: NDSI = (g - s1) / (g + s1) high with a bright NIR: removed from the cloud score;
- cirrus: B10 (1.375 um water-vapour absorption band) reflectance above the clear-sky level;
- haze: HOT above the clear-land level while not bright enough for thick cloud;
- cloud shadow: dark NIR and SWIR with blue as bright as NIR (lit by diffuse sky light only), not water
  (NDWI = (g - n) / (g + n) low). Spectral only: topographic shadow looks the same, and Level-2A
  shadows (path radiance removed) are found less often than Level-1C ones.

The snow check (`snow_possible`, `rule_out_snow`): a class named snow or ice is ruled out where the clear optical
shows no snow cover (NDSI at or below 0; Salomonson & Appel 2004's linear fit gives about 0 % snow cover there,
28 % at 0.2, 50 % at 0.35) or dark water (NIR at or below 0.03), whatever the network says. Under a thick cloud
the optical cannot see the ground, so snow stays possible there only where the clear pixels around it show snow
(`snow_nearby`, 64-71 px); the engine maps no snow from SAR alone.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Bands the tests need; B08 may be replaced by B8A, B10 is optional.
REQUIRED = ("B02", "B03", "B04", "B11")
_EPS = 1e-6


def missing_bands(bands: Sequence[str]) -> list:
    """The bands cloud detection needs that `bands` lacks (empty: it can run)."""
    upper = {str(x).upper() for x in bands}
    out = [b for b in REQUIRED if b not in upper]
    if not upper & {"B08", "B8A"}:
        out.append("B08 or B8A")
    return out


def used_bands(bands: Sequence[str]) -> List[int]:
    """Indices into `bands` of the bands the tests read (B02, B03, B04, B08 or else B8A, B11, and B10 when
    given), in the order of `bands`: a caller may convert only these to reflectance."""
    upper = [str(x).upper() for x in bands]
    nir = "B08" if "B08" in upper else "B8A"
    return [i for i, x in enumerate(upper) if x in (*REQUIRED, nir, "B10")]


def ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below `lo`, 1 above `hi`, linear between (float32)."""
    out = np.subtract(x, lo, dtype=np.float32)
    out /= np.float32(hi - lo)
    np.minimum(out, np.float32(1.0), out=out)  # not np.clip: the same values (NaN stays NaN), several x faster
    return np.maximum(out, np.float32(0.0), out=out)


def _band(refl: np.ndarray, names: Sequence[str], *wanted: str) -> np.ndarray:
    upper = [str(n).upper() for n in names]
    for w in wanted:
        if w in upper:
            return np.asarray(refl[upper.index(w)], dtype=np.float32)
    raise ValueError(f"cloud detection needs band {' or '.join(wanted)}; the optical input has {list(names)}. "
                     f"Give an optical raster with at least {list(REQUIRED)} and B08 or B8A")


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a / np.maximum(b, _EPS)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / np.maximum(a + b, _EPS)


def snow_probability(g: np.ndarray, n: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """Snow / ice: NDSI (B03, B11) well above 0.4 and a bright NIR (not water)."""
    return ramp(_nd(g, s1), 0.3, 0.5) * ramp(n, 0.08, 0.15)


def thick_cloud_probability(b: np.ndarray, g: np.ndarray, r: np.ndarray, n: np.ndarray,
                            s1: np.ndarray) -> np.ndarray:
    """Bright, white, blue-excess, SWIR-bright pixels; bright sand and rock (blue below red, SWIR above
    NIR) are not cloud. Snow is taken out by the caller."""
    vis = (b + g + r) / 3.0
    whiteness = (np.abs(b - vis) + np.abs(g - vis) + np.abs(r - vis)) / np.maximum(vis, _EPS)
    bright = ramp(np.minimum(np.minimum(b, g), r), 0.17, 0.30)
    white = 1.0 - ramp(whiteness, 0.35, 0.7)
    hot = ramp(b - 0.5 * r, 0.06, 0.12)
    swir = ramp(s1, 0.10, 0.20)
    not_sand = ramp(_ratio(b, r), 0.8, 0.92) * ramp(_ratio(n, s1), 0.8, 0.95)
    return bright * white * hot * swir * not_sand


def haze_probability(b: np.ndarray, r: np.ndarray, n: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Thin cloud / haze: blue well in excess of red (HOT) over land, i.e. not water."""
    not_water = 1.0 - ramp(_nd(g, n), 0.1, 0.3)
    return ramp(b - 0.5 * r, 0.10, 0.18) * not_water


def shadow_probability(b: np.ndarray, g: np.ndarray, n: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """Cloud shadow: dark NIR and SWIR lit by blue sky light (blue as bright as NIR), not water."""
    dark = (1.0 - ramp(n, 0.09, 0.16)) * (1.0 - ramp(s1, 0.07, 0.12))
    sky_lit = ramp(_ratio(b, n), 0.8, 1.0)
    not_water = 1.0 - ramp(_nd(g, n), 0.05, 0.25)
    return dark * sky_lit * not_water


def _sparse(mask: np.ndarray, fn: Callable[..., np.ndarray], arrays: Sequence[np.ndarray]) -> np.ndarray:
    """fn(*arrays) evaluated only at the pixels of `mask` (elementwise: the same values there), 0 elsewhere; where
    most pixels are in `mask`, evaluated everywhere."""
    idx = np.flatnonzero(mask)
    if idx.size * 2 > mask.size:
        return np.asarray(fn(*arrays), np.float32)
    out = np.zeros(mask.shape, np.float32)
    if idx.size:
        out.flat[idx] = fn(*(a.flat[idx] for a in arrays))
    return out


#: How far outside a ramp's zero side a pixel is still evaluated by `_probability_sparse` (float32 rounding).
_SLACK = np.float32(1e-4)


def _probability_sparse(b, g, r, n, s1, cirrus_band) -> np.ndarray:
    """cloud_components' 'probability' for finite inputs, each test evaluated only where its first factor can be
    above 0 (clear land is not bright, not hazy and not dark, so on most windows few pixels are): the same values,
    since every factor lies in [0, 1]."""
    def thick(b, g, r, n, s1):
        return thick_cloud_probability(b, g, r, n, s1) * (1.0 - snow_probability(g, n, s1))

    def haze(b, r, n, g, s1):
        return haze_probability(b, r, n, g) * (1.0 - snow_probability(g, n, s1))

    lo = np.float32(0.17) - _SLACK  # thick: min(b, g, r) above 0.17
    parts = [_sparse((b > lo) & (g > lo) & (r > lo), thick, (b, g, r, n, s1)),
             _sparse(b - 0.5 * r > np.float32(0.10) - _SLACK, haze, (b, r, n, g, s1)),  # haze: HOT above 0.10
             _sparse((n < np.float32(0.16) + _SLACK) & (s1 < np.float32(0.12) + _SLACK),  # shadow: dark NIR, SWIR
                     shadow_probability, (b, g, n, s1))]
    if cirrus_band is not None:
        parts.append(_sparse(cirrus_band > np.float32(0.01) - _SLACK, lambda c: ramp(c, 0.01, 0.03), (cirrus_band,)))
    return np.maximum.reduce(parts)


def cloud_components(refl: np.ndarray, bands: Sequence[str], only_probability: bool = False) -> Dict[str, np.ndarray]:
    """Per-pixel probabilities [H,W] float32: 'cloud' (thick), 'cirrus', 'haze', 'shadow', 'snow', and
    'probability' = the largest of cloud, cirrus, haze and shadow: how far the optical input is not to
    be trusted. `refl` [C,H,W] is reflectance (0..1, Level-1C or Level-2A, any ESA offset already
    applied), `bands` its band names (e.g. the card's B02 ... B12). NaN (nodata) gives 0."""
    refl = np.asarray(refl, dtype=np.float32)
    if refl.ndim != 3 or refl.shape[0] != len(bands):
        raise ValueError(f"cloud detection needs reflectance [C,H,W] with one name per band; got shape "
                         f"{refl.shape} and {len(bands)} band names")
    b, g, r = (_band(refl, bands, x) for x in ("B02", "B03", "B04"))
    n = _band(refl, bands, "B08", "B8A")
    s1 = _band(refl, bands, "B11")
    upper = [str(x).upper() for x in bands]
    if only_probability and all(bool(np.isfinite(a).all()) for a in (b, g, r, n, s1)):
        cirrus_band = _band(refl, bands, "B10") if "B10" in upper else None
        if cirrus_band is None or bool(np.isfinite(cirrus_band).all()):
            return {"probability": _probability_sparse(b, g, r, n, s1, cirrus_band)}
    snow = snow_probability(g, n, s1)
    out = {"snow": snow,
           "cloud": thick_cloud_probability(b, g, r, n, s1) * (1.0 - snow),
           "haze": haze_probability(b, r, n, g) * (1.0 - snow),
           "shadow": shadow_probability(b, g, n, s1)}
    out["cirrus"] = (ramp(_band(refl, bands, "B10"), 0.01, 0.03) if "B10" in upper
                     else np.zeros_like(b))
    prob = np.maximum.reduce([out["cloud"], out["cirrus"], out["haze"], out["shadow"]])
    if only_probability:
        return {"probability": np.nan_to_num(prob, copy=False, nan=0.0).astype(np.float32, copy=False)}
    out["probability"] = prob
    return {k: np.nan_to_num(v, nan=0.0).astype(np.float32) for k, v in out.items()}


def cloud_probability(refl: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """[H,W] float32 in [0,1]: probability that the optical pixel is cloud, cirrus, haze or cloud shadow
    (cloud_components' 'probability', without building the other outputs, each test evaluated only where it can
    count: the same values; the engine calls it per chunk)."""
    return cloud_components(refl, bands, only_probability=True)["probability"]


#: Words that make a class a snow / ice class (whole words of its name: "rice" is not "ice", and "Snowmelt pond",
#: "Snowbed vegetation" or "Snowberry shrubland" are no snow).
SNOW_WORDS = frozenset({"snow", "snows", "snowfield", "snowfields", "snowpack", "snowpacks", "snowcover",
                        "ice", "ices", "icefield", "icefields", "icecap", "icecaps", "icesheet", "icesheets",
                        "glacier", "glaciers", "firn", "névé", "neve"})
#: NDSI at or below which snow is ruled out, and from which it is left to the model (linear between).
SNOW_NDSI = (0.0, 0.2)
#: Near-infrared reflectance below which snow is ruled out, and from which it is left to the model (linear
#: between): snow and ice are bright in the NIR (the bundled snow site's 1st percentile 0.15), calm water dark
#: (median 0.026 on the bundled coast), and water's NDSI is high like snow's.
SNOW_NIR = (0.03, 0.06)
#: Cloud probability from which snow is ruled out too, linearly to all of it (thick cloud): there the optical sees
#: little or no ground, a thick cloud's own NDSI passes the snow test, and C-band backscatter does not tell snow (dry
#: snow is transparent to it, wet snow as dark as calm water), as in the optical gaps classified from SAR alone; haze
#: over snow below it is left to the optical.
SNOW_CLOUD = (0.5, 0.9)
#: Under thick cloud snow stays possible where the clear pixels nearby show snow: those of the SNOW_NEAR_BLOCKS
#: blocks of SNOW_BLOCK px on each side of the pixel's block (blocks on the image's grid, 64-71 px around the pixel):
#: within the engine's default context (128 px), so the map does not depend on the tile.
SNOW_BLOCK = 8
SNOW_NEAR_BLOCKS = 8
#: The share of those clear pixels that must allow snow: from the first none of the cloud's snow stays, from the
#: second all of it (linear between); with fewer clear pixels than SNOW_NEAR_CLEAR of the neighbourhood, none.
SNOW_NEAR_SHARE = (0.2, 0.5)
SNOW_NEAR_CLEAR = 0.05


def is_snow_name(name: str) -> bool:
    """Whether a class called `name` is snow or ice (a word of SNOW_WORDS): the snow check and the explanation's
    radar cue decide it alike."""
    return any(w in SNOW_WORDS for w in re.findall(r"[^\W\d_]+", str(name).lower()))


def snow_classes(names: Sequence[str]) -> List[int]:
    """Indices of the classes whose name says snow or ice (`is_snow_name`)."""
    return [i for i, n in enumerate(names) if is_snow_name(n)]


def checked_snow_classes(names: Sequence[str], bands: Sequence[str]) -> List[int]:
    """The classes the snow check applies to: those named snow or ice (`snow_classes`), when the optical bands
    `bands` are those of the cloud probability (else none)."""
    return [] if missing_bands(bands) else snow_classes(names)


def snow_possible(refl: np.ndarray, bands: Sequence[str], cloud: Optional[np.ndarray] = None,
                  origin: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """[H,W] float32 in [0,1]: how far the optical allows snow or ice at each pixel: 0 where NDSI (B03, B11) is
    at or below SNOW_NDSI[0] or the NIR (B08 or B8A) at or below SNOW_NIR[0] (dark water), 1 from SNOW_NDSI[1]
    and SNOW_NIR[1]; under thick cloud (`cloud` from SNOW_CLOUD[0] to [1]) falling to 0, as the optical sees little
    ground there and SAR cannot tell snow, unless the clear pixels around show snow (snow_nearby: a snowfield under
    a cloud; [H,W] images only, not pixel lists; `origin`: the image's first row and column, which snow_nearby's
    blocks are aligned to); 1 where the optical is NaN (nothing to go by: the engine sets the
    gaps it fills from SAR to 0)."""
    g, s1, n = _band(refl, bands, "B03"), _band(refl, bands, "B11"), _band(refl, bands, "B08", "B8A")
    f = ramp(_nd(g, s1), *SNOW_NDSI)
    f *= ramp(n, *SNOW_NIR)
    if cloud is not None:
        cloud = np.asarray(cloud, np.float32)
        thick = ramp(cloud, *SNOW_CLOUD)
        if f.ndim == 2 and min(f.shape) > 1 and bool(((thick > 0) & (f > 0)).any()):
            near, heights, widths = _snow_nearby_blocks(f, cloud, origin)
            _times_blocks(thick, np.float32(1.0) - near, heights, widths)
        f *= np.float32(1.0) - thick
    return np.nan_to_num(f, copy=False, nan=1.0)


def _window_sums(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Sums of `a` over the 2r+1 positions around each index along `axis`, cut at the array's ends."""
    n = a.shape[axis]
    c = np.cumsum(a, axis=axis, dtype=np.float64)  # float64: the same sums from any window's first block
    c = np.concatenate([np.zeros_like(c.take([0], axis=axis)), c], axis=axis)
    idx = np.arange(n)
    return c.take(np.minimum(idx + r + 1, n), axis=axis) - c.take(np.maximum(idx - r, 0), axis=axis)


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of `a` [H,W] over the (2r+1)^2 square around each pixel, cut at the array's edges (float64)."""
    return _window_sums(_window_sums(a, r, 0), r, 1)


def _block_starts(origin: int, n: int) -> np.ndarray:
    """First index of each SNOW_BLOCK px block of the image's grid along an axis of `n` px starting at `origin`."""
    return np.concatenate([[0], np.arange((-origin) % SNOW_BLOCK or SNOW_BLOCK, n, SNOW_BLOCK)])


def _block_sums(a: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sums of `a` [H,W] over the blocks starting at `rows` x `cols` (the blocks at the array's edges cut)."""
    return np.add.reduceat(np.add.reduceat(a, rows, axis=0, dtype=np.float32), cols, axis=1)


def snow_nearby(possible: np.ndarray, cloud: np.ndarray, origin: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """[H,W] float32 in [0,1]: how far the clear pixels (cloud probability below SNOW_CLOUD[0], with data) of the
    blocks around each pixel's (SNOW_NEAR_BLOCKS of SNOW_BLOCK px on each side, on the image's grid: `origin` is the
    array's first row and column in the image) allow snow (`possible`, the optical's own test), by SNOW_NEAR_SHARE;
    0 where fewer than SNOW_NEAR_CLEAR of those pixels is clear."""
    near, heights, widths = _snow_nearby_blocks(possible, cloud, origin)
    return np.repeat(np.repeat(near, heights, axis=0), widths, axis=1)


def _snow_nearby_blocks(possible: np.ndarray, cloud: np.ndarray, origin: Tuple[int, int]
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """snow_nearby per block: (its value of each block [rows, columns], the blocks' heights, their widths)."""
    h, w = possible.shape
    rows, cols = _block_starts(origin[0], h), _block_starts(origin[1], w)
    heights, widths = np.diff(np.append(rows, h)), np.diff(np.append(cols, w))  # pixels of each block row, column
    clear = ((cloud < SNOW_CLOUD[0]) & np.isfinite(possible)).astype(np.float32)
    r = SNOW_NEAR_BLOCKS
    seen = _box_sum(_block_sums(np.fmax(possible * clear, np.float32(0.0)), rows, cols), r)  # fmax: NaN x 0 -> 0
    count = _box_sum(_block_sums(clear, rows, cols), r)
    area = np.outer(_window_sums(heights, r, 0), _window_sums(widths, r, 0))
    near = ramp(seen / np.maximum(count, np.float32(1.0)), *SNOW_NEAR_SHARE)
    near[count < np.float32(SNOW_NEAR_CLEAR) * area] = 0.0
    return near, heights, widths


def _times_blocks(a: np.ndarray, scale: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> None:
    """a [H,W] *= `scale` [rows, columns] spread over blocks of `heights` x `widths` px, in place, a block row at a
    time (no full-size copy of `scale`: the same products as multiplying by it repeated)."""
    per_row = np.repeat(scale, widths, axis=1)
    top = 0
    for i, height in enumerate(heights):
        a[top:top + height] *= per_row[i]
        top += height


def rule_out_snow(prob: np.ndarray, classes: Sequence[int], possible: np.ndarray) -> np.ndarray:
    """Scale the probabilities [K,H,W] of the snow / ice `classes` by `possible` [H,W] in place; returns the sum
    of the K probabilities after it ([H,W]: divide by it to renormalise; the argmax needs no division)."""
    total = np.ones(possible.shape, np.float32)
    for k in classes:
        total -= prob[k] * (np.float32(1.0) - possible)
        prob[k] *= possible
    return total


def snow_logit_bias(possible: np.ndarray) -> np.ndarray:
    """What `rule_out_snow` does, for logits: the amount to add to each snow / ice class's logit (log of
    `possible`, floored where it is 0)."""
    return np.log(np.maximum(possible, np.float32(1e-12)), dtype=np.float32)


def check_snow(prob: np.ndarray, refl: np.ndarray, bands: Sequence[str], names: Sequence[str],
               cloud: Optional[np.ndarray] = None) -> np.ndarray:
    """The engine's snow check on whole arrays (the evaluation path): class probabilities [K,H,W] of the classes
    `names`, renormalised in place where snow_possible over `refl` [C,H,W] (band names `bands`) with the cloud
    probability `cloud` ([H,W]; computed when None) rules snow / ice out. Unchanged without such a class or
    without the bands of the cloud probability."""
    classes = checked_snow_classes(names, bands)
    if not classes:
        return prob
    if cloud is None:
        cloud = cloud_probability(refl, bands)
    prob /= rule_out_snow(prob, classes, snow_possible(refl, bands, cloud))
    return prob
