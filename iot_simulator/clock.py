"""Clocks that drive the simulated fleet: wall-clock time or a manual clock tests step by hand."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the simulated time as epoch seconds."""

    def now(self) -> float:
        """Return the current simulated time, in epoch seconds."""
        ...


class WallClock:
    """Real time: the fleet moves as the world does."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """Time that only moves when told to, so a test can step an hour without waiting an hour.

    Thread-safe: the exporter polls from many threads while a test advances it.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = float(start)

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (never sleeps); return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back in time (advance({seconds}))")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> float:
        """Jump to the absolute time ``when``, which must not be in the past."""
        with self._lock:
            if when < self._now:
                raise ValueError(f"a clock cannot go back in time ({when} < {self._now})")
            self._now = float(when)
            return self._now
