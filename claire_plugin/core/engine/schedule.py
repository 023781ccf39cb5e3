"""How a run is scheduled on this machine: how many reader threads run beside the model.

The measurements behind these choices are in docs/benchmark.md ("Why the engine is scheduled as it is").
"""
from __future__ import annotations

import os
from typing import Tuple

#: Most reader threads (why four: docs/benchmark.md, "Why the engine is scheduled as it is").
MAX_READERS = 4


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_threads(device) -> Tuple[int, str]:
    """How many reader threads run beside the model (0: none, the phased schedule), and why (a message
    for the user). Writing then has its own thread too.

    They run beside a GPU, or when the model leaves CPU cores free: one reader per core left after the
    model's thread(s) and the writing thread, up to MAX_READERS, at least one. When the model's threads
    take every core, the next chunk is read between batches while the previous one is blended and written
    on the other core (the phased schedule; docs/benchmark.md says why)."""
    import torch

    cores = cpu_cores()
    if device.type != "cpu":
        n = max(1, min(MAX_READERS, cores - 2))
        return n, (f"reading ({n} thread{'s' if n > 1 else ''}) and writing run in their own threads beside "
                   f"the {device.type.upper()}")
    used = torch.get_num_threads()
    if used < cores:
        n = max(1, min(MAX_READERS, cores - used - 1))
        return n, (f"the model uses {used} of {cores} CPU cores; reading ({n} thread{'s' if n > 1 else ''}) "
                   f"and writing run beside it")
    return 0, (f"the model uses all {cores} CPU cores; reading and writing run between its batches, "
               f"not beside them")
