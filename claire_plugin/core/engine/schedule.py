"""How a run is scheduled on this machine: how many forward lanes run windows at once (forward_lanes), how
many reader threads run beside the model, and how many threads the model uses from batch to batch
(ThreadSteering).

The measurements behind these choices are in docs/benchmark.md ("Why the engine is scheduled as it is").
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from ..runtime.resources import cpu_cores

#: Most reader threads (why four: docs/benchmark.md, "Why the engine is scheduled as it is").
MAX_READERS = 4
#: Most forward lanes: windows run at once, each by its own thread with one torch thread.
MAX_LANES = 4


def forward_lanes(device, model, threads: Optional[int] = None) -> int:
    """How many windows run at once on the CPU, each in its own thread with one torch thread (1: one forward
    at a time with every thread).

    Lanes are used where the model's threads would take every core of a CPU with 2 to MAX_LANES cores and the
    model lets Python's GIL go during its forward (eager torch and AOT packages run through their C interface
    do; torch.compile's wrapper does not): one-thread forwards never wait for each other at OpenMP barriers,
    so reading, writing or another program beside them take CPU time without stalling a team, and a window
    read while another runs costs no forward time (docs/benchmark.md, "Forward lanes")."""
    import torch

    threads = int(threads or torch.get_num_threads())
    cores = cpu_cores()
    if device.type != "cpu" or threads < 2 or cores < 2 or threads < cores or threads > MAX_LANES:
        return 1
    return min(threads, cores) if getattr(model, "releases_gil", True) else 1  # more lanes than cores: memory, no speed


def lanes_note(lanes: int, most: int, windows: Optional[int] = None) -> str:
    """The run's message for `lanes` forward lanes where `most` were possible (`windows`: how many the run has)."""
    few = windows is not None and lanes == windows < most  # the run has no more windows than that
    if lanes == 1:
        return ("one window at a time: the run has one window" if few else
                f"one window at a time: {most} at once (forward lanes) would not fit in the memory left")
    why = "" if lanes == most else (f" (not {most}: the run has {windows} windows)" if few else
                                    f" (not {most}: the memory left)")
    return (f"{lanes} forward lanes{why}: {lanes} windows run at once, one torch thread each, with reading and "
            f"writing beside them")


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


class ThreadSteering:
    """A CPU run's torch thread count, steered between batches by core.runtime.contention.ThreadPolicy so
    that other programs busy on the cores do not stall the model's OpenMP team. Each settled change is
    noted in `messages`; `tiles_at` counts the tiles run at each thread count. With `steer` False (forward
    lanes, one thread each) the count is only recorded. `unit` names what a batch counts in the notes ("tile";
    training steers per "step")."""

    def __init__(self, device, messages: List[str], steer: bool = True, unit: str = "tile") -> None:
        import torch

        from ..runtime.contention import ThreadPolicy, other_runnable

        self.messages, self.tiles_at, self.unit = messages, {}, unit
        self.policy: Optional[ThreadPolicy] = None
        most = torch.get_num_threads()
        if device.type == "cpu" and most > 1 and steer:
            others = other_runnable()
            self.policy = ThreadPolicy(most=most, cores=cpu_cores(), others=others)
            if self.policy.threads != most:
                torch.set_num_threads(self.policy.threads)
                why = (f"other programs have {others} thread(s) ready to run on the {cpu_cores()} cores" if others
                       else f"this process may run on {cpu_cores()} core(s) only")
                messages.append(f"threads: starting with {self.policy.threads} of {most}: {why}")
        elif device.type == "cpu" and most > 1 and unit == "step":  # a training's count the user gave: kept
            others = other_runnable()
            if others >= cpu_cores():
                messages.append(f"threads: keeping the {most} given although other programs have {others} thread(s) "
                                f"ready to run on the {cpu_cores()} cores: each step waits for a preempted thread "
                                f"and takes several times its CPU; leave the thread count out to let the training "
                                f"adapt it")
        self._settled = self.policy.settled if self.policy else most
        self._batch = 0

    def after_batch(self, seconds: float, tiles: int, done: int) -> None:
        """Record a batch of `tiles` (`done` tiles so far) and set the thread count for the next one."""
        import torch

        used = torch.get_num_threads()
        self.tiles_at[used] = self.tiles_at.get(used, 0) + tiles
        self._batch = max(self._batch, tiles)
        if self.policy is None or tiles < self._batch:
            return  # a short batch (end of a tile row) costs more per tile, padded or not: not a measure
        from ..runtime.contention import other_runnable

        new = self.policy.observe(seconds, tiles, other_runnable())
        if new != used:
            torch.set_num_threads(new)
        if self.policy.settled != self._settled:
            why = (f"{self.unit}s ran faster with fewer threads: other programs are using the cores"
                   if self.policy.settled < self._settled else "the cores are free again")
            self.messages.append(f"threads: {self._settled} -> {self.policy.settled} after {self.unit} {done} "
                                 f"({why})")
            self._settled = self.policy.settled


class StepSteering:
    """ThreadSteering for training, judged on groups of `every` steps: one step (a fraction of a second on a
    CPU) is too noisy a measure, and a probe at a lower count would otherwise often be kept by chance. Used as a
    context manager it gives the thread count it found back on exit."""

    def __init__(self, device, messages: List[str], every: int = 4, steer: bool = True) -> None:
        import torch

        self._threads = torch.get_num_threads()
        self.steering = ThreadSteering(device, messages, steer=steer, unit="step")
        self.every, self._seconds, self._steps = max(1, int(every)), 0.0, 0

    def __enter__(self) -> "StepSteering":
        return self

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self._threads)

    def after_step(self, seconds: float, done: int) -> None:
        """Record one step (`done` steps so far); every `every` steps the thread count is set for the next group."""
        self._seconds += seconds
        self._steps += 1
        if self._steps >= self.every:
            self.steering.after_batch(self._seconds, self._steps, done)
            self._seconds, self._steps = 0.0, 0

    def steps_at_threads(self) -> dict:
        """Steps run at each thread count (the group in progress included), keys as strings (JSON)."""
        import torch

        counts = dict(self.steering.tiles_at)
        if self._steps:
            now = torch.get_num_threads()
            counts[now] = counts.get(now, 0) + self._steps
        return {str(k): v for k, v in counts.items()}
