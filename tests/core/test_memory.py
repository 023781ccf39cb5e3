"""core.memory: freed buffers are reused during a run instead of being mapped and faulted in again, and
handed back afterwards. Measured in a fresh interpreter: the allocator's state is per process."""
import json
import subprocess
import sys

import pytest

from claire.claire_plugin.core.runtime import memory

pytestmark = pytest.mark.skipif(not memory.available(), reason="the C library is not glibc")

SCRIPT = r"""
import json, resource, sys, torch
from claire.claire_plugin.core.runtime import memory

BUF = 48 * 1024 * 1024  # above glibc's largest dynamic mmap threshold (32 MiB)

def faults(n):
    # torch, as the model's activations (numpy asks for huge pages, which hides the effect); the
    # median of n cycles, so that one cycle disturbed by the rest of a busy machine decides nothing
    per_cycle = []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = torch.ones(BUF // 4)
        del a
        per_cycle.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return sorted(per_cycle)[n // 2]

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

out = {"pages": BUF // resource.getpagesize(), "outside": faults(8)}
with memory.reuse_freed_memory() as tuned:
    with memory.reuse_freed_memory():
        pass
    out["tuned"] = tuned
    out["active_after_nested"] = memory._active
    faults(12)  # the heap grows until aligned requests fit in freed space
    out["inside"] = faults(8)
    out["rss_inside"] = rss()
out["rss_after"] = rss()
out["active_after"] = memory._active
print(json.dumps(out))
"""


def test_large_buffers_are_reused_inside_and_handed_back_after():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["tuned"]
    assert r["outside"] >= r["pages"] // 2, f"by default every cycle maps fresh pages ({r})"
    assert r["inside"] < r["pages"] // 4, f"inside the block the buffer is reused ({r})"
    assert r["active_after_nested"] == 1, "a nested use does not end the outer one"
    assert r["rss_inside"] - r["rss_after"] >= 40 * 1024 * 1024, f"the kept memory is handed back ({r})"
    assert r["active_after"] == 0


ARENAS = r"""
import ctypes, json, os, sys, tempfile, threading
from claire.claire_plugin.core.runtime import memory

libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def heaps():
    path = os.path.join(tempfile.mkdtemp(), "info.xml")
    f = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
    return open(path).read().count("<heap nr=")

def threads(n):
    # n threads alive at once, each having allocated and freed a buffer: each takes an arena of its own
    # unless the arenas are capped
    ready, done = threading.Barrier(n + 1), threading.Event()
    def work():
        libc.free(libc.malloc(4 * 1024 * 1024))
        ready.wait()
        done.wait()
    ts = [threading.Thread(target=work) for _ in range(n)]
    for t in ts:
        t.start()
    ready.wait()
    count = heaps()
    done.set()
    for t in ts:
        t.join()
    return count

if sys.argv[1] == "capped":
    memory.cap_arenas()
print(threads(4))
"""


def test_a_claire_process_caps_the_allocators_arenas(monkeypatch):
    """With the cap, a process's threads (lanes, reader, writer) share process_arenas() arenas instead of each
    keeping freed memory in its own; a MALLOC_ARENA_MAX of the user's wins."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    r = {}
    for how in ("default", "capped"):  # each in a fresh interpreter: arenas are never destroyed
        proc = subprocess.run([sys.executable, "-c", ARENAS, how], capture_output=True, text=True, timeout=120,
                              env=env)
        assert proc.returncode == 0, proc.stderr
        r[how] = int(proc.stdout.strip().splitlines()[-1])
    assert r["default"] >= 4, f"by default each thread gets an arena ({r})"
    assert r["capped"] <= memory.process_arenas() <= memory.PROCESS_ARENAS, f"capped, they share ({r})"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert memory.cap_arenas() is False


def test_the_command_line_caps_the_arenas_first(monkeypatch):
    from claire.claire_plugin.cli import main as cli

    calls = []
    monkeypatch.setattr(memory, "cap_arenas", lambda *a: calls.append(a) or True)
    assert cli.main([]) == 2 and calls == [()]


def test_one_arena_up_to_two_cores_else_the_cap(monkeypatch):
    monkeypatch.setattr(memory.os, "sched_getaffinity", lambda pid: {0, 1})
    assert memory.process_arenas() == 1
    monkeypatch.setattr(memory.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert memory.process_arenas() == memory.PROCESS_ARENAS == 2
