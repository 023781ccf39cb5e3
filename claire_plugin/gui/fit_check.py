"""The dock's check of a chosen optical + SAR pair with the engine's rules (core.inputs.fit)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..layers.layers import layer_file
from .tasks import dock_message


def pair_check(optical_layer, sar_layer, card: Dict[str, Any], optical_bands: Optional[List[int]],
               sar_bands: Optional[List[int]], sar_units: str,
               optical_offset: Optional[float] = None) -> Tuple[List[str], List[str]]:
    """(warnings, notes) for these layers, in the dock's field names: what the engine would refuse or warn
    about (same raster twice, SAR not in dB, bands stacked against their names, a pixel size far from the
    training one), and how it will read them when that needs no action (bands stacked in another order,
    reordered by their names); ([], []) when the layers are no files (the run says why)."""
    files = pair_files(optical_layer, sar_layer)
    if files is None:
        return [], []
    return check_files(*files, card, optical_bands, sar_bands, sar_units, optical_offset)


def pair_files(optical_layer, sar_layer) -> Optional[Tuple[str, str]]:
    """(optical file, SAR file) of the layers, or None when either is no file (main thread: QGIS's layers)."""
    (optical, o_err), (sar, s_err) = layer_file(optical_layer), layer_file(sar_layer)
    return None if o_err or s_err else (optical, sar)


def check_files(optical: str, sar: str, card: Dict[str, Any], optical_bands: Optional[List[int]],
                sar_bands: Optional[List[int]], sar_units: str,
                optical_offset: Optional[float] = None) -> Tuple[List[str], List[str]]:
    """pair_check's (warnings, notes) of two files: it reads samples of both (any thread; up to seconds on
    large rasters with large blocks)."""
    from ..core.inputs.fit import check_pair

    found = check_pair(optical, sar, card, optical_bands, sar_bands, sar_units, optical_offset)
    warnings = [dock_message(m[len("warning: "):] if m.startswith("warning: ") else m)
                for m in found.errors + found.warnings]
    return warnings, [dock_message(n) for n in found.notes]
