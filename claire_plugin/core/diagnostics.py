"""Diagnostics report: versions, devices, the device chosen and why, checkpoint validity (QGIS-free).

The report is the main support tool: users paste it into a bug report. Every heavy import is done
inside a function and a missing package is reported, never raised.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from typing import Any, Dict, Optional, Tuple

from ...models.device import auto_choice
from ..deps import OPTIONAL, REQUIRED, install_hint, torch_blas
from ..paths import DEFAULT_CHECKPOINT, PACKAGE_ROOT
from .errors import ClaireError
from .runtime.device import resolve_device


def package_version(name: str) -> Tuple[Optional[str], Optional[str]]:
    """(version, None) when ``name`` imports, else (None, the import error as text)."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken binary raising OSError
        return None, f"{type(exc).__name__}: {exc}"
    return str(getattr(module, "__version__", "unknown")), None




def torch_devices() -> Dict[str, Any]:
    """What torch sees: CUDA (version, devices, memory), MPS, CPU threads; empty when torch is missing."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    info: Dict[str, Any] = {
        "available": True,
        "cuda_build": getattr(torch.version, "cuda", None),
        "cuda_available": bool(torch.cuda.is_available()),
        "cudnn": None,
        "devices": [],
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "cpu_threads": torch.get_num_threads(),
    }
    if info["cuda_available"]:
        try:
            info["cudnn"] = torch.backends.cudnn.version()
        except Exception:  # noqa: BLE001 - reported, not raised
            pass
        from ...models.device import cuda_problem

        for i in range(torch.cuda.device_count()):
            try:
                props = torch.cuda.get_device_properties(i)
                entry = {"id": f"cuda:{i}", "name": props.name, "memory_gb": round(props.total_memory / 1024 ** 3, 1),
                         "capability": f"{props.major}.{props.minor}"}
            except Exception as exc:  # noqa: BLE001 - a GPU the driver cannot describe is reported, not raised
                entry = {"id": f"cuda:{i}", "name": "unknown", "problem": str(exc).strip().splitlines()[0]}
            if "problem" not in entry and cuda_problem(i):
                entry["problem"] = cuda_problem(i)
            info["devices"].append(entry)
    if info["mps_available"]:
        info["devices"].append({"id": "mps", "name": "Apple Metal (MPS)"})
    info["devices"].append({"id": "cpu", "name": platform.processor() or platform.machine(),
                            "threads": info["cpu_threads"]})
    return info


def choose_device(requested: str = "auto", devices: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
    """The device a run would use for ``requested`` and a sentence saying why."""
    devices = devices if devices is not None else torch_devices()
    requested = (requested or "auto").strip().lower()
    if not devices.get("available"):
        return "none", "torch cannot be imported, so no run is possible (see the missing packages)."
    cuda = devices.get("cuda_available")
    problem = next((d.get("problem") for d in devices.get("devices", []) if d.get("id") == "cuda:0"), None)
    if requested == "auto":
        choice = auto_choice(bool(cuda) and not problem, bool(devices.get("mps_available")))
        if choice == "cuda":
            name = devices["devices"][0]["name"]
            return "cuda:0", f"'auto' picks the first CUDA GPU ({name})."
        if choice == "mps":
            return "mps", "'auto' picks Apple Metal (MPS): no CUDA GPU was found."
        why = ("torch was built without CUDA (a CPU-only wheel)" if not devices.get("cuda_build")
               else f"torch has CUDA {devices.get('cuda_build')} and sees a GPU that cannot run its kernels "
                    f"({problem})" if problem
               else f"torch has CUDA {devices.get('cuda_build')} but finds no usable GPU (driver missing or too old?)")
        return "cpu", f"'auto' falls back to the CPU: {why}."
    if requested.startswith("cuda"):
        wanted = requested if ":" in requested else "cuda:0"
        problem = next((d.get("problem") for d in devices.get("devices", []) if d.get("id") == wanted), None)
        if not cuda:
            return "cpu", (f"'{requested}' was asked for but CUDA is not available; a run would stop with an "
                           "error. Choose 'auto' or 'cpu', or install a CUDA build of torch.")
        if problem:
            return "cpu", (f"'{requested}' was asked for but the GPU cannot run torch's CUDA kernels ({problem}); a "
                           "run would stop with an error. Choose 'auto' or 'cpu', or update the driver or torch.")
        return requested, f"'{requested}' was asked for and CUDA is available."
    if requested == "mps" and not devices.get("mps_available"):
        return "cpu", "'mps' was asked for but Apple Metal is not available."
    return requested, f"'{requested}' was asked for."


def engine_device(requested: str, devices: Dict[str, Any]) -> Tuple[str, str]:
    """The device the engine itself would pick (core.runtime.device.resolve_device), with our explanation."""
    if not devices.get("available"):
        return choose_device(requested, devices)
    try:
        dev, reason = resolve_device(requested)
    except ClaireError as exc:  # the requested device is not usable
        return "none", f"a run would stop: {exc}"
    chosen = str(dev)
    if chosen == "cpu" and (requested or "auto").lower() == "auto":
        reason += " — " + choose_device("auto", devices)[1].split(": ", 1)[-1]
    return chosen, reason


def checkpoint_status(path: Optional[str]) -> Dict[str, Any]:
    """Whether a checkpoint can be read, and the main facts of its model card."""
    path = path or DEFAULT_CHECKPOINT
    status: Dict[str, Any] = {"path": path, "exists": os.path.exists(path), "valid": False}
    if not status["exists"]:
        status["error"] = "file not found"
        return status
    status["size_mb"] = round(os.path.getsize(path) / 1024 ** 2, 2)
    try:
        from ...models.checkpoint import read_card
        card = read_card(path)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        status["error"] = f"{type(exc).__name__}: {exc}"
        return status
    status["valid"] = True
    inputs = card.get("inputs", {})
    status.update({
        "format": card.get("format"), "arch": card.get("arch"), "size": card.get("size"),
        "classes": [c.get("name") for c in card.get("classes", [])],
        "optical_bands": inputs.get("optical", {}).get("bands"),
        "sar_bands": inputs.get("sar", {}).get("bands"),
        "tile_size": card.get("tile_size"), "claire_version": card.get("claire_version"),
    })
    return status


def collect(checkpoint: Optional[str] = None, device: str = "auto",
            host: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Gather the whole report as a dict; ``host`` adds facts of the caller (e.g. QGIS's version)."""
    packages: Dict[str, Any] = {}
    for name in list(REQUIRED) + list(OPTIONAL):
        version, error = package_version(name)
        packages[name] = {"version": version, **({"error": error} if error else {})}
    try:
        import rasterio
        packages["gdal (rasterio)"] = {"version": rasterio.__gdal_version__}
    except Exception:  # noqa: BLE001 - reported, not raised
        pass
    devices = torch_devices()
    chosen, reason = engine_device(device, devices)
    missing = [n for n in REQUIRED if packages[n]["version"] is None]
    missing_opt = [n for n in OPTIONAL if packages[n]["version"] is None]
    return {
        "claire": {"version": claire_version(), "path": PACKAGE_ROOT},
        "host": host or {},
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": platform.platform()},
        "packages": packages,
        "missing": missing,
        "missing_optional": missing_opt,
        "install_hint": install_hint(missing + missing_opt),
        "torch": dict(devices, blas=torch_blas()),
        "device": {"requested": device, "chosen": chosen, "reason": reason},
        "checkpoint": checkpoint_status(checkpoint),
    }


def claire_version() -> str:
    """The plugin's version (metadata.txt)."""
    meta = os.path.join(PACKAGE_ROOT, "metadata.txt")
    try:
        with open(meta, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def format_report(report: Dict[str, Any]) -> str:
    """Plain-text (Markdown) rendering of :func:`collect`'s dict, ready to paste into an issue."""
    lines = ["## CLAIRE diagnostics", ""]
    lines.append(f"- CLAIRE: {report['claire']['version']} ({report['claire']['path']})")
    for key, value in report.get("host", {}).items():
        lines.append(f"- {key}: {value}")
    py = report["python"]
    lines.append(f"- Python: {py['version']} ({py['executable']})")
    lines.append(f"- Platform: {py['platform']}")
    lines += ["", "### Packages"]
    for name, info in report["packages"].items():
        lines.append(f"- {name}: {info['version'] or 'MISSING (' + info.get('error', '') + ')'}")
    if report["install_hint"]:
        lines += ["", f"**{report['install_hint']}**"]
    t = report["torch"]
    lines += ["", "### Devices"]
    if t.get("available"):
        lines.append(f"- torch CUDA build: {t.get('cuda_build') or 'none (CPU-only wheel)'}; "
                     f"CUDA available: {'yes' if t.get('cuda_available') else 'no'}"
                     + (f"; cuDNN {t['cudnn']}" if t.get("cudnn") else ""))
        for d in t.get("devices", []):
            extra = f", {d['memory_gb']} GB, compute {d['capability']}" if "memory_gb" in d else ""
            extra += f", {d['threads']} threads" if "threads" in d else ""
            lines.append(f"- {d['id']}: {d['name']}{extra}")
        lines.append(f"- Matrix products: {t['blas']}")
    else:
        lines.append(f"- torch unavailable: {t.get('error')}")
    dev = report["device"]
    lines.append(f"- Device for '{dev['requested']}': **{dev['chosen']}** — {dev['reason']}")
    c = report["checkpoint"]
    lines += ["", "### Checkpoint", f"- Path: {c['path']}"]
    if c["valid"]:
        lines.append(f"- Valid: yes ({c.get('format')}, arch {c.get('arch')} {c.get('size') or ''}, "
                     f"{c.get('size_mb')} MB)")
        lines.append(f"- Classes ({len(c.get('classes') or [])}): {', '.join(map(str, c.get('classes') or []))}")
        lines.append(f"- Optical bands: {', '.join(c.get('optical_bands') or [])}; "
                     f"SAR bands: {', '.join(c.get('sar_bands') or [])}")
    else:
        lines.append(f"- Valid: NO — {c.get('error')}")
    return "\n".join(lines) + "\n"


def to_json(report: Dict[str, Any]) -> str:
    """JSON rendering of the report (stable key order)."""
    return json.dumps(report, indent=2, sort_keys=True, default=str)
