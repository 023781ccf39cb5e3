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
    assert {n: pins.get(n) for n in table} == table


def test_install_hint_names_each_pin():
    hint = deps.install_hint(["torch", "transformers"])
    assert "torch, transformers" in hint and '"torch==2.13.0" "transformers==5.23.0"' in hint
    assert deps.install_hint([]) == ""


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
