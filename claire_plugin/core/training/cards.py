"""Model cards (docs/architecture.md): one builder for every way a checkpoint is trained."""
from __future__ import annotations

import datetime as _dt
from typing import Any, Dict

from ..errors import ClaireError


def build_card(arch: str, size: str, config: Dict, classes, nodata: int, ospec: Dict, sspec: Dict,
               training: Dict, metrics: Dict, tile_size: int = 256, overlap: int = 32) -> Dict[str, Any]:
    """Model card per docs/architecture.md."""
    from ....models import __version__

    return {
        "format": "claire-checkpoint/1", "arch": arch, "size": size, "config": config,
        "classes": [{"index": i, "value": int(c.value), "name": c.name, **({"color": c.color} if c.color else {})}
                    for i, c in enumerate(classes)],
        "nodata": int(nodata), "inputs": {"optical": ospec, "sar": sspec},
        "tile_size": int(tile_size), "overlap": int(overlap), "training": training, "metrics": metrics,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "claire_version": __version__,
    }


def nodata_for(classes, wanted: int) -> int:
    """`wanted` as the output raster's nodata unless a class uses it; then the first free of 0, 255, 65535, -1."""
    values = {int(c.value) for c in classes}
    if wanted not in values:
        return wanted
    for v in (0, 255, 65535, -1):
        if v not in values:
            return v
    raise ClaireError("cannot choose a nodata value distinct from the class values")
