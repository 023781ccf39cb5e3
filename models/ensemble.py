"""The network and the random forest of one training run as one model: their class probabilities averaged,
with the forest's weight falling to nothing under cloud.

The forest sees each pixel's optical and SAR values on their own, which on few polygons often separates the
user's classes better than a network fine-tuned from a checkpoint trained elsewhere; but a cloud puts it on
white reflectances it never saw and it has no way to look through. The network looks through (its cloud
gate sends clouded pixels to SAR). So a pixel gets

    p = (1 - w) * softmax(network) + w * forest,    w = forest_weight * (1 - cloud)

with `cloud` the engine's models.cloud probability (1 where the optical has no data): at clear pixels the
average, under thick cloud the network alone. The measurements behind the weight are in
docs/train_from_polygons.md.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from .forest import FLOOR, ForestNet

#: The forest's weight at a clear pixel when a run writes an ensemble.
DEFAULT_FOREST_WEIGHT = 0.5


class EnsembleNet(nn.Module):
    """`network` (any CLAIRE network) and `forest` (models.forest.ForestNet) on the same inputs and classes,
    probabilities averaged with the forest's weight `forest_weight * (1 - cloud)`. Its `logits` are the
    log of the averaged probabilities (softmax gives them back); gates and features are the network's, so
    the SAR share and the "unlike the training data" check describe the network's part."""

    #: takes the cloud probability whatever the network does (it sets the forest's weight)
    uses_cloud = True
    #: the forest's walk is not a torch graph (core.runtime.compiled.prepare)
    eager_only = True
    releases_gil = True

    def __init__(self, network: nn.Module, forest: ForestNet, forest_weight: float = DEFAULT_FOREST_WEIGHT) -> None:
        super().__init__()
        if not 0.0 <= float(forest_weight) <= 1.0:
            raise ValueError(f"forest_weight must lie in [0, 1], got {forest_weight}")
        self.network, self.forest = network, forest
        self.forest_weight = float(forest_weight)
        self.num_classes = forest.num_classes
        self.optical_channels, self.sar_channels = forest.optical_channels, forest.sar_channels

    def work_bytes_per_pixel(self) -> float:
        """The forest walk's host buffers plus the two probability maps (core.engine.memory_fit)."""
        return self.forest.work_bytes_per_pixel() + 4.0 * 3 * self.num_classes

    def forest_weights(self, cloud: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W] weight of the forest per pixel (`forest_weight` where no cloud probability is given)."""
        if cloud is None:
            return torch.full_like(like[:, :1], self.forest_weight)
        return self.forest_weight * (1.0 - cloud.to(like.dtype).clamp(0.0, 1.0))

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, return_gates: bool = False,
                cloud: Optional[torch.Tensor] = None,
                return_features: bool = False) -> Dict[str, Any]:
        out = dict(self.network(optical, sar, return_gates=return_gates, cloud=cloud,
                                return_features=return_features))
        p_net = torch.softmax(out["logits"].float(), dim=1)
        p_forest = self.forest.proba_map(optical, sar).to(p_net.device)
        w = self.forest_weights(cloud, p_net).to(p_net.device)
        out["logits"] = torch.log((p_net * (1.0 - w) + p_forest * w).clamp_min(FLOOR))
        return out


def ensemble_config(network_arch: str, network_config: Dict[str, Any], forest_cfg: Dict[str, Any],
                    forest_weight: float = DEFAULT_FOREST_WEIGHT) -> Dict[str, Any]:
    """The card's `config` of an ensemble (what `build_model("ensemble", ...)` needs); the network's
    `cloud_gate` is repeated on top so that the engine fills optical gaps from SAR as for the network."""
    return {"num_classes": int(forest_cfg["num_classes"]), "optical_channels": int(forest_cfg["optical_channels"]),
            "sar_channels": int(forest_cfg["sar_channels"]), "forest_weight": float(forest_weight),
            "cloud_gate": bool(network_config.get("cloud_gate", False)),
            "network": {"arch": network_arch, "config": dict(network_config)}, "forest": dict(forest_cfg)}
