"""CLAIRE for QGIS: plugin entry point. Imports nothing heavy at module level."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Create the plugin instance for QGIS."""
    from .claire_plugin.deps import bootstrap, keep_triton_out, torch_own_symbols

    bootstrap()
    keep_triton_out()
    torch_own_symbols()
    from .claire_plugin.plugin import ClairePlugin

    return ClairePlugin(iface)
