"""How many CPU threads the model should use while other programs compete for the cores.

libgomp (the OpenMP runtime of torch's CPU wheels) makes every thread of a team wait at each barrier
for the slowest one. When another CPU-bound program takes one of the cores the team counts on, the
preempted thread holds the whole team at every barrier: on two cores the 2-thread forward went from
13 ms to 131-159 ms per tile beside one busy process, while one thread stayed at 23-24 ms
(docs/benchmark.md). OMP_WAIT_POLICY and GOMP_SPINCOUNT would soften this but are read only when
libgomp is loaded, before any run can look at the machine; the thread count can change between any
two batches (torch.set_num_threads on the torch thread, core.runtime.torch_thread).

`ThreadPolicy` is fed each batch's time (and, where known, how many threads of other programs were
runnable: `other_runnable`) and answers the thread count for the next batch:

- early in a run, and whenever a batch is much slower per tile than the best one at its count, it tries
  the lower count for one batch ("probe down") and keeps it when that batch is clearly faster per tile;
- at a lower count it tries the higher one again now and then ("probe up"), more rarely after each
  failed try, and while the other runnable threads leave no free core for the extra threads only every
  `last_probe` batches.
"""
from __future__ import annotations

import glob
import os
from dataclasses import InitVar, dataclass, field
from typing import Dict, List, Optional

#: A probed count is kept only when its time per tile beats the one it is compared with by this factor.
MARGIN = 1.2
#: A batch this many times slower per tile than the best one at its thread count may mean contention.
SLOW = 1.6


@dataclass
class ThreadPolicy:
    """Thread count for the next batch from the times of the previous ones (see the module docstring).

    `most`: the run's thread count (never exceeded); `cores`: CPU cores this process may use; `others`:
    threads of other programs runnable before the run (`other_runnable`): a run that starts beside busy
    cores starts at the count they leave free, and goes up only when they are freed."""

    most: int
    cores: int
    others: InitVar[Optional[float]] = None
    first_probe: int = 6  # batches at a lowered count before the first probe up
    last_probe: int = 192  # longest wait between two probes
    threads: int = field(init=False)
    best: Dict[int, float] = field(default_factory=dict, init=False)  # fastest s/tile seen per count
    recent: Dict[int, float] = field(default_factory=dict, init=False)  # smoothed s/tile per count
    _stack: List[int] = field(default_factory=list, init=False)  # the counts it came down from
    _probe: Optional[int] = field(default=None, init=False)  # the count the running probe left
    _seen: int = field(default=0, init=False)
    _wait_up: int = field(default=0, init=False)
    _every_up: int = field(default=0, init=False)
    _wait_down: int = field(default=1, init=False)  # batches before the next probe down may start
    _every_down: int = field(default=1, init=False)
    _others: Optional[float] = field(default=None, init=False)

    def __post_init__(self, others: Optional[float]) -> None:
        self.most = max(1, int(self.most))
        self.cores = max(1, int(self.cores))
        self.threads = self.most
        self._every_up = self.first_probe
        self._others = others
        if others is not None:
            lower = max(1, self.cores - int(round(others)))
            if lower < self.most:
                self._stack.append(self.most)
                self.threads = lower
                self._wait_up = self.first_probe

    @property
    def settled(self) -> int:
        """The count in use apart from a running one-batch probe."""
        return self._probe if self._probe is not None else self.threads

    def observe(self, seconds: float, tiles: int, others: Optional[float] = None) -> int:
        """Record a batch of `tiles` that took `seconds` at the current count and return the count for the
        next batch. `others`: threads of other programs runnable at the time (None where unknown)."""
        if others is not None:
            self._others = others if self._others is None else 0.5 * (self._others + others)
        self._seen += 1
        if self._seen == 1 or tiles < 1 or seconds <= 0:  # the first batch pays one-time costs
            return self.threads
        per = seconds / tiles
        t = self.threads
        self.best[t] = min(self.best.get(t, per), per)
        fresh = t not in self.recent or self._probe is not None
        self.recent[t] = per if fresh else 0.5 * (self.recent[t] + per)
        if self._probe is not None:
            return self._judge_probe(per)
        return self._next(per)

    def _judge_probe(self, per: float) -> int:
        came_from, self._probe = self._probe, None
        won = per * MARGIN < self.recent.get(came_from, float("inf"))
        down = self.threads < came_from
        if won and down:
            self._stack.append(came_from)
            self._every_up = self._wait_up = self.first_probe
        elif won:
            self._stack.pop()
            self._every_up = self.first_probe
            self._every_down = self._wait_down = 1
        elif down:
            self._every_down = min(self._every_down * 2, self.last_probe)
            self._wait_down = self._every_down
        else:
            self._every_up = min(self._every_up * 2, self.last_probe)
            self._wait_up = self._every_up
        if not won:
            self.threads = came_from
        return self.threads

    def _next(self, per: float) -> int:
        t = self.threads
        self._wait_down -= 1
        self._wait_up -= 1
        if t > 1 and self._wait_down <= 0:
            lower = self._lower(t)
            untried = lower not in self.recent  # early in a run: is the lower count faster already?
            if untried or per > SLOW * self.best[t]:
                return self._start_probe(lower)
        if self._stack and self._wait_up <= 0:
            # busy-looking cores only delay a probe: niced or short-lived programs also count as runnable
            if self._free_cores(self._stack[-1] - t) or self._wait_up <= -self.last_probe:
                return self._start_probe(self._stack[-1])
        return t

    def _start_probe(self, count: int) -> int:
        self._probe, self.threads = self.threads, count
        return count

    def _lower(self, t: int) -> int:
        """The count to try below `t`: what the other runnable threads leave free, else half."""
        if self._others is not None:
            return max(1, min(t - 1, self.cores - int(round(self._others))))
        return max(1, t // 2)

    def _free_cores(self, extra: int) -> bool:
        """Whether `extra` more threads would find idle cores (True when the others are unknown)."""
        if self._others is None:
            return True
        return self.cores - int(round(self._others)) - self.threads >= extra


def other_runnable() -> Optional[int]:
    """Threads of other programs that are running or waiting for a core right now (Linux; None elsewhere):
    the machine's runnable count (/proc/loadavg) less this process's own runnable threads."""
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    own = 0
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/stat"):
        try:
            with open(path, encoding="utf-8") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2:stat.rindex(")") + 3] == "R":
            own += 1
    return max(0, running - own)
