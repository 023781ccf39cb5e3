"""CLAIRE plugin code: QGIS-free engine (core), Processing provider (processing) and GUI (gui)."""
