"""One poll cycle: GetThingConnectivityData for every target, within the request budget."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from exporter.aws import error_code
from exporter.fleet import Observation
from exporter.ratelimit import RateLimiter
from exporter.telemetry import ExporterMetrics

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

log = logging.getLogger(__name__)

OPERATION = "GetThingConnectivityData"
THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})


class Poller:
    """Fans one cycle out over `concurrency` worker threads sharing one rate limiter.

    Workers pull names from a shared iterator rather than one future per thing, so a
    100,000-thing cycle costs a handful of objects, not 100,000 futures.
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
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="poll")
        self._requests = metrics.api_requests.labels(OPERATION)

    def poll(self, thing_names: Sequence[str]) -> list[Observation]:
        """Poll every thing once; never raises for a thing's failure. Order is not kept."""
        names = iter(thing_names)
        lock = threading.Lock()
        workers = min(self._concurrency, max(len(thing_names), 1))
        futures = [self._executor.submit(self._work, _locked(names, lock)) for _ in range(workers)]
        observations: list[Observation] = []
        for future in futures:
            observations.extend(future.result())
        return observations

    def close(self) -> None:
        # Shutdown must not wait on an in-flight request that may take read_timeout.
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _work(self, names: Iterator[str]) -> list[Observation]:
        done: list[Observation] = []
        for name in names:
            if self._stop.is_set():
                break
            done.append(self.poll_one(name))
        return done

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
                self._metrics.api_errors.labels(OPERATION, code).inc()
                if code in THROTTLE_CODES:
                    pause = self._limiter.throttled()
                    log.debug(
                        "throttled", extra={"thing": thing_name, "pause_seconds": round(pause, 3)}
                    )
                    if attempt < self._max_retries:
                        attempt += 1
                        continue
                elif code == "InternalError":
                    log.error(
                        "unexpected error polling a thing",
                        extra={"thing": thing_name, "error": repr(error)},
                    )
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
                self._metrics.api_errors.labels(OPERATION, observation.error_code).inc()
            return observation


def parse_response(thing_name: str, response: Mapping[str, Any], observed_at: float) -> Observation:
    """Turn a parsed GetThingConnectivityData answer into an observation; odd answers fail."""
    connected = response.get("connected")
    if not isinstance(connected, bool):
        # Without a connected flag there is no state to report; do not guess one.
        return Observation.failed(thing_name, observed_at, "InvalidResponse")
    timestamp = response.get("timestamp")
    seconds: float | None
    if isinstance(timestamp, dt.datetime):
        seconds = timestamp.timestamp()
    elif isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        seconds = float(timestamp)
    else:
        seconds = None
    reason = response.get("disconnectReason")
    return Observation.ok(
        thing_name,
        observed_at,
        connected=connected,
        timestamp=seconds,
        reason=reason if isinstance(reason, str) and reason else None,
    )


def _locked(names: Iterator[str], lock: threading.Lock) -> Iterator[str]:
    while True:
        with lock:
            name = next(names, None)
        if name is None:
            return
        yield name
