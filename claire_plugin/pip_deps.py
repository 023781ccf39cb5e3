"""Pip commands for the plugin's Python dependencies, shared by `make venv` and the dependency dialog.

One truth for the pins (`requirements.txt`), for the torch build (CPU or CUDA) and for the Python that
runs pip. Imports nothing beyond the standard library, so it works before anything is installed:
`python -m claire.claire_plugin.pip_deps torch --variant auto` installs torch into that Python.
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .core.errors import ClaireError
from .paths import PACKAGE_ROOT

REQUIREMENTS = os.path.join(PACKAGE_ROOT, "requirements.txt")
#: PyTorch's own index of CPU-only wheels (about 190 MB for torch instead of about 2.7 GB with CUDA).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI_INDEX = "https://pypi.org/simple"
VARIANTS = ("auto", "cpu", "cuda")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_pins(path: str = REQUIREMENTS) -> Dict[str, str]:
    """Map each package name (lower case) of a requirements file to its requirement, comments dropped."""
    pins: Dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            text = line.split("#", 1)[0].strip()
            match = _NAME.match(text)
            if match and not text.startswith("-"):
                pins[match.group(1).lower()] = text
    return pins


def _private_folder() -> str:
    """A folder of this process's own (mode 0700, removed at exit unless `keep_pip_files`) for the files pip reads
    later."""
    global _PRIVATE
    if _PRIVATE is None or not os.path.isdir(_PRIVATE):
        _PRIVATE = tempfile.mkdtemp(prefix="claire-pip-")
        atexit.register(_remove_private, _PRIVATE)
    return _PRIVATE


def _remove_private(folder: str) -> None:
    if not _KEEP:
        shutil.rmtree(folder, True)


def keep_pip_files() -> Optional[str]:
    """Keep the files pip reads after this process ends (a dry run prints commands to paste later); their folder,
    or None where none was made."""
    global _KEEP
    _KEEP = True
    return _PRIVATE


_PRIVATE: Optional[str] = None
_KEEP = False


def constraints_file(path: str = REQUIREMENTS, folder: Optional[str] = None) -> str:
    """The pins of `path` as a pip constraints file, in `folder` (default: a folder of this process's own, never a
    name in the shared temporary folder that another user could create first): pip refuses extras in constraints
    ("Constraints cannot have extras"), so `dask[distributed]==X` is written `dask==X`. Written whole each time
    (pip reads it when the installation runs, maybe much later)."""
    lines = [re.sub(r"\[[^\]]*\]", "", pin) for pin in requirement_pins(path).values()]
    text = "\n".join(lines) + "\n"
    name = f"claire-constraints-{hashlib.sha1(text.encode()).hexdigest()[:12]}.txt"
    where = folder or _private_folder()
    out = os.path.join(where, name)
    fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=where)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, out)
    return out


def has_nvidia_gpu(run: Callable = subprocess.run) -> bool:
    """True when an NVIDIA driver is loaded or `nvidia-smi -L` lists a GPU."""
    if os.path.exists("/proc/driver/nvidia/version"):
        return True
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        done = run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "GPU" in (done.stdout or "")


def resolve_variant(requested: str, gpu: Optional[bool] = None) -> str:
    """`cpu` or `cuda` for a requested `auto|cpu|cuda` (auto: cuda only where an NVIDIA GPU is present)."""
    value = (requested or "auto").strip().lower()
    if value not in VARIANTS:
        raise ClaireError(f"Unknown torch build '{requested}'. Fix: use one of {', '.join(VARIANTS)} (TORCH=cpu).")
    if value != "auto":
        return value
    return "cuda" if (has_nvidia_gpu() if gpu is None else gpu) else "cpu"


def index_reachable(url: str = TORCH_CPU_INDEX, timeout: float = 8.0) -> bool:
    """True when the package index at `url` answers (a quick probe, so pip never waits on its retries)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout) as response:
            return 200 <= response.status < 400
    except (OSError, ValueError):
        return False


def torch_install_args(variant: str, pin: str, cpu_index_ok: bool) -> Tuple[List[str], str]:
    """Pip arguments that install torch `pin` as the `variant` build, and a line saying what comes down."""
    if variant == "cpu" and cpu_index_ok:
        return (["--index-url", TORCH_CPU_INDEX, "--extra-index-url", PYPI_INDEX, pin],
                f"{pin} CPU build from PyTorch's CPU index (about 190 MB)")
    if variant == "cpu":
        return ([pin], f"{pin}: PyTorch's CPU index cannot be reached, so plain PyPI: a local CPU wheel when "
                       "pip finds one, else the CUDA build (about 2.7 GB with its NVIDIA libraries; runs on CPU too)")
    return ([pin], f"{pin} CUDA build from PyPI (about 2.7 GB with its NVIDIA libraries)")


def pip_command(python: str, args: Sequence[str], target: Optional[str] = None) -> List[str]:
    """The `python -m pip install` command for `args`, into folder `target` when given.

    Into a folder, pip sees none of the packages already installed, so the pins of `requirements.txt`
    also hold for the dependencies it pulls in (e.g. affine < 3 for rasterio)."""
    command = [python, "-m", "pip", "install", "--progress-bar", "on"]
    if target:
        command += ["--target", target, "--upgrade", "--constraint", constraints_file()]
    return command + list(args)


def pip_problem(python: str) -> Optional[str]:
    """None when `python -m pip` runs; else what is wrong and the fix. Debian's and Ubuntu's QGIS packages do not pull
    in pip (QA round 21, Debian 13: the dependency dialog ran into "No module named pip" with no fix)."""
    try:
        done = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} cannot run pip ({exc})"
    if done.returncode == 0:
        return None
    return (f"pip is not installed for {python}, so nothing can be installed into QGIS's Python. Fix: install it "
            f"(Debian, Ubuntu: sudo apt install python3-pip; Fedora: sudo dnf install python3-pip; Arch: sudo pacman "
            f"-S python-pip), then install again")


def find_python(executable: str = sys.executable) -> str:
    """The Python interpreter to run pip with: `executable` itself, or the python beside a QGIS binary. For this
    process's own interpreter outside a virtual environment, the python{X.Y} of its installation first: inside
    QGIS on Linux `sys.executable` is whichever python3 comes first on PATH (e.g. a pyenv shim of another
    version), not the Python QGIS runs."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if executable == sys.executable and sys.prefix == sys.base_prefix:
        own = os.path.join(sys.exec_prefix, "bin", f"python{version}")
        if os.path.isfile(own) and os.access(own, os.X_OK):
            return own
    name = os.path.basename(executable).lower()
    if name.startswith("python"):
        return executable
    folder = os.path.dirname(executable)
    for candidate in (f"python{version}", "python3", "python", "python3.exe", "python.exe"):
        for where in (folder, os.path.join(folder, "bin")):
            path = os.path.join(where, candidate)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    found = shutil.which(f"python{version}") or shutil.which("python3")
    if not found:
        raise ClaireError(f"No Python interpreter found next to {executable}. Fix: install Python {version}, "
                          "or install the packages by hand with that Python's pip.")
    return found


def torch_command(variant: str, python: str, target: Optional[str] = None,
                  probe: Callable[[], bool] = index_reachable) -> Tuple[List[str], str]:
    """The pip command that installs the pinned torch as `variant` (cpu|cuda|auto), and what it downloads."""
    chosen = resolve_variant(variant)
    pin = requirement_pins().get("torch", "torch")
    args, note = torch_install_args(chosen, pin, probe() if chosen == "cpu" else False)
    return pip_command(python, args, target), note


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m claire.claire_plugin.pip_deps torch [--variant auto|cpu|cuda] [--target DIR]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["torch"])
    parser.add_argument("--variant", default=os.environ.get("TORCH") or "auto", help="auto (default), cpu or cuda")
    parser.add_argument("--target", help="install into this folder instead of the running Python")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command, run nothing")
    args = parser.parse_args(argv)
    try:
        command, note = torch_command(args.variant, sys.executable, args.target)
    except ClaireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"torch: {note}", flush=True)
    print("  " + " ".join(command), flush=True)
    if args.dry_run and keep_pip_files():
        print(f"  (its constraints file stays in {_PRIVATE} for the command above)", flush=True)
    return 0 if args.dry_run else subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
