"""Unloading the plugin (Plugin Manager, Plugin Reloader) leaves nothing of it running."""
from __future__ import annotations

import threading
import time


def test_unload_ends_the_torch_thread_and_lets_go_of_the_project(qgis_app, qgis_iface):
    """Each reload left a `claire-torch` thread waiting for ever and one more connection to the project's
    `cleared` signal (8 reloads: 9 threads, 13 receivers, +25 MB each)."""
    import claire
    from claire.claire_plugin.core.runtime import torch_thread
    from claire.claire_plugin.layers import layers

    def torch_threads():
        return [t for t in threading.enumerate() if t.name == "claire-torch"]

    plugin = claire.classFactory(qgis_iface)  # no initGui: only what unload() itself stops is looked at
    torch_thread.call(lambda: None)
    layers.project_generation()
    assert torch_threads() and layers._PROJECT["watching"]
    plugin.unload()
    deadline = time.time() + 10
    while torch_threads() and time.time() < deadline:
        time.sleep(0.05)
    assert torch_threads() == [] and not layers._PROJECT["watching"]
    assert torch_thread.call(lambda: 7) == 7  # what runs later starts its own
