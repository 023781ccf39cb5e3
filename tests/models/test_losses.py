import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from claire.models.losses import RIFTLoss, class_weights_from_counts

torch.set_num_threads(1)


def _logits(rows):
    """[B=1, K, H=1, W=N] logits from a list of per-pixel logit vectors."""
    return torch.tensor(rows, dtype=torch.float32).t().reshape(1, len(rows[0]), 1, len(rows))


def test_focal_hand_computed():
    logits = _logits([[0.0, math.log(3.0)], [0.0, 0.0]])  # p(class1)=0.75 ; uniform
    target = torch.tensor([[[1, 0]]])
    loss = RIFTLoss(2, lam=1.0, gamma=2.0, class_weights=[1.0, 3.0])
    # pixel 0: w=3, p=0.75 -> 3 * 0.25^2 * -log 0.75 ; pixel 1: w=1, p=0.5 -> 0.25 * log 2
    expected = (3 * 0.0625 * -math.log(0.75) + 0.25 * math.log(2)) / 4
    assert float(loss(logits, target)) == pytest.approx(expected, rel=1e-5)


def test_focal_gamma0_unweighted_equals_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 5)
    target = torch.randint(0, 4, (2, 5, 5))
    target[0, 0, 0] = 255
    loss = RIFTLoss(4, lam=1.0, gamma=0.0)
    ce = F.cross_entropy(logits, target, ignore_index=255)
    assert float(loss(logits, target)) == pytest.approx(float(ce), rel=1e-5)


def test_tversky_hand_computed():
    # two pixels, two classes; probs p0 = [0.75, 0.25], p1 = [0.5, 0.5]; targets [0, 1]
    logits = _logits([[math.log(3.0), 0.0], [0.0, 0.0]])
    target = torch.tensor([[[0, 1]]])
    a, b = 0.3, 0.7
    loss = RIFTLoss(2, lam=0.0, alpha=a, beta=b, eps=0.0)
    # class 0: TP .75, FP .5, FN .25 ; class 1: TP .5, FP .25, FN .5
    t0 = 0.75 / (0.75 + a * 0.5 + b * 0.25)
    t1 = 0.5 / (0.5 + a * 0.25 + b * 0.5)
    assert float(loss(logits, target)) == pytest.approx(((1 - t0) + (1 - t1)) / 2, rel=1e-5)


def test_combination_and_ignore_index():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    f = RIFTLoss(3, lam=1.0)(logits, target)
    t = RIFTLoss(3, lam=0.0)(logits, target)
    assert float(RIFTLoss(3, lam=0.3)(logits, target)) == pytest.approx(0.3 * float(f) + 0.7 * float(t), rel=1e-5)
    # changing logits at ignored pixels does not change the loss (one class's logit: adding the same constant to
    # every class leaves the softmax as it was, and a test so written passed with ignored pixels counted)
    target2 = target.clone()
    target2[0, :2] = 255
    logits2 = logits.clone()
    logits2[0, 0, :2] += 5.0
    for lam in (0.0, 0.5, 1.0):  # Tversky alone, the mix, focal alone
        loss = RIFTLoss(3, lam=lam)
        assert float(loss(logits, target2)) == pytest.approx(float(loss(logits2, target2)), rel=1e-6)
        assert float(loss(logits2, target)) != pytest.approx(float(loss(logits, target)), rel=1e-6)
    all_ignored = torch.full((1, 4, 4), 255)
    assert float(loss(logits, all_ignored)) == 0.0


def test_class_weights_inverse_and_sqrt():
    counts = [900, 100, 0]
    wi = class_weights_from_counts(counts, "inverse", max_ratio=100)
    ws = class_weights_from_counts(counts, "inverse_sqrt", max_ratio=100)
    assert wi[1] / wi[0] == pytest.approx(9.0, rel=1e-5)
    assert ws[1] / ws[0] == pytest.approx(3.0, rel=1e-5)
    f = np.array([0.9, 0.1, 0.0])
    assert float((wi * f).sum()) == pytest.approx(1.0, rel=1e-5)
    assert wi[2] == pytest.approx(wi.max())
    capped = class_weights_from_counts([9999, 1], "inverse", max_ratio=10)
    assert capped[1] / capped[0] == pytest.approx(10.0, rel=1e-5)
    with pytest.raises(ValueError):
        class_weights_from_counts(counts, "bogus")


def test_rare_class_gets_larger_gradient_than_under_cross_entropy():
    """90 common pixels, 10 rare ones, uniform prediction: the share of the gradient that goes to rare
    pixels is larger under RIFT (frequency weights + Tversky recall term) than under plain CE."""
    k, n_common, n_rare = 2, 90, 10
    target = torch.tensor([0] * n_common + [1] * n_rare).reshape(1, 1, -1)
    counts = [n_common, n_rare]

    def rare_share(loss_fn):
        logits = torch.zeros(1, k, 1, n_common + n_rare, requires_grad=True)
        loss_fn(logits, target).backward()
        g = logits.grad.abs().sum(dim=1).reshape(-1)
        return float(g[n_common:].sum() / g.sum()), float(g[n_common:].mean())

    ce_share, ce_rare = rare_share(lambda lo, t: F.cross_entropy(lo, t))
    rift = RIFTLoss(k, lam=0.5, class_weights=class_weights_from_counts(counts, "inverse_sqrt"))
    rift_share, rift_rare = rare_share(rift)
    assert ce_share == pytest.approx(0.1, rel=1e-4)
    assert rift_share > ce_share + 0.1
    assert rift_rare > ce_rare
