"""Spectral cloud / shadow / haze / snow probabilities (models.cloud) on typical spectra and real images."""
import os

import numpy as np
import pytest

from claire.models.cloud import cloud_components, cloud_probability

CARD = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "resources", "data")
#: Typical reflectance spectra in CARD order (Level-1C top of atmosphere unless noted).
SPECTRA = {
    "thick cloud": [0.45, 0.44, 0.43, 0.44, 0.45, 0.45, 0.46, 0.45, 0.33, 0.22],
    "snow": [0.80, 0.78, 0.76, 0.74, 0.72, 0.70, 0.68, 0.66, 0.10, 0.07],
    "water": [0.09, 0.07, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02, 0.01, 0.01],
    "vegetation": [0.09, 0.08, 0.05, 0.10, 0.25, 0.30, 0.33, 0.34, 0.18, 0.09],
    "vegetation L2A": [0.03, 0.06, 0.03, 0.09, 0.27, 0.33, 0.36, 0.37, 0.19, 0.09],
    "white sand": [0.30, 0.35, 0.40, 0.42, 0.43, 0.44, 0.45, 0.46, 0.55, 0.48],
    "cloud shadow": [0.10, 0.07, 0.05, 0.06, 0.08, 0.09, 0.09, 0.10, 0.05, 0.03],
    "haze": [0.26, 0.22, 0.17, 0.20, 0.28, 0.31, 0.33, 0.33, 0.20, 0.11],
}


def _image(name: str, h: int = 4, w: int = 5) -> np.ndarray:
    return np.broadcast_to(np.asarray(SPECTRA[name], np.float32)[:, None, None], (len(CARD), h, w)).copy()


@pytest.mark.parametrize("name,flag", [("thick cloud", "cloud"), ("cloud shadow", "shadow"), ("haze", "haze")])
def test_clouds_shadows_and_haze_are_flagged(name, flag):
    c = cloud_components(_image(name), CARD)
    assert float(c[flag].min()) > 0.8
    assert float(c["probability"].min()) > 0.8


@pytest.mark.parametrize("name", ["snow", "water", "vegetation", "vegetation L2A", "white sand"])
def test_clear_surfaces_are_not_flagged(name):
    assert float(cloud_probability(_image(name), CARD).max()) < 0.2


def test_snow_is_told_apart_from_cloud():
    c = cloud_components(_image("snow"), CARD)
    assert float(c["snow"].min()) > 0.9 and float(c["cloud"].max()) < 0.1
    assert float(cloud_components(_image("thick cloud"), CARD)["snow"].max()) < 0.1


def test_cirrus_band_is_used_when_given():
    bands = CARD[:8] + ["B10"] + CARD[8:]
    veg = _image("vegetation")
    clear = np.concatenate([veg[:8], np.full((1, 4, 5), 0.002, np.float32), veg[8:]])
    cirrus = clear.copy()
    cirrus[8] = 0.04
    assert float(cloud_probability(clear, bands).max()) < 0.2
    assert float(cloud_components(cirrus, bands)["cirrus"].min()) > 0.9


def test_nodata_and_band_order():
    img = _image("thick cloud")
    img[:, 0, 0] = np.nan
    p = cloud_probability(img, CARD)
    assert p[0, 0] == 0.0 and p[1, 1] > 0.8
    order = [4, 0, 1, 2, 3, 5, 6, 7, 8, 9]  # the same spectrum with its bands listed in another order
    assert np.allclose(cloud_probability(img[order], [CARD[i] for i in order]), p)
    with pytest.raises(ValueError, match="B11"):
        cloud_probability(img[:8], CARD[:8])
    with pytest.raises(ValueError, match="band names"):
        cloud_probability(img, CARD[:5])


def _read(path: str, names) -> np.ndarray:
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(path) as ds:
        raw = ds.read().astype(np.float32) / 1e4
    return raw[[names.index(b) for b in CARD]]


def test_real_sen12ms_cr_cloudy_image_is_flagged_and_the_clear_one_is_not():
    l1c = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    name = "ROIs2017_winter_112_p797.tif"
    clear = cloud_probability(_read(os.path.join(ROOT, "sen12ms_cr", "s2_cloudfree", name), l1c), CARD) > 0.5
    cloudy = cloud_probability(_read(os.path.join(ROOT, "sen12ms_cr", "s2_cloudy", name), l1c), CARD) > 0.5
    assert clear.mean() < 0.05
    assert (cloudy & ~clear).mean() > 0.6


def test_real_snow_site_is_snow_not_cloud():
    l2a = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    c = cloud_components(_read(os.path.join(ROOT, "terramesh", "S2L2A", "609U_541L_3_0.tif"), l2a), CARD)
    assert (c["probability"] > 0.5).mean() < 0.02
    assert (c["snow"] > 0.5).mean() > 0.9


def test_missing_bands_names_what_cloud_detection_lacks():
    from claire.models.cloud import missing_bands

    assert missing_bands(CARD) == []
    assert missing_bands(["B02", "B03", "B04", "B8A", "B11"]) == []
    assert missing_bands(["band1", "B03"]) == ["B02", "B04", "B11", "B08 or B8A"]


@pytest.mark.parametrize("bands", [CARD, CARD + ["B10"], [b for b in CARD if b != "B08"]])
def test_the_used_bands_alone_give_the_same_probability(bands):
    """The engine converts only `used_bands` to reflectance: the probability must not change."""
    from claire.models.cloud import used_bands

    rng = np.random.default_rng(3)
    img = (rng.random((len(bands), 16, 16)) * 0.6).astype(np.float32)
    idx = used_bands(bands)
    assert len(idx) < len(bands) and [bands[i] for i in idx if bands[i] not in ("B08", "B8A", "B10")] == \
        ["B02", "B03", "B04", "B11"]
    assert np.array_equal(cloud_probability(img[idx], [bands[i] for i in idx]), cloud_probability(img, bands))


def _near_thresholds(rng: np.random.Generator, bands, shape=(64, 64)) -> np.ndarray:
    """Reflectance with every band at, or a few float32 steps around, the values where a test starts or stops
    counting (where the sparse evaluation decides which pixels to skip), mixed with ordinary values."""
    edges = np.array([0.01, 0.03, 0.06, 0.08, 0.09, 0.10, 0.12, 0.15, 0.16, 0.17, 0.18, 0.20, 0.30], np.float32)
    near = rng.choice(edges, (len(bands),) + shape)
    near = near + rng.integers(-3, 4, near.shape).astype(np.float32) * np.spacing(near)
    mixed = (rng.random((len(bands),) + shape) * 0.5).astype(np.float32)
    return np.where(rng.random(near.shape) < 0.7, near, mixed).astype(np.float32)


@pytest.mark.parametrize("bands", [CARD, CARD + ["B10"]])
def test_the_fast_probability_equals_the_full_computation_bit_for_bit(bands):
    """cloud_probability skips each test where its first factor is 0 (the engine's speed); the values must be
    those of cloud_components, which evaluates every test everywhere: near every threshold, on mostly clear and
    mostly clouded input (the two branches of the sparse evaluation) and on the real images."""
    rng = np.random.default_rng(11)
    images = [_near_thresholds(rng, bands), _near_thresholds(rng, bands) * np.float32(0.5),
              np.concatenate([_near_thresholds(rng, bands), np.repeat(_image("thick cloud", 64, 64)[:, :, :1], 64, 2)
                              if len(bands) == len(CARD) else _near_thresholds(rng, bands) + np.float32(0.3)], 2)]
    clear = np.concatenate([_image("vegetation", 64, 64), _image("water", 64, 64)], 2)
    clear[:, ::9, ::7] = _image("thick cloud", 1, 1)  # a few cloud pixels on clear land: the sparse branch
    clear[:, 3::11, ::5] = _image("haze", 1, 1)
    if len(bands) > len(CARD):
        clear = np.concatenate([clear, np.full((1,) + clear.shape[1:], 0.002, np.float32)])
        clear[-1, ::13, ::3] = 0.02
    images.append(clear)
    if len(bands) == len(CARD):
        images += [_image(name, 8, 8) for name in SPECTRA]
        import rasterio

        for name in ("s2_cloudfree", "s2_cloudy"):
            folder = os.path.join(ROOT, "sen12ms_cr", name)
            path = os.path.join(folder, sorted(os.listdir(folder))[0])
            with rasterio.open(path) as ds:
                raw = ds.read().astype(np.float32) * np.float32(1e-4)
            images.append(raw[[1, 2, 3, 4, 5, 6, 7, 8, 11, 12]])  # Level-1C B01..B12 -> CARD
    for img in images:
        fast = cloud_probability(img, bands)
        full = cloud_components(img, bands)["probability"]
        assert fast.dtype == np.float32 and fast.tobytes() == full.tobytes()
    assert 0 < (cloud_probability(clear, bands) > 0).mean() < 0.5  # the sparse branch is taken
