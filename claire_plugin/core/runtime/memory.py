"""The C allocator's settings during a run: keep freed buffers for reuse instead of giving them back.

With glibc's defaults, every buffer of more than 128 KiB (and, after its dynamic adjustment, up to
32 MiB) is a fresh `mmap`, and free memory at the top of the heap is returned to the kernel. The model's
activations (tens of MB per batch) were therefore mapped, page-faulted in, zeroed by the kernel and
unmapped again on every forward: ~1 million page faults and 3.0 s instead of 2.0 s for 180 tiles in the
main thread; 165-489 k instead of 67-70 k faults for a 4096 x 4096 run on the torch thread
(docs/benchmark.md). During a run, buffers up to `MMAP_THRESHOLD` come from the heap and up to
`TRIM_THRESHOLD` of free heap is kept; afterwards the free memory is handed back (`malloc_trim`) and
the thresholds are set to what glibc's own adjustment reaches after large buffers are freed.

Only glibc has these knobs; elsewhere (macOS, Windows, musl) the context does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from typing import Iterator, Optional

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: The C allocator's arenas in a `claire` process: glibc's default gives every thread that allocates its own
#: (up to 8 per core), each keeping up to TRIM_THRESHOLD of freed buffers; two hold 0.1-0.35 GB less at the
#: same speed, and on two cores one is 5 % faster still (docs/benchmark.md, "Allocator arenas", "One arena").
PROCESS_ARENAS = 2
#: Cores up to which the process takes one arena (its threads then share the main heap: no buffer too large
#: for a thread's own heap is mapped and unmapped per forward).
ONE_ARENA_CORES = 2
#: During a run: heap buffers up to 64 MiB, keep up to 256 MiB of free heap.
MMAP_THRESHOLD = 64 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024
#: After a run: the maxima glibc's dynamic adjustment reaches (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit).
IDLE_MMAP_THRESHOLD = 32 * 1024 * 1024
IDLE_TRIM_THRESHOLD = 64 * 1024 * 1024

_lock = threading.Lock()
_active = 0
_libc: Optional[object] = None


def _glibc():
    """glibc's handle, or None when the C library is not glibc."""
    global _libc
    if _libc is None:
        _libc = False
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.gnu_get_libc_version  # noqa: B018 - only glibc has it
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc = lib
        except (OSError, AttributeError):
            pass
    return _libc or None


def process_arenas() -> int:
    """The arenas a `claire` process caps its allocator at on this machine (1 up to ONE_ARENA_CORES cores)."""
    from .resources import cpu_cores

    return 1 if cpu_cores() <= ONE_ARENA_CORES else PROCESS_ARENAS


def cap_arenas(n: Optional[int] = None) -> bool:
    """Let this process's threads share `n` allocator arenas (default: process_arenas()); call it before threads
    start (arenas made earlier stay). A MALLOC_ARENA_MAX set by the user wins. Returns whether the cap was set."""
    lib = _glibc()
    if lib is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(lib.mallopt(M_ARENA_MAX, int(n or process_arenas())))


def available() -> bool:
    """Whether the allocator can be tuned here (glibc)."""
    return _glibc() is not None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within the block, the C allocator keeps large freed buffers (see the module docstring); yields
    whether it could be tuned. Nested and concurrent uses are counted: the settings go back when the
    last one ends."""
    global _active
    lib = _glibc()
    if lib is None:
        yield False
        return
    with _lock:
        _active += 1
        if _active == 1:
            lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    try:
        yield True
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                lib.mallopt(M_TRIM_THRESHOLD, IDLE_TRIM_THRESHOLD)
                lib.mallopt(M_MMAP_THRESHOLD, IDLE_MMAP_THRESHOLD)
                lib.malloc_trim(0)
