"""CLAIRE for QGIS: plugin entry point. Imports nothing heavy at module level."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Create the plugin instance for QGIS."""
    from .claire_plugin.deps import bootstrap, keep_triton_out

    bootstrap()
    keep_triton_out()
    from .claire_plugin.plugin import ClairePlugin

    return ClairePlugin(iface)
