"""Client-side request budget: spaces AWS calls evenly and pauses everyone after a throttle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# After a ThrottlingException every worker waits; consecutive throttles double the pause.
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 20.0


class RateLimiter:
    """Hands out evenly spaced send slots at `rate` per second, shared by all worker threads.

    Slots are reserved under a lock and waited for outside it, so N threads together
    never exceed the rate and never burst: a budget of 350/s means one request every
    ~2.9 ms, not 350 at the top of each second. Waiting goes through `wait`, which
    returns True when the caller should give up (shutdown), so a stop never hangs on a
    long backoff.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self._interval = 1.0 / rate
        self._clock = clock
        self._wait = wait if wait is not None else _sleep
        self._lock = threading.Lock()
        self._next_slot = clock()
        # The pause the next throttle applies; kept rather than derived from a count of
        # throttles, whose power of two would overflow a float after ~1,000 of them.
        self._next_pause = BACKOFF_INITIAL_SECONDS

    def reserve(self) -> float:
        """Reserve the next slot; return how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            return slot - now

    def acquire(self) -> bool:
        """Block until the caller may send; False if the wait was cut short by a stop."""
        delay = self.reserve()
        if delay <= 0:
            return True
        return not self._wait(delay)

    def throttled(self) -> float:
        """Record a throttle: push every future slot back; return the pause applied."""
        with self._lock:
            pause = self._next_pause
            self._next_pause = min(pause * 2, BACKOFF_MAX_SECONDS)
            self._next_slot = max(self._next_slot, self._clock() + pause)
            return pause

    def succeeded(self) -> None:
        """A request went through: the next throttle starts the backoff from the beginning."""
        if self._next_pause != BACKOFF_INITIAL_SECONDS:
            with self._lock:
                self._next_pause = BACKOFF_INITIAL_SECONDS


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
