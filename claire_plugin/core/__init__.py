"""QGIS-free engine: raster IO, tiling, inference, reports, explanations and the command line."""
