"""Small building blocks: channels-first LayerNorm, GRN, ConvNeXt-V2 block, conv-norm-act, local mean."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a [B,C,H,W] tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def _box_sum(x: torch.Tensor, window: int, dim: int) -> torch.Tensor:
    """Sum over `window` consecutive cells along `dim` (-1 or -2), same length, zeros outside (cumsum)."""
    lo, hi = (window - 1) // 2, window // 2
    pad = (lo + 1, hi, 0, 0) if dim == -1 else (0, 0, lo + 1, hi)
    cs = torch.cumsum(F.pad(x, pad), dim=dim)
    n = cs.shape[dim]
    return cs.narrow(dim, window, n - window) - cs.narrow(dim, 0, n - window)


def _box_sum_rows(x: torch.Tensor, window: int) -> torch.Tensor:
    """_box_sum along H of channels-last [B,C,H,W] as matrix products: the rows in blocks of `window`, each
    block of output rows a fixed 0/1 band matrix [window, 2 * window] times the 2 * window input rows it
    reads. Returns channels-last [B,C,H,W].

    Eager torch multiplies the overlapping spans of rows in place; compiled code (inductor) would copy
    them first, so there each block of rows, as it lies in memory, is multiplied by a strict lower
    triangle of ones (the sums of the rows before each row in its block), and output row j of a block is
    its block's sum minus those before j plus those before j in the next block: half the products, and
    additions that inductor fuses."""
    b, c, h, w = x.shape
    lo, blocks = (window - 1) // 2, -(-h // window)
    rows = F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, 0, lo, (blocks + 1) * window - h - lo)).reshape(b, -1, w * c)
    j = torch.arange(window, device=x.device)
    if torch.compiler.is_compiling():
        rows = rows.reshape(b, blocks + 1, window, w * c)
        before = torch.matmul((j[None, :] < j[:, None]).to(x.dtype), rows)
        whole = before[:, :, -1:] + rows[:, :, -1:]
        total = whole[:, :-1] - before[:, :-1] + before[:, 1:]
    else:
        k = torch.arange(2 * window, device=x.device)
        band = ((k[None, :] >= j[:, None]) & (k[None, :] < j[:, None] + window)).to(x.dtype)
        total = torch.matmul(band, rows.unfold(1, 2 * window, window).transpose(-1, -2))
    return total.reshape(b, blocks * window, w, c).narrow(1, 0, h).permute(0, 3, 1, 2)


def _box_sum_2d(x: torch.Tensor, window: int) -> torch.Tensor:
    """_box_sum along both axes of channels-last [B,C,H,W]: along H by _box_sum_rows, along W by a depthwise
    convolution with a ones kernel (zero padding inside it; an even window gives one cell more, left out)."""
    c, w = x.shape[1], x.shape[-1]
    pad, skip = window // 2, window // 2 - (window - 1) // 2
    total = F.conv2d(_box_sum_rows(x, window), x.new_ones((c, 1, 1, window)), padding=(0, pad), groups=c)
    return total.narrow(-1, skip, w)


def _box_sum_doubling(x: torch.Tensor, window: int, dim: int) -> torch.Tensor:
    """_box_sum by sums of shifted copies (runs of 1, 2, 4, ... cells): additions only."""
    n, lo, hi = x.shape[dim], (window - 1) // 2, window // 2
    run = F.pad(x, (lo, hi, 0, 0) if dim == -1 else (0, 0, lo, hi))
    total, offset, width = None, 0, 1
    while True:
        if window & 1:
            part = run.narrow(dim, offset, n)
            total = part if total is None else total + part
            offset += width
        window >>= 1
        if not window:
            return total
        m = run.shape[dim] - width
        run = run.narrow(dim, 0, m) + run.narrow(dim, width, m)
        width *= 2


def _training(x: torch.Tensor) -> bool:
    """Whether a gradient will flow through `x` (training): the code paths the bundled checkpoint was trained with."""
    return torch.is_grad_enabled() and x.requires_grad


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for `device_type` (torch before 2.4 has one flag per device family)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def local_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of [B,C,H,W] over a window x window neighbourhood of every cell (stride 1, same size).

    Cells outside the tensor are left out of the mean (not counted as zeros), so the result at a cell
    depends only on the cells within `window // 2` of it: the operation does not see the tile's size.
    The same sums in three ways, equal up to float rounding (docs/benchmark.md, "Local means by
    convolution"): for channels-last input in inference (the GRN's) matrix products along H (_box_sum_rows)
    and a depthwise convolution with a ones kernel along W (_box_sum_2d; under CPU autocast, the bfloat16
    package, in float32 with autocast off, since inductor recomputed fused shifted additions for every
    read); additions of shifted copies in float32 under other autocast (which would run a convolution or a
    cumulative sum in bfloat16); otherwise cumulative sums, whose cost does not grow with the window
    (training, where the bundled checkpoint was trained with them, and channels-first input, where they
    are as fast).
    """
    if window <= 1:
        return x
    h, w = x.shape[-2:]
    training = _training(x)
    autocast = not training and _autocast_on(x.device.type)
    channels_last = x.shape[1] > 1 and x.stride(1) == 1
    if autocast and channels_last and x.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            total = _box_sum_2d(x.float(), window)
    elif autocast:
        total = _box_sum_doubling(_box_sum_doubling(x.float(), window, -1), window, -2)
    elif not training and channels_last:
        total = _box_sum_2d(x, window)
    else:
        total = _box_sum(_box_sum(x, window, -1), window, -2)
    ones_h = torch.ones((1, 1, h, 1), dtype=total.dtype, device=x.device)
    ones_w = torch.ones((1, 1, 1, w), dtype=total.dtype, device=x.device)
    count = _box_sum(ones_h, window, -2) * _box_sum(ones_w, window, -1)
    return (total / count).to(x.dtype)


def context_cells(context_px: Optional[int], stride: int) -> Optional[int]:
    """Window in feature cells at `stride` for a context of `context_px` input pixels (None: global)."""
    if context_px is None:
        return None
    return max(1, int(context_px) // int(stride))


class GRN(nn.Module):
    """Global Response Normalisation (ConvNeXt-V2), channels-last input [B,H,W,C].

    `window` None: the norm of each channel is taken over the whole tile (the original GRN). `window`
    w: it is the root mean square over the w x w cells around each cell, so the output does not depend
    on the tile size; the ratio to the channel mean is the same as the original's when w covers the tile.
    """

    def __init__(self, channels: int, eps: float = 1e-6, window: Optional[int] = None) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.eps = eps
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        else:
            sq = local_mean((x * x).permute(0, 3, 1, 2), self.window)
            if not _training(x) and x.dtype == self.gamma.dtype:
                # inference: the same operations in the same order, in place (bit for bit the same values;
                # not under autocast, where the out-of-place ones promote bfloat16 to float32)
                gx = sq.clamp_min_(self.eps * self.eps).sqrt_().permute(0, 2, 3, 1)
                nx = gx.div_(gx.mean(dim=-1, keepdim=True).add_(self.eps))
                return nx.mul_(x).mul_(self.gamma).add_(self.beta).add_(x)
            # cumulative sums (training) can leave tiny negatives where x is 0; sqrt needs > 0 for a finite gradient
            gx = torch.sqrt(sq.clamp_min(self.eps * self.eps)).permute(0, 2, 3, 1)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + self.eps)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """ConvNeXt-V2 block: depthwise 7x7 -> LN -> 1x1 (x4) -> GELU -> GRN -> 1x1 -> residual."""

    def __init__(self, dim: int, expansion: int = 4, kernel: int = 7, window: Optional[int] = None) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, expansion * dim)
        self.act = nn.GELU()
        self.grn = GRN(expansion * dim, window=window)
        self.pw2 = nn.Linear(expansion * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pw2(self.grn(self.act(self.pw1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNormAct(nn.Sequential):
    """Conv2d -> LayerNorm2d -> GELU (optionally depthwise-separable for 3x3 kernels)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, separable: bool = False) -> None:
        if separable and kernel > 1:
            layers = [nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False),
                      nn.Conv2d(cin, cout, 1, bias=False)]
        else:
            layers = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)]
        super().__init__(*layers, LayerNorm2d(cout), nn.GELU())
