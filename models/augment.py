"""Training augmentation on physical-unit arrays: shared geometry, synthetic clouds/haze, optical gain /
offset jitter, SAR speckle.

Arrays are numpy [C,H,W] (optical reflectance in [0,1], SAR in dB) and label [H,W]; every function
takes a `numpy.random.Generator` so runs are reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np


@dataclass
class AugmentConfig:
    """Probabilities and strengths of each augmentation."""

    flip: bool = True
    rot90: bool = True
    p_cloud: float = 0.35
    p_haze: float = 0.2
    p_blind: float = 0.05        # optical fully covered (thick cloud over the whole crop)
    p_speckle: float = 0.5
    speckle_looks: Tuple[float, float] = (3.0, 12.0)
    p_radiometric: float = 0.5   # per-band gain and offset jitter of the optical reflectance
    gain: float = 0.08           # gain drawn in 1 +- gain (one draw per crop, +-1/4 of it per band)
    offset: float = 0.02         # offset drawn in +-offset reflectance (the same for every band)
    p_baseline_offset: float = 0.1   # +0.1 on every band: an ESA baseline-04.00 offset nobody declared


def geometric(opt: np.ndarray, sar: np.ndarray, lbl: np.ndarray, rng: np.random.Generator):
    """The same random flips / 90-degree rotation applied to both modalities and the label."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))

    def tf(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k, axes=(-2, -1))
        if flip:
            a = a[..., ::-1]
        return np.ascontiguousarray(a)

    return tf(opt), tf(sar), tf(lbl)


def smooth_field(h: int, w: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Fractal-like smooth noise in [0,1] (sum of bilinearly upsampled random grids)."""
    out = np.zeros((h, w), dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = 2 ** (o + 1) + 1
        grid = rng.random((n, n)).astype(np.float32)
        ys = np.linspace(0, n - 1, h)
        xs = np.linspace(0, n - 1, w)
        y0 = np.floor(ys).astype(int).clip(0, n - 2)
        x0 = np.floor(xs).astype(int).clip(0, n - 2)
        fy = (ys - y0)[:, None]
        fx = (xs - x0)[None, :]
        g00 = grid[y0][:, x0]
        g01 = grid[y0][:, x0 + 1]
        g10 = grid[y0 + 1][:, x0]
        g11 = grid[y0 + 1][:, x0 + 1]
        out += amp * ((1 - fy) * ((1 - fx) * g00 + fx * g01) + fy * ((1 - fx) * g10 + fx * g11))
        total += amp
        amp *= 0.5
    out /= total
    return (out - out.min()) / max(float(out.max() - out.min()), 1e-6)


def synthetic_clouds(opt: np.ndarray, rng: np.random.Generator, coverage: Optional[float] = None) -> np.ndarray:
    """Blend bright, spectrally flat clouds into reflectance `opt` with a soft random mask."""
    c, h, w = opt.shape
    if coverage is None:
        coverage = float(rng.uniform(0.2, 0.9))
    field = smooth_field(h, w, rng)
    if coverage >= 1.0:
        alpha = np.full((h, w), float(rng.uniform(0.9, 1.0)), dtype=np.float32)
    else:
        # in float64 under NumPy 1 and 2 alike (NumPy 2 keeps a float32 quantile in float32)
        thr = float(np.quantile(field.astype(np.float64), 1.0 - coverage))
        alpha = np.clip((field - thr) / 0.15, 0.0, 1.0) * float(rng.uniform(0.7, 1.0))
    brightness = float(rng.uniform(0.35, 0.8))
    cloud = brightness * np.linspace(1.05, 0.8, c, dtype=np.float32)[:, None, None]
    return (opt * (1 - alpha) + cloud * alpha).astype(np.float32)


def haze(opt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thin haze: a smooth, partly transparent bright veil, stronger in the visible bands."""
    c, h, w = opt.shape
    strength = float(rng.uniform(0.15, 0.5))
    field = 0.5 + 0.5 * smooth_field(h, w, rng, octaves=2)
    alpha = strength * field
    veil = float(rng.uniform(0.2, 0.4)) * np.linspace(1.0, 0.5, c, dtype=np.float32)[:, None, None]
    return (opt * (1 - alpha) + veil * alpha).astype(np.float32)


def radiometric_jitter(opt: np.ndarray, rng: np.random.Generator, gain: float, offset: float,
                       p_baseline_offset: float = 0.0) -> np.ndarray:
    """Calibration / atmosphere / processing-level differences: x * (gain per band) + offset, and with
    probability `p_baseline_offset` the +0.1 reflectance of a Sentinel-2 baseline-04.00 offset left in."""
    c = opt.shape[0]
    g = 1.0 + rng.uniform(-gain, gain) + rng.uniform(-gain / 4, gain / 4, size=c)
    add = rng.uniform(-offset, offset)
    if rng.random() < p_baseline_offset:
        add += 0.1
    return (opt * g.astype(np.float32)[:, None, None] + np.float32(add)).astype(np.float32)


def speckle_db(sar_db: np.ndarray, rng: np.random.Generator, looks: float) -> np.ndarray:
    """Multiplicative Gamma speckle (mean 1, L looks) applied in linear power, returned in dB."""
    noise = rng.gamma(shape=looks, scale=1.0 / looks, size=sar_db.shape[-2:]).astype(np.float32)
    return (sar_db + 10.0 * np.log10(np.maximum(noise, 1e-6))[None]).astype(np.float32)


def speckle_amplitude(sar: np.ndarray, rng: np.random.Generator, looks: float) -> np.ndarray:
    """Speckle on amplitude-like (non-dB) SAR: multiply by the square root of Gamma(L, 1/L) noise."""
    noise = rng.gamma(shape=looks, scale=1.0 / looks, size=sar.shape[-2:]).astype(np.float32)
    return (sar * np.sqrt(noise)[None]).astype(np.float32)


def augment_sample(opt: np.ndarray, sar: np.ndarray, lbl: np.ndarray, rng: np.random.Generator,
                   cfg: AugmentConfig, sar_is_db: bool = True):
    """Apply the configured augmentations; returns (opt, sar, lbl)."""
    if cfg.flip or cfg.rot90:
        opt, sar, lbl = geometric(opt, sar, lbl, rng)
    r = rng.random()
    if r < cfg.p_blind:
        opt = synthetic_clouds(opt, rng, coverage=1.0)
    elif r < cfg.p_blind + cfg.p_cloud:
        opt = synthetic_clouds(opt, rng)
    elif r < cfg.p_blind + cfg.p_cloud + cfg.p_haze:
        opt = haze(opt, rng)
    if rng.random() < cfg.p_radiometric:
        opt = radiometric_jitter(opt, rng, cfg.gain, cfg.offset, cfg.p_baseline_offset)
    if rng.random() < cfg.p_speckle:
        looks = float(rng.uniform(*cfg.speckle_looks))
        sar = speckle_db(sar, rng, looks) if sar_is_db else speckle_amplitude(sar, rng, looks)
    return opt, sar, lbl
