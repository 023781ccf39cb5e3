"""Keeping what the base checkpoint knows while fine-tuning on a few polygons.

Two terms added to the training loss, both zero for a network still equal to its base:

- `StartAnchor` (L2-SP, Li et al. 2018): strength x the sum of squared distances of the parameters to their
  starting values, for every parameter the base checkpoint had with the same name and shape (a new
  classifier head of another shape is free);
- `Teacher` (distillation, as in Learning without Forgetting, Li & Hoiem 2016): the KL divergence from the
  frozen base network's class probabilities to the network's, on the valid *unlabelled* pixels of each
  training crop, over the user's classes that the base knows by name (both softmaxes restricted to them).
  Labelled pixels are left to the task loss; pixels the user did not label keep the base's opinion unless
  the labels pull the shared weights elsewhere.
"""
from __future__ import annotations

import copy
from typing import List, Optional, Sequence

import numpy as np

from ....models.quoting import name_key


class StartAnchor:
    """L2-SP penalty towards the starting weights of the parameters the base checkpoint shares."""

    def __init__(self, model, base_model, strength: float) -> None:
        base = dict(base_model.named_parameters())
        self.strength = float(strength)
        self.pairs = [(p, base[n].detach().clone()) for n, p in model.named_parameters()
                      if n in base and base[n].shape == p.shape]

    def penalty(self):
        """strength x sum ||w - w0||^2 over the anchored parameters that currently learn (a tensor)."""
        import torch

        if any(p0.device != p.device for p, p0 in self.pairs):  # moved once to the model's device, not every step
            self.pairs = [(p, p0.to(p.device)) for p, p0 in self.pairs]
        terms = [((p - p0) ** 2).sum() for p, p0 in self.pairs if p.requires_grad]
        if not terms:
            return torch.zeros(())
        return self.strength * torch.stack(terms).sum()


def known_channels(base_names: Sequence[str], names: Sequence[str]) -> Optional[tuple]:
    """(user class indices, base class indices) of the user's classes the base knows by name (at least two),
    else None."""
    base = [name_key(n) for n in base_names]
    pairs = [(i, base.index(name_key(n))) for i, n in enumerate(names) if name_key(n) in base]
    if len(pairs) < 2:
        return None
    return [i for i, _ in pairs], [j for _, j in pairs]


class Teacher:
    """The frozen base network, distilled into the fine-tuned one on unlabelled pixels."""

    def __init__(self, base_model, base_names: Sequence[str], names: List[str], weight: float,
                 temperature: float = 1.0) -> None:
        self.model = copy.deepcopy(base_model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.channels = known_channels(base_names, names)
        self.weight, self.temperature = float(weight), float(temperature)

    @property
    def active(self) -> bool:
        return self.channels is not None and self.weight > 0

    def to(self, device) -> "Teacher":
        self.model.to(device)
        return self

    def loss(self, logits, optical, sar, cloud, unlabelled):
        """weight x T^2 x mean KL(teacher || student) over the `unlabelled` pixels ([B,H,W] bool tensor)."""
        import torch
        import torch.nn.functional as F

        if not self.active or not bool(unlabelled.any()):
            return logits.sum() * 0.0
        user, base = self.channels
        with torch.no_grad():
            t_logits = self.model(optical, sar, cloud=cloud)["logits"].float()[:, base]
        t = self.temperature
        log_t = F.log_softmax(t_logits / t, dim=1)
        log_s = F.log_softmax(logits[:, user] / t, dim=1)
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)
        return self.weight * t * t * kl[unlabelled].mean()


def unlabelled_mask(labels: np.ndarray, optical: np.ndarray, sar: np.ndarray, ignore: int) -> np.ndarray:
    """Pixels of a crop with valid input and no label ([H,W] bool)."""
    return (labels == ignore) & np.isfinite(optical).all(axis=0) & np.isfinite(sar).all(axis=0)


def interpolate_to_start(model, start: dict, share: float, free: Sequence[str] = ()) -> None:
    """Weights of `model` := start + share x (fine-tuned - start) (WiSE-FT, Wortsman et al. 2022), in place, for
    every floating parameter and buffer in `start` (a state dict taken before training) except those named in
    `free`."""
    import torch

    with torch.no_grad():
        for name, v in model.state_dict().items():
            if name in start and name not in free and v.is_floating_point() and start[name].shape == v.shape:
                v.copy_(start[name].to(v.device) + share * (v - start[name].to(v.device)))
