"""Networks: CLAIRE (CMAF fusion), ASANet-style, and single-modality baselines.

Every network maps (optical [B,Co,H,W], sar [B,Cs,H,W]) to
{"logits": [B,K,H,W], "sar_share": [B,1,H,W] | None}; H and W must be multiples of 32. Every forward
also takes an optional `cloud` probability [B,1,H,W] (models.cloud on the optical reflectance); only a
network with `uses_cloud` True (CLAIRE built with "cloud_gate": true) uses it, the others ignore it.
A fusion network (`gives_cells`) also gives its outputs before they are brought to the input's size
(`full_size=False`: the logits at the decoder's stride and the gates of every stage), so that a caller
keeping part of a tile upsamples only that part (`upsample_part`, `share_part`: the same values bit for bit).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import context_cells
from .decoders import UPerDecoder
from .encoders import ConvNeXtEncoder
from .fusion import CMAF, CascadeFusion, SemanticFocusing
from .quoting import quoted


def _check_input(x: torch.Tensor) -> None:
    h, w = x.shape[-2:]
    if h % 32 or w % 32:
        raise ValueError(f"input height and width must be multiples of 32, got {h}x{w}; pad the tile")


def _cloud_at(cloud: Optional[torch.Tensor], stride: int) -> Optional[torch.Tensor]:
    """The cloud probability averaged over the input pixels of each feature cell at `stride`."""
    if cloud is None:
        return None
    if cloud.dim() != 4 or cloud.shape[1] != 1:
        raise ValueError(f"cloud must be a [B,1,H,W] probability, got shape {tuple(cloud.shape)}")
    return F.avg_pool2d(cloud, stride) if stride > 1 else cloud


def _share_map(gates: List[torch.Tensor], size) -> torch.Tensor:
    """Average the per-stage gates after upsampling them to the input resolution."""
    return _mean_share([F.interpolate(g, size=size, mode="bilinear", align_corners=False) for g in gates])


def _mean_share(ups: List[torch.Tensor]) -> torch.Tensor:
    """The upsampled gates of every stage averaged into the SAR share, clipped to 0..1."""
    return torch.stack(ups, dim=0).mean(dim=0).clamp(0.0, 1.0)


#: torch's CPU kernel computes a bilinear output whose height + width is at most this by another path (as it
#: does channels-last input), whose values can differ in the last bit: such small parts are cut from the full
#: upsampling instead.
SMALL_OUTPUT = 256


def _source_span(part: slice, n_in: int, n_out: int) -> Optional[Tuple[int, int, int]]:
    """(first, stop, stride) of the input cells that bilinear upsampling by a whole `stride` (n_out / n_in)
    needs for output pixels `part`, one cell of margin each side; None when n_out is no whole multiple."""
    if n_out % n_in:
        return None
    k = n_out // n_in
    start, stop, step = part.indices(n_out)
    if step != 1 or stop <= start:
        return None
    return max(start // k - 1, 0), min(-(-stop // k) + 1, n_in), k


def upsample_part(x: torch.Tensor, size, rows: slice, cols: slice) -> torch.Tensor:
    """`F.interpolate(x, size, bilinear)[..., rows, cols]` for x [B,C,h,w], computed from the cells around
    the part only. With a whole stride the part's source positions differ from the full upsampling's by whole
    cells (powers of two: exact in floating point), so the values are the same bit for bit."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x[..., rows, cols]
    r, c = _source_span(rows, x.shape[-2], size[0]), _source_span(cols, x.shape[-1], size[1])
    if (r is None or c is None or r[2] != c[2] or r[2] & (r[2] - 1)
            or r[2] * (r[1] - r[0] + c[1] - c[0]) <= SMALL_OUTPUT):
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)[..., rows, cols]
    (r0, r1, k), (c0, c1, _) = r, c
    part = x[..., r0:r1, c0:c1]
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        part = part.contiguous(memory_format=torch.channels_last)  # the kernel of channels-last input, as for x
    up = F.interpolate(part, scale_factor=float(k), mode="bilinear", align_corners=False)
    rs, cs = rows.indices(size[0]), cols.indices(size[1])
    return up[..., rs[0] - k * r0:rs[1] - k * r0, cs[0] - k * c0:cs[1] - k * c0]


def share_part(gates: List[torch.Tensor], size, rows: slice, cols: slice) -> torch.Tensor:
    """`_share_map(gates, size)[..., rows, cols]`, the gates upsampled on the part only (upsample_part)."""
    return _mean_share([upsample_part(g, size, rows, cols) for g in gates])


def gives_cells(model: nn.Module) -> bool:
    """Whether `model`'s forward gives its outputs at its cells with `full_size=False` (a fusion network, or a
    wrapper that passes the flag on)."""
    return bool(getattr(model, "gives_cells", False))


def at_cells(out: Dict[str, Any]) -> bool:
    """Whether a network's output dict is at its cells (`full_size=False`): logits and gates, no SAR share yet."""
    return "sar_share" not in out and "gates" in out


def full_size_outputs(cells: Dict[str, Any], size) -> Dict[str, Any]:
    """A fusion network's output at its cells (`full_size=False`) brought to the input's `size`: the
    logits upsampled, the gates averaged into the SAR share (what forward gives with `full_size`)."""
    out = {k: v for k, v in cells.items() if k not in ("logits", "gates")}
    out["logits"] = F.interpolate(cells["logits"], size=tuple(size), mode="bilinear", align_corners=False)
    out["sar_share"] = _share_map(cells["gates"], size)
    return out


def _stride(i: int) -> int:
    """Input pixels per feature cell at encoder stage i."""
    return 4 * 2 ** i


class _DualStream(nn.Module):
    """Shared scaffolding of two-encoder fusion networks."""

    def __init__(self, optical_channels: int, sar_channels: int, num_classes: int,
                 dims: Sequence[int], depths: Sequence[int], decoder_dim: int,
                 context_px: Optional[int] = None) -> None:
        super().__init__()
        self.context_px = context_px
        self.optical_encoder = ConvNeXtEncoder(optical_channels, dims, depths, context_px)
        self.sar_encoder = ConvNeXtEncoder(sar_channels, dims, depths, context_px)
        self.decoder = UPerDecoder(dims, decoder_dim, num_classes,
                                   ppm_cells=context_cells(context_px, _stride(len(dims) - 1)))

    #: whether forward's `cloud` probability changes the output
    uses_cloud = False
    #: whether forward gives its outputs at the cells with `full_size=False` (module docstring)
    gives_cells = True

    def _fuse_stage(self, i: int, o: torch.Tensor, s: torch.Tensor, c: Optional[torch.Tensor]):
        raise NotImplementedError

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, return_gates: bool = False,
                cloud: Optional[torch.Tensor] = None, return_features: bool = False,
                full_size: bool = True) -> Dict[str, Any]:
        _check_input(optical)
        size = optical.shape[-2:]
        o, s = optical, sar
        cloud = cloud if self.uses_cloud else None
        if cloud is not None and cloud.shape[-2:] != size:
            raise ValueError(f"cloud is {tuple(cloud.shape[-2:])} but the optical input is {tuple(size)}")
        fused, gates = [], []
        for i in range(self.optical_encoder.num_stages):
            o = self.optical_encoder.stage(i, o)
            s = self.sar_encoder.stage(i, s)
            o, s, f, g = self._fuse_stage(i, o, s, _cloud_at(cloud, _stride(i)))
            fused.append(f)
            gates.append(g)
        feats = self.decoder.features(fused)
        out: Dict[str, Any] = {"logits": self.decoder.classify(feats), "gates": gates}
        if return_features:
            out["features"], out["bottleneck"] = feats, fused[-1]
        if not full_size:
            return out
        full = full_size_outputs(out, size)
        if return_gates:
            full["gates"] = gates
        return full


class ClaireNet(_DualStream):
    """CLAIRE: optical + SAR ConvNeXt-V2 encoders, CMAF at every stage, UPerNet-style decoder."""

    def __init__(self, optical_channels: int, sar_channels: int, num_classes: int,
                 dims: Sequence[int], depths: Sequence[int], decoder_dim: int,
                 context_px: Optional[int] = None, cloud_gate: bool = False) -> None:
        super().__init__(optical_channels, sar_channels, num_classes, dims, depths, decoder_dim, context_px)
        self.uses_cloud = bool(cloud_gate)
        self.fusion = nn.ModuleList(CMAF(d, window=context_cells(context_px, _stride(i)), cloud_gate=cloud_gate)
                                    for i, d in enumerate(dims))

    def _fuse_stage(self, i, o, s, c):
        f, g = self.fusion[i](o, s, c)
        return o, s, f, g


class ASANet(_DualStream):
    """ASANet-style: semantic focusing after every stage (feeds back into both streams) and a
    cascade fusion module per stage whose output goes to the UPerNet-style head."""

    def __init__(self, optical_channels: int, sar_channels: int, num_classes: int,
                 dims: Sequence[int], depths: Sequence[int], decoder_dim: int) -> None:
        super().__init__(optical_channels, sar_channels, num_classes, dims, depths, decoder_dim)
        self.focusing = nn.ModuleList(SemanticFocusing(d) for d in dims)
        self.fusion = nn.ModuleList(CascadeFusion(d) for d in dims)

    def _fuse_stage(self, i, o, s, c):
        o, s = self.focusing[i](o, s)
        f, g = self.fusion[i](o, s)
        return o, s, f, g


class SingleModalityNet(nn.Module):
    """Baseline with one encoder and the same decoder; ignores the other modality."""

    def __init__(self, modality: str, optical_channels: int, sar_channels: int, num_classes: int,
                 dims: Sequence[int], depths: Sequence[int], decoder_dim: int,
                 context_px: Optional[int] = None) -> None:
        super().__init__()
        if modality not in ("optical", "sar"):
            raise ValueError(f"modality must be 'optical' or 'sar', got {quoted(modality)}")
        self.modality = modality
        self.context_px = context_px
        cin = optical_channels if modality == "optical" else sar_channels
        self.encoder = ConvNeXtEncoder(cin, dims, depths, context_px)
        self.decoder = UPerDecoder(dims, decoder_dim, num_classes,
                                   ppm_cells=context_cells(context_px, _stride(len(dims) - 1)))

    uses_cloud = False

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, return_gates: bool = False,
                cloud: Optional[torch.Tensor] = None,
                return_features: bool = False) -> Dict[str, Optional[torch.Tensor]]:
        _check_input(optical)
        x = optical if self.modality == "optical" else sar
        size = x.shape[-2:]
        levels = self.encoder(x)
        feats = self.decoder.features(levels)
        logits = F.interpolate(self.decoder.classify(feats), size=size, mode="bilinear", align_corners=False)
        fill = 0.0 if self.modality == "optical" else 1.0
        share = torch.full((x.shape[0], 1, size[0], size[1]), fill, dtype=logits.dtype, device=logits.device)
        out: Dict[str, Optional[torch.Tensor]] = {"logits": logits, "sar_share": share}
        if return_gates:
            out["gates"] = []
        if return_features:
            out["features"], out["bottleneck"] = feats, levels[-1]
        return out
