"""RIFT loss: lambda * class-weighted focal loss + (1 - lambda) * Tversky loss, with an ignore index."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import TrainingDivergedError
from .quoting import quoted


def class_weights_from_counts(counts: Sequence[float], mode: str = "inverse_sqrt",
                              max_ratio: float = 10.0) -> np.ndarray:
    """Class weights from label frequencies.

    mode "inverse": w_c = 1/f_c ; "inverse_sqrt": w_c = 1/sqrt(f_c) ; "none": 1.
    Absent classes get the largest present weight; weights are capped at `max_ratio` x the smallest and
    scaled so that their frequency-weighted mean is 1 (the loss scale of plain CE is kept).
    """
    c = np.asarray(counts, dtype=np.float64)
    if mode == "none" or c.sum() <= 0:
        return np.ones_like(c, dtype=np.float32)
    f = c / c.sum()
    present = f > 0
    if mode == "inverse":
        w = np.where(present, 1.0 / np.where(present, f, 1), 0.0)
    elif mode == "inverse_sqrt":
        w = np.where(present, 1.0 / np.sqrt(np.where(present, f, 1)), 0.0)
    else:
        raise ValueError(f"unknown class-weight mode {quoted(mode)}; use inverse, inverse_sqrt or none")
    wmin = w[present].min()
    w = np.minimum(w, wmin * max_ratio)
    w[~present] = w[present].max()
    w = w / float((w * f).sum())
    return w.astype(np.float32)


class RIFTLoss(nn.Module):
    """RIFT = lam * weighted focal + (1 - lam) * Tversky.

    focal   = sum_i w_{y_i} (1 - p_{i,y_i})^gamma (-log p_{i,y_i}) / sum_i w_{y_i}  over valid pixels i
    Tversky = mean over classes present in the batch reference of
              1 - (TP + eps) / (TP + alpha*FP + beta*FN + eps), with soft TP/FP/FN from the softmax.
    alpha weighs false positives, beta false negatives (beta > alpha favours recall of rare classes).
    """

    def __init__(self, num_classes: int, lam: float = 0.5, gamma: float = 2.0, alpha: float = 0.3,
                 beta: float = 0.7, class_weights: Optional[Sequence[float]] = None,
                 ignore_index: int = 255, eps: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= lam <= 1.0:
            raise ValueError("lam must be in [0, 1]")
        self.num_classes, self.lam, self.gamma = num_classes, float(lam), float(gamma)
        self.alpha, self.beta, self.ignore_index, self.eps = float(alpha), float(beta), ignore_index, float(eps)
        w = torch.ones(num_classes) if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", w)

    def focal(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Class-weighted focal term (see class docstring)."""
        valid = target != self.ignore_index
        if not valid.any():
            return logits.sum() * 0.0
        logp = F.log_softmax(logits.float(), dim=1)
        t = torch.where(valid, target, torch.zeros_like(target))
        logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
        p_t = logp_t.exp()
        w = self.class_weights.to(logits.device)[t] * valid
        miss = (1.0 - p_t).clamp(min=0)
        if self.gamma < 1.0:  # (1 - p)^gamma has an infinite slope at p = 1 below gamma 1: NaN weights
            miss = miss.clamp(min=1e-6)
        term = -(miss ** self.gamma) * logp_t
        return (w * term).sum() / w.sum().clamp(min=1e-12)

    def tversky(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft multi-class Tversky term over the classes present in `target`."""
        valid = (target != self.ignore_index)
        if not valid.any():
            return logits.sum() * 0.0
        prob = F.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
        t = torch.where(valid, target, torch.zeros_like(target))
        onehot = F.one_hot(t, self.num_classes).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
        dims = (0, 2, 3)
        tp = (prob * onehot).sum(dims)
        fp = (prob * (1 - onehot)).sum(dims)
        fn = ((1 - prob) * onehot).sum(dims)
        ti = (tp + self.eps) / (tp + self.alpha * fp + self.beta * fn + self.eps)
        present = onehot.sum(dims) > 0
        return (1.0 - ti)[present].mean()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.lam > 0:
            loss = loss + self.lam * self.focal(logits, target)
        if self.lam < 1:
            loss = loss + (1.0 - self.lam) * self.tversky(logits, target)
        return loss


def check_finite(loss: torch.Tensor, grad_norm: torch.Tensor, lr: float, step: Optional[int] = None) -> None:
    """TrainingDivergedError when the step's loss or gradient norm is not finite (a checkpoint of NaN weights mapped
    every pixel to one class without a word)."""
    value, norm = float(loss.detach()), float(grad_norm)
    if math.isfinite(value) and math.isfinite(norm):
        return
    what = f"the loss is {value}" if not math.isfinite(value) else f"the gradient is {norm}"
    at = "" if step is None else f" at step {step + 1}"
    raise TrainingDivergedError(f"training diverged{at}: {what} (learning rate {lr:g}); no checkpoint is written. "
                                f"Fix: lower the learning rate (e.g. to half) and train again")
