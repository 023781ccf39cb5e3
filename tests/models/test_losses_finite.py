"""QA round 13: a focal gamma between 0 and 1 gave NaN gradients at confident pixels, and nothing stopped the run
from writing a checkpoint of NaN weights."""
from __future__ import annotations

import pytest
import torch

from claire.models.losses import RIFTLoss, TrainingDivergedError, check_finite


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_gradients_stay_finite_at_certain_pixels(gamma):
    logits = torch.tensor([[[[30.0]], [[0.0]], [[-5.0]]]], requires_grad=True)  # p(class 0) == 1.0 in float32
    loss = RIFTLoss(3, gamma=gamma).focal(logits, torch.tensor([[[0]]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all(), (gamma, logits.grad)


def test_gamma_two_is_unchanged_by_the_guard():
    """The bundled checkpoint's recipe (gamma 2) must train the same bits as before."""
    logits = torch.randn(2, 4, 5, 5)
    target = torch.randint(0, 4, (2, 5, 5))
    p_t = torch.softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1)
    expected = (-((1 - p_t) ** 2) * p_t.log()).mean()
    assert torch.allclose(RIFTLoss(4, gamma=2.0).focal(logits, target), expected, rtol=0, atol=1e-6)


def test_a_step_without_a_finite_loss_or_gradient_stops_training_with_the_fix():
    check_finite(torch.tensor(1.0), torch.tensor(3.0), 1e-3)
    with pytest.raises(TrainingDivergedError, match=r"at step 8: the gradient is nan .*lower the learning rate"):
        check_finite(torch.tensor(1.0), torch.tensor(float("nan")), 1e-3, step=7)
    with pytest.raises(TrainingDivergedError, match=r"the loss is inf"):
        check_finite(torch.tensor(float("inf")), torch.tensor(1.0), 1e-3)


def test_folder_training_stops_when_the_weights_would_turn_to_nan(monkeypatch):
    """Through models.training._step: a NaN gradient is refused before the optimiser applies it."""
    from claire.models import training

    model = torch.nn.Conv2d(2, 3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = model

        def forward(self, o, s, cloud=None):
            return {"logits": self.conv(s) * float("nan")}

    run = {"device": torch.device("cpu"), "model": Net(), "opt": opt, "loss_fn": RIFTLoss(3),
           "scaler": torch.amp.GradScaler("cpu", enabled=False), "amp_dtype": torch.bfloat16, "use_amp": False}
    before = model.weight.detach().clone()
    batch = (torch.zeros(1, 1, 4, 4), torch.ones(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), None)
    with pytest.raises(TrainingDivergedError):
        training._step(run, batch, 0.1)
    assert torch.equal(model.weight, before)
