"""QGIS user interface: dock panel, checkpoint picker, styling, background tasks."""
