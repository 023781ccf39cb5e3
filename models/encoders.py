"""ConvNeXt-V2-style hierarchical encoder with four stages at strides 4, 8, 16, 32."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from .blocks import ConvNeXtBlock, LayerNorm2d, context_cells


class ConvNeXtEncoder(nn.Module):
    """Patchify stem (stride 4) then four stages of ConvNeXt-V2 blocks; stages run one at a time.

    `stage(i, x)` runs downsampling + blocks of stage i so that fusion modules can act between stages.
    `context_px` None: GRN norms over the whole tile; else over a window of that many input pixels.
    """

    def __init__(self, in_channels: int, dims: Sequence[int], depths: Sequence[int],
                 context_px: Optional[int] = None) -> None:
        super().__init__()
        self.dims = list(dims)
        self.down = nn.ModuleList()
        self.down.append(nn.Sequential(nn.Conv2d(in_channels, dims[0], 4, stride=4), LayerNorm2d(dims[0])))
        for i in range(1, len(dims)):
            self.down.append(nn.Sequential(LayerNorm2d(dims[i - 1]),
                                           nn.Conv2d(dims[i - 1], dims[i], 2, stride=2)))
        self.stages = nn.ModuleList(
            nn.Sequential(*[ConvNeXtBlock(d, window=context_cells(context_px, 4 * 2 ** i)) for _ in range(n)])
            for i, (d, n) in enumerate(zip(dims, depths)))

    @property
    def num_stages(self) -> int:
        return len(self.dims)

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage i (downsampling then blocks)."""
        return self.stages[i](self.down[i](x))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = []
        for i in range(self.num_stages):
            x = self.stage(i, x)
            feats.append(x)
        return feats
