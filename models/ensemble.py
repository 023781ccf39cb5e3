"""The network and the random forest of one training run as one model: their class probabilities averaged,
with the forest's weight falling to nothing under cloud.

The forest sees each pixel's optical and SAR values on their own, which on few polygons often separates the
user's classes better than a network fine-tuned from a checkpoint trained elsewhere; but a cloud puts it on
white reflectances it never saw and it has no way to look through. The network looks through (its cloud
gate sends clouded pixels to SAR). So a pixel gets

    p = (1 - w) * softmax(network) + w * forest,    w = forest_weight * (1 - cloud)

with `cloud` the engine's models.cloud probability (1 where the optical has no data): at clear pixels the
average, under thick cloud the network alone. A training run chooses `forest_weight` among FOREST_WEIGHTS on
its held-out polygons (core.training.blend); the measurements are in docs/train_from_polygons.md.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .forest import FLOOR, ForestNet

#: The forest's weight at a clear pixel when a run cannot choose one (too few held-out polygons).
DEFAULT_FOREST_WEIGHT = 0.5
#: The weights a training run chooses from: 0 is the network alone, 1 the forest alone at clear pixels.
FOREST_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def forest_weights(forest_weight: float, cloud: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] weight of the forest per pixel: `forest_weight * (1 - cloud)` (`forest_weight` without a cloud
    probability)."""
    if cloud is None:
        return torch.full_like(like[:, :1], forest_weight)
    return forest_weight * (1.0 - cloud.to(like.dtype).clamp(0.0, 1.0))


def mixed_logits(p_net: torch.Tensor, p_forest: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The log of `(1 - w) p_net + w p_forest` (floored), the ensemble's logits."""
    return torch.log((p_net * (1.0 - w) + p_forest * w).clamp_min(FLOOR))


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

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, return_gates: bool = False,
                cloud: Optional[torch.Tensor] = None,
                return_features: bool = False) -> Dict[str, Any]:
        out = dict(self.network(optical, sar, return_gates=return_gates, cloud=cloud,
                                return_features=return_features))
        p_net = torch.softmax(out["logits"].float(), dim=1)
        if self.forest_weight == 0.0:  # the network's map: no forest walk (what mixed_logits gives at w = 0)
            out["logits"] = torch.log(p_net.clamp_min(FLOOR))
            return out
        p_forest = self.forest.proba_map(optical, sar).to(p_net.device)
        w = forest_weights(self.forest_weight, cloud, p_net).to(p_net.device)
        out["logits"] = mixed_logits(p_net, p_forest, w)
        return out


class WeightSweep:
    """One network and one forest at several forest weights: `members[k]` gives what
    `EnsembleNet(network, forest, weights[k])` gives, each part run once per input (the members are called one
    after the other on the same tensors, as core.training.windows does)."""

    def __init__(self, network: nn.Module, forest: ForestNet, weights: Sequence[float] = FOREST_WEIGHTS) -> None:
        self.network, self.forest = network, forest
        self.weights = [float(w) for w in weights]
        self._key: Optional[Tuple[Any, ...]] = None
        self._parts: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self.members: List[nn.Module] = [_SweepMember(self, w) for w in self.weights]
        #: (inputs, the network's logits for them) a caller that has just run `network` on those inputs hands
        #: over (core.training.windows), so that the sweep does not run it a second time
        self.known: Optional[Tuple[Tuple[Any, ...], torch.Tensor]] = None

    def parts(self, optical: torch.Tensor, sar: torch.Tensor,
              cloud: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(softmax of the network, the forest's probabilities) for these inputs, computed once."""
        key = (optical, sar, cloud)
        if self._key is None or any(a is not b for a, b in zip(key, self._key)):
            known = self.known
            if known is not None and all(a is b for a, b in zip(key, known[0])):
                logits = known[1]
            else:
                logits = self.network(optical, sar, cloud=cloud)["logits"]
            p_net = torch.softmax(logits.float(), dim=1)
            self._parts = (p_net, self.forest.proba_map(optical, sar).to(p_net.device))
            self._key = key  # holding the tensors keeps their identity unique while cached
        assert self._parts is not None
        return self._parts


class _SweepMember(nn.Module):
    uses_cloud = True

    def __init__(self, sweep: WeightSweep, forest_weight: float) -> None:
        super().__init__()
        self._sweep, self.forest_weight = sweep, forest_weight

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, return_gates: bool = False,
                cloud: Optional[torch.Tensor] = None, return_features: bool = False) -> Dict[str, Any]:
        p_net, p_forest = self._sweep.parts(optical, sar, cloud)
        return {"logits": mixed_logits(p_net, p_forest, forest_weights(self.forest_weight, cloud, p_net))}


def ensemble_config(network_arch: str, network_config: Dict[str, Any], forest_cfg: Dict[str, Any],
                    forest_weight: float = DEFAULT_FOREST_WEIGHT) -> Dict[str, Any]:
    """The card's `config` of an ensemble (what `build_model("ensemble", ...)` needs); the network's
    `cloud_gate` is repeated on top so that the engine fills optical gaps from SAR as for the network."""
    return {"num_classes": int(forest_cfg["num_classes"]), "optical_channels": int(forest_cfg["optical_channels"]),
            "sar_channels": int(forest_cfg["sar_channels"]), "forest_weight": float(forest_weight),
            "cloud_gate": bool(network_config.get("cloud_gate", False)),
            "network": {"arch": network_arch, "config": dict(network_config)}, "forest": dict(forest_cfg)}
