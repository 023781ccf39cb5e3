"""The dock's check of a chosen optical + SAR pair with the engine's rules (core.inputs.fit)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..layers.layers import layer_file
from .tasks import dock_message


def pair_warnings(optical_layer, sar_layer, card: Dict[str, Any], optical_bands: Optional[List[int]],
                  sar_bands: Optional[List[int]], sar_units: str) -> List[str]:
    """What the engine would refuse or warn about for these layers (same raster twice, SAR not in dB, bands
    stacked in another order, a pixel size far from the training one), with the dock's field names; [] when
    the layers are no files (the run says why)."""
    from ..core.inputs.fit import check_pair

    (optical, o_err), (sar, s_err) = layer_file(optical_layer), layer_file(sar_layer)
    if o_err or s_err:
        return []
    found = check_pair(optical, sar, card, optical_bands, sar_bands, sar_units)
    return [dock_message(m[len("warning: "):] if m.startswith("warning: ") else m)
            for m in found.errors + found.warnings]
