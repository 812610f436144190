"""What the HTTP server allows a client: timeouts, connection and header caps, a request rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Go's http.Server gives exporters a header read timeout, an idle timeout and header limits;
# these are ours. Prometheus's own --web.max-connections defaults to 512 as well.
DEFAULT_READ_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 120.0
DEFAULT_MAX_CONNECTIONS = 512
# A client that takes no byte of a response for this long is gone; one that reads slowly
# (a 30 MB body to a busy Prometheus) keeps its connection as long as bytes move.
DEFAULT_WRITE_STALL_TIMEOUT = 60.0
# The whole request head (request line and headers). Our endpoints need a few hundred bytes;
# 32 KiB leaves room for a proxy's cookies and forwarding headers.
DEFAULT_MAX_HEADER_BYTES = 32 * 1024
DEFAULT_MAX_HEADER_FIELDS = 100
# A reload request carries no meaningful body; refuse anything large rather than read it.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-connection limits the server enforces; every timeout is in seconds."""

    read_header_timeout: float = DEFAULT_READ_HEADER_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    write_stall_timeout: float = DEFAULT_WRITE_STALL_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_header_fields: int = DEFAULT_MAX_HEADER_FIELDS
    max_body_bytes: int = MAX_BODY_BYTES


# --- rate limit -------------------------------------------------------------------------------


class RequestRateLimiter:
    """exporter-toolkit's rate_limit: a token bucket over every request, refilled one token
    per `interval` up to `burst` and full at the start (golang.org/x/time/rate semantics).

    With burst 0 nothing is ever allowed, as in Go.
    """

    def __init__(
        self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            self._tokens = min(float(self.burst), self._tokens + elapsed / self.interval)
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
