"""Installing the dependencies with a Python that has no pip (QA round 21: Debian's QGIS packages do not pull in
python3-pip; the install failed with "No module named pip" and no fix)."""
from __future__ import annotations

import os
import sys

from claire.claire_plugin import deps
from claire.claire_plugin.pip_deps import pip_problem


def test_a_python_without_pip_is_named_with_the_fix_and_nothing_runs(tmp_path):
    nopip = tmp_path / "python3"
    nopip.write_text("#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n")
    os.chmod(nopip, 0o755)
    assert pip_problem(sys.executable) is None
    problem = pip_problem(str(nopip))
    assert problem.startswith(f"pip is not installed for {nopip}") and "sudo apt install python3-pip" in problem
    marker = tmp_path / "ran"
    lines = []
    steps = [deps.Step("x", [str(nopip), "-m", "pip", "install", "x"], "x"),
             deps.Step("y", ["/bin/sh", "-c", f"touch {marker}"], "y")]
    assert deps.run_plan(steps, lines.append) == 1
    assert lines == [problem] and not marker.exists()
    assert deps.shown_names(["torch", "sklearn"]) == ["torch", "scikit-learn"]
