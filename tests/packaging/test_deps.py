"""The dependency installer's non-GUI path: the profile folder on sys.path, the pip runs it plans."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys

import pytest

from claire.claire_plugin import deps
from claire.claire_plugin.pip_deps import TORCH_CPU_INDEX, requirement_pins


@pytest.fixture
def clean_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    yield


def test_deps_folder_is_per_python_version_inside_the_profile(tmp_path):
    version = f"py{sys.version_info.major}.{sys.version_info.minor}"
    assert deps.deps_folder(str(tmp_path)) == str(tmp_path / "python" / "claire-deps" / version)


def test_bootstrap_puts_the_profile_folder_on_sys_path(tmp_path, clean_path):
    folder = deps.deps_folder(str(tmp_path))
    package = tmp_path / "python" / "claire-deps" / folder.rsplit("/", 1)[-1] / "claire_probe_dep"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 42\n")
    assert deps.missing({"claire_probe_dep": "claire_probe_dep"}) == ["claire_probe_dep"]
    assert folder in deps.bootstrap(str(tmp_path))
    assert sys.path.index(folder) > sys.path.index(next(p for p in sys.path if "site-packages" in p))
    assert deps.missing({"claire_probe_dep": "claire_probe_dep"}) == []
    assert deps.bootstrap(str(tmp_path)) == []  # a second call adds nothing


def test_torch_dependencies_come_from_our_folder_before_older_system_copies(tmp_path, clean_path, monkeypatch):
    # Inside QGIS, Debian's dist-packages come first on sys.path; Debian 12's sympy 1.11 is too old for torch
    system = tmp_path / "system"
    (system / "claire_probe_sym").mkdir(parents=True)
    (system / "claire_probe_sym" / "__init__.py").write_text("VERSION = 'old'\n")
    sys.path.insert(0, str(system))
    folder = deps.deps_folder(str(tmp_path))
    ours = tmp_path / "python" / "claire-deps" / folder.rsplit("/", 1)[-1]
    (ours / "claire_probe_sym" / "core").mkdir(parents=True)
    (ours / "claire_probe_sym" / "__init__.py").write_text("VERSION = 'new'\n")
    (ours / "claire_probe_sym" / "core" / "__init__.py").write_text("PART = 'ours'\n")
    (ours / "claire_probe_other").mkdir()
    (ours / "claire_probe_other" / "__init__.py").write_text("VERSION = 'new'\n")
    (system / "claire_probe_other").mkdir()
    (system / "claire_probe_other" / "__init__.py").write_text("VERSION = 'old'\n")
    monkeypatch.setattr(deps, "OWN_FIRST", ("claire_probe_sym",))
    for name in ("claire_probe_sym", "claire_probe_sym.core", "claire_probe_other"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert folder in deps.bootstrap(str(tmp_path))
    import claire_probe_other
    import claire_probe_sym
    import claire_probe_sym.core
    assert claire_probe_sym.VERSION == "new" and claire_probe_sym.core.PART == "ours"
    assert claire_probe_other.VERSION == "old"  # everything else keeps the system's (QGIS's numpy, GDAL)
    for name in ("claire_probe_sym", "claire_probe_sym.core", "claire_probe_other"):
        sys.modules.pop(name, None)


def test_bootstrap_skips_a_profile_without_the_folder(tmp_path, clean_path):
    before = list(sys.path)
    deps.bootstrap(str(tmp_path))
    assert deps.deps_folder(str(tmp_path)) not in sys.path and len(sys.path) - len(before) <= 1


def test_pins_come_from_requirements_txt():
    pins = requirement_pins()
    assert deps.REQUIRED == {**{name: pins[name] for name in ("numpy", "torch", "rasterio", "safetensors")},
                             "sklearn": pins["scikit-learn"]}  # training's forest: it failed after a ZIP install
    steps = deps.install_plan(["sklearn"], "cpu", "/t", python="/q/python3", probe=lambda: True)
    assert steps[0].command[-1] == pins["scikit-learn"]  # pip is given the distribution's name


def test_plan_installs_torch_first_as_chosen_then_the_rest_as_wheels(tmp_path):
    steps = deps.install_plan(["rasterio", "torch", "safetensors"], "cpu", str(tmp_path), python="/q/python3",
                              probe=lambda: True)
    assert [step.label for step in steps] == ["torch", "rasterio, safetensors"]
    torch_cmd, rest_cmd = steps[0].command, steps[1].command
    assert torch_cmd[:4] == ["/q/python3", "-m", "pip", "install"] and TORCH_CPU_INDEX in torch_cmd
    for command in (torch_cmd, rest_cmd):
        assert command[command.index("--target") + 1] == str(tmp_path)
    assert rest_cmd[-2:] == [deps.REQUIRED["rasterio"], deps.REQUIRED["safetensors"]]
    assert "--only-binary" in rest_cmd


def test_plan_without_torch_has_no_torch_step(tmp_path):
    steps = deps.install_plan(["safetensors"], "cuda", str(tmp_path), python="py", probe=lambda: True)
    assert len(steps) == 1 and not [arg for arg in steps[0].command if arg.startswith("torch")]


def test_run_plan_streams_output_and_stops_at_the_first_failure():
    ok = deps.Step("a", [sys.executable, "-c", "print('first line')"], "step a")
    bad = deps.Step("b", [sys.executable, "-c", "import sys; print('broken'); sys.exit(3)"], "step b")
    never = deps.Step("c", [sys.executable, "-c", "print('never')"], "step c")
    lines = []
    assert deps.run_plan([ok, bad, never], lines.append) == 3
    text = "\n".join(lines)
    assert "[1/3] step a" in text and "first line" in text and "broken" in text
    assert "never" not in text and "exit 3" in text


def test_command_line_dry_run_prints_the_plan(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(deps, "missing", lambda packages=None: ["torch", "rasterio"])
    monkeypatch.setattr(deps, "index_reachable", lambda *a, **k: False)
    assert deps.main(["install", "--profile", str(tmp_path), "--torch", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Missing: torch, rasterio" in out and "--target" in out and deps.REQUIRED["rasterio"] in out
    assert not (tmp_path / "python").exists()  # a dry run creates nothing


def test_install_hint_names_the_dialog_and_pip():
    hint = deps.install_hint(["torch"])
    assert "Install Python dependencies" in hint and deps.REQUIRED["torch"] in hint


def test_triton_is_kept_out_so_torch_sees_none(monkeypatch):
    import importlib.util

    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.delenv(deps.ALLOW_TRITON_ENV, raising=False)
    assert not deps.triton_kept_out()
    assert deps.keep_triton_out() and deps.triton_kept_out()
    with pytest.raises(ImportError):
        import triton  # noqa: F401
    assert importlib.util.find_spec("triton") is None  # what "is it installed?" checks see
    assert deps.keep_triton_out()  # a second call changes nothing


def test_triton_already_loaded_or_allowed_is_left_alone(monkeypatch):
    loaded = type(sys)("triton")
    monkeypatch.setitem(sys.modules, "triton", loaded)
    assert not deps.keep_triton_out() and sys.modules["triton"] is loaded
    monkeypatch.delitem(sys.modules, "triton")
    monkeypatch.setenv(deps.ALLOW_TRITON_ENV, "1")
    assert not deps.keep_triton_out() and "triton" not in sys.modules


#: As QGIS's executables have it: a BLAS among the program's global symbols, then the plugin, then torch.
_PROGRAM_WITH_BLAS = """
import ctypes, sys
ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
from claire.claire_plugin import deps
print(deps.blas_in_program(), deps.torch_own_symbols() if sys.argv[2] == "own" else False, flush=True)
assert deps.missing() == []  # the plugin's dependency check at load looks torch up without importing it
import torch
torch.nn.functional.linear(torch.ones(256, 96), torch.ones(24, 96))
"""


def _gemm_binding(tmp_path, blas: str, mode: str) -> tuple:
    """(what the program printed, the library torch's call to sgemm_ was bound to), from the dynamic
    linker's own account of its bindings (LD_DEBUG)."""
    import os
    import subprocess

    log = tmp_path / f"ld_{mode}"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", deps.OWN_SYMBOLS_ENV)}
    env.update(LD_DEBUG="bindings", LD_DEBUG_OUTPUT=str(log))
    proc = subprocess.run([sys.executable, "-c", _PROGRAM_WITH_BLAS, blas, mode], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    targets = [line.split(" to ", 1)[1].split(" [")[0]
               for path in tmp_path.glob(f"ld_{mode}.*") for line in path.read_text(errors="replace").splitlines()
               if "libtorch_cpu.so" in line.split(" to ", 1)[0] and "`sgemm_'" in line]
    return proc.stdout.split(), targets


def test_torch_keeps_its_own_blas_in_a_program_that_links_one(tmp_path):
    """QGIS's executables link the system BLAS (through GDAL and armadillo), and torch's matrix products then ran
    in it (the reference BLAS on Debian 13, OpenBLAS with spinning threads on Debian 12). With torch_own_symbols
    torch's own libraries are searched first (RTLD_DEEPBIND) and its sgemm_ stays its own."""
    import ctypes.util

    if not hasattr(__import__("os"), "RTLD_DEEPBIND"):
        pytest.skip("RTLD_DEEPBIND is glibc's")
    blas = ctypes.util.find_library("blas")
    if blas is None:
        pytest.skip("no system BLAS to stand for QGIS's")
    printed, targets = _gemm_binding(tmp_path, blas, "plain")
    assert printed[0] == "sgemm_" and targets and all("libtorch_cpu" not in t for t in targets), targets
    printed, targets = _gemm_binding(tmp_path, blas, "own")
    assert printed == ["sgemm_", "True"] and targets and all(t.endswith("libtorch_cpu.so") for t in targets), targets


def test_torch_own_symbols_only_where_needed(monkeypatch, clean_path):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv(deps.OWN_SYMBOLS_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or type(sys)("torch"))
    assert not deps.torch_own_symbols(force=True), "torch already imported: nothing to do"
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(deps, "blas_in_program", lambda: None)
    assert not deps.torch_own_symbols(), "a Python program: numpy's BLAS is private, torch binds its own"
    assert not any(isinstance(f, deps._TorchOwnSymbols) for f in sys.meta_path)
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libtcmalloc.so.4")
    assert not deps.torch_own_symbols(force=True), "torch alone would bypass a preloaded allocator"
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setenv(deps.OWN_SYMBOLS_ENV, "0")
    assert not deps.torch_own_symbols(force=True)
    monkeypatch.delenv(deps.OWN_SYMBOLS_ENV)
    assert deps.torch_own_symbols(force=True) and deps.torch_own_symbols(force=True)
    assert sum(isinstance(f, deps._TorchOwnSymbols) for f in sys.meta_path) == 1
    spec = importlib.util.find_spec("torch")  # looked up, not imported: the finder stays for the import
    assert isinstance(spec.loader, deps._DeepBindLoader) and spec.loader.get_filename("torch").endswith(".py")
    assert sum(isinstance(f, deps._TorchOwnSymbols) for f in sys.meta_path) == 1


def test_diagnostics_say_where_torchs_matrix_products_run(monkeypatch, clean_path):
    import torch  # before sys.modules is changed below

    from claire.claire_plugin.core.diagnostics import collect, format_report

    monkeypatch.setattr(deps, "blas_in_program", lambda: None)
    assert "torch's own" in deps.torch_blas() and "links no BLAS" in deps.torch_blas()
    monkeypatch.setattr(deps, "blas_in_program", lambda: "sgemm_")
    imported_first = type(sys)("torch")
    imported_first.__spec__ = importlib.machinery.ModuleSpec("torch", object())
    monkeypatch.setitem(sys.modules, "torch", imported_first)
    said = deps.torch_blas()
    assert said.startswith("this program's BLAS (sgemm_)") and "restart QGIS" in said
    imported_first.__spec__.loader = deps._DeepBindLoader(object())
    assert deps.torch_blas().startswith("torch's own (loaded with RTLD_DEEPBIND")
    monkeypatch.delitem(sys.modules, "torch")
    assert deps.torch_blas().startswith("this program's BLAS once torch is imported")
    deps.torch_own_symbols(force=True)
    assert deps.torch_blas().startswith("torch's own once torch is imported")
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setattr(torch, "__spec__", imported_first.__spec__)
    assert "- Matrix products: torch's own (loaded with RTLD_DEEPBIND" in format_report(collect())
