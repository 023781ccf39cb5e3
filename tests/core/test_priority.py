"""Runs in QGIS desktop give way to QGIS (core.runtime.priority): the torch thread and the threads it starts run
at a lower priority once the plugin asks for it; nothing changes otherwise. In a child process, so that this test
process's torch thread keeps its priority."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, sys, threading
    from claire.claire_plugin.core.runtime import priority, torch_thread

    def nice():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def job():
        seen = {}
        t = threading.Thread(target=lambda: seen.update(child=nice()))
        t.start()
        t.join()
        return nice(), seen["child"]

    if sys.argv[1] == "background":
        priority.run_in_background()
    print(os.getpriority(os.PRIO_PROCESS, 0), *torch_thread.call(job), nice())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
@pytest.mark.parametrize("mode", ["normal", "background"])
def test_the_torch_thread_runs_at_the_background_priority_only_when_asked(mode):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    process, torch_nice, started_nice, caller_nice = map(int, out.stdout.split()[-4:])
    want = process if mode == "normal" else max(process, 10)
    assert torch_nice == started_nice == want  # the threads it starts (readers, lanes, OpenMP's team) inherit it
    assert caller_nice == process  # the calling thread (QGIS's) is left alone
