"""Cloud-gated training: make_batch hands the model models.cloud's probability of the augmented optical."""
import numpy as np
import torch

from claire.models.augment import AugmentConfig, radiometric_jitter
from claire.models.cloud import cloud_probability
from claire.models.spec import optical_spec
from claire.models.training import TrainConfig, evaluate, make_batch, model_config, train

torch.set_num_threads(1)
CARD = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
VEG = np.array([0.09, 0.08, 0.05, 0.10, 0.25, 0.30, 0.33, 0.34, 0.18, 0.09], np.float32)
SSPEC = {"bands": ["VV"], "units": "dB", "scale": 1.0, "offset": 0.0, "clip": [-40, 5], "mean": [-12.5], "std": [3.0]}


def _ospec():
    spec = optical_spec(CARD)
    spec.update(mean=[0.2] * 10, std=[0.15] * 10)
    return spec


class _Veg:
    """Vegetation everywhere (raw DN x 1e4), label 1 on the left half; SAR tells the halves apart."""

    def sample(self, rng, crop):
        lbl = np.zeros((crop, crop), np.uint8)
        lbl[:, : crop // 2] = 1
        opt = np.broadcast_to(VEG[:, None, None] * 1e4, (10, crop, crop)).astype(np.float32)
        opt = opt + rng.normal(0, 30, opt.shape).astype(np.float32)
        sar = (-15 + 6 * lbl[None].astype(np.float32) + rng.normal(0, 1, (1, crop, crop))).astype(np.float32)
        return opt, sar, lbl

    def eval_items(self):
        rng = np.random.default_rng(7)
        for i in range(2):
            o, s, l = self.sample(rng, 64)
            yield str(i), o, s, l

    def class_counts(self, k):
        return np.array([1, 1])


def _cfg(**augment) -> TrainConfig:
    return TrainConfig(arch="claire", size="tiny", batch_size=6, crop=64, cloud_gate=True, context="local",
                       augment=AugmentConfig(**augment))


def test_make_batch_cloud_is_models_cloud_of_the_augmented_optical():
    ospec = _ospec()
    o, s, l, c = make_batch(_Veg(), np.random.default_rng(0), _cfg(p_cloud=0.5, p_blind=0.3, p_haze=0.0), ospec, SSPEC)
    assert c.shape == (6, 1, 64, 64)
    phys = o.numpy() * 0.15 + 0.2  # undo the standardisation: the augmented physical optical
    for i in range(6):
        assert np.allclose(c[i, 0].numpy(), cloud_probability(phys[i], CARD), atol=1e-4)
    per_crop = c.numpy().mean(axis=(1, 2, 3))
    assert per_crop.max() > 0.8 and per_crop.min() < 0.05  # fully clouded crops and clear ones


def test_clear_vegetation_gives_no_cloud_and_no_cloud_gate_gives_none():
    ospec = _ospec()
    clear = _cfg(p_cloud=0.0, p_blind=0.0, p_haze=0.0, p_radiometric=0.0)
    assert float(make_batch(_Veg(), np.random.default_rng(1), clear, ospec, SSPEC)[3].max()) < 0.05
    plain = TrainConfig(arch="claire", size="tiny", batch_size=2, crop=64)
    assert make_batch(_Veg(), np.random.default_rng(1), plain, ospec, SSPEC)[3] is None


def test_model_config_carries_the_new_keys_only_when_set():
    ospec = _ospec()
    assert model_config(TrainConfig(size="tiny"), 3, ospec, SSPEC) == {
        "num_classes": 3, "optical_channels": 10, "sar_channels": 1, "size": "tiny"}
    cfg = model_config(_cfg(), 3, ospec, SSPEC)
    assert cfg["context"] == "local" and cfg["context_px"] == 128 and cfg["cloud_gate"] is True


def test_radiometric_jitter_changes_gain_and_offset_within_bounds():
    rng = np.random.default_rng(2)
    x = np.broadcast_to(VEG[:, None, None], (10, 4, 4)).astype(np.float32)
    y = radiometric_jitter(x, rng, gain=0.1, offset=0.0)
    ratio = y[:, 0, 0] / x[:, 0, 0]
    assert np.all(np.abs(ratio - 1) <= 0.1 * 1.25 + 1e-6) and not np.allclose(ratio, 1.0)
    z = radiometric_jitter(x, rng, gain=0.0, offset=0.0, p_baseline_offset=1.0)
    assert np.allclose(z - x, 0.1, atol=1e-6)


def test_cloud_gated_training_runs_and_evaluation_feeds_the_cloud():
    ospec = _ospec()
    cfg = TrainConfig(arch="claire", size="tiny", epochs=1, steps_per_epoch=3, batch_size=2, crop=64,
                      warmup_steps=1, context="local", cloud_gate=True)
    model, hist = train(_Veg(), ospec, SSPEC, 2, cfg, progress=False)
    assert model.uses_cloud and len(hist["loss"]) == 1
    clear = evaluate(model, _Veg().eval_items(), ospec, SSPEC, ["a", "b"], "clear")
    cloudy = evaluate(model, _Veg().eval_items(), ospec, SSPEC, ["a", "b"], "clouds")
    assert cloudy["mean_sar_share"] > clear["mean_sar_share"] + 0.2
