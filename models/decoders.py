"""Multi-scale decoder: UPerNet-style (pyramid pooling on the coarsest level + FPN top-down path)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import ConvNormAct, local_mean


class PyramidPooling(nn.Module):
    """PPM: average-pool at several scales, 1x1 conv, upsample, concatenate, fuse.

    `cells` None: scale s pools the tile into s x s bins (the original PPM). `cells` n: scale s is a
    stride-1 local mean over n // s cells around each cell (the bin size the original has on a tile of
    n cells), so the output does not depend on the tile size.
    """

    def __init__(self, cin: int, cout: int, scales: Sequence[int] = (1, 2, 4), cells: Optional[int] = None) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.cells = cells
        self.branches = nn.ModuleList(ConvNormAct(cin, cout, 1) for _ in self.scales)
        self.fuse = ConvNormAct(cin + cout * len(self.scales), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x]
        for s, branch in zip(self.scales, self.branches):
            if self.cells is not None:
                outs.append(branch(local_mean(x, max(1, self.cells // s))))
                continue
            y = branch(F.adaptive_avg_pool2d(x, s))
            outs.append(F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(outs, dim=1))


class UPerDecoder(nn.Module):
    """UPerNet-style head: PPM on the last level, FPN laterals + top-down sums, per-level
    depthwise-separable 3x3 smoothing, concatenation at stride 4, 1x1 fuse, classifier."""

    def __init__(self, in_dims: Sequence[int], dim: int, num_classes: int, dropout: float = 0.1,
                 ppm_cells: Optional[int] = None) -> None:
        super().__init__()
        self.ppm = PyramidPooling(in_dims[-1], dim, cells=ppm_cells)
        self.laterals = nn.ModuleList(ConvNormAct(c, dim, 1) for c in in_dims[:-1])
        self.smooth = nn.ModuleList(ConvNormAct(dim, dim, 3, separable=True) for _ in in_dims[:-1])
        self.fuse = ConvNormAct(dim * len(in_dims), dim, 1)
        self.refine = ConvNormAct(dim, dim, 3, separable=True)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(dim, num_classes, 1)

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        return self.classify(self.features(feats))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at stride 4 from the pre-classifier features."""
        return self.classifier(self.dropout(x))

    def features(self, feats: List[torch.Tensor]) -> torch.Tensor:
        """Pre-classifier features [B, dim, h/4, w/4]: what models.familiarity measures."""
        top = self.ppm(feats[-1])
        levels = [top]
        for i in range(len(feats) - 2, -1, -1):
            lat = self.laterals[i](feats[i])
            top = lat + F.interpolate(top, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            levels.insert(0, self.smooth[i](top))
        top = lat = None
        return self.refine(self._fuse_levels(levels))

    def _fuse_levels(self, levels: List[torch.Tensor]) -> torch.Tensor:
        """`fuse` of the levels upsampled to stride 4 and concatenated, computed without the concatenation: a 1x1
        convolution and bilinear upsampling commute, so each level meets its slice of the fuse weights at its own
        resolution and only the 1x1 outputs are upsampled and summed: the same values up to float rounding, a quarter
        of the convolution at stride 4, and no concatenation of four levels there in memory. Levels are let go once
        used."""
        conv, *rest = self.fuse
        weights = conv.weight.split(levels[0].shape[1], dim=1)
        size = levels[0].shape[-2:]
        first = F.conv2d(levels.pop(0), weights[0])
        # under autocast the terms are bfloat16: sum them in float32, as the single convolution accumulated
        x = first.float()
        for w in weights[1:]:
            x.add_(F.interpolate(F.conv2d(levels.pop(0), w), size=size, mode="bilinear", align_corners=False))
        x = x.to(first.dtype)
        for layer in rest:
            x = layer(x)
        return x
