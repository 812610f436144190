"""The live poller: GetThingConnectivityData for every live-mode target, within its budget."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from exporter.aws.calls import AwsCalls, CallFailed
from exporter.fleet.connectivity import BatchSummary, Observation, valid_reason
from exporter.fleet.sessions import session_in
from exporter.names import POLL_OPERATION
from exporter.sources.answers import plausible_timestamp
from exporter.sources.base import PassOutcome, Source, Updates

log = logging.getLogger(__name__)

# Observations reach the fleet in batches of this many (or fewer at a pass's end), so a
# pass of 100,000 things that takes half an hour shows its answers as they come.
BATCH_SIZE = 256
NAME = "live"


class LivePoller(Source):
    """Fans a pass out over `concurrency` worker threads sharing one budget.

    Workers pull names from a shared iterator rather than one task per thing, so a
    100,000-thing pass costs a handful of objects. They are daemon threads made per pass:
    on shutdown a request stuck for up to read_timeout is abandoned, never awaited, and
    there is no pool to leak when a reload replaces the poller.
    """

    name = NAME
    where = "poll"
    observes = True
    follows_targets = True

    def __init__(
        self,
        calls: AwsCalls,
        *,
        interval: float,
        concurrency: int,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        socket_information: bool = False,
    ) -> None:
        self.interval = interval
        self._calls = calls
        # Only asked for when wanted: AWS refuses it without its permission and filter.
        self._request: dict[str, Any] = (
            {"includeSocketInformation": True} if socket_information else {}
        )
        self._concurrency = concurrency
        self._stop = stop
        self._clock = clock
        self._unexpected_logged = False

    def targets_reported(self, updates: Updates) -> None:
        """Discovery has named the live things: say now, not after the first overrun, if a
        pass of them cannot fit the interval at this budget."""
        warn_if_budget_too_small(
            len(updates.live_names()), self._calls.limiters.rates[POLL_OPERATION], self.interval
        )

    def targets_joined(self, names: Sequence[str], updates: Updates) -> None:
        """Poll what discovery just added, without waiting for the next pass."""
        log.info("polling newly discovered things now", extra={"things": len(names)})
        self.poll(names, updates)

    def run(self, updates: Updates) -> PassOutcome:
        """Poll every live target once; a thing's failure is an observation, not the pass's."""
        names = updates.live_names()
        summary = self.poll(names, updates)
        failures = tuple((POLL_OPERATION, code) for code in sorted(summary.error_codes))
        if names and not summary.succeeded:
            # A pass in which every poll failed is no sign of life from AWS.
            return PassOutcome(
                ok=False,
                problem=f"every poll failed ({','.join(code for _, code in failures)})",
                things=len(names),
                summary=summary,
                failures=failures,
            )
        return PassOutcome(ok=True, things=len(names), summary=summary, failures=failures)

    def poll(self, names: Sequence[str], updates: Updates) -> BatchSummary:
        """Poll `names` once each; hand the observations on in batches; stop early on stop."""
        self._unexpected_logged = False
        pending = _Batches(updates)
        iterator, lock = iter(names), threading.Lock()
        workers = min(self._concurrency, max(len(names), 1))
        threads = [
            threading.Thread(
                # Each worker gets its own generator over the shared iterator: two threads
                # must never advance one generator at once.
                target=self._work,
                args=(_locked(iterator, lock), pending),
                name=f"poll-{index}",
                daemon=True,
            )
            for index in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and not self._stop.is_set():
                thread.join(0.1)
        if self._stop.is_set():
            return pending.summary
        return pending.flush()

    def _work(self, names: Iterator[str], pending: _Batches) -> None:
        for name in names:
            if self._stop.is_set():
                return
            try:
                observation = self.poll_one(name)
            except Exception as error:  # a bug outside the AWS call must not end the worker
                self._log_unexpected(name, error)
                observation = Observation.failed(name, self._clock(), "InternalError")
            pending.add(observation)

    def poll_one(self, thing_name: str) -> Observation:
        """Poll one thing; AwsCalls paces it and retries only throttles."""
        try:
            response = self._calls.call(POLL_OPERATION, thingName=thing_name, **self._request)
        except CallFailed as failure:
            if failure.code == "InternalError" and failure.error is not None:
                self._log_unexpected(thing_name, failure.error)
            return Observation.failed(
                thing_name,
                self._clock(),
                failure.code,
                not_found=failure.code == "ResourceNotFoundException",
            )
        observation = parse_response(thing_name, response, self._clock())
        if observation.error_code is not None:
            self._calls.refused(POLL_OPERATION, observation.error_code)
        return observation

    def _log_unexpected(self, thing_name: str, error: BaseException) -> None:
        if self._unexpected_logged:
            return
        # Once per pass: a bug hit by every thing must not log 10,000 lines.
        self._unexpected_logged = True
        log.error(
            "unexpected error polling a thing (logged once per pass; "
            "iot_thing_poll_error_info shows every thing it hit)",
            extra={"thing": thing_name, "error": repr(error)},
            exc_info=error,
        )


def warn_if_budget_too_small(things: int, budget: float, interval: float) -> None:
    """Warn when polling `things` at `budget` requests per second takes longer than `interval`."""
    if things / budget <= interval:
        return
    log.warning(
        "a poll cycle cannot finish within poll.interval at this request budget; "
        "cycles will overrun: raise poll.interval or poll.max_requests_per_second",
        extra={
            "things": things,
            "max_requests_per_second": budget,
            "shortest_cycle_seconds": round(things / budget, 1),
            "interval_seconds": interval,
        },
    )


class _Batches:
    """Collects the workers' observations and hands them on BATCH_SIZE at a time."""

    def __init__(self, updates: Updates) -> None:
        self._updates = updates
        self._lock = threading.Lock()
        self._batch: list[Observation] = []
        self.summary = BatchSummary()

    def add(self, observation: Observation) -> None:
        with self._lock:
            self._batch.append(observation)
            if len(self._batch) < BATCH_SIZE:
                return
            batch, self._batch = self._batch, []
            # Applied under this lock, so batches reach the fleet in the order they filled.
            self.summary += self._updates.observed(batch)

    def flush(self) -> BatchSummary:
        with self._lock:
            batch, self._batch = self._batch, []
            if batch:
                self.summary += self._updates.observed(batch)
            return self.summary


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
    return Observation.ok(
        thing_name,
        observed_at,
        connected=connected,
        timestamp=seconds,
        reason=valid_reason(response.get("disconnectReason")),
        session=session_in(thing_name, response) if connected else None,
    )


def _locked(names: Iterator[str], lock: threading.Lock) -> Iterator[str]:
    while True:
        with lock:
            name = next(names, None)
        if name is None:
            return
        yield name
