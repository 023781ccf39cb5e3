"""What a run's figures depend on beyond its settings, for a reader who would reproduce them: the software versions,
the checkpoint's SHA-256 and the input files (used by training of both kinds and by the engine's summary and
report)."""
from __future__ import annotations

import functools
import os
import time
from typing import Any, Dict, Optional, Sequence, Tuple


def software() -> Dict[str, Any]:
    """CLAIRE, Python, torch and NumPy (with models.determinism.record's thread count, CPU kernels and settings),
    scikit-learn, GDAL and rasterio versions (None where a package is missing)."""
    import platform

    from ...models import __version__
    from ...models.determinism import record

    out: Dict[str, Any] = {"claire": __version__, "python": platform.python_version(), **record()}
    for dist, key in (("scikit-learn", "scikit_learn"), ("GDAL", "gdal"), ("rasterio", "rasterio")):
        out[key] = _installed_version(dist, key)
    return out


def _installed_version(dist: str, key: str) -> Optional[str]:
    """A package's version from its metadata, without importing it (a classification never imports scikit-learn,
    and a broken install must not stop a finished run); GDAL from its bindings where Debian ships no metadata."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - not installed as a distribution
        pass
    if key == "gdal":
        try:
            from osgeo import gdal

            return gdal.__version__
        except Exception:  # noqa: BLE001
            return None
    return None


def checkpoint_record(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """{path, sha256} of a checkpoint file, None without one (hashed once per file version: a batch of hundreds
    of pairs names the same checkpoint in every run record)."""
    if not path or not os.path.isfile(path):
        return None
    st = os.stat(path)
    return {"path": os.path.abspath(path), "sha256": _sha256(os.path.abspath(path), st.st_mtime_ns, st.st_size)}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    """The file's SHA-256; the modification time and size key the cache to this version of the file."""
    from .io.atomic import file_sha256

    return file_sha256(path)


def provenance(base_checkpoint: Optional[str], inputs: Sequence[Tuple[str, Optional[str]]]) -> Dict[str, Any]:
    """What a run's figures depend on beyond its settings, for a reader who would reproduce them: the software
    versions (models.determinism.record, scikit-learn, GDAL, Python, CLAIRE), the base checkpoint's SHA-256 and
    each input file's size and modification time (rasters are not hashed: a tile is gigabytes)."""
    out = software()
    base = checkpoint_record(base_checkpoint)
    if base:
        out["base_checkpoint_sha256"] = base["sha256"]
    files = {}
    for role, path in inputs:
        if path and os.path.isfile(path):
            st = os.stat(path)
            files[role] = {"path": os.path.abspath(path), "bytes": st.st_size,
                           "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))}
    out["inputs"] = files
    return out
