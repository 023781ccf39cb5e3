"""Where the plugin's own files are: the package root, its resources and the bundled checkpoint."""
from __future__ import annotations

import os

#: The repository / plugin folder (the package `claire`), links resolved: `make install` links the
#: plugin folder of a QGIS profile to the source tree, whose `.venv` and resources are found from here.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def resource(*parts: str) -> str:
    """Path of a file under `resources/`."""
    return os.path.join(PACKAGE_ROOT, "resources", *parts)


#: The bundled default checkpoint, used when a run names none.
DEFAULT_CHECKPOINT = resource("checkpoints", "claire_default.safetensors")
