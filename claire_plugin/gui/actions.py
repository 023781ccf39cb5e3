"""Menu and toolbar actions of the plugin (called by ClairePlugin.initGui)."""
from __future__ import annotations

import os
from typing import List

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from ..paths import resource

ICON_DIR = resource("icons")
MENU = "&CLAIRE land cover"


def icon(name: str) -> QIcon:
    """An icon of resources/icons (falls back to the plugin icon)."""
    path = os.path.join(ICON_DIR, name)
    return QIcon(path if os.path.exists(path) else os.path.join(ICON_DIR, "claire.svg"))


def toggle_dock(plugin, checked: bool = True) -> None:
    """Create the dock on first use, then show or hide it."""
    from .dock import ClaireDock

    if plugin.dock is None:
        plugin.dock = ClaireDock(plugin.iface, plugin.iface.mainWindow())
        plugin.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, plugin.dock)
        action = getattr(plugin, "_dock_action", None)
        if action is not None:
            plugin.dock.visibilityChanged.connect(action.setChecked)
    plugin.dock.setVisible(bool(checked))


def use_checkpoint(plugin, path: str) -> None:
    """Open the dock and make `path` its Run tab's checkpoint (the "Use in the CLAIRE panel" button)."""
    toggle_dock(plugin, True)
    if path:
        plugin.dock.picker.setCheckpoint(path)
        plugin.dock.tabs.setCurrentIndex(0)


def create_actions(plugin) -> List[QAction]:
    """Add "Land cover panel", "Model card…", "Diagnostics report" and "Install Python dependencies" to the
    Raster menu, and the panel to the toolbar."""
    iface = plugin.iface
    window = iface.mainWindow()
    panel = QAction(icon("claire.svg"), "CLAIRE &land cover panel", window)
    panel.setCheckable(True)
    panel.setToolTip("Classify an optical + SAR pair into land cover (runs in the background)")
    panel.toggled.connect(lambda checked: toggle_dock(plugin, checked))
    plugin._dock_action = panel

    def show_card() -> None:
        from .picker import CheckpointDialog
        dialog = plugin._card_dialog = CheckpointDialog(window)
        dialog.accepted.connect(lambda: use_checkpoint(plugin, dialog.picker.checkpointPath()))
        dialog.show()

    card = QAction(icon("model_card.svg"), "Checkpoint and &model card…", window)
    card.triggered.connect(show_card)

    def show_diagnostics() -> None:
        from .diagnostics_dialog import open_diagnostics
        plugin._diagnostics_dialog = open_diagnostics(iface)

    diag = QAction(icon("diagnostics.svg"), "&Diagnostics report…", window)
    diag.triggered.connect(show_diagnostics)

    def show_dependencies() -> None:
        from .deps_dialog import open_dependency_dialog
        plugin._deps_dialog = open_dependency_dialog(iface)

    install = QAction(icon("claire.svg"), "&Install Python dependencies…", window)
    install.setToolTip("Install torch, rasterio, safetensors and scikit-learn into this QGIS profile with pip")
    install.triggered.connect(show_dependencies)

    actions = [panel, card, diag, install]
    for action in actions:
        iface.addPluginToRasterMenu(MENU, action)
    iface.addToolBarIcon(panel)
    if hasattr(iface, "registerMainWindowAction"):
        # no default key (the free ones lock the screen on some desktops or type a letter on others): listed in
        # Settings > Keyboard Shortcuts, where the user gives it one
        panel.setObjectName("claire_land_cover_panel")
        iface.registerMainWindowAction(panel, "")
    return actions
