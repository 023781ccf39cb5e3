"""The "Install Python dependencies" dialog in real QGIS (offscreen): what it lists, the pip runs it plans
for the torch choice, and a run of real processes with progress and log."""
from __future__ import annotations

import sys
import time

from claire.claire_plugin import deps
from claire.claire_plugin.gui.deps_dialog import DependencyDialog


def _wait(app, condition, seconds=60.0):
    end = time.time() + seconds
    while not condition() and time.time() < end:
        app.processEvents()
        time.sleep(0.02)
    return condition()


def test_lists_what_is_missing_and_plans_the_chosen_torch(qgis_app, tmp_path, monkeypatch):
    monkeypatch.setattr(deps, "index_reachable", lambda *a, **k: True)
    dialog = DependencyDialog(None, names=["torch", "rasterio"], profile=str(tmp_path))
    assert "torch, rasterio" in dialog.summary.text() and dialog.target in dialog.summary.text()
    assert dialog.install_button.isEnabled() and dialog.torch.isEnabled()
    dialog.torch.setCurrentIndex(dialog.torch.findData("cpu"))
    cpu = dialog.plan()
    assert [s.label for s in cpu] == ["torch", "rasterio"] and "--index-url" in cpu[0].command
    dialog.torch.setCurrentIndex(dialog.torch.findData("cuda"))
    assert "--index-url" not in dialog.plan()[0].command
    assert all(s.command[s.command.index("--target") + 1] == dialog.target for s in dialog.plan())


def test_nothing_missing_disables_install(qgis_app, tmp_path):
    dialog = DependencyDialog(None, names=[], profile=str(tmp_path))
    assert not dialog.install_button.isEnabled() and "everything" in dialog.summary.text()


def test_runs_the_steps_with_progress_and_log(qgis_app, tmp_path):
    dialog = DependencyDialog(None, names=["claire_probe_pkg"], profile=str(tmp_path))
    make_pkg = (f"import os; p = os.path.join({dialog.target!r}, 'claire_probe_pkg'); os.makedirs(p); "
                "open(os.path.join(p, '__init__.py'), 'w').close(); print('installed probe')")
    steps = [deps.Step("a", [sys.executable, "-c", "print('step one')"], "first"),
             deps.Step("b", [sys.executable, "-c", make_pkg], "second")]
    saved = list(sys.path)
    try:
        dialog.start(steps)
        assert _wait(qgis_app, lambda: dialog.exit_code is not None)
        log = dialog.log.toPlainText()
        assert dialog.exit_code == 0 and dialog.progress.value() == 2
        assert "[1/2] first" in log and "step one" in log and "installed probe" in log and "Restart QGIS" in log
        assert dialog.target in sys.path and dialog.names == []  # found at once, nothing left to install
        assert not dialog.install_button.isEnabled()
    finally:
        sys.path[:] = saved


def test_the_install_button_runs_the_plan(qgis_app, tmp_path, monkeypatch):
    """The button's clicked(bool) reached start() as its `steps`: 'bool' object is not iterable, nothing ran."""
    dialog = DependencyDialog(None, names=["claire_absent_pkg"], profile=str(tmp_path))
    monkeypatch.setattr(dialog, "plan", lambda: [deps.Step("a", [sys.executable, "-c", "print('planned')"], "one")])
    dialog.install_button.click()
    assert _wait(qgis_app, lambda: dialog.exit_code is not None, 30.0)
    assert dialog.exit_code == 0 and "planned" in dialog.log.toPlainText()


def test_a_failing_step_stops_the_run(qgis_app, tmp_path):
    dialog = DependencyDialog(None, names=["claire_absent_pkg"], profile=str(tmp_path))
    steps = [deps.Step("a", [sys.executable, "-c", "import sys; print('no wheel'); sys.exit(1)"], "first"),
             deps.Step("b", [sys.executable, "-c", "print('must not run')"], "second")]
    dialog.start(steps)
    assert _wait(qgis_app, lambda: dialog.exit_code is not None)
    log = dialog.log.toPlainText()
    assert dialog.exit_code == 1 and "no wheel" in log and "must not run" not in log and "pip failed" in log
    assert dialog.install_button.isEnabled() and dialog.names == ["claire_absent_pkg"]  # can try again


def test_plugin_offers_the_dialog_when_packages_are_missing(qgis_app, monkeypatch):
    from types import SimpleNamespace

    from qgis.gui import QgsMessageBar
    from qgis.PyQt.QtWidgets import QPushButton

    from claire.claire_plugin.plugin import ClairePlugin

    bar = QgsMessageBar()
    monkeypatch.setattr(deps, "missing", lambda packages=None: ["torch"])
    plugin = ClairePlugin(SimpleNamespace(messageBar=lambda: bar, mainWindow=lambda: None))
    plugin._offer_install(deps.install_hint(["torch"]))
    item = bar.currentItem()
    buttons = [b for b in item.findChildren(QPushButton) if b.text() == "Install…"]
    assert "torch" in item.text() and len(buttons) == 1
    buttons[0].click()
    assert isinstance(plugin._deps_dialog, DependencyDialog) and plugin._deps_dialog.names == ["torch"]
    plugin._deps_dialog.close()


def test_a_python_without_pip_is_said_with_its_fix_before_anything_runs(qgis_app, tmp_path, monkeypatch):
    """QA round 21 (Debian 13, QGIS 3.40 from Debian's packages, which do not pull in pip): Install ran into
    "No module named pip" and "pip failed (exit 1)" with no fix; and "sklearn" was listed, not scikit-learn."""
    said = "pip is not installed for /usr/bin/python3.13, so nothing can be installed. Fix: sudo apt install python3-pip"
    monkeypatch.setattr(deps, "pip_problem", lambda python: said)
    dialog = DependencyDialog(None, names=["torch", "sklearn"], profile=str(tmp_path))
    assert said in dialog.summary.text() and "torch, scikit-learn" in dialog.summary.text()
    assert not dialog.install_button.isEnabled() and not dialog.torch.isEnabled()


def test_the_cpu_build_is_asked_about_when_its_index_cannot_be_reached(qgis_app, tmp_path, monkeypatch):
    """QA round 21: with PyTorch's CPU index unreachable, "CPU build (about 190 MB)" went on to pip's plain PyPI
    (the CUDA build, 2.7 GB) and said so only in the log once running."""
    from claire.claire_plugin.gui import deps_dialog

    monkeypatch.setattr(deps, "pip_problem", lambda python: None)
    monkeypatch.setattr(deps, "index_reachable", lambda *a, **k: False)
    asked = []
    monkeypatch.setattr(deps_dialog.QMessageBox, "question",
                        lambda parent, title, text, *a: asked.append(text) or deps_dialog.QMessageBox.StandardButton.No)
    dialog = DependencyDialog(None, names=["torch"], profile=str(tmp_path))
    dialog.torch.setCurrentIndex(dialog.torch.findData("cpu"))
    started = []
    monkeypatch.setattr(dialog, "start", lambda steps=None: started.append(steps))
    dialog.install_button.click()
    assert len(asked) == 1 and "cannot be reached" in asked[0] and "2.7 GB" in asked[0] and not started
    assert "Not installed" in dialog.log.toPlainText()
    monkeypatch.setattr(deps, "index_reachable", lambda *a, **k: True)
    dialog.install_button.click()
    assert len(asked) == 1 and len(started) == 1  # reachable: no question


def test_no_python_beside_qgis_is_said_in_the_dialog_not_raised(qgis_app, tmp_path, monkeypatch):
    """Review of round 21: the pip check made the dialog fail to open (a traceback) where no Python lies beside
    the QGIS binary."""
    from claire.claire_plugin.core.errors import ClaireError

    def none_found():
        raise ClaireError("No Python interpreter found next to /opt/qgis/bin/qgis-bin")

    monkeypatch.setattr(deps, "find_python", none_found)
    dialog = DependencyDialog(None, names=["torch"], profile=str(tmp_path))
    assert "No Python interpreter found" in dialog.summary.text() and not dialog.install_button.isEnabled()
