"""The plugin as QGIS desktop loads it at start (`qgis --code`, under Xvfb without a display)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

_CODE = """import os, sys
from qgis.PyQt.QtCore import QTimer

def _go():
    try:
        import qgis.utils
        import torch  # as the plugin's first run does
        from claire.claire_plugin import deps
        said = "|".join([str("claire" in qgis.utils.plugins), str(deps.blas_in_program()), deps.torch_blas()])
    except Exception as exc:
        said = "error|" + repr(exc)
    with open({out!r}, "w") as fh:
        fh.write(said)
    os._exit(0)

QTimer.singleShot(2000, _go)
"""


@pytest.mark.slow
def test_qgis_desktop_keeps_torchs_own_blas(tmp_path):
    """QGIS desktop links the system BLAS like qgis_process; at start the plugin is loaded and its dependency check
    looks torch up; torch imported afterwards must still be the one loaded with its own symbols
    (deps.torch_own_symbols), as the diagnostics say."""
    from claire.claire_plugin.install import install

    if shutil.which("qgis") is None:
        pytest.skip("no QGIS desktop")
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run") is None:
        pytest.skip("no display and no xvfb-run (Debian's xvfb, which make test installs)")
    root = tmp_path / "qgis"
    install(str(root / "profiles" / "default"))
    out, code = tmp_path / "said.txt", tmp_path / "code.py"
    code.write_text(_CODE.format(out=str(out)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LD_PRELOAD"))}
    env.pop("CLAIRE_TORCH_OWN_SYMBOLS", None)
    env.update(XDG_RUNTIME_DIR=str(root), QT_QPA_PLATFORM="xcb")
    cmd = ["qgis", "--profiles-path", str(root), "--profile", "default", "--nologo", "--noversioncheck", "--code",
           str(code)]
    if not os.environ.get("DISPLAY"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24"] + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    loaded, blas, said = out.read_text().split("|", 2)
    assert loaded == "True" and blas == "sgemm_", (loaded, blas, said)
    assert said.startswith("torch's own (loaded with RTLD_DEEPBIND"), said
