"""Mixed precision for the engine's forward: the model wrapped so that it runs under torch.autocast.

The engine turns logits into probabilities in float32 (`logits.float()`), so a wrapped model needs
nothing else from it. On CUDA the reduced type is bfloat16 where the GPU supports it, else float16; on
the CPU bfloat16.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch.utils import _pytree as pytree

from ....models.networks import gives_cells


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The reduced float type torch.autocast uses for `device` here."""
    if device.type == "cuda":
        from ....models.device import cuda_half_dtype

        return cuda_half_dtype(device)
    return torch.bfloat16


class Autocast(nn.Module):
    """`model` whose forward runs under torch.autocast on the device of its parameters."""

    def __init__(self, model: nn.Module, dtype: Optional[torch.dtype] = None, float_outputs: bool = False) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.float_outputs = bool(float_outputs)
        #: as the wrapped model's (models.networks: `full_size` passes through `extra`)
        self.gives_cells = gives_cells(model)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, **extra):
        """The wrapped model's output, computed in mixed precision (`extra`: e.g. the cloud probability);
        with `float_outputs`, its tensors cast back to float32."""
        dev = optical.device
        with torch.autocast(dev.type, dtype=self.dtype or autocast_dtype(dev)):
            out = self.model(optical, sar, **extra)
        if self.float_outputs:
            out = pytree.tree_map(lambda v: v.float() if isinstance(v, torch.Tensor) else v, out)
        return out
