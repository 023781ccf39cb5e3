"""Build networks by name from a plain config dict (the config is stored in the checkpoint card)."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import torch.nn as nn

from .card_schema import ENSEMBLE, FOREST, SIZES, with_preset
from .networks import ASANet, ClaireNet, SingleModalityNet
from .quoting import quoted

_BUILDERS: Dict[str, Callable[..., nn.Module]] = {
    "claire": ClaireNet,
    "asanet": ASANet,
    "optical_only": lambda **kw: SingleModalityNet("optical", **kw),
    "sar_only": lambda **kw: SingleModalityNet("sar", **kw),
}

REQUIRED_KEYS = ("num_classes", "optical_channels", "sar_channels")

#: Spatial context of the tile-level ops (GRN, channel attention, pyramid pooling): "global" (the whole
#: tile, the original ops; the default so that older cards rebuild the network they were trained as) or
#: "local" (a fixed window of `context_px` input pixels, so that the output does not depend on the tile).
CONTEXTS = ("global", "local")
DEFAULT_CONTEXT_PX = 128
LOCAL_CONTEXT_ARCHS = ("claire", "optical_only", "sar_only")


def default_context(arch: str) -> str:
    """The context a new training of `arch` takes when none is given: "local" (maps that do not depend on the tile)
    where the network has it, else "global"."""
    return "local" if arch in LOCAL_CONTEXT_ARCHS else "global"


def available_architectures() -> List[str]:
    """Network names accepted by `build_model` (which also builds FOREST and ENSEMBLE from their cards' configs)."""
    return list(_BUILDERS)


def _build_forest(config: Dict[str, Any]) -> nn.Module:
    from .forest import MAX_NODES, MAX_TREES, ForestNet

    missing = [k for k in REQUIRED_KEYS + ("trees", "nodes") if k not in config]
    if missing:
        raise ValueError(f"forest config lacks {missing}")
    trees, nodes = int(config["trees"]), int(config["nodes"])
    if not (1 <= trees <= MAX_TREES and trees <= nodes <= MAX_NODES):
        raise ValueError(f"forest of {trees} trees and {nodes} nodes is outside 1..{MAX_TREES} trees, "
                         f"{MAX_NODES} nodes")
    leaves, entries = config.get("leaves"), config.get("entries")  # absent in forests stored densely (before)
    if (leaves is None) != (entries is None) or leaves is not None and not (
            1 <= int(leaves) <= nodes and int(leaves) <= int(entries) <= int(leaves) * int(config["num_classes"])):
        raise ValueError(f"forest of {nodes} nodes cannot have {leaves} leaves and {entries} class entries")
    return ForestNet(int(config["optical_channels"]), int(config["sar_channels"]), int(config["num_classes"]),
                     trees, nodes, None if leaves is None else int(leaves), None if entries is None else int(entries))


def _build_ensemble(config: Dict[str, Any]) -> nn.Module:
    from .ensemble import EnsembleNet

    net, forest = config.get("network"), config.get("forest")
    if not (isinstance(net, dict) and isinstance(forest, dict)) or "forest_weight" not in config:
        raise ValueError("ensemble config lacks 'network', 'forest' or 'forest_weight'")
    if net.get("arch") in (FOREST, ENSEMBLE):
        raise ValueError(f"an ensemble's network cannot be a {quoted(net.get('arch'))}")
    return EnsembleNet(build_model(str(net.get("arch")), dict(net.get("config") or {})), _build_forest(forest),
                       float(config["forest_weight"]))


def available_sizes() -> List[str]:
    """Size presets accepted in the config's `size` key."""
    return list(SIZES)


def resolve_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """Fill size presets into a config: explicit `dims`/`depths`/`decoder_dim` override the preset."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ValueError(f"model config lacks {missing}; give num_classes, optical_channels, sar_channels")
    size = config.get("size", "small")
    if size not in SIZES:
        raise ValueError(f"unknown model size {quoted(size)}; choose one of {available_sizes()}")
    return with_preset(config)


def context_px(arch: str, cfg: Dict[str, Any]) -> Optional[int]:
    """The local context window in input pixels of a config, or None for the global (tile-wide) ops."""
    context = cfg.get("context", "global")
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {quoted(context)}; choose one of {list(CONTEXTS)}")
    if context == "global":
        return None
    if arch not in LOCAL_CONTEXT_ARCHS:
        raise ValueError(f"context 'local' is implemented for {list(LOCAL_CONTEXT_ARCHS)}, not {quoted(arch)}")
    px = int(cfg.get("context_px", DEFAULT_CONTEXT_PX))
    if px < 32 or px % 32:
        raise ValueError(f"context_px must be a positive multiple of 32, got {px}")
    return px


def build_model(arch: str, config: Dict[str, Any]) -> nn.Module:
    """Build network `arch` (see `available_architectures()`) from `config`.

    Config keys: num_classes, optical_channels, sar_channels, size in {tiny, small, base};
    optional overrides dims, depths, decoder_dim; `context` "global" (default) or "local" with
    `context_px` (default 128, the window of GRN / channel attention / pyramid pooling in input pixels);
    `cloud_gate` (claire only, default false): forward's `cloud` probability pushes CMAF's gate to SAR.
    """
    if arch == FOREST:
        return _build_forest(config)
    if arch == ENSEMBLE:
        return _build_ensemble(config)
    if arch not in _BUILDERS:
        raise ValueError(f"unknown architecture {quoted(arch)}; choose one of {available_architectures()}")
    cfg = resolve_config(config)
    kwargs: Dict[str, Any] = {}
    px = context_px(arch, cfg)
    if px is not None:
        kwargs["context_px"] = px
    if cfg.get("cloud_gate"):
        if arch != "claire":
            raise ValueError(f"cloud_gate is implemented for 'claire' (CMAF), not {quoted(arch)}")
        kwargs["cloud_gate"] = True
    return _BUILDERS[arch](
        optical_channels=int(cfg["optical_channels"]), sar_channels=int(cfg["sar_channels"]),
        num_classes=int(cfg["num_classes"]), dims=list(cfg["dims"]), depths=list(cfg["depths"]),
        decoder_dim=int(cfg["decoder_dim"]), **kwargs)
