"""Keeping what the base checkpoint knows: the L2-SP anchor, the distillation teacher, a decoder-only stage 2."""
import copy

import numpy as np
import pytest
import torch

from claire.claire_plugin.core.training import finetune as finetune_module
from claire.claire_plugin.core.training.finetune import (
    BASE_FIT_CROPS,
    BASE_FIT_KEEP,
    KEEP_STAGE2_FACTOR,
    KNOWN_CLASSES_LR,
    NEW_AREA_STAGE2_FACTOR,
    NEW_CLASSES_LR,
    CropSampler,
    FinetuneConfig,
    WeightAverage,
    _set_stage,
    averages_epoch,
    base_fit,
    finetune,
    prepare_model,
    rate_note,
    recipe_lr,
    recipe_stage2_factor,
)
from claire.claire_plugin.core.training.keep import (
    StartAnchor,
    Teacher,
    interpolate_to_start,
    known_channels,
    unlabelled_mask,
)
from claire.claire_plugin.core.training.labels import ClassInfo, LabelPixels
from claire.models.checkpoint import load_checkpoint
from claire.tests.fixtures.helpers import TINY_CLASSES, make_tiny_checkpoint


@pytest.fixture
def base(tmp_path):
    return load_checkpoint(make_tiny_checkpoint(tmp_path / "b.safetensors"))


def _names():
    return [c["name"] for c in TINY_CLASSES]


def test_anchor_is_zero_at_the_start_and_pulls_back(base):
    model, card = base
    tuned = copy.deepcopy(model)
    anchor = StartAnchor(tuned, model, 0.5)
    assert float(anchor.penalty().detach()) == 0.0
    w = tuned.decoder.classifier.weight
    with torch.no_grad():
        w.add_(0.1)
    moved = float(anchor.penalty().detach())
    assert moved == pytest.approx(0.5 * 0.01 * w.numel(), rel=1e-4)
    opt = torch.optim.SGD(tuned.parameters(), lr=0.1)
    anchor.penalty().backward()
    opt.step()
    assert 0.0 < float(anchor.penalty().detach()) < moved
    assert float((w - model.decoder.classifier.weight).detach().abs().max()) < 0.1


def test_anchor_leaves_a_new_head_free_and_frozen_parameters_out(base):
    model, card = base
    mine = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "vineyard")]
    tuned, _, _ = prepare_model(model, card, mine)
    anchor = StartAnchor(tuned, model, 1.0)
    anchored = {id(p) for p, _ in anchor.pairs}
    assert id(tuned.decoder.classifier.weight) not in anchored
    assert id(tuned.decoder.ppm.fuse[0].weight) in anchored
    with torch.no_grad():
        next(tuned.optical_encoder.parameters()).add_(1.0)
    _set_stage(tuned, 1)
    assert float(anchor.penalty().detach()) == 0.0
    _set_stage(tuned, 2)
    assert float(anchor.penalty().detach()) > 0.0


def test_known_channels_by_name():
    base = ["water", "trees", "crops", "built area"]
    assert known_channels(base, ["Crops", "vineyard", "water"]) == ([0, 2], [2, 0])
    assert known_channels(base, ["crops", "vineyard"]) is None


def _inputs(seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 10, size, size, generator=g), torch.randn(2, 2, size, size, generator=g)


def test_teacher_is_zero_for_the_base_itself_and_counts_unlabelled_pixels_only(base):
    model, card = base
    model.eval()
    o, s = _inputs()
    teacher = Teacher(model, _names(), _names(), 1.0)
    everywhere = torch.ones(2, 32, 32, dtype=torch.bool)
    logits = model(o, s)["logits"].float()
    assert float(teacher.loss(logits, o, s, None, everywhere).detach()) == pytest.approx(0.0, abs=1e-6)
    other = logits.clone()
    other[:, :, :16] = other[:, :, :16].flip(1)
    top = torch.zeros_like(everywhere)
    top[:, :16] = True
    assert float(teacher.loss(other, o, s, None, top).detach()) > 1e-3
    assert float(teacher.loss(other, o, s, None, ~top).detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(teacher.loss(other, o, s, None, torch.zeros_like(top)).detach()) == 0.0


def test_unlabelled_mask_drops_labels_and_nodata():
    lab = np.full((4, 4), 255, np.uint8)
    lab[0, 0] = 1
    opt = np.zeros((3, 4, 4), np.float32)
    opt[1, 2, 2] = np.nan
    sar = np.zeros((2, 4, 4), np.float32)
    sar[0, 3, 3] = np.nan
    m = unlabelled_mask(lab, opt, sar, 255)
    assert m.sum() == 13 and not m[0, 0] and not m[2, 2] and not m[3, 3]


def test_decoder_only_stage_two_leaves_encoders_and_fusion_unchanged(training_scene, base):
    torch.set_num_threads(1)
    model, card = base
    n = 15
    train = LabelPixels(np.array(list(range(5, 65, 4)) * 2, np.int32), np.array([5] * n + [70] * n, np.int32),
                        np.array([0] * n + [1] * n, np.uint8), np.arange(2 * n, dtype=np.int32))
    classes = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "town")]
    cfg = FinetuneConfig(epochs=2, steps_per_epoch=2, batch_size=2, crop=64, device="cpu", stage2="decoder",
                         l2sp=0.01, distill=0.5)
    seen = []
    tuned, _, hist = finetune(training_scene, train, classes, model, card, cfg, on_epoch=seen.append)
    assert [e["stage"] for e in seen] == [1, 2] and hist["lr"] == NEW_CLASSES_LR  # "town" is new to the base
    for part in ("optical_encoder", "sar_encoder", "fusion"):
        for a, b in zip(getattr(tuned, part).parameters(), getattr(model, part).parameters()):
            assert torch.equal(a, b), part
    assert not torch.equal(tuned.decoder.ppm.fuse[0].weight, model.decoder.ppm.fuse[0].weight)


def test_interpolation_to_the_start_weights(base):
    model, _ = base
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(1.0)
    half = copy.deepcopy(tuned)
    interpolate_to_start(half, start, 0.5, ["decoder.classifier.bias"])
    w0, w1, wh = (m.decoder.classifier.weight for m in (model, tuned, half))
    assert torch.allclose(wh, (w0 + w1) / 2)
    assert torch.equal(half.decoder.classifier.bias, tuned.decoder.classifier.bias)
    back = copy.deepcopy(tuned)
    interpolate_to_start(back, start, 0.0)
    assert all(torch.allclose(a, b) for a, b in zip(back.parameters(), model.parameters()))


def test_recipe_learning_rate_is_lower_when_the_base_knows_every_class(base):
    _, card = base
    known = [ClassInfo(0, 1, "Water"), ClassInfo(1, 2, "crops")]
    new = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "vineyard")]
    assert recipe_lr(FinetuneConfig(), card, known) == KNOWN_CLASSES_LR < NEW_CLASSES_LR
    assert recipe_lr(FinetuneConfig(), card, new) == NEW_CLASSES_LR
    assert recipe_lr(FinetuneConfig(from_scratch=True), card, known) == NEW_CLASSES_LR
    assert recipe_lr(FinetuneConfig(lr=5e-4), card, new) == 5e-4


def test_recipe_learning_rate_follows_how_well_the_base_maps_the_training_polygons(base):
    _, card = base
    known = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "crops")]
    cfg = FinetuneConfig()
    assert recipe_lr(cfg, card, known, fit=BASE_FIT_KEEP) == KNOWN_CLASSES_LR
    assert recipe_lr(cfg, card, known, fit=BASE_FIT_KEEP - 0.01) == NEW_CLASSES_LR  # an area it does not know
    assert recipe_lr(cfg, card, known, fit=None) == KNOWN_CLASSES_LR
    assert recipe_lr(FinetuneConfig(lr=5e-4), card, known, fit=0.1) == 5e-4  # the user's rate wins


class _Recording(CropSampler):
    """A CropSampler that keeps the labels of the crops it hands out, in order."""

    def __init__(self, *a):
        super().__init__(*a)
        self.handed = []

    def sample(self, rng):
        o, s, lab = super().sample(rng)
        self.handed.append(lab.copy())
        return o, s, lab


class _Stub(torch.nn.Module):
    """Logits that pick, per pixel, the label of the crop the sampler handed out (an oracle) or always class 0."""

    def __init__(self, sampler, k, oracle):
        super().__init__()
        self.sampler, self.k, self.oracle, self.used = sampler, k, oracle, 0

    def forward(self, o, s, cloud=None):
        n = o.shape[0]
        labs = np.stack(self.sampler.handed[self.used:self.used + n]).astype(np.int64)
        self.used += n
        pick = np.where(labs < self.k, labs, 0) if self.oracle else np.zeros_like(labs)
        return {"logits": torch.nn.functional.one_hot(torch.from_numpy(pick), self.k).permute(0, 3, 1, 2).float()}


def _two_class_pixels():
    n = 15
    return LabelPixels(np.array(list(range(5, 65, 4)) * 2, np.int32), np.array([5] * n + [70] * n, np.int32),
                       np.array([0] * n + [1] * n, np.uint8), np.arange(2 * n, dtype=np.int32))


def test_base_fit_scores_the_network_on_the_labelled_pixels_of_training_crops(training_scene):
    train = _two_class_pixels()
    cfg = FinetuneConfig(batch_size=4, crop=32)
    sampler = _Recording(training_scene, train, 2, cfg.crop)
    assert base_fit(_Stub(sampler, 2, oracle=True), sampler, cfg, "cpu") == 1.0
    assert len(sampler.handed) == BASE_FIT_CROPS
    labs = np.concatenate([h[h < 2] for h in sampler.handed])
    sampler.handed.clear()
    constant = base_fit(_Stub(sampler, 2, oracle=False), sampler, cfg, "cpu")
    share0 = float(np.mean(labs == 0))
    assert 0.0 < share0 < 1.0
    assert constant == pytest.approx((2 * share0 / (share0 + 1)) / 2, abs=1e-6)  # F1 of class 0, class 1 at 0
    assert constant < BASE_FIT_KEEP
    again = _Recording(training_scene, train, 2, cfg.crop)
    base_fit(_Stub(again, 2, oracle=False), again, cfg, "cpu")
    assert all(np.array_equal(a, b) for a, b in zip(again.handed, sampler.handed))  # its own seeded draws


@pytest.mark.parametrize("fit, lr", [(0.9, KNOWN_CLASSES_LR), (0.2, NEW_CLASSES_LR)])
def test_finetune_measures_the_base_and_records_its_fit(training_scene, base, monkeypatch, fit, lr):
    torch.set_num_threads(1)
    model, card = base
    seen = []
    monkeypatch.setattr(finetune_module, "base_fit", lambda *a: seen.append(a) or fit)
    classes = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "crops")]
    cfg = FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu")
    _, _, hist = finetune(training_scene, _two_class_pixels(), classes, model, card, cfg)
    assert len(seen) == 1 and hist["lr"] == lr and hist["base_fit_macro_f1"] == fit
    assert f"learning rate {lr:g}" in hist["lr_note"] and f"the base checkpoint scored macro-F1 {fit:.2f}" in hist["lr_note"]
    seen.clear()
    _, _, hist = finetune(training_scene, _two_class_pixels(), classes, model, card,
                          FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu", lr=2e-4))
    assert not seen and hist["lr"] == 2e-4 and hist["base_fit_macro_f1"] is None  # not measured when given


def test_rate_note_says_the_rate_and_why():
    assert rate_note(FinetuneConfig(lr=2e-4), 2e-4, None) == (
        "learning rate 0.0002, 2e-05 once the whole network learns, as given")
    assert rate_note(FinetuneConfig(lr=1e-3, stage2_lr_factor=1.0), 1e-3, None) == (
        "learning rate 0.001 for the whole network, as given")
    assert "from scratch" in rate_note(FinetuneConfig(from_scratch=True), NEW_CLASSES_LR, None)
    assert "new to the base" in rate_note(FinetuneConfig(), NEW_CLASSES_LR, None)
    known = rate_note(FinetuneConfig(), KNOWN_CLASSES_LR, 0.81)
    assert "keeps more of it" in known and "0.0003, 3e-05 once the whole network learns" in known
    low = rate_note(FinetuneConfig(), NEW_CLASSES_LR, 0.31)
    assert "macro-F1 0.31" in low and "does not know" in low and "learning rate 0.001 for the whole network" in low


def test_stage2_rate_is_the_full_rate_only_where_the_base_does_not_know_the_area():
    assert recipe_stage2_factor(FinetuneConfig(), fit=BASE_FIT_KEEP) == KEEP_STAGE2_FACTOR < 1.0
    assert recipe_stage2_factor(FinetuneConfig(), fit=BASE_FIT_KEEP - 0.01) == NEW_AREA_STAGE2_FACTOR == 1.0
    assert recipe_stage2_factor(FinetuneConfig(), fit=None) == KEEP_STAGE2_FACTOR  # new class or rate given
    assert recipe_stage2_factor(FinetuneConfig(from_scratch=True), fit=0.1) == 1.0
    assert recipe_stage2_factor(FinetuneConfig(stage2_lr_factor=0.3), fit=0.1) == 0.3  # given wins


@pytest.mark.parametrize("fit, s1, s2", [(0.9, KNOWN_CLASSES_LR, KNOWN_CLASSES_LR * KEEP_STAGE2_FACTOR),
                                         (0.2, NEW_CLASSES_LR, NEW_CLASSES_LR * NEW_AREA_STAGE2_FACTOR)])
def test_finetune_steps_at_the_recipes_rates_in_each_stage(training_scene, base, monkeypatch, fit, s1, s2):
    torch.set_num_threads(1)
    model, card = base
    monkeypatch.setattr(finetune_module, "base_fit", lambda *a: fit)
    by_step = {}
    real = finetune_module._lr
    monkeypatch.setattr(finetune_module, "_lr", lambda c, g, *a: by_step.setdefault(g, real(c, g, *a)))
    classes = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "crops")]
    cfg = FinetuneConfig(epochs=2, steps_per_epoch=12, warmup_steps=1, batch_size=1, crop=32, device="cpu")
    _, _, hist = finetune(training_scene, _two_class_pixels(), classes, model, card, cfg)
    rates = [by_step[g] for g in sorted(by_step)]
    assert hist["stage1_epochs"] == 1 and len(rates) == 24
    assert max(rates[:12]) == pytest.approx(s1) and max(rates[12:]) == pytest.approx(s2)
    assert hist["lr"] == s1 and hist["stage2_lr"] == pytest.approx(s2)


@pytest.mark.parametrize("second, head_kept", [("crops", False), ("town", True)])
def test_wise_zero_goes_back_to_the_start_except_a_new_head(training_scene, base, second, head_kept):
    torch.set_num_threads(1)
    model, card = base
    classes = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, second)]
    cfg = FinetuneConfig(epochs=2, steps_per_epoch=1, batch_size=2, crop=64, device="cpu", lr=1e-2, wise=0.0)
    start, _, _ = prepare_model(model, card, classes)
    tuned, _, _ = finetune(training_scene, _two_class_pixels(), classes, model, card, cfg)
    assert torch.allclose(tuned.optical_encoder.down[0][0].weight, start.optical_encoder.down[0][0].weight)
    moved = not torch.allclose(tuned.decoder.classifier.weight, start.decoder.classifier.weight)
    assert moved == head_kept  # a new class's head keeps what it learnt; a known one goes back too


def test_the_averaged_epochs_are_the_last_share_of_stage_two():
    picked = [e for e in range(1, 13) if averages_epoch(0.5, e, 5, 12)]
    assert picked == [9, 10, 11, 12]  # 7 stage-2 epochs, half of them rounded
    assert [e for e in range(1, 13) if averages_epoch(1.0, e, 5, 12)] == list(range(6, 13))
    assert [e for e in range(1, 13) if averages_epoch(0.01, e, 5, 12)] == [12]  # at least the last one
    assert not any(averages_epoch(0.0, e, 5, 12) for e in range(1, 13))
    assert not any(averages_epoch(1.0, e, 12, 12) for e in range(1, 13))  # no stage 2, nothing averaged


def test_weight_average_is_the_mean_of_what_it_was_given():
    net = torch.nn.Linear(3, 2)
    seen = []
    avg = WeightAverage()
    for k in range(3):
        with torch.no_grad():
            net.weight.normal_()
            net.bias.fill_(float(k))
        seen.append(copy.deepcopy(net.state_dict()))
        avg.add(net)
    assert avg.load_into(net) == 3
    assert torch.allclose(net.weight, torch.stack([s["weight"] for s in seen]).mean(0), atol=1e-6)
    assert torch.allclose(net.bias, torch.ones(2))
    one = WeightAverage()
    before = copy.deepcopy(net.state_dict())
    one.add(net)
    with torch.no_grad():
        net.bias.fill_(7.0)
    assert one.load_into(net) == 0 and torch.equal(net.bias, torch.full((2,), 7.0))  # one epoch: left alone
    assert torch.equal(before["weight"], net.weight)


def test_finetune_ends_on_the_mean_of_the_last_stage_two_epochs(training_scene, base):
    torch.set_num_threads(1)
    model, card = base
    classes = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "crops")]
    after = []

    def keep_weights(net):
        after.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return 0.0

    cfg = FinetuneConfig(epochs=4, steps_per_epoch=1, batch_size=2, crop=64, device="cpu", lr=1e-2,
                         average_last=1.0)
    tuned, _, hist = finetune(training_scene, _two_class_pixels(), classes, model, card, cfg, validate=keep_weights)
    assert hist["stage1_epochs"] == 2 and hist["averaged_epochs"] == 2
    assert hist["lr_note"].endswith("the mean of its weights after each of the last 2 epochs")
    name = "optical_encoder.down.0.0.weight"
    assert not torch.allclose(after[2][name], after[3][name])  # the two stage-2 epochs differ
    assert torch.allclose(tuned.state_dict()[name], (after[2][name] + after[3][name]) / 2, atol=1e-6)
    plain, _, hist = finetune(training_scene, _two_class_pixels(), classes, model, card,
                              FinetuneConfig(epochs=4, steps_per_epoch=1, batch_size=2, crop=64, device="cpu",
                                             lr=1e-2))
    assert hist["averaged_epochs"] == 0 and "mean of its weights" not in hist["lr_note"]
    assert torch.allclose(plain.state_dict()[name], after[3][name], atol=1e-6)


class _Fixed(torch.nn.Module):
    """A base network that says the same logits at every pixel."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("values", torch.tensor(logits, dtype=torch.float32))

    def forward(self, optical, sar, cloud=None):
        b, _, h, w = optical.shape
        return {"logits": self.values.view(1, -1, 1, 1).expand(b, -1, h, w)}


def test_teacher_loss_is_the_kl_from_the_teachers_probabilities_to_the_students():
    """KL(teacher || student), as Learning without Forgetting: teacher logits [3, 0, -1], student [0, 2, 0] give
    1.8720 (the reverse, KL(student || teacher), would give 2.1873)."""
    names = ["water", "trees", "crops"]
    teacher = Teacher(_Fixed([3.0, 0.0, -1.0]), names, names, 1.0)
    o, s = torch.zeros(1, 10, 2, 2), torch.zeros(1, 2, 2, 2)
    student = torch.tensor([0.0, 2.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    loss = float(teacher.loss(student, o, s, None, torch.ones(1, 2, 2, dtype=torch.bool)))
    assert loss == pytest.approx(1.8720, abs=1e-4)
