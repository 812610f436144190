"""AWS IoT lifecycle events: parsing an SQS message body, client ID to thing, bounded dedupe.

Pure logic: no boto3, no threads, no clock. The event source (sources/events.py) feeds it
message bodies; the fleet's rules (connectivity.py) decide what an event does to a thing.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from exporter.fleet.connectivity import MISSING_REASON, valid_reason
from exporter.names import is_thing_name

# A lifecycle event is a few hundred bytes. Anything this large is not one, and is refused
# before it is parsed, so a 256 KiB poison message costs no JSON parse.
MAX_BODY_CHARS = 16 * 1024
MAX_CLIENT_ID_CHARS = 128
MAX_SESSION_CHARS = 256


class Malformed(enum.Enum):
    """Why a message is not a lifecycle event (the kind="..." label of the malformed count)."""

    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    BAD_FIELD = "bad_field"


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One connect or disconnect, as AWS published it on $aws/events/presence/..."""

    client_id: str
    connected: bool
    timestamp: float  # epoch seconds (AWS sends milliseconds)
    session: str  # sessionIdentifier: one per connection, shared by its connect and disconnect
    version: int  # versionNumber: orders one client ID's connections
    reason: str | None = None  # disconnectReason, disconnects only
    principal: str | None = None
    client_initiated: bool | None = None
    # thingName: AWS adds it when the client uses the exclusive thing association, which
    # ties a client to its thing whatever its client ID.
    thing_name: str | None = None

    @property
    def dedupe_key(self) -> Hashable:
        """What makes two deliveries the same event: a connection ends or starts once."""
        return (self.client_id, self.session, self.connected)


@dataclass(frozen=True, slots=True)
class ConnectFailure:
    """A connect attempt AWS refused, as published on $aws/events/presence/connect_failed/."""

    client_id: str
    timestamp: float  # epoch seconds
    failure_type: str  # failureType, such as AUTHORIZATION_FAILURE
    principal: str | None = None
    thing_name: str | None = None  # with the exclusive thing association

    @property
    def dedupe_key(self) -> Hashable:
        """A failure has no session: a client fails once per attempt, at one instant."""
        return (self.client_id, "connect_failed", self.timestamp, self.failure_type)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not a lifecycle event: its kind, and a short detail for the log."""

    kind: Malformed
    detail: str


def parse_body(body: str) -> LifecycleEvent | ConnectFailure | Rejected:
    """The event in one SQS message body: the topic rule's JSON, or that JSON in base64
    (the rule's SQS action has a useBase64 switch)."""
    if len(body) > MAX_BODY_CHARS:
        return Rejected(Malformed.TOO_LARGE, f"{len(body)} characters")
    try:
        document = json.loads(body)
    except ValueError:
        document = _base64_json(body)
        if document is None:
            return Rejected(Malformed.NOT_JSON, "neither JSON nor base64-encoded JSON")
    if not isinstance(document, dict):
        return Rejected(Malformed.NOT_AN_OBJECT, f"a JSON {type(document).__name__}")
    return parse_event(document)


def _base64_json(body: str) -> Any:
    try:
        return json.loads(base64.b64decode(body.strip(), validate=True))
    except (ValueError, binascii.Error):
        return None


def _text(value: Any, most: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= most


def _count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _bad_field(document: dict[str, Any], *, session: bool) -> str | None:
    """The first field that is missing or malformed, shown for the log; None if none is.

    A failed connect attempt belongs to no session: `session` says whether the session's
    fields are required. Written out, not as a table of checks: it runs for every event.
    """
    if not _text(document.get("clientId"), MAX_CLIENT_ID_CHARS):
        key = "clientId"
    elif not _count(document.get("timestamp"), 1):
        key = "timestamp"
    elif session and not _count(document.get("versionNumber"), 0):
        key = "versionNumber"
    elif session and not _text(document.get("sessionIdentifier"), MAX_SESSION_CHARS):
        key = "sessionIdentifier"
    else:
        thing = document.get("thingName")  # optional: only with the exclusive association
        if thing is None or (isinstance(thing, str) and is_thing_name(thing)):
            return None
        key = "thingName"
    return f"{key} {_short(document.get(key))}"


def parse_event(document: dict[str, Any]) -> LifecycleEvent | ConnectFailure | Rejected:
    """The event in a decoded JSON object, or why it is not one."""
    event_type = document.get("eventType")
    if event_type not in ("connected", "disconnected", "connect_failed"):
        return Rejected(Malformed.UNKNOWN_EVENT_TYPE, f"eventType {_short(event_type)}")
    bad = _bad_field(document, session=event_type != "connect_failed")
    if bad is not None:
        return Rejected(Malformed.BAD_FIELD, bad)
    if event_type == "connect_failed":
        principal = document.get("principalIdentifier")
        return ConnectFailure(
            client_id=document["clientId"],
            timestamp=document["timestamp"] / 1000.0,
            # A type of the wrong shape is kept as AWS's catch-all: the attempt happened.
            failure_type=valid_reason(document.get("failureType")) or MISSING_REASON,
            principal=principal if isinstance(principal, str) else None,
            thing_name=document.get("thingName"),
        )
    client_id, timestamp = document["clientId"], document["timestamp"]
    version, session = document["versionNumber"], document["sessionIdentifier"]
    principal, thing = document.get("principalIdentifier"), document.get("thingName")
    connected = event_type == "connected"
    reason: str | None = None
    initiated: bool | None = None
    if not connected:
        raw = document.get("disconnectReason")
        # A reason of the wrong shape is kept as AWS's catch-all, not refused: the
        # disconnect itself happened and must count.
        reason = valid_reason(raw) or MISSING_REASON
        flag = document.get("clientInitiatedDisconnect")
        initiated = flag if isinstance(flag, bool) else None
    return LifecycleEvent(
        client_id=client_id,
        connected=connected,
        timestamp=timestamp / 1000.0,
        session=session,
        version=version,
        reason=reason,
        principal=principal if isinstance(principal, str) else None,
        client_initiated=initiated,
        thing_name=thing,
    )


def _short(value: Any) -> str:
    text = json.dumps(value) if value is not None else "missing"
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True, slots=True)
class ClientIdMap:
    """Client ID to thing name: strip a prefix and a suffix (by default none: the same name)."""

    prefix: str = ""
    suffix: str = ""

    def thing_of(self, event: LifecycleEvent | ConnectFailure) -> str | None:
        """The thing an event is about: the one AWS names (the exclusive thing association),
        else the one its client ID maps to; None when neither says."""
        return event.thing_name or self.thing_name(event.client_id)

    def thing_name(self, client_id: str) -> str | None:
        """The thing a client ID belongs to, or None when it follows no rule we know."""
        name = self.stripped(client_id)
        return name if is_thing_name(name) else None

    def stripped(self, client_id: str) -> str | None:
        """The client ID without the prefix and suffix (the name it claims), or None when it
        does not have them."""
        if not client_id.startswith(self.prefix) or not client_id.endswith(self.suffix):
            return None
        return client_id[len(self.prefix) : len(client_id) - len(self.suffix)]


class Dedupe:
    """The keys of the last `capacity` distinct events, to count each event once.

    Memory is bounded by `capacity` keys: when full, the oldest key is forgotten (a deque
    keeps the arrival order; a set answers "seen?"). Each key is stored as its hash, one
    int shared by both, about 80 bytes in all. Duplicates from AWS and SQS arrive within
    seconds to minutes of the original (a redelivery comes after a visibility timeout),
    far fewer events ago than the capacity on any realistic fleet; one that comes later
    is counted again, and the out-of-order rules still keep it from changing the state.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._keys: set[int] = set()
        self._order: deque[int] = deque()

    def first(self, key: Hashable) -> bool:
        """True the first time a key is seen (it is remembered), False for a repeat."""
        hashed = hash(key)
        keys = self._keys
        if hashed in keys:
            return False
        if len(self._order) >= self._capacity:
            keys.discard(self._order.popleft())
        keys.add(hashed)
        self._order.append(hashed)
        return True

    def forget(self, key: Hashable) -> None:
        """Forget a key (its event was not applied after all, so a redelivery must count).

        Its place in the arrival order stays until it ages out; the set is what answers.
        """
        self._keys.discard(hash(key))

    def __len__(self) -> int:
        return len(self._keys)
