"""The simulator's topic rule: the fleet's connects and disconnects as lifecycle JSON on SQS.

AWS's rule `SELECT * FROM '$aws/events/presence/+/+'` with an SQS action sends every
lifecycle event of the account to a queue. This does the same for the simulated fleet,
with the faults AWS documents (duplicates, reordering) and one it does not promise
against (events lost for a window), so tests can check the exporter against all three.
"""

from __future__ import annotations

import json
import math
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from iot_simulator.model import Event, FailedConnect, Fleet

# AWS resets a client ID's versionNumber after about an hour disconnected.
VERSION_RESET_SECONDS = 3600.0
SEND_BATCH = 10  # SendMessageBatch's limit


@dataclass(frozen=True)
class RuleFaults:
    """Delivery faults: each event is sent again with `duplicate_rate`; events are shuffled
    within windows of `reorder_window` events; events whose time falls in [drop_from,
    drop_until) are never sent."""

    duplicate_rate: float = 0.0
    reorder_window: int = 0
    drop_from: float | None = None
    drop_until: float | None = None

    def drops(self, time: float) -> bool:
        return (
            self.drop_from is not None
            and self.drop_until is not None
            and self.drop_from <= time < self.drop_until
        )


@dataclass
class _Client:
    version: int = 0
    session: str = ""
    disconnected_at: float | None = None


class TopicRule:
    """Publishes what the fleet generated since the last call, in time order, to a queue.

    The fleet generates history lazily as the clock moves; `publish()` asks it for every
    event up to now (Fleet.ground_truth) and sends those it has not sent yet. Each thing's
    client ID is its name; each connection gets a sessionIdentifier and the client's
    versionNumber (reset after an hour disconnected), which its disconnect shares.
    """

    def __init__(
        self,
        fleet: Fleet,
        client: Any,
        queue_url: str | Sequence[str],
        *,
        clock: Callable[[], float],
        faults: RuleFaults | None = None,
        seed: int = 0,
        account_principal: str = "AIDAEXAMPLEPRINCIPAL0",
    ) -> None:
        self._fleet = fleet
        self._client = client
        # Several queues: the rule fans out (one SQS action each), as for sharded exporters.
        self._queue_urls = (queue_url,) if isinstance(queue_url, str) else tuple(queue_url)
        self._clock = clock
        self.faults = faults or RuleFaults()
        self._rng = random.Random(seed)
        self._principal = account_principal
        # Events carry millisecond times, so the cursor is a millisecond: events of that
        # millisecond already sent are remembered, and one that comes later in the same
        # millisecond (an action right after a publish) still goes out next time.
        self._cursor_ms = math.floor(clock() * 1000.0)
        self._sent_at_cursor: Counter[Event] = Counter()
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()
        self.published: list[Event] = []  # what was generated (sent or dropped), in order
        self.dropped: list[Event] = []
        # Refused connect attempts, under the same faults as the events.
        self.failures_published: list[FailedConnect] = []
        self.failures_dropped: list[FailedConnect] = []
        self.sent = 0  # messages sent, duplicates included

    def publish(self) -> int:
        """Send every event generated since the last call; return how many were generated."""
        with self._lock:
            now = self._clock()
            since = (self._cursor_ms - 1) / 1000.0
            events = self._fleet.ground_truth(since=since, until=now)
            already = self._sent_at_cursor
            fresh: list[Event] = []
            for event in events:
                if already[event] > 0:  # sent by the last call, in the cursor's millisecond
                    already[event] -= 1
                else:
                    fresh.append(event)
            self._cursor_ms = math.floor(now * 1000.0)
            self._sent_at_cursor = Counter(
                e for e in events if round(e.time * 1000.0) == self._cursor_ms
            )
            events = fresh
            bodies: list[str] = []
            for event in events:
                body = self._document(event)
                self.published.append(event)
                if self.faults.drops(event.time):
                    self.dropped.append(event)
                    continue
                bodies.extend(self._copies(body))
            failures = self._fleet.failed_connects(since=len(self.failures_published))
            for failure in failures:
                self.failures_published.append(failure)
                if self.faults.drops(failure.time):
                    self.failures_dropped.append(failure)
                    continue
                bodies.extend(self._copies(json.dumps(failure_document(failure, self._principal))))
            self._send(self._reordered(bodies))
            return len(events) + len(failures)

    def _copies(self, body: str) -> list[str]:
        """The body once, or twice at the duplicate rate (AWS delivers at least once)."""
        return [body, body] if self._rng.random() < self.faults.duplicate_rate else [body]

    def _document(self, event: Event) -> str:
        # versionNumber and sessionIdentifier belong to a client ID, not to a thing.
        client = self._clients.setdefault(event.client_id or event.thing_name, _Client())
        if event.kind == "connect":
            gone = client.disconnected_at
            reset = gone is not None and event.time - gone >= VERSION_RESET_SECONDS
            client.version = 1 if reset or client.version == 0 else client.version + 1
            client.session = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            client.disconnected_at = None
        else:
            client.disconnected_at = event.time
            if not client.session:  # a disconnect of a connection made before we started
                client.version = max(client.version, 1)
                client.session = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        return json.dumps(
            lifecycle_document(event, client.version, client.session, self._principal)
        )

    def _reordered(self, bodies: list[str]) -> list[str]:
        window = self.faults.reorder_window
        if window < 2:
            return bodies
        out: list[str] = []
        for start in range(0, len(bodies), window):
            chunk = bodies[start : start + window]
            self._rng.shuffle(chunk)
            out.extend(chunk)
        return out

    def _send(self, bodies: Sequence[str]) -> None:
        for start in range(0, len(bodies), SEND_BATCH):
            entries = [
                {"Id": str(index), "MessageBody": body}
                for index, body in enumerate(bodies[start : start + SEND_BATCH])
            ]
            for queue_url in self._queue_urls:
                response = self._client.send_message_batch(QueueUrl=queue_url, Entries=entries)
                if response.get("Failed"):
                    raise RuntimeError(f"SendMessageBatch failed: {response['Failed']}")
            self.sent += len(entries)  # per queue: each gets every message


def failure_document(failure: FailedConnect, principal: str) -> dict[str, Any]:
    """The JSON AWS publishes on $aws/events/presence/connect_failed/{clientId}."""
    document: dict[str, Any] = {
        "clientId": failure.client_id,
        "timestamp": round(failure.time * 1000),
        "eventType": "connect_failed",
        "failureType": failure.failure_type,
        "principalIdentifier": principal,
    }
    if failure.thing_name is not None:
        document["thingName"] = failure.thing_name
    return document


def lifecycle_document(event: Event, version: int, session: str, principal: str) -> dict[str, Any]:
    """The JSON AWS publishes on $aws/events/presence/{connected,disconnected}/{clientId}."""
    document: dict[str, Any] = {
        "clientId": event.client_id or event.thing_name,
        "timestamp": round(event.time * 1000),
        "eventType": "connected" if event.kind == "connect" else "disconnected",
        "sessionIdentifier": session,
        "principalIdentifier": principal,
        "versionNumber": version,
    }
    if event.exclusive:
        document["thingName"] = event.thing_name
    if event.kind == "connect":
        document["ipAddress"] = "192.0.2.10"
    else:
        document["clientInitiatedDisconnect"] = event.reason == "CLIENT_INITIATED_DISCONNECT"
        document["disconnectReason"] = event.reason
    return document
