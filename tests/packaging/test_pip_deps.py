"""The pip commands for the plugin's dependencies: pins, torch build, target folder, Python to run."""
from __future__ import annotations

import os
import sys

import pytest

from claire.claire_plugin import pip_deps
from claire.claire_plugin.core.errors import ClaireError


def test_pins_come_from_requirements_txt(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\ntorch==9.9.9  # the CPU wheel\n\nRasterio==1.4.4\n-r other.txt\n")
    assert pip_deps.requirement_pins(str(path)) == {"torch": "torch==9.9.9", "rasterio": "Rasterio==1.4.4"}


def test_bundled_requirements_pin_torch():
    assert pip_deps.requirement_pins()["torch"].startswith("torch==")


@pytest.mark.parametrize("requested, gpu, expected", [
    ("auto", False, "cpu"), ("auto", True, "cuda"), ("CPU", True, "cpu"), ("cuda", False, "cuda"), ("", False, "cpu"),
])
def test_variant_follows_the_gpu_unless_chosen(requested, gpu, expected):
    assert pip_deps.resolve_variant(requested, gpu=gpu) == expected


def test_unknown_variant_names_the_choices():
    with pytest.raises(ClaireError, match="auto, cpu, cuda"):
        pip_deps.resolve_variant("rocm", gpu=False)


def test_cpu_build_comes_from_pytorch_cpu_index_when_reachable():
    args, note = pip_deps.torch_install_args("cpu", "torch==2.13.0", cpu_index_ok=True)
    assert args[:2] == ["--index-url", pip_deps.TORCH_CPU_INDEX]
    assert args[-1] == "torch==2.13.0" and "190 MB" in note


def test_cpu_build_falls_back_to_plain_pypi_and_says_so():
    args, note = pip_deps.torch_install_args("cpu", "torch==2.13.0", cpu_index_ok=False)
    assert args == ["torch==2.13.0"]
    assert "cannot be reached" in note and "2.7 GB" in note


def test_cuda_build_never_probes_the_cpu_index():
    def probe():
        raise AssertionError("the CPU index must not be probed for a CUDA build")

    command, note = pip_deps.torch_command("cuda", "/py/bin/python3", probe=probe)
    assert command[:4] == ["/py/bin/python3", "-m", "pip", "install"]
    assert "--index-url" not in command and "CUDA" in note


def test_target_folder_is_passed_to_pip(tmp_path):
    command = pip_deps.pip_command("/py", ["safetensors"], target=str(tmp_path))
    assert command[command.index("--target") + 1] == str(tmp_path)
    constraints = command[command.index("--constraint") + 1]  # the pins hold for the dependencies pip pulls in
    pins = pip_deps.requirement_pins()
    with open(constraints, encoding="utf-8") as handle:
        lines = handle.read().split()
    assert len(lines) == len(pins) and pins["rasterio"] in lines and "dask==" + pins["dask"].split("==")[1] in lines
    assert not any("[" in line for line in lines)
    assert command[-1] == "safetensors"


def test_pip_accepts_the_constraints_where_it_refused_requirements_txt(tmp_path):
    """requirements.txt holds dask[distributed]: as --constraint pip stopped with "Constraints cannot have extras"
    before installing anything (the README's `deps install` and the dialog failed so)."""
    import subprocess
    import sys

    def pip(constraints):
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links",
                               str(tmp_path), "--constraint", constraints, "claire-no-such-package"],
                              capture_output=True, text=True, timeout=120)
        return done.stdout + done.stderr

    assert "Constraints cannot have extras" in pip(pip_deps.REQUIREMENTS)
    out = pip(pip_deps.constraints_file(folder=str(tmp_path)))
    assert "Constraints cannot have extras" not in out and "claire-no-such-package" in out, out


def test_the_constraints_pip_reads_are_in_a_folder_no_other_user_can_write(tmp_path, monkeypatch):
    """QA (round 19, security): the constraints file had a name any local user could compute in the shared /tmp and
    was reused when it existed, so a planted `--find-links` line chose the wheels pip installed."""
    import stat
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(pip_deps, "_PRIVATE", None)
    planted = "--no-index\n--find-links /tmp/evil\n"
    first = pip_deps.constraints_file()
    (tmp_path / os.path.basename(first)).write_text(planted)  # where the name used to be: not read
    folder = os.path.dirname(first)
    assert os.path.dirname(folder) == str(tmp_path) and os.path.basename(folder).startswith("claire-pip-")
    mode = os.stat(folder)
    assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid()
    with open(first, "w", encoding="utf-8") as handle:  # changed after it was written: written whole again
        handle.write(planted)
    again = pip_deps.constraints_file()
    with open(again, encoding="utf-8") as handle:
        text = handle.read()
    assert again == first and "--find-links" not in text and "rasterio" in text


def test_unreachable_index_is_reported_not_raised():
    assert pip_deps.index_reachable("http://127.0.0.1:9/simple", timeout=2) is False


def test_python_interpreter_is_kept(tmp_path):
    assert pip_deps.find_python("/usr/bin/python3") == "/usr/bin/python3"


def test_python_beside_a_qgis_binary_is_found(tmp_path):
    qgis = tmp_path / "bin" / "qgis.bin"
    qgis.parent.mkdir()
    qgis.write_text("")
    python = tmp_path / "bin" / "python3"
    python.write_text("#!/bin/sh\n")
    os.chmod(python, 0o755)
    assert pip_deps.find_python(str(qgis)) == str(python)


def test_dry_run_prints_the_command(capsys):
    assert pip_deps.main(["torch", "--variant", "cuda", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "CUDA build" in out and sys.executable in out


def test_bad_variant_exits_with_the_fix(capsys):
    assert pip_deps.main(["torch", "--variant", "metal", "--dry-run"]) == 2
    assert "TORCH=cpu" in capsys.readouterr().err


def test_inside_qgis_the_python_of_its_installation_runs_pip_not_the_first_on_path(tmp_path, monkeypatch):
    """Inside QGIS, sys.executable was the first python3 on PATH (a pyenv shim of another version): pip would have
    installed for that Python. The installation's own python{X.Y} is taken instead, outside a venv."""
    import sys

    shim = tmp_path / "shims" / "python3"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    own = tmp_path / "usr" / "bin" / version
    for path in (shim, own):
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\n")
        os.chmod(path, 0o755)
    monkeypatch.setattr(sys, "executable", str(shim))
    monkeypatch.setattr(sys, "exec_prefix", str(tmp_path / "usr"))
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    assert pip_deps.find_python(str(shim)) == str(own)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # in a venv its python installs into the venv
    assert pip_deps.find_python(str(shim)) == str(shim)


def test_a_dry_run_keeps_the_constraints_file_its_printed_command_reads(tmp_path):
    """QA (round 19, review): `pip_deps torch --dry-run` printed a command whose constraints file was removed as the
    process ended, so the pasted command failed ("Could not open requirements file")."""
    import shutil
    import subprocess

    done = subprocess.run([sys.executable, "-m", "claire.claire_plugin.pip_deps", "torch", "--variant", "cpu",
                           "--target", str(tmp_path / "deps"), "--dry-run"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    path = done.stdout.split("--constraint ", 1)[1].split()[0]
    try:
        assert os.path.isfile(path) and "stays in" in done.stdout
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def test_a_private_folder_removed_meanwhile_is_made_again(tmp_path, monkeypatch):
    """Mutation check (round 19): a /tmp cleaner may remove the folder while QGIS runs; the next plan makes it
    again."""
    import shutil
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(pip_deps, "_PRIVATE", None)
    first = pip_deps.constraints_file()
    shutil.rmtree(os.path.dirname(first))
    assert os.path.isfile(pip_deps.constraints_file())
