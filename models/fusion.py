"""Fusion modules: CMAF (CLAIRE), and semantic focusing / cascade fusion modules in the style of ASANet's (not the
published modules: docs/model_card.md, "Our asanet and the published ASANet")."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import LayerNorm2d, local_mean


def _hidden(channels: int, reduction: int) -> int:
    return max(4, channels // reduction)


class CMAF(nn.Module):
    """Cross-Modality Attention Fusion for one encoder stage.

    1. channel attention on the concatenated [optical, SAR] features (squeeze-excite on 2C channels);
    2. a per-pixel modality gate g in [0,1] (g = share of SAR) from the re-weighted features;
    3. fused = (1 - g) * optical' + g * SAR', refined by a 1x1 conv + LayerNorm (residual).
    Returns (fused [B,C,h,w], gate [B,1,h,w]).
    `window` None: the channel attention squeezes the whole tile (global average); `window` w: it
    squeezes the w x w cells around each cell (stride 1), so its weights do not depend on the tile size.
    `cloud_gate`: a cloud probability c [B,1,h,w] given to forward pushes the gate towards SAR,
    g' = g + (1 - g) * c, and scales the optical features by (1 - c) in the channel squeeze (no
    parameters): where c = 1 on the whole squeeze window (inside a cloud wider than the context window, beyond
    about 64 px from its edge with the 128 px window) the fused features do not depend on the optical input at all;
    nearer a clear edge the squeeze still sees the clear optical there.
    """

    def __init__(self, channels: int, reduction: int = 4, window: Optional[int] = None,
                 cloud_gate: bool = False) -> None:
        super().__init__()
        self.window = window
        self.cloud_gate = cloud_gate
        c2 = 2 * channels
        self.channel_mlp = nn.Sequential(
            nn.Linear(c2, _hidden(c2, reduction)), nn.GELU(), nn.Linear(_hidden(c2, reduction), c2))
        hid = _hidden(channels, reduction)
        self.gate = nn.Sequential(
            nn.Conv2d(c2, hid, 1), nn.GELU(),
            nn.Conv2d(hid, hid, 3, padding=1, groups=hid), nn.GELU(),
            nn.Conv2d(hid, 1, 1))
        self.refine = nn.Sequential(nn.Conv2d(channels, channels, 1), LayerNorm2d(channels))

    def forward(self, opt: torch.Tensor, sar: torch.Tensor,
                cloud: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        cat = torch.cat([opt, sar], dim=1)
        c = cloud.to(cat.dtype).clamp(0.0, 1.0) if self.cloud_gate and cloud is not None else None
        squeeze = cat if c is None else torch.cat([opt * (1.0 - c), sar], dim=1)
        cat = cat * self._channel_weights(squeeze)
        o, s = cat.chunk(2, dim=1)
        g = torch.sigmoid(self.gate(cat))
        if c is not None:
            g = 1.0 - (1.0 - g) * (1.0 - c)  # = g + (1 - g) * c, exactly 1 where c = 1
        fused = (1.0 - g) * o + g * s
        return fused + self.refine(fused), g

    def _channel_weights(self, cat: torch.Tensor) -> torch.Tensor:
        """Squeeze-excite weights from `cat`: [B,2C,1,1] (global) or [B,2C,h,w] (local window)."""
        if self.window is None:
            return torch.sigmoid(self.channel_mlp(cat.mean(dim=(2, 3))))[:, :, None, None]
        pooled = local_mean(cat, self.window).permute(0, 2, 3, 1)
        return torch.sigmoid(self.channel_mlp(pooled)).permute(0, 3, 1, 2)


class SemanticFocusing(nn.Module):
    """ASANet-style semantic focusing: re-weight each stream's channels from the streams' difference.

    w = sigmoid(1x1-bottleneck(global-max-pool(a - b))); a' = a * (1 + w) (and symmetrically for b).
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hid = _hidden(channels, reduction)
        self.mlp_a = nn.Sequential(nn.Conv2d(channels, hid, 1), nn.ReLU(inplace=True), nn.Conv2d(hid, channels, 1))
        self.mlp_b = nn.Sequential(nn.Conv2d(channels, hid, 1), nn.ReLU(inplace=True), nn.Conv2d(hid, channels, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        d = a - b
        wa = torch.sigmoid(self.mlp_a(F.adaptive_max_pool2d(d, 1)))
        wb = torch.sigmoid(self.mlp_b(F.adaptive_max_pool2d(-d, 1)))
        return a * (1.0 + wa), b * (1.0 + wb)


class CascadeFusion(nn.Module):
    """ASANet-style cascade fusion: channel weighting, then per-pixel spatial weighting, summed.

    Returns (fused, sar_share) where sar_share = spatial weight of SAR / (sum of both weights).
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        c2 = 2 * channels
        self.channel_mlp = nn.Sequential(
            nn.Linear(c2, _hidden(c2, reduction)), nn.ReLU(inplace=True), nn.Linear(_hidden(c2, reduction), c2))
        hid = _hidden(channels, reduction)
        self.spatial = nn.Sequential(nn.Conv2d(c2, hid, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(hid, 2, 3, padding=1))
        self.proj = nn.Sequential(nn.Conv2d(channels, channels, 1), LayerNorm2d(channels))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        cat = torch.cat([a, b], dim=1)
        pooled = cat.mean(dim=(2, 3))
        cw = torch.sigmoid(self.channel_mlp(pooled))[:, :, None, None]
        a2, b2 = (cat * cw).chunk(2, dim=1)
        sw = torch.sigmoid(self.spatial(torch.cat([a2, b2], dim=1)))
        sa, sb = sw[:, :1], sw[:, 1:]
        fused = a2 * sa + b2 * sb
        share = sb / (sa + sb + 1e-6)
        return self.proj(fused), share
