"""Test helpers shared by every test room (importable: tests/conftest.py puts tests/ on sys.path)."""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

L2A_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
CARD_OPTICAL = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
TINY_CLASSES = [
    {"index": 0, "value": 1, "name": "water", "color": "#419bdf"},
    {"index": 1, "value": 2, "name": "trees", "color": "#397d49"},
    {"index": 2, "value": 4, "name": "crops", "color": "#e49635"},
    {"index": 3, "value": 5, "name": "built area", "color": "#c4281b"},
]


def write_raster(path, data: np.ndarray, crs: Optional[str] = "EPSG:32631", origin=(500000.0, 4600000.0),
                 res: float = 10.0, nodata: Optional[float] = None, descriptions: Optional[Sequence[str]] = None,
                 transform=None, tags: Optional[dict] = None) -> str:
    """Write a (bands, rows, cols) or (rows, cols) array as a north-up GeoTIFF.

    `crs=None` writes a raster without CRS or transform; `transform` overrides origin/res.
    """
    import rasterio
    from rasterio.transform import from_origin

    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype.name)
    if crs is not None:
        profile.update(crs=crs, transform=transform or from_origin(origin[0], origin[1], res, res))
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning for crs=None
        with rasterio.open(str(path), "w", **profile) as dst:
            dst.write(data)
            for i, desc in enumerate(descriptions or []):
                dst.set_band_description(i + 1, desc)
            if tags:
                dst.update_tags(**tags)
    return str(path)


def synthetic_scene(rows: int, cols: int, seed: int = 0):
    """A scene with water (left), fields and a town, as 12-band L2A reflectance x10000 + VV/VH dB + labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    labels = np.full((rows, cols), 4, np.uint8)
    labels[xx < cols // 3] = 1
    labels[(yy > rows // 2) & (xx > 2 * cols // 3)] = 5
    refl = {1: [600, 500, 400, 300, 250, 200, 150, 150, 120, 100, 50, 30],
            4: [900, 800, 900, 700, 1200, 2500, 3000, 3300, 3400, 3500, 2200, 1400],
            5: [1500, 1600, 1700, 1800, 1900, 2000, 2100, 2200, 2300, 2400, 2600, 2500]}
    sar_db = {1: (-22.0, -28.0), 4: (-11.0, -17.0), 5: (-4.0, -10.0)}
    optical = np.zeros((12, rows, cols), np.int16)
    sar = np.zeros((2, rows, cols), np.float32)
    for value, spectrum in refl.items():
        mask = labels == value
        for b, v in enumerate(spectrum):
            optical[b][mask] = np.clip(v + rng.normal(0, 40, mask.sum()), 1, 10000).astype(np.int16)
        for b, v in enumerate(sar_db[value]):
            sar[b][mask] = v + rng.normal(0, 1.0, mask.sum())
    return optical, sar, labels


def tiny_card(classes=None, colors: bool = True, tile_size: int = 64, overlap: int = 16) -> dict:
    """A complete model card for a tiny CLAIRE network (10 S2 bands + VV/VH dB)."""
    classes = [dict(c) for c in (classes or TINY_CLASSES)]
    if not colors:
        for c in classes:
            c.pop("color", None)
    config = {"num_classes": len(classes), "optical_channels": len(CARD_OPTICAL), "sar_channels": 2, "size": "tiny"}
    return {
        "format": "claire-checkpoint/1", "arch": "claire", "size": "tiny", "config": config,
        "classes": classes, "nodata": 0,
        "inputs": {
            "optical": {"bands": CARD_OPTICAL, "sensor": "Sentinel-2", "units": "reflectance", "scale": 1e-4,
                        "offset": 0.0, "clip": [0.0, 1.0], "mean": [0.15] * 10, "std": [0.1] * 10},
            "sar": {"bands": ["VV", "VH"], "sensor": "Sentinel-1", "units": "dB", "scale": 1.0, "offset": 0.0,
                    "clip": [-40.0, 5.0], "mean": [-12.0, -18.0], "std": [5.0, 5.0]},
        },
        "tile_size": tile_size, "overlap": overlap, "training": {"data": "none (random weights, test fixture)"},
        "metrics": {},
    }


def make_tiny_checkpoint(path, classes=None, colors: bool = True, seed: int = 0) -> str:
    """Save a randomly initialised tiny CLAIRE network with a complete model card."""
    import torch

    from claire.models.checkpoint import save_checkpoint
    from claire.models.registry import build_model

    torch.manual_seed(seed)
    card = tiny_card(classes, colors)
    save_checkpoint(str(path), build_model("claire", card["config"]), card)
    return str(path)
