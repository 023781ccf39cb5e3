"""Find the plugin's Python dependencies without extra environment variables.

`make install` links the plugin folder to the source tree, whose `.venv` holds torch, rasterio and
transformers. QGIS's Python does not know that venv, so the plugin adds its site-packages at load time.
"""
from __future__ import annotations

import importlib.util
import os
import site
import sys
from typing import Dict, List, Optional

from .paths import PACKAGE_ROOT

PLUGIN_DIR = PACKAGE_ROOT
#: Packages the engine needs, with the pin to install: the one table, equal to requirements.txt's
#: lines (tests/core/test_diagnostics.py checks it). Read by core.diagnostics, the dock and plugin load.
REQUIRED: Dict[str, str] = {
    "numpy": "numpy>=1.24,<3",
    "torch": "torch==2.13.0",
    "rasterio": "rasterio==1.4.4",
    "safetensors": "safetensors>=0.7,<0.9",
}
#: Packages only some features need (the language-model explanation).
OPTIONAL: Dict[str, str] = {"transformers": "transformers==5.23.0"}


def venv_site_packages(plugin_dir: str = PLUGIN_DIR) -> Optional[str]:
    """Return the site-packages of the `.venv` beside the plugin's source, if there is one."""
    path = os.path.join(
        plugin_dir, ".venv", "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages"
    )
    return path if os.path.isdir(path) else None


def bootstrap() -> Optional[str]:
    """Append the plugin's venv site-packages to sys.path (after QGIS's own packages)."""
    path = venv_site_packages()
    if path and path not in sys.path:
        site.addsitedir(path)
    return path


def missing(packages: Optional[Dict[str, str]] = None) -> List[str]:
    """Names of required packages that cannot be imported."""
    return [name for name in (packages or REQUIRED) if importlib.util.find_spec(name) is None]


def install_hint(names: List[str]) -> str:
    """A message naming the missing packages and how to install them ("" when none is missing)."""
    if not names:
        return ""
    pins = " ".join(f'"{REQUIRED.get(n, OPTIONAL.get(n, n))}"' for n in names)
    user = " --user" if sys.prefix == sys.base_prefix else ""  # pip refuses --user inside a venv
    return (
        f"Missing Python packages: {', '.join(names)}. Fix: run `make install` in the CLAIRE source "
        f"folder ({PLUGIN_DIR}), or install them into this Python with "
        f"`{sys.executable} -m pip install{user} {pins}`, then restart QGIS."
    )
