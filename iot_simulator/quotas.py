"""Per-operation token buckets: AWS's request-rate quotas, refilled on real (monotonic) time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; pure: the caller passes the time."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, capacity: float, now: float) -> TokenBucket:
        return cls(rate=rate, capacity=capacity, tokens=capacity, updated=now)

    def try_take(self, now: float) -> bool:
        """Take one token if there is one at time ``now``."""
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Quotas:
    """One bucket per rate-limited operation. Thread-safe.

    Rates are real-time properties, so the buckets use the monotonic clock even when the
    fleet runs on a manual clock.
    """

    def __init__(
        self,
        rates: Mapping[str, float | None],
        burst_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._burst_seconds = burst_seconds
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._rates: dict[str, float | None] = {}
        self.set_rates(rates)

    def set_rates(self, rates: Mapping[str, float | None]) -> None:
        """Change some operations' rates (None: unlimited); their buckets start full."""
        now = self._monotonic()
        with self._lock:
            for operation, rate in rates.items():
                self._rates[operation] = rate
                if rate is None or rate <= 0:
                    self._buckets.pop(operation, None)
                else:
                    capacity = max(1.0, rate * self._burst_seconds)
                    self._buckets[operation] = TokenBucket.full(rate, capacity, now)

    def rates(self) -> dict[str, float | None]:
        with self._lock:
            return dict(self._rates)

    def allow(self, operation: str) -> bool:
        """Spend one request of ``operation``'s quota; False means throttle it."""
        with self._lock:
            bucket = self._buckets.get(operation)
            return bucket is None or bucket.try_take(self._monotonic())
