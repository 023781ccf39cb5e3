"""The QGIS plugin object: registers the Processing provider, menu, toolbar and dock."""
from __future__ import annotations

from typing import List

from qgis.core import Qgis, QgsApplication, QgsMessageLog


class ClairePlugin:
    """Plugin instance created by `classFactory`; also used headless by qgis_process."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.actions: List = []
        self.dock = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Register the `claire` Processing provider (called by QGIS desktop and qgis_process)."""
        if self.provider is None:
            from .processing.provider import ClaireProvider

            self.provider = ClaireProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS API name)
        """Register the provider and add the menu, toolbar button and dock panel."""
        self.initProcessing()
        from .core.runtime.priority import run_in_background

        run_in_background()  # QGIS desktop: runs give way to the map canvas (qgis_process keeps the normal priority)
        from .deps import install_hint, missing

        absent = missing()
        if absent:
            QgsMessageLog.logMessage(install_hint(absent), "CLAIRE", Qgis.MessageLevel.Warning)
            if self.iface is not None and hasattr(self.iface, "messageBar"):
                self._offer_install(install_hint(absent))
        self._add_gui_actions()

    def _offer_install(self, hint: str) -> None:
        """A message-bar warning with an "Install…" button that opens the dependency dialog."""
        from qgis.gui import QgsMessageBar
        from qgis.PyQt.QtWidgets import QPushButton

        bar = self.iface.messageBar()
        if not hasattr(bar, "pushWidget"):  # stand-in interfaces (tests) have plain messages only
            bar.pushMessage("CLAIRE", hint, level=Qgis.MessageLevel.Warning)
            return
        message = QgsMessageBar.createMessage("CLAIRE", hint)
        button = QPushButton("Install…", message)

        def open_dialog() -> None:
            from .gui.deps_dialog import open_dependency_dialog

            self._deps_dialog = open_dependency_dialog(self.iface)

        button.clicked.connect(open_dialog)
        message.layout().addWidget(button)
        bar.pushWidget(message, Qgis.MessageLevel.Warning)

    def _add_gui_actions(self) -> None:
        """Menu and toolbar entries; the dock and dialogs are created on first use."""
        if self.iface is None or not hasattr(self.iface, "addPluginToRasterMenu"):
            return
        from .gui import actions
        self.actions = actions.create_actions(self)

    def unload(self) -> None:
        """Remove everything the plugin added."""
        from .gui.actions import MENU

        for action in self.actions:
            try:
                self.iface.removePluginRasterMenu(MENU, action)
                self.iface.removeToolBarIcon(action)
                self.iface.unregisterMainWindowAction(action)
            except Exception:  # noqa: BLE001 - iface stubs in tests may lack these
                pass
        self.actions = []
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        from .core.runtime import torch_thread
        from .layers.layers import stop_watching_project

        stop_watching_project()
        torch_thread.stop()
