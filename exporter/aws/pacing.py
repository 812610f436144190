"""Pacing: a rate limiter per AWS operation, spacing calls evenly and pausing after a throttle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

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


class RateLimiters:
    """One rate limiter per AWS operation, each at its own requests per second.

    AWS enforces a quota per operation (350/s for GetThingConnectivityData, 25/s for
    ListThingsInThingGroup, ...), so each operation paces on its own: a slow discovery
    never holds up polling, and a throttle on one operation never pauses another.
    """

    def __init__(
        self, rates: Mapping[str, float], *, wait: Callable[[float], bool] | None = None
    ) -> None:
        self._wait = wait
        self._limiters = {
            operation: RateLimiter(rate, wait=wait) for operation, rate in rates.items()
        }
        self.rates = dict(rates)

    def limiter(self, operation: str) -> RateLimiter:
        return self._limiters[operation]

    def updated(self, rates: Mapping[str, float]) -> RateLimiters:
        """Limiters for new rates that keep the limiter (and its pacing) of every unchanged one."""
        limiters = RateLimiters({}, wait=self._wait)
        for operation, rate in rates.items():
            kept = self._limiters.get(operation)
            if kept is not None and self.rates.get(operation) == rate:
                limiters._limiters[operation] = kept
            else:
                limiters._limiters[operation] = RateLimiter(rate, wait=self._wait)
        limiters.rates = dict(rates)
        return limiters
