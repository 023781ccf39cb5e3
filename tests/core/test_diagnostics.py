"""Diagnostics report (no QGIS)."""
import json
import re
from pathlib import Path

from claire.claire_plugin import deps
from claire.claire_plugin.cli.main import main
from claire.claire_plugin.core import diagnostics as diag
from claire.claire_plugin.paths import PACKAGE_ROOT


def test_choose_device_explains_cpu_fallback():
    devices = {"available": True, "cuda_available": False, "cuda_build": None, "mps_available": False,
               "devices": [{"id": "cpu", "name": "x"}]}
    chosen, reason = diag.choose_device("auto", devices)
    assert chosen == "cpu" and "CPU-only" in reason
    chosen, reason = diag.choose_device("cuda", devices)
    assert chosen == "cpu" and "not available" in reason


def test_choose_device_prefers_gpu_when_present():
    devices = {"available": True, "cuda_available": True, "cuda_build": "12.4", "mps_available": False,
               "devices": [{"id": "cuda:0", "name": "Fake GPU"}, {"id": "cpu", "name": "x"}]}
    assert diag.choose_device("auto", devices) == ("cuda:0", "'auto' picks the first CUDA GPU (Fake GPU).")


def test_missing_package_is_reported_with_install_hint(monkeypatch):
    monkeypatch.setitem(deps.REQUIRED, "surely_not_a_package_xyz", "surely_not_a_package_xyz==1")
    report = diag.collect(checkpoint="/nonexistent.safetensors")
    assert report["missing"] == ["surely_not_a_package_xyz"]
    assert "make install" in report["install_hint"] and "surely_not_a_package_xyz==1" in report["install_hint"]
    text = diag.format_report(report)
    assert "surely_not_a_package_xyz: MISSING" in text
    assert "Valid: NO" in text


def test_package_table_pins_equal_requirements_txt():
    lines = Path(PACKAGE_ROOT, "requirements.txt").read_text().splitlines()
    specs = [line.split("#")[0].strip() for line in lines]
    pins = {re.split(r"[<>=!~\[ ]", s, maxsplit=1)[0].lower(): s for s in specs if s}
    table = {**deps.REQUIRED, **deps.OPTIONAL}
    assert {n: pins.get(deps.DISTRIBUTION.get(n, n)) for n in table} == table
    assert deps.REQUIRED["sklearn"].startswith("scikit-learn")  # pip's name, the import's is sklearn


def test_install_hint_names_each_pin_and_says_which_are_optional():
    hint = deps.install_hint(["torch", "rasterio", "transformers"])
    assert hint.startswith("CLAIRE needs Python packages that QGIS cannot import: torch, rasterio (\"torch==2.13.0\" "
                           "\"rasterio==1.4.4\")")
    assert "Optional, only for explanations written by a language model: transformers (\"transformers==5.23.0\")" in hint
    assert "claire.claire_plugin.deps install --profile" in hint and "--optional" in hint
    assert "--user" not in hint  # Debian 12 and later refuse pip install --user (externally managed)
    only_optional = deps.install_hint(["transformers"])  # the diagnostics' case: nothing a run needs is missing
    assert "CLAIRE needs" not in only_optional and only_optional.startswith("Optional")
    assert deps.install_hint([]) == ""


def test_install_hint_offers_make_install_only_in_a_source_tree(monkeypatch, tmp_path):
    assert "make install" in deps.install_hint(["torch"])  # this checkout has its Makefile
    monkeypatch.setattr(deps, "PLUGIN_DIR", str(tmp_path / "plugins" / "claire"))  # a plugin unzipped by QGIS
    hint = deps.install_hint(["torch"])
    assert "make install" not in hint and f"cd {tmp_path / 'plugins'} && " in hint


def test_a_missing_package_names_every_missing_one(monkeypatch):
    monkeypatch.setattr(deps, "missing", lambda packages=None: ["torch", "rasterio", "safetensors"])
    hint = deps.missing_package_hint(ModuleNotFoundError("No module named 'rasterio'", name="rasterio"))
    assert "cannot import: torch, rasterio, safetensors" in hint
    assert deps.missing_package_hint(ModuleNotFoundError("x", name="claire_helper_typo")) == ""


def _raised_by(module: str, source: str) -> BaseException:
    try:
        exec(compile(source, f"{module}/__init__.py", "exec"), {"__name__": module})
    except BaseException as exc:  # noqa: BLE001 - the test looks at what was raised
        return exc
    raise AssertionError("nothing raised")


def test_a_package_that_fails_to_load_is_named_with_the_fix(monkeypatch):
    """QA round 14: a rasterio whose GDAL library is gone raised OSError from its import; `claire classify` printed a
    traceback (only ModuleNotFoundError was caught) while `claire diagnostics` said it was missing."""
    monkeypatch.setattr(deps, "missing", lambda packages=None: [])
    hint = deps.missing_package_hint(_raised_by("rasterio", "raise OSError('libgdal.so.32: cannot open shared object')"))
    assert "cannot import: rasterio" in hint and "fails to load: OSError: libgdal.so.32" in hint
    assert "fails to load: ImportError: undefined symbol" in deps.missing_package_hint(
        _raised_by("torch._C", "raise ImportError('undefined symbol: foo')"))
    # an OSError from a call into the package (a file it cannot read), or from another module's import: not this
    call = _raised_by("rasterio", "def read():\n    raise OSError('No such file')\nread()")
    call.__traceback__ = call.__traceback__.tb_next.tb_next  # from the function on, as a later call raises it
    assert deps.missing_package_hint(call) == ""
    assert deps.missing_package_hint(_raised_by("claire_helper", "raise OSError('x')")) == ""


def test_the_command_line_names_a_package_that_fails_to_load(tmp_path):
    import os
    import subprocess
    import sys

    shadow = tmp_path / "shadow" / "rasterio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise OSError('libgdal.so.32: cannot open shared object file')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "claire.claire_plugin.cli.main", "classify", "--optical", "o.tif",
                          "--sar", "s.tif", "--output", str(tmp_path / "x.tif")], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path), timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "rasterio is installed but fails to load: OSError" in run.stderr


def test_invalid_checkpoint_is_flagged(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"PK\x03\x04 not a checkpoint")
    status = diag.checkpoint_status(str(bad))
    assert status["exists"] and not status["valid"] and status["error"]


def test_cli_json(capsys, tmp_path):
    rc = main(["diagnostics", "--json", "--checkpoint", str(tmp_path / "none.safetensors")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1  # the checkpoint does not exist
    assert out["packages"]["torch"]["version"].startswith("2.")
    assert out["device"]["chosen"] == "cpu"
    assert out["checkpoint"]["valid"] is False
