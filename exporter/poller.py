"""One poll cycle: GetThingConnectivityData for every target, within the request budget."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from exporter.aws import error_code
from exporter.fleet import Observation
from exporter.ratelimit import RateLimiter
from exporter.telemetry import POLL_OPERATION, ExporterMetrics

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

log = logging.getLogger(__name__)

THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})
# AWS's reasons are upper-case enum values; one that is not shaped like one is garbage and
# must not become an unbounded label value (it is counted as AWS's own UNKNOWN instead).
REASON_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")
# A host clock may lag AWS's; a timestamp a day ahead of ours is not skew but nonsense.
MAX_CLOCK_SKEW_SECONDS = 86_400.0


class Poller:
    """Fans one cycle out over `concurrency` worker threads sharing one rate limiter.

    Workers pull names from a shared iterator rather than one task per thing, so a
    100,000-thing cycle costs a handful of objects. They are daemon threads made per
    cycle: on shutdown a request stuck for up to read_timeout is abandoned, never
    awaited, and there is no pool to leak when a reload replaces the poller.
    """

    def __init__(
        self,
        client: IoTClient,
        limiter: RateLimiter,
        metrics: ExporterMetrics,
        *,
        concurrency: int,
        max_retries: int,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._metrics = metrics
        self._concurrency = concurrency
        self._max_retries = max_retries
        self._stop = stop
        self._clock = clock
        self._requests = metrics.api_requests.labels(POLL_OPERATION)
        self._unexpected_logged = False

    @property
    def region(self) -> str | None:
        """The region the client resolved (config, environment or profile)."""
        return self._client.meta.region_name

    def poll(self, thing_names: Sequence[str]) -> list[Observation]:
        """Poll every thing once; never raises for a thing's failure. Order is not kept.

        Returns early, with what it has, once the stop event is set.
        """
        self._unexpected_logged = False
        names, lock = iter(thing_names), threading.Lock()
        workers = min(self._concurrency, max(len(thing_names), 1))
        buckets: list[list[Observation]] = [[] for _ in range(workers)]
        threads = [
            threading.Thread(
                # Each worker gets its own generator over the shared iterator: two threads
                # must never advance one generator at once.
                target=self._work,
                args=(_locked(names, lock), bucket),
                name=f"poll-{index}",
                daemon=True,
            )
            for index, bucket in enumerate(buckets)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and not self._stop.is_set():
                thread.join(0.1)
        return [observation for bucket in buckets for observation in list(bucket)]

    def _work(self, names: Iterator[str], done: list[Observation]) -> None:
        for name in names:
            if self._stop.is_set():
                return
            try:
                observation = self.poll_one(name)
            except Exception as error:  # a bug outside the AWS call must not end the worker
                self._log_unexpected(name, error)
                observation = Observation.failed(name, self._clock(), "InternalError")
            done.append(observation)

    def _log_unexpected(self, thing_name: str, error: BaseException) -> None:
        if self._unexpected_logged:
            return
        # Once per cycle: a bug hit by every thing must not log 10,000 lines.
        self._unexpected_logged = True
        log.error(
            "unexpected error polling a thing (logged once per cycle; "
            "iot_thing_poll_error_info shows every thing it hit)",
            extra={"thing": thing_name, "error": repr(error)},
            exc_info=error,
        )

    def poll_one(self, thing_name: str) -> Observation:
        """Poll one thing, retrying only throttles (up to max_retries) after the shared backoff."""
        attempt = 0
        while True:
            if not self._limiter.acquire():
                return Observation.failed(thing_name, self._clock(), "Shutdown")
            self._requests.inc()
            try:
                response = self._client.get_thing_connectivity_data(thingName=thing_name)
            except Exception as error:  # one thing's failure, whatever it is, never fails the cycle
                code = error_code(error)
                self._metrics.api_errors.labels(POLL_OPERATION, code).inc()
                if code in THROTTLE_CODES:
                    pause = self._limiter.throttled()
                    log.debug(
                        "throttled", extra={"thing": thing_name, "pause_seconds": round(pause, 3)}
                    )
                    if attempt < self._max_retries:
                        attempt += 1
                        continue
                elif code == "InternalError":
                    self._log_unexpected(thing_name, error)
                return Observation.failed(
                    thing_name,
                    self._clock(),
                    code,
                    not_found=code == "ResourceNotFoundException",
                )
            self._limiter.succeeded()
            observation = parse_response(thing_name, response, self._clock())
            if observation.error_code is not None:
                # A 200 whose body makes no sense is a failed call all the same.
                self._metrics.api_errors.labels(POLL_OPERATION, observation.error_code).inc()
            return observation


def parse_response(thing_name: str, response: Mapping[str, Any], observed_at: float) -> Observation:
    """Turn a parsed GetThingConnectivityData answer into an observation; odd answers fail.

    A failed observation never changes what the fleet believes, so anything that does
    not make sense is better refused here than taken as the thing's state.
    """
    connected = response.get("connected")
    if not isinstance(connected, bool):
        # Without a connected flag there is no state to report; do not guess one.
        return Observation.failed(thing_name, observed_at, "InvalidResponse")
    timestamp = response.get("timestamp")
    seconds: float | None = None
    if isinstance(timestamp, dt.datetime):
        seconds = timestamp.timestamp()
    elif isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        seconds = float(timestamp)
    if seconds is not None and not plausible_timestamp(seconds, observed_at):
        # One absurd timestamp held as "newest" would make every real answer look stale.
        return Observation.failed(thing_name, observed_at, "InvalidResponse")
    reason = response.get("disconnectReason")
    return Observation.ok(
        thing_name,
        observed_at,
        connected=connected,
        timestamp=seconds,
        reason=reason if isinstance(reason, str) and REASON_PATTERN.fullmatch(reason) else None,
    )


def plausible_timestamp(seconds: float, observed_at: float) -> bool:
    """Finite, after the epoch, and not beyond any clock skew into the future."""
    return math.isfinite(seconds) and 0 < seconds <= observed_at + MAX_CLOCK_SKEW_SECONDS


def _locked(names: Iterator[str], lock: threading.Lock) -> Iterator[str]:
    while True:
        with lock:
            name = next(names, None)
        if name is None:
            return
        yield name
