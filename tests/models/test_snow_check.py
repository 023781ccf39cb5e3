"""The snow check (models.cloud.snow_possible and friends): snow / ice is ruled out where the clear optical shows no
snow cover, under thick cloud unless clear snow lies around it, left to the model where the optical has no data (the
engine's reader rules it out where the map comes from SAR alone), and never touched on real snow."""
import os

import numpy as np
import pytest
import torch

from claire.models.cloud import SNOW_NDSI, check_snow, rule_out_snow, snow_classes, snow_logit_bias, snow_possible
from claire.tests.models.test_cloud import CARD, ROOT, SPECTRA, _image, _read

NAMES = ["water", "trees", "snow/ice", "crops"]


@pytest.mark.parametrize("names,found", [
    (NAMES, [2]), (["Snow", "Glacier", "rice paddies", "sea ice", "Ice"], [0, 1, 3, 4]),
    (["water", "price", "icelandic moss"], []), (["firn", "juice"], [0]),
    (["Snowfield", "Perennial snowpack", "Ices", "glaciers", "Névé", "police"], [0, 1, 2, 3, 4]),
    (["neve", "Icecaps", "icesheet", "snowcover", "snows"], [0, 1, 2, 3, 4]),
    (["Snowmelt pond", "Snowbed vegetation", "Snowberry shrubland", "Icelandic moss"], []),  # review: no snow
])
def test_snow_classes_are_found_by_whole_words(names, found):
    assert snow_classes(names) == found


@pytest.mark.parametrize("name", ["Snowfield", "Perennial snowpack", "Ices", "firn", "glaciers", "rice", "water",
                                  "Iceland moss"])
def test_the_snow_check_and_the_explanations_radar_cue_agree_on_snow(name):
    """QA round 20: "Snowfield" got the explanation's snow cue and no snow check, "firn" the other way round."""
    from claire.claire_plugin.core.explain.template import _sar_cue

    assert (_sar_cue(name) == "wet and dry snow change the radar backscatter strongly") == bool(snow_classes([name]))


def _ndsi_image(ndsi: np.ndarray) -> np.ndarray:
    """A CARD-band image whose B03 / B11 give `ndsi` ([H,W]), B08 bright."""
    img = np.full((len(CARD),) + ndsi.shape, 0.3, np.float32)
    g = 0.4
    img[CARD.index("B03")] = g
    img[CARD.index("B11")] = g * (1 - ndsi) / (1 + ndsi)
    return img


def test_ruled_out_below_the_first_ndsi_left_above_the_second():
    ndsi = np.array([[-0.5, 0.0, 0.1, 0.2, 0.6]], np.float32)
    p = snow_possible(_ndsi_image(ndsi), CARD)
    assert SNOW_NDSI == (0.0, 0.2)
    np.testing.assert_allclose(p[0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-5)


def test_missing_optical_leaves_snow_to_the_model_and_thick_cloud_rules_it_out():
    """Under thick cloud the fusion decides from SAR, which cannot tell snow (QA, SAR reviewer: 1900 px of snow
    under the SEN12MS-CR cloud, 936 of them built area on the clear day); haze over snow stays snow. Amid clear
    ground that shows no snow (here vegetation) the cloud's snow goes."""
    ndsi = np.full((1, 3), -0.5, np.float32)
    img = _ndsi_image(ndsi)
    img[:, 0, 2] = np.nan
    p = snow_possible(img, CARD, cloud=np.array([[0.0, 0.7, 0.0]], np.float32))
    np.testing.assert_allclose(p[0], [0.0, 0.0, 1.0])
    scene = _image("vegetation", 20, 20)
    scene[:, 0, :3] = _image("snow", 1, 3)[:, 0]  # snow seen through the cloud's edge, or a thick cloud's own NDSI
    cloud = np.zeros(scene.shape[1:], np.float32)
    cloud[0, :3] = (0.4, 0.7, 0.95)
    q = snow_possible(scene, CARD, cloud=cloud)[0]
    np.testing.assert_allclose(q[:3], [1.0, 0.5, 0.0], atol=1e-6)


def test_snow_under_a_cloud_stays_where_the_clear_ground_around_shows_snow():
    """QA (the documents' numbers): the thick-cloud rule turned two thirds of the all-snow site's snow under synthetic
    clouds into water and rangeland (OA 0.61). A snowfield under a cloud keeps its snow when the clear pixels around
    (SNOW_NEAR_BLOCKS blocks of SNOW_BLOCK px on each side) show snow, by their share; a cloud with almost no clear
    pixel around still loses it."""
    from claire.models.cloud import SNOW_BLOCK, SNOW_NEAR_BLOCKS, SNOW_NEAR_CLEAR, snow_nearby

    reach = SNOW_BLOCK * (SNOW_NEAR_BLOCKS + 1)
    h = w = 2 * reach + 40
    snow = _image("snow", h, w)
    cloud = np.zeros((h, w), np.float32)
    cloud[20:60, 20:60] = 0.95
    np.testing.assert_allclose(snow_possible(snow, CARD, cloud=cloud), 1.0)  # the optical's own test passes
    some = np.random.default_rng(1).random((1, h, w)) < 0.35  # about a third of the clear ground is snow
    mixed = np.where(some, snow, _image("vegetation", h, w))
    near = snow_nearby(snow_possible(mixed, CARD), cloud)
    assert 0.3 < float(near[40, 40]) < 0.7
    whole = np.full((h, w), 0.95, np.float32)
    whole[0, 0] = 0.0  # one clear pixel: fewer than SNOW_NEAR_CLEAR of the neighbourhood
    assert SNOW_NEAR_CLEAR * (SNOW_BLOCK * SNOW_NEAR_BLOCKS) ** 2 > 1
    assert float(snow_possible(snow, CARD, cloud=whole)[h // 2, w // 2]) == 0.0


@pytest.mark.parametrize("r0, c0", [(40, 40), (37, 3), (72, 65)])
def test_the_snow_rule_under_cloud_is_the_same_in_any_window_that_holds_the_pixels_context(r0, c0):
    """The engine computes it per window (a tile's core and its 128 px of context), its blocks on the image's grid:
    a pixel gets the same value from any window that reaches SNOW_BLOCK * (SNOW_NEAR_BLOCKS + 1) px around it, so the
    map does not depend on the tile."""
    from claire.models.cloud import SNOW_BLOCK, SNOW_NEAR_BLOCKS
    from claire.models.predict import CONTEXT

    reach = SNOW_BLOCK * (SNOW_NEAR_BLOCKS + 1)
    assert reach <= CONTEXT, "the neighbourhood must lie within the engine's default context"
    rng = np.random.default_rng(0)
    h, w = 4 * reach, 5 * reach
    mix = rng.random((1, h, w)).astype(np.float32)  # fractional snow tests too (a float32 sum differed by window)
    scene = mix * _image("snow", h, w) + (1 - mix) * _image("vegetation", h, w)
    cloud = np.zeros((h, w), np.float32)
    cloud[reach:3 * reach, reach:4 * reach] = 0.9
    full = snow_possible(scene, CARD, cloud=cloud)
    part = snow_possible(scene[:, r0:r0 + 2 * reach + 20, c0:], CARD, cloud=cloud[r0:r0 + 2 * reach + 20, c0:],
                         origin=(r0, c0))
    inner = (slice(reach, reach + 20), slice(reach, None))
    np.testing.assert_array_equal(part[inner], full[r0 + reach:r0 + reach + 20, c0 + reach:])
    assert 0.0 < float(full[reach:3 * reach, reach:4 * reach].mean()) < 1.0


def test_vegetation_is_ruled_out_and_snow_is_not():
    assert float(snow_possible(_image("vegetation"), CARD).max()) == 0.0
    assert float(snow_possible(_image("vegetation L2A"), CARD).max()) == 0.0
    assert float(snow_possible(_image("snow"), CARD).min()) == 1.0
    assert SPECTRA["snow"][CARD.index("B11")] < SPECTRA["snow"][CARD.index("B03")]


def test_rule_out_snow_renormalises_and_moves_the_class_to_the_next():
    prob = np.array([0.1, 0.3, 0.5, 0.1], np.float32)[:, None, None] * np.ones((1, 1, 2), np.float32)
    possible = np.array([[0.0, 1.0]], np.float32)
    total = rule_out_snow(prob, [2], possible)
    np.testing.assert_allclose(total, [[0.5, 1.0]], atol=1e-6)
    prob /= total
    np.testing.assert_allclose(prob[:, 0, 0], [0.2, 0.6, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(prob[:, 0, 1], [0.1, 0.3, 0.5, 0.1], atol=1e-6)
    assert list(prob.argmax(0)[0]) == [1, 2]


def test_the_logit_bias_gives_the_same_probabilities():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3, 5)).astype(np.float32)
    possible = rng.uniform(0.01, 1.0, size=(3, 5)).astype(np.float32)
    possible[0, 0] = 0.0
    prob = torch.softmax(torch.from_numpy(logits), 0).numpy()
    prob /= rule_out_snow(prob, [2], possible)
    biased = logits.copy()
    biased[2] += snow_logit_bias(possible)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(biased), 0).numpy(), prob, atol=1e-5)


def test_check_snow_leaves_maps_without_a_snow_class_or_the_bands_alone():
    prob = np.full((3, 2, 2), 1 / 3, np.float32)
    img = _image("vegetation", 2, 2)  # NDSI -0.38, no cloud
    assert check_snow(prob.copy(), img, CARD, ["water", "trees", "crops"]).tolist() == prob.tolist()
    no_swir = [b for b in CARD if b != "B11"]
    out = check_snow(prob.copy(), img[[CARD.index(b) for b in no_swir]], no_swir, ["water", "snow", "crops"])
    assert out.tolist() == prob.tolist()
    out = check_snow(prob.copy(), img, CARD, ["water", "snow", "crops"])
    np.testing.assert_allclose(out[:, 0, 0], [0.5, 0.0, 0.5], atol=1e-6)


def test_real_snow_is_left_to_the_model():
    """The all-snow TerraMesh site (609U), Level-2A and Level-1C (its declared offset applied): snow stays possible
    on all but a few pixels (0.01 % of the Level-2A site, measured; rock in the snow label)."""
    from claire.claire_plugin.core.training.datasets import declared_offset

    l2a = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    l1c = l2a[:10] + ["B10"] + l2a[10:]
    for level, bands in (("S2L2A", l2a), ("S2L1C", l1c)):
        path = os.path.join(ROOT, "terramesh", level, "609U_541L_3_0.tif")
        refl = np.clip(_read(path, bands) + (declared_offset(path) or 0.0) * 1e-4, 0.0, 1.0)
        assert float((snow_possible(refl, CARD) < 0.5).mean()) < 0.001, level


def test_the_june_farmland_patch_shows_no_snow():
    """The bundled BigEarthNet-MM patch (June farmland, where the bundled checkpoint paints snow): NDSI below 0
    on nearly every pixel, so the check rules snow out there."""
    folder = os.path.join(ROOT, "bigearthnet_mm", "BigEarthNet-S2-Example")
    patch = os.path.join(folder, sorted(os.listdir(folder))[0])
    import rasterio

    def band(name):
        path = [f for f in os.listdir(patch) if f.endswith(f"_{name}.tif")][0]
        with rasterio.open(os.path.join(patch, path), "r") as ds:
            return ds.read(1, out_shape=(120, 120)).astype(np.float32) * 1e-4

    refl = np.stack([band(b) for b in CARD])
    assert float((snow_possible(refl, CARD) == 0.0).mean()) > 0.95


def test_tempered_confidence_needs_no_renormalisation_after_the_check():
    """engine.post tempers the checked probabilities without dividing by their sum: the same confidence."""
    from claire.models.calibration import tempered_confidence

    rng = np.random.default_rng(1)
    prob = torch.softmax(torch.from_numpy(rng.normal(size=(4, 3, 5)).astype(np.float32)), 0).numpy()
    possible = rng.uniform(0.0, 1.0, size=(3, 5)).astype(np.float32)
    total = rule_out_snow(prob, [2], possible)
    np.testing.assert_allclose(tempered_confidence(prob, 2.5), tempered_confidence(prob / total, 2.5), rtol=1e-5)


def test_dark_water_with_a_snow_like_ndsi_is_no_snow():
    """Mutation audit (QA round 14): with SNOW_NIR's lower end at 0 no test noticed: calm water (NIR 0.02) whose NDSI
    is high like snow's must be ruled out whole, not left a third possible."""
    import numpy as np

    from claire.models.cloud import SNOW_NIR, snow_possible

    bands = ["B03", "B11", "B08"]
    water = np.array([0.06, 0.01, 0.02], np.float32).reshape(3, 1, 1)  # NDSI 0.71
    snow = np.array([0.8, 0.1, 0.7], np.float32).reshape(3, 1, 1)
    assert SNOW_NIR[0] > 0.02 and float(snow_possible(water, bands)[0, 0]) == 0.0
    assert float(snow_possible(snow, bands)[0, 0]) == 1.0


def test_thick_cloud_scaled_by_blocks_as_by_the_repeated_blocks():
    """snow_possible scales the thick-cloud ramp by the block values a block row at a time (no full-size repeat):
    the same products, on blocks cut at both edges."""
    from claire.models.cloud import _times_blocks

    rng = np.random.default_rng(3)
    heights, widths = np.array([3, 8, 8, 5]), np.array([8, 8, 2])
    scale = rng.uniform(0, 1, (4, 3)).astype(np.float32)
    a = rng.uniform(0, 1, (24, 18)).astype(np.float32)
    want = a * np.repeat(np.repeat(scale, heights, axis=0), widths, axis=1)
    _times_blocks(a, scale, heights, widths)
    assert np.array_equal(a, want)
