"""Seconds spent in each named phase of a run (reading, warping, blending, writing, waiting), summed over
the threads that do them: the profile `claire bench --whole-tile` prints and a run's stats carry."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator


class PhaseTimes:
    """Thread-safe sums of wall seconds per phase name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: Dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        """Add `seconds` to phase `name`."""
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time the block and add it to phase `name` (also when it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def as_dict(self) -> Dict[str, float]:
        """{phase: seconds rounded to ms}, by name."""
        with self._lock:
            return {k: round(v, 3) for k, v in sorted(self._seconds.items())}
