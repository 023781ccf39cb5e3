"""Parameter and FLOP counts (torch.utils.flop_counter) and CPU throughput of the networks."""
from __future__ import annotations

import time
from typing import Any, Dict, List, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import available_architectures, build_model


def count_flops(model: torch.nn.Module, optical_channels: int, sar_channels: int, tile: int = 256) -> int:
    """FLOPs of one forward pass on a single tile (FlopCounterMode counts a multiply-add as 2)."""
    o, s = torch.zeros(1, optical_channels, tile, tile), torch.zeros(1, sar_channels, tile, tile)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(o, s)
    return int(fc.get_total_flops())


def throughput(model: torch.nn.Module, optical_channels: int, sar_channels: int, tile: int = 256,
               batch: int = 4, repeats: int = 3) -> float:
    """Forward megapixels per second on the current torch threads (best of `repeats`)."""
    o, s = torch.randn(batch, optical_channels, tile, tile), torch.randn(batch, sar_channels, tile, tile)
    best = float("inf")
    with torch.inference_mode():
        model(o, s)
        for _ in range(repeats):
            t = time.perf_counter()
            model(o, s)
            best = min(best, time.perf_counter() - t)
    return batch * tile * tile / best / 1e6


def profile_models(sizes: Sequence[str] = ("tiny", "small", "base"), tile: int = 256, num_classes: int = 8,
                   optical_channels: int = 10, sar_channels: int = 2, speed: bool = False) -> List[Dict[str, Any]]:
    """One row per (architecture, size): params_m, gflops and optionally mpix_per_s (not for base)."""
    rows = []
    for size in sizes:
        for arch in available_architectures():
            m = build_model(arch, {"num_classes": num_classes, "optical_channels": optical_channels,
                                   "sar_channels": sar_channels, "size": size}).eval()
            row = {"arch": arch, "size": size, "params_m": sum(p.numel() for p in m.parameters()) / 1e6,
                   "gflops": count_flops(m, optical_channels, sar_channels, tile) / 1e9}
            if speed and size != "base":
                row["mpix_per_s"] = throughput(m, optical_channels, sar_channels, tile)
            rows.append(row)
    return rows
