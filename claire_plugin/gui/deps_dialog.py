"""The "Install Python dependencies" dialog: lists what QGIS's Python lacks, lets the user pick the torch
build (CPU or CUDA) and installs with pip into the profile's dependency folder, with progress and a log.

pip runs in a QProcess, one step after the other, so QGIS stays responsive; the plan comes from
`deps.install_plan`, the same one `python -m claire.claire_plugin.deps install` runs.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

from qgis.PyQt.QtCore import QProcess
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from .. import deps
from ..pip_deps import TORCH_CPU_INDEX, has_nvidia_gpu
from .widgets import fit_on_screen

TORCH_CHOICES = [("cpu", "CPU build (about 190 MB download, 1.1 GB on disk)"),
                 ("cuda", "CUDA build for NVIDIA GPUs (about 2.7 GB)")]


def _pip_problem() -> Optional[str]:
    """What keeps pip from installing into QGIS's Python (no Python found beside QGIS, no pip), or None."""
    from ..core.errors import ClaireError

    try:
        return deps.pip_problem(deps.find_python())
    except ClaireError as exc:  # no Python beside the QGIS binary: said in the dialog, not a traceback
        return str(exc)


class DependencyDialog(QDialog):
    """Shows the missing packages and installs them with pip into `deps.deps_folder(profile)`."""

    def __init__(self, parent: Optional[QWidget] = None, names: Optional[Sequence[str]] = None,
                 profile: Optional[str] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("CLAIRE: install Python dependencies")
        self.names: List[str] = list(deps.missing() if names is None else names)
        self.pip_missing = _pip_problem() if self.names else None
        self.profile = profile or deps.profile_dir()
        self.target = deps.deps_folder(self.profile) or ""
        self.steps: List[deps.Step] = []
        self.process: Optional[QProcess] = None
        self.exit_code: Optional[int] = None
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.torch = QComboBox(self)
        for value, text in TORCH_CHOICES:
            self.torch.addItem(text, value)
        self.torch.setCurrentIndex(1 if has_nvidia_gpu() else 0)
        self.progress = QProgressBar(self)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.install_button = self.buttons.addButton("Install", QDialogButtonBox.ButtonRole.AcceptRole)
        self.install_button.clicked.connect(lambda _checked=False: self.install())  # clicked(bool) is no plan
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("PyTorch", self.torch)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.log, 1)
        lay.addWidget(self.buttons)
        fit_on_screen(self, 720, 480)
        self._show_state()

    def _show_state(self) -> None:
        """Say what is missing and where it goes; nothing to do disables Install."""
        if not self.names:
            self.summary.setText("QGIS's Python has everything CLAIRE needs (torch, rasterio, safetensors, "
                                 "scikit-learn).")
        elif self.pip_missing:
            self.summary.setText(f"Missing: {', '.join(deps.shown_names(self.names))}. {self.pip_missing} (Install "
                                 f"stays off: close this window and open it again once that is done).")
        else:
            self.summary.setText(
                f"Missing: {', '.join(deps.shown_names(self.names))}. They will be installed with pip into "
                f"{self.target} (loaded by CLAIRE after QGIS's own packages). rasterio comes as a binary wheel.")
        self.torch.setEnabled("torch" in self.names and not self.pip_missing)
        self.install_button.setEnabled(bool(self.names) and bool(self.target) and self.process is None
                                       and not self.pip_missing)

    def plan(self) -> List[deps.Step]:
        """The pip runs for the current choice."""
        return deps.install_plan(self.names, self.torch.currentData(), self.target)

    def install(self) -> None:
        """Install: the plan, asked about first where the CPU build was chosen but PyTorch's CPU index cannot be
        reached (pip may then take the CUDA build, 2.7 GB: QA round 21 saw it said only in the log once running)."""
        steps = self.plan()
        torch_step = next((s for s in steps if s.label == "torch"), None)
        if (torch_step is not None and self.torch.currentData() == "cpu"
                and TORCH_CPU_INDEX not in torch_step.command):
            answer = QMessageBox.question(self, "CLAIRE: PyTorch's CPU index cannot be reached",
                                          f"{torch_step.note}.\n\nInstall anyway?")
            if answer != QMessageBox.StandardButton.Yes:
                self.append("Not installed: PyTorch's CPU index cannot be reached from here. Install again when it "
                            "can, or choose the CUDA build knowingly.")
                return
        self.start(steps)

    def start(self, steps: Optional[List[deps.Step]] = None) -> None:
        """Run the plan (or `steps`) one QProcess after the other."""
        self.steps = list(steps) if steps is not None else self.plan()
        os.makedirs(self.target, exist_ok=True)
        self.progress.setRange(0, len(self.steps))
        self.progress.setValue(0)
        self.exit_code = None
        self.install_button.setEnabled(False)
        self._next()

    def _next(self) -> None:
        done = self.progress.value()
        if done >= len(self.steps):
            self._finish(0)
            return
        step = self.steps[done]
        self.append(f"[{done + 1}/{len(self.steps)}] {step.note}\n$ {' '.join(step.command)}")
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._step_finished)
        self.process.errorOccurred.connect(self._failed_to_start)
        self.process.start(step.command[0], step.command[1:])

    def _read(self) -> None:
        if self.process is not None:
            self.append(bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace").rstrip())

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.append(f"Could not start {self.steps[self.progress.value()].command[0]}.")
            self._finish(-1)

    def _step_finished(self, code: int, _status=None) -> None:
        self._read()
        if code != 0:
            self._finish(code)
            return
        self.progress.setValue(self.progress.value() + 1)
        self.process = None
        self._next()

    def _finish(self, code: int) -> None:
        self.process = None
        self.exit_code = code
        deps.bootstrap(self.profile)
        self.names = deps.missing({name: name for name in self.names})
        if code == 0:
            self.append("Done. Restart QGIS so that every part of CLAIRE uses the new packages.")
        else:
            self.append(f"pip failed (exit {code}); see the lines above. Nothing else was run.")
        self._show_state()

    def append(self, text: str) -> None:
        """Add text to the log."""
        if text:
            self.log.appendPlainText(text)


def open_dependency_dialog(iface=None) -> DependencyDialog:
    """Open the dialog (non-modal) over QGIS's main window and return it."""
    parent = iface.mainWindow() if iface is not None and hasattr(iface, "mainWindow") else None
    dialog = DependencyDialog(parent)
    dialog.show()
    return dialog
