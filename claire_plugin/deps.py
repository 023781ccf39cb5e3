"""Find and install the plugin's Python dependencies without extra environment variables.

Two places are added to `sys.path` at plugin load (after QGIS's own packages, so QGIS's numpy and GDAL
win): the `.venv` beside the source tree (`make install` links the plugin folder there), and a folder of
the QGIS profile, `<profile>/python/claire-deps/py3.X`, into which the "Install Python dependencies"
dialog (or `python -m claire.claire_plugin.deps install`) puts torch, rasterio, safetensors and scikit-learn with pip.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import site
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ..models.quoting import shell_quote
from .core.errors import ClaireError
from .paths import PACKAGE_ROOT
from .pip_deps import (
    find_python,
    index_reachable,
    keep_pip_files,
    pip_command,
    pip_problem,
    requirement_pins,
    torch_command,
)

PLUGIN_DIR = PACKAGE_ROOT
_PINS = requirement_pins()
#: Packages the engine needs, with the pin to install: the one table, read from requirements.txt (the one
#: place for pins). Read by core.diagnostics, the dock, the installer and plugin load.
#: The import name of the packages whose distribution is called otherwise.
DISTRIBUTION = {"sklearn": "scikit-learn"}
#: scikit-learn: training's random-forest baseline (on by default) and the forest checkpoints it writes.
REQUIRED: Dict[str, str] = {name: _PINS.get(DISTRIBUTION.get(name, name), name)
                            for name in ("numpy", "torch", "rasterio", "safetensors", "sklearn")}
#: Packages only some features need (the language-model explanation).
OPTIONAL: Dict[str, str] = {name: _PINS.get(name, name) for name in ("transformers",)}
DEPS_FOLDER = "claire-deps"
#: torch's pure-Python dependencies, which Debian's dist-packages (searched first inside QGIS) may hold in
#: versions too old for torch: Debian 12 ships sympy 1.11 while torch needs 1.13.3 or later, and
#: `torch.optim` imports it. These are taken from our folders when they hold them.
OWN_FIRST = ("typing_extensions", "mpmath", "sympy", "networkx", "filelock", "fsspec")


class _OwnFirst(importlib.abc.MetaPathFinder):
    """Finds the top-level modules `names` in `folder` before the rest of sys.path is searched."""

    def __init__(self, folder: str, names: Sequence[str]) -> None:
        self.folder, self.names = folder, frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [self.folder])


def venv_site_packages(plugin_dir: str = PLUGIN_DIR) -> Optional[str]:
    """Return the site-packages of the `.venv` beside the plugin's source, if there is one."""
    path = os.path.join(
        plugin_dir, ".venv", "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages"
    )
    return path if os.path.isdir(path) else None


def profile_dir() -> Optional[str]:
    """The running QGIS's profile folder, or None outside QGIS."""
    try:
        from qgis.core import QgsApplication
    except ImportError:
        return None
    path = QgsApplication.qgisSettingsDirPath()
    return path.rstrip("/\\") or None


def deps_folder(profile: Optional[str] = None) -> Optional[str]:
    """`<profile>/python/claire-deps/py3.X`: where the dialog installs packages for this Python version."""
    profile = profile or profile_dir()
    if not profile:
        return None
    return os.path.join(profile, "python", DEPS_FOLDER, f"py{sys.version_info.major}.{sys.version_info.minor}")


def bootstrap(profile: Optional[str] = None) -> List[str]:
    """Append the venv's site-packages and the profile's dependency folder to sys.path; returns those added.

    Their copies of torch's pure-Python dependencies (OWN_FIRST) are found before the system's."""
    added = []
    for path in (venv_site_packages(), deps_folder(profile)):
        if path and os.path.isdir(path) and path not in sys.path:
            site.addsitedir(path)
            sys.meta_path.insert(0, _OwnFirst(path, OWN_FIRST))
            added.append(path)
    if added:
        importlib.invalidate_caches()
    return added


#: Set to 1 to let torch load triton inside QGIS anyway (see keep_triton_out).
ALLOW_TRITON_ENV = "CLAIRE_ALLOW_TRITON"


def keep_triton_out() -> bool:
    """Inside QGIS: make `import triton` raise ImportError, unless triton is already loaded or ALLOW_TRITON_ENV
    is 1; returns whether triton is kept out. Triton (torch.compile's GPU compiler, installed with the CUDA
    builds of torch) carries its own LLVM, and loading it into a QGIS that has Mesa's libLLVM loaded kills QGIS
    with a segmentation fault (QGIS 3.40, Debian 13: at the first optimizer of a training from the dock, where
    torch imports torch._dynamo, which looks for triton). torch treats an ImportError as "no triton"."""
    if "triton" in sys.modules:
        return triton_kept_out()
    if os.environ.get(ALLOW_TRITON_ENV) == "1":
        return False
    sys.modules["triton"] = None  # the import system's own way to make an import fail with ImportError
    return True


def triton_kept_out() -> bool:
    """Whether keep_triton_out has kept triton out of this process."""
    return "triton" in sys.modules and sys.modules["triton"] is None


#: Symbols of a BLAS that torch's own libraries define too: found in a program's global symbols, torch's calls
#: to them bind there.
BLAS_SYMBOLS = ("sgemm_", "dgemm_", "cblas_sgemm")


def blas_in_program() -> Optional[str]:
    """The first of BLAS_SYMBOLS that the program's global symbols define (None: none, or not Linux/glibc).
    QGIS's executables link a BLAS at start (libqgis_core -> GDAL -> armadillo -> libblas.so.3: OpenBLAS or
    the reference BLAS on Debian); a Python program loads numpy's privately and has none."""
    import ctypes

    try:
        program = ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows' CDLL takes no None (CPython gh-83424): no program's symbols there
        return None
    return next((name for name in BLAS_SYMBOLS if hasattr(program, name)), None)


class _DeepBindLoader(importlib.abc.Loader):
    """Runs a package's import with RTLD_DEEPBIND added to the flags Python opens extension modules with; then
    takes `finder` off sys.meta_path."""

    def __init__(self, loader, finder=None) -> None:
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
        try:
            self.loader.exec_module(module)
        finally:
            sys.setdlopenflags(flags)
            if self.finder in sys.meta_path:
                sys.meta_path.remove(self.finder)

    def __getattr__(self, name):  # get_source, is_package, get_resource_reader, ...: the wrapped loader's
        return getattr(self.loader, name)


class _TorchOwnSymbols(importlib.abc.MetaPathFinder):
    """torch's spec with its loader wrapped in _DeepBindLoader. A look-up without an import (`find_spec`, as
    the plugin's dependency check does at load) leaves it in place for the import that follows."""

    def __init__(self) -> None:
        self._resolving = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch" or getattr(self._resolving, "on", False):
            return None
        self._resolving.on = True
        try:
            spec = importlib.util.find_spec("torch")  # by the finders after this one
        finally:
            self._resolving.on = False
        if spec is not None and spec.loader is not None and not isinstance(spec.loader, _DeepBindLoader):
            spec.loader = _DeepBindLoader(spec.loader, self)
        return spec


#: Set to 0 to let torch bind to the program's BLAS as before (see torch_own_symbols).
OWN_SYMBOLS_ENV = "CLAIRE_TORCH_OWN_SYMBOLS"


def torch_own_symbols(force: bool = False) -> bool:
    """Make torch, when it is first imported, look up its own libraries' symbols before the program's (glibc's
    RTLD_DEEPBIND); returns whether it will. Done where the program defines a BLAS (blas_in_program, or
    `force`): there torch's matrix products ran in that BLAS instead of torch's own - the unoptimised reference
    BLAS in QGIS 3.40 on Debian 13, OpenBLAS with its own threads spinning beside torch's on Debian 12
    (docs/benchmark.md, "torch inside QGIS's executables"). Nothing to do once torch is imported, off Linux
    (other systems bind symbols per library), with OWN_SYMBOLS_ENV=0, or under LD_PRELOAD (an allocator put
    in front of the C library's would be bypassed by torch alone)."""
    if "torch" in sys.modules or not hasattr(os, "RTLD_DEEPBIND") or os.environ.get(OWN_SYMBOLS_ENV) == "0" \
            or os.environ.get("LD_PRELOAD"):
        return False
    if not (force or blas_in_program()):
        return False
    if not _hook_installed():
        sys.meta_path.insert(0, _TorchOwnSymbols())
    return True


def _hook_installed() -> bool:
    return any(isinstance(f, _TorchOwnSymbols) for f in sys.meta_path)


def torch_blas() -> str:
    """Where torch's matrix products run, in words (the diagnostics report it)."""
    program = blas_in_program()
    if not program:
        return "torch's own (this program links no BLAS)"
    torch = sys.modules.get("torch")
    if torch is None:
        if _hook_installed():
            return "torch's own once torch is imported (loaded with RTLD_DEEPBIND: this program links a BLAS)"
        return "this program's BLAS once torch is imported (it links one, and torch will bind to it)"
    if isinstance(getattr(torch.__spec__, "loader", None), _DeepBindLoader):
        return "torch's own (loaded with RTLD_DEEPBIND: this program links a BLAS)"
    return (f"this program's BLAS ({program}), not torch's own: torch was imported before CLAIRE could keep its own "
            f"(by another plugin), or with {OWN_SYMBOLS_ENV}=0 or LD_PRELOAD set, so classifying and training run "
            f"slower; restart QGIS so that CLAIRE loads torch first")


def missing(packages: Optional[Dict[str, str]] = None) -> List[str]:
    """Names of required packages that cannot be imported."""
    return [name for name in (packages or REQUIRED) if importlib.util.find_spec(name) is None]


def install_hint(names: List[str]) -> str:
    """A message naming the missing packages and how to install them ("" when none is missing); optional ones
    (OPTIONAL: the language-model explanation) are said to be optional."""
    if not names:
        return ""
    needed = [n for n in names if n not in OPTIONAL]
    optional = [n for n in names if n in OPTIONAL]
    parts = []
    if needed:
        ways = ["Raster > CLAIRE land cover > Install Python dependencies… in QGIS desktop", _deps_command()]
        if os.path.isfile(os.path.join(PLUGIN_DIR, "Makefile")):  # a source tree, not a ZIP install
            ways.append(f"`make install` in the CLAIRE source folder ({PLUGIN_DIR})")
        parts.append(f"CLAIRE needs Python packages that QGIS cannot import: {', '.join(needed)} ({_pins(needed)}). "
                     f"Fix: {'; or '.join(ways)}; then restart QGIS.")
    if optional:
        parts.append(f"Optional, only for explanations written by a language model: {', '.join(optional)} "
                     f"({_pins(optional)}) cannot be imported, so the template writes them. To add it: "
                     f"{_deps_command('--optional')}; then restart QGIS.")
    return " ".join(parts)


def _pins(names: Sequence[str]) -> str:
    return " ".join(f'"{REQUIRED.get(n, OPTIONAL.get(n, n))}"' for n in names)


def _deps_command(*extra: str) -> str:
    """The command line that installs the packages into the QGIS profile's dependency folder (with pip, by the
    Python of this QGIS: not `pip install --user`, which Debian 12 and later refuse as externally managed)."""
    try:
        python = find_python()
    except ClaireError:
        python = "python3"
    profile = shell_quote(profile_dir()) if profile_dir() else "YOUR_QGIS_PROFILE_FOLDER"
    # quoted: QGIS's Windows interpreter lies in "C:\Program Files\QGIS 3.x", and profiles under user names
    return (f"`cd {shell_quote(os.path.dirname(PLUGIN_DIR))} && {shell_quote(python)} -m claire.claire_plugin.deps "
            f"install --profile {profile}{''.join(' ' + e for e in extra)}`")


def missing_package_hint(exc: BaseException) -> str:
    """`install_hint` for a required or optional package that could not be imported: absent (ModuleNotFoundError), or
    there but failing to load (an ImportError or OSError raised by its own import code: a shared library missing, an
    undefined symbol). "" for anything else (another module's failure is a bug, not the environment)."""
    if isinstance(exc, ModuleNotFoundError):
        name = (exc.name or "").split(".")[0]
        broken = ""
    elif isinstance(exc, (ImportError, OSError)):
        name, broken = _importing_package(exc), f"{type(exc).__name__}: {exc}"
    else:
        return ""
    if name not in REQUIRED and name not in OPTIONAL:
        return ""
    absent = missing()  # every package a run needs is named at once, not one per attempt
    hint = install_hint(absent + ([name] if name not in absent else []))
    return f"{hint} ({name} is installed but fails to load: {broken}; installing it again fixes that)" if broken \
        else hint


def _importing_package(exc: BaseException) -> str:
    """The top-level package whose module code (an import, not a later call) raised `exc`, "" when none did."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "<module>":
            top = str(frame.f_globals.get("__name__", "")).split(".")[0]
            if top in REQUIRED or top in OPTIONAL:
                return top
        tb = tb.tb_next
    return ""


@dataclass
class Step:
    """One pip run of an installation: what it installs, the command, and what it downloads."""

    label: str
    command: List[str]
    note: str


def install_plan(names: Sequence[str], torch_variant: str, target: str, python: Optional[str] = None,
                 probe: Optional[Callable[[], bool]] = None) -> List[Step]:
    """The pip runs that install `names` into folder `target`: torch first (CPU or CUDA), then the rest.

    Packages come as binary wheels (rasterio's bundles its own GDAL; `make install` builds it against
    QGIS's instead)."""
    python = python or find_python()
    steps = []
    if "torch" in names:
        command, note = torch_command(torch_variant, python, target, probe or index_reachable)
        steps.append(Step("torch", command, note))
    others = [REQUIRED.get(name, OPTIONAL.get(name, name)) for name in names if name != "torch"]
    if others:
        steps.append(Step(", ".join(n for n in names if n != "torch"),
                          pip_command(python, ["--only-binary", ":all:"] + others, target),
                          f"{', '.join(others)} as binary wheels (tens of MB)"))
    return steps


def shown_names(names: Sequence[str]) -> List[str]:
    """Import names as pip and people know the packages ("scikit-learn", not "sklearn")."""
    return [DISTRIBUTION.get(n, n) for n in names]


def run_plan(steps: Sequence[Step], echo: Callable[[str], None] = print) -> int:
    """Run the steps in order, passing every output line to `echo`; stops at the first failure (and before the
    first step when the Python they run has no pip, saying how to install it)."""
    problem = pip_problem(steps[0].command[0]) if steps else None
    if problem:
        echo(problem)
        return 1
    for number, step in enumerate(steps, start=1):
        echo(f"[{number}/{len(steps)}] {step.note}")
        echo("$ " + " ".join(step.command))
        with subprocess.Popen(step.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:
                echo(line.rstrip())
        if proc.returncode != 0:
            echo(f"pip failed (exit {proc.returncode}) while installing {step.label}; nothing else was run.")
            return proc.returncode
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m claire.claire_plugin.deps install --profile DIR [--torch cpu|cuda|auto] [--dry-run]`."""
    parser = argparse.ArgumentParser(description="Install CLAIRE's Python dependencies into a QGIS profile.")
    parser.add_argument("action", choices=["install", "status"])
    parser.add_argument("--profile", "--profile-dir", dest="profile", required=True,
                        help="the QGIS profile folder (…/QGIS3/profiles/default)")
    parser.add_argument("--torch", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--dry-run", action="store_true", help="print the pip commands, run nothing")
    parser.add_argument("--optional", action="store_true",
                        help=f"also the optional packages ({', '.join(OPTIONAL)}: language-model explanations)")
    args = parser.parse_args(argv)
    bootstrap(args.profile)
    absent = missing() + (missing(OPTIONAL) if args.optional else [])
    target = deps_folder(args.profile)
    print(f"Missing: {', '.join(shown_names(absent)) or 'nothing'}; dependency folder: {target}")
    if args.action == "status" or not absent:
        return 0
    steps = install_plan(absent, args.torch, target)
    if args.dry_run:
        for step in steps:
            print(step.note + "\n  " + " ".join(step.command))
        kept = keep_pip_files()
        if kept:
            print(f"(the constraints file of these commands stays in {kept})")
        return 0
    os.makedirs(target, exist_ok=True)
    return run_plan(steps)


if __name__ == "__main__":
    sys.exit(main())
