"""The event source: consumer threads long-polling SQS for lifecycle events; apply, then delete."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.aws.calls import CallFailed
from exporter.config.events import EventsSettings
from exporter.fleet.connectivity import BatchSummary, Observation
from exporter.fleet.lifecycle import (
    ClientIdMap,
    ConnectFailure,
    Dedupe,
    LifecycleEvent,
    Malformed,
    Rejected,
    parse_body,
)
from exporter.fleet.sessions import session_of
from exporter.fleet.shards import Shard
from exporter.sources.base import EventWiring, PassOutcome, Source, Updates, describe

log = logging.getLogger(__name__)

NAME = "events"
RECEIVE = "ReceiveMessage"
DELETE = "DeleteMessageBatch"
ATTRIBUTES = "GetQueueAttributes"
MAX_MESSAGES = 10
# How often the app records the source's health: its consumers run on their own.
REPORT_INTERVAL = 5.0
# After a failed ReceiveMessage, wait before the next (doubling, up to the cap).
RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


@dataclass(slots=True)
class _Batch:
    """A received batch, sorted: what to apply, and what was left out and why."""

    observations: list[Observation] = field(default_factory=list)
    failures: list[tuple[str | None, str]] = field(default_factory=list)  # (thing, type)
    timestamps: list[float] = field(default_factory=list)
    keys: list[Hashable] = field(default_factory=list)  # the dedupe keys taken
    unmapped: int = 0
    duplicates: int = 0


class EventSource(Source):
    """Consumer threads that stay up between passes; a pass reports what they did since the
    last one (so the app's per-source metrics and logs cover events like any source).

    The threads start on the first pass, with the Updates they apply through, and end on
    the app's stop or on close() (a reload replaces the source). A batch is applied before
    it is deleted; a stop between receiving and applying leaves the batch for SQS to
    deliver again. The SQS calls have their own stop (`closing`), so a batch that was
    applied is still deleted while the app stops.
    """

    name = NAME
    where = "events"
    interval = REPORT_INTERVAL

    def __init__(
        self,
        settings: EventsSettings,
        wiring: EventWiring,
        *,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        shard: Shard | None = None,
    ) -> None:
        self._settings = settings
        # Sharded, the queue holds every shard's events: those of things another shard owns
        # are counted apart and deleted.
        self._shard = shard or Shard()
        self._calls = wiring.calls
        self._metrics = wiring.metrics
        self._stop = stop
        self._closing = wiring.closing
        self._clock = clock
        self._client_ids = ClientIdMap(settings.client_id.prefix, settings.client_id.suffix)
        self._dedupe = Dedupe(settings.dedupe_keys)
        self._lock = threading.Lock()  # the dedupe set, the logged kinds, the pass's tally
        self._logged: set[Malformed] = set()
        self._threads: list[threading.Thread] = []
        self._summary = BatchSummary()
        self._failure: CallFailed | None = None
        self._received = 0
        self._invalid: list[str] = []

    # -- the Source contract --------------------------------------------------------------

    def run(self, updates: Updates) -> PassOutcome:
        if not self._threads:
            self._start(updates)
        self._measure_queue()
        with self._lock:
            summary, self._summary = self._summary, BatchSummary()
            failure, received, self._received = self._failure, self._received, 0
            invalid, self._invalid = self._invalid, []
        if failure is not None:
            return PassOutcome.failed_call(
                failure, things=summary.observed, summary=summary, invalid_names=invalid
            )
        return PassOutcome(ok=True, things=received, summary=summary, invalid_names=tuple(invalid))

    def _measure_queue(self) -> None:
        """The queue's depth: a backlog that grows says the consumers fall behind."""
        try:
            response = self._calls.call(
                ATTRIBUTES,
                QueueUrl=self._settings.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        except CallFailed as failure:
            self._failed(failure)
            return
        attributes = response.get("Attributes") or {}
        for state, key in (
            ("visible", "ApproximateNumberOfMessages"),
            ("in_flight", "ApproximateNumberOfMessagesNotVisible"),
        ):
            try:
                self._metrics.queue_messages.labels(state).set(float(attributes[key]))
            except (KeyError, TypeError, ValueError):
                continue  # a missing or garbled attribute leaves the last value

    def close(self) -> None:
        """Stop the consumers (a reload replaced this source); in-flight batches finish."""
        self._closing.set()

    def join(self, timeout: float) -> bool:
        """Wait for the consumers to end (after a stop or close); False if some still run."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def stopped(self) -> bool:
        return self._stop.is_set() or self._closing.is_set()

    def _start(self, updates: Updates) -> None:
        for index in range(self._settings.consumers):
            thread = threading.Thread(
                target=self._consume, args=(updates,), name=f"events-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    # -- consumers ------------------------------------------------------------------------

    def _consume(self, updates: Updates) -> None:
        pause = RETRY_INITIAL_SECONDS
        request: dict[str, Any] = {
            "QueueUrl": self._settings.queue_url,
            "MaxNumberOfMessages": MAX_MESSAGES,
            "WaitTimeSeconds": round(self._settings.wait_time),
        }
        if self._settings.visibility_timeout is not None:
            request["VisibilityTimeout"] = round(self._settings.visibility_timeout)
        while not self.stopped():
            try:
                response = self._calls.call(RECEIVE, **request)
            except CallFailed as failure:
                if self.stopped():
                    return
                self._failed(failure)
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, RETRY_MAX_SECONDS)
                continue
            pause = RETRY_INITIAL_SECONDS
            messages = response.get("Messages") or []
            if self.stopped():
                return  # received, not applied: SQS delivers these again
            try:
                self.handle(messages, updates)
            except Exception:  # a bug must not end the consumer; the batch comes back
                log.exception("applying a batch of lifecycle events failed")

    def _apply(self, observations: list[Observation], updates: Updates) -> tuple[BatchSummary, int]:
        """Apply the batch; return its summary and how many events were of things another
        shard owns (by name: a thing this shard reads through the index by its thingId is
        applied if this shard targets it, whatever its name's hash)."""
        if not observations:
            return BatchSummary(), 0
        if self._shard.whole:
            return updates.observed(observations), 0
        owns = self._shard.owns
        ours = [o for o in observations if owns(o.thing_name)]
        theirs = [o for o in observations if not owns(o.thing_name)]
        summary = updates.observed(ours) if ours else BatchSummary()
        if not theirs:
            return summary, 0
        elsewhere = updates.observed(theirs)
        return summary + elsewhere, elsewhere.ignored

    def _count_failures(
        self, failures: list[tuple[str | None, str]], updates: Updates, now: float
    ) -> tuple[int, int]:
        """Count refused connect attempts; return how many were of targeted things, and how
        many another shard counts (its things' by name; shard 0 takes those of clients
        that map to no thing, which every shard's queue receives)."""
        if not failures:
            return 0, 0
        shard = self._shard
        ours = [
            (name, kind)
            for name, kind in failures
            if shard.whole or (shard.owns(name) if name is not None else shard.ordinal == 0)
        ]
        counted = updates.connect_failed(ours, now) if ours else 0
        return counted, len(failures) - len(ours)

    def handle(self, messages: Sequence[dict[str, Any]], updates: Updates) -> BatchSummary:
        """Apply one received batch, then delete it (all of it: poison too)."""
        if not messages:
            with self._lock:
                self._failure = None
            return BatchSummary()
        now = self._clock()
        metrics = self._metrics
        metrics.received.inc(len(messages))
        with self._lock:
            batch = self._sort(messages, now)
            metrics.dedupe_keys.set(len(self._dedupe))
        try:
            summary, other_shard = self._apply(batch.observations, updates)
            failed, failures_elsewhere = self._count_failures(batch.failures, updates, now)
        except BaseException:
            with self._lock:
                for key in batch.keys:
                    self._dedupe.forget(key)  # not applied: the redelivery must count
            raise
        metrics.applied.inc(summary.observed + failed)
        metrics.out_of_order.inc(summary.stale)
        metrics.not_targeted.inc(batch.unmapped + summary.ignored - other_shard)
        metrics.other_shard.inc(other_shard + failures_elsewhere)
        metrics.duplicates.inc(batch.duplicates)
        for timestamp in batch.timestamps:
            metrics.lag.observe(max(0.0, now - timestamp))
        self._delete(messages)
        with self._lock:
            self._summary = self._summary + summary
            self._received += len(messages)
            self._failure = None
        return summary

    def _sort(self, messages: Sequence[dict[str, Any]], now: float) -> _Batch:
        """Parse, map and de-duplicate a batch (under the lock: the dedupe set is shared)."""
        batch = _Batch()
        for message in messages:
            parsed = parse_body(str(message.get("Body", "")))
            if isinstance(parsed, Rejected):
                self._metrics.malformed.labels(parsed.kind.value).inc()
                self._log_malformed(parsed.kind, parsed.detail, message)
                continue
            name = self._client_ids.thing_of(parsed)
            if isinstance(parsed, LifecycleEvent) and name is None:
                batch.unmapped += 1
                claimed = self._client_ids.stripped(parsed.client_id)
                if claimed is not None:
                    self._invalid.append(claimed)  # it claims a name AWS could not issue
                continue
            if not self._dedupe.first(parsed.dedupe_key):
                batch.duplicates += 1
                continue
            batch.keys.append(parsed.dedupe_key)
            if isinstance(parsed, ConnectFailure):
                # Counted even for a client that maps to no thing: an unknown client
                # failing to connect is what an operator most wants to see.
                batch.failures.append((name, parsed.failure_type))
                continue
            assert name is not None  # (a lifecycle event without a thing left above)
            batch.observations.append(_observation(name, parsed, now))
            batch.timestamps.append(parsed.timestamp)
        return batch

    def _delete(self, messages: Sequence[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
            if "ReceiptHandle" in message
        ]
        if not entries:
            return
        try:
            response = self._calls.call(DELETE, QueueUrl=self._settings.queue_url, Entries=entries)
        except CallFailed as failure:
            # Applied but not deleted: SQS delivers them again and the dedupe set drops them.
            self._failed(failure)
            return
        failed = response.get("Failed") or []
        if failed:
            log.warning(
                "SQS did not delete some messages; they will be delivered again and dropped"
                " as duplicates",
                extra={"failed": len(failed), "code": failed[0].get("Code", "")},
            )

    def _failed(self, failure: CallFailed) -> None:
        with self._lock:
            self._failure = failure
        log.debug("SQS call failed", extra={"problem": describe(failure)})

    def _log_malformed(self, kind: Malformed, detail: str, message: dict[str, Any]) -> None:
        # Once per kind: a flood of poison must not flood the log. The metric counts them all.
        if kind in self._logged:
            return
        self._logged.add(kind)
        log.warning(
            "events: a message on the queue is not a lifecycle event; deleted"
            " (logged once per kind; iot_exporter_events_malformed_total counts them)",
            extra={"kind": kind.value, "detail": detail, "message_id": message.get("MessageId")},
        )


def _observation(name: str, event: LifecycleEvent, now: float) -> Observation:
    return Observation.event(
        name,
        now,
        connected=event.connected,
        timestamp=event.timestamp,
        version=event.version,
        reason=event.reason,
        # A connect brings the client ID alone; the thing keeps the details polled for it.
        session=session_of(name, event.client_id) if event.connected else None,
    )
