"""CLAIRE models: pure PyTorch + numpy (networks, losses, checkpoints, metrics).

Never imports claire_plugin, qgis, rasterio or gdal.
"""
__version__ = "0.1.0"
