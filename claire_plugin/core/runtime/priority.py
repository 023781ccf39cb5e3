"""Runs in QGIS desktop give way to QGIS: their threads run at a lower priority (Linux nice 10), so the map canvas,
which draws in QGIS's own threads, keeps the CPU it needs while a run fills both cores of a laptop (zoomed-out
redraws of a large raster took 5-7 times longer beside a run). Alone, a run is as fast as before: priority only
decides who waits when both want the CPU. The command line and qgis_process keep the normal priority."""
from __future__ import annotations

import os
import sys
import threading

#: The nice value of engine threads (0: normal, as on the command line); QGIS desktop sets BACKGROUND_NICE.
_STATE = {"nice": 0}
BACKGROUND_NICE = 10


def run_in_background(nice: int = BACKGROUND_NICE) -> None:
    """Threads the engine starts from now on (and the torch thread at its next job) run at `nice`."""
    _STATE["nice"] = int(nice)


def lower_this_thread() -> None:
    """Give the calling thread the background priority, where one is set (Linux only; threads it starts, such as
    OpenMP's team, inherit it). Never raises: a priority that cannot be set leaves the thread as it is."""
    nice = _STATE["nice"]
    if nice <= 0 or not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        pass
