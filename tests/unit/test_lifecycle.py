"""Tables of SQS message bodies against the lifecycle events or rejections they give."""

import base64
import json
from typing import Any

import pytest

from exporter.fleet.lifecycle import (
    MAX_BODY_CHARS,
    ClientIdMap,
    Dedupe,
    LifecycleEvent,
    Malformed,
    Rejected,
    parse_body,
)

SESSION = "00000000-0000-0000-0000-000000000001"
PRINCIPAL = "12345678901234567890123456789012"
CONNECTED: dict[str, Any] = {
    "clientId": "pump-7",
    "timestamp": 1_700_000_000_123,
    "eventType": "connected",
    "sessionIdentifier": SESSION,
    "principalIdentifier": PRINCIPAL,
    "ipAddress": "192.0.2.1",
    "versionNumber": 3,
}
DISCONNECTED: dict[str, Any] = {
    **{k: v for k, v in CONNECTED.items() if k != "ipAddress"},
    "eventType": "disconnected",
    "timestamp": 1_700_000_060_000,
    "clientInitiatedDisconnect": False,
    "disconnectReason": "MQTT_KEEP_ALIVE_TIMEOUT",
}


def body(document: Any, **changes: Any) -> str:
    if isinstance(document, dict):
        document = {k: v for k, v in {**document, **changes}.items() if v is not ...}
    return json.dumps(document)


VALID: list[tuple[str, str, LifecycleEvent]] = [
    (
        "connected",
        body(CONNECTED),
        LifecycleEvent(
            "pump-7",
            True,
            1_700_000_000.123,
            SESSION,
            3,
            principal=PRINCIPAL,
        ),
    ),
    (
        "disconnected",
        body(DISCONNECTED),
        LifecycleEvent(
            "pump-7",
            False,
            1_700_000_060.0,
            SESSION,
            3,
            reason="MQTT_KEEP_ALIVE_TIMEOUT",
            principal=PRINCIPAL,
            client_initiated=False,
        ),
    ),
    (
        "reason-missing-is-unknown",
        body(DISCONNECTED, disconnectReason=..., principalIdentifier=...),
        LifecycleEvent(
            "pump-7",
            False,
            1_700_000_060.0,
            SESSION,
            3,
            reason="UNKNOWN",
            client_initiated=False,
        ),
    ),
    (
        "reason-garbage-is-unknown",
        body(DISCONNECTED, disconnectReason="no such {reason}", clientInitiatedDisconnect="x"),
        LifecycleEvent(
            "pump-7",
            False,
            1_700_000_060.0,
            SESSION,
            3,
            reason="UNKNOWN",
            principal=PRINCIPAL,
        ),
    ),
    (
        "base64-body-from-useBase64",
        base64.b64encode(body(CONNECTED).encode()).decode(),
        LifecycleEvent(
            "pump-7",
            True,
            1_700_000_000.123,
            SESSION,
            3,
            principal=PRINCIPAL,
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_parse_valid(text: str, expected: LifecycleEvent) -> None:
    assert parse_body(text) == expected


INVALID: list[tuple[str, str, Rejected]] = [
    ("empty", "", Rejected(Malformed.NOT_JSON, "neither JSON nor base64-encoded JSON")),
    ("not-json", "hello {", Rejected(Malformed.NOT_JSON, "neither JSON nor base64-encoded JSON")),
    ("a-list", "[1, 2]", Rejected(Malformed.NOT_AN_OBJECT, "a JSON list")),
    ("a-number", "42", Rejected(Malformed.NOT_AN_OBJECT, "a JSON int")),
    (
        "unknown-event-type",
        body(CONNECTED, eventType="subscribed"),
        Rejected(Malformed.UNKNOWN_EVENT_TYPE, 'eventType "subscribed"'),
    ),
    (
        "no-event-type",
        body(CONNECTED, eventType=...),
        Rejected(Malformed.UNKNOWN_EVENT_TYPE, "eventType missing"),
    ),
    (
        "client-id-number",
        body(CONNECTED, clientId=7),
        Rejected(Malformed.BAD_FIELD, "clientId 7"),
    ),
    (
        "client-id-empty",
        body(CONNECTED, clientId=""),
        Rejected(Malformed.BAD_FIELD, 'clientId ""'),
    ),
    (
        "timestamp-string",
        body(CONNECTED, timestamp="2024-01-01"),
        Rejected(Malformed.BAD_FIELD, 'timestamp "2024-01-01"'),
    ),
    (
        "timestamp-bool",
        body(CONNECTED, timestamp=True),
        Rejected(Malformed.BAD_FIELD, "timestamp true"),
    ),
    (
        "version-missing",
        body(CONNECTED, versionNumber=...),
        Rejected(Malformed.BAD_FIELD, "versionNumber missing"),
    ),
    (
        "version-negative",
        body(CONNECTED, versionNumber=-1),
        Rejected(Malformed.BAD_FIELD, "versionNumber -1"),
    ),
    (
        "session-missing",
        body(DISCONNECTED, sessionIdentifier=...),
        Rejected(Malformed.BAD_FIELD, "sessionIdentifier missing"),
    ),
    (
        "long-detail-is-cut",
        body(CONNECTED, eventType="x" * 100),
        Rejected(Malformed.UNKNOWN_EVENT_TYPE, 'eventType "' + "x" * 36 + "..."),
    ),
    (
        "256-KiB",
        "x" * (256 * 1024),
        Rejected(Malformed.TOO_LARGE, f"{256 * 1024} characters"),
    ),
    (
        "one-over-the-limit",
        "z" * (MAX_BODY_CHARS + 1),
        Rejected(Malformed.TOO_LARGE, f"{MAX_BODY_CHARS + 1} characters"),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_parse_invalid(text: str, expected: Rejected) -> None:
    assert parse_body(text) == expected


CLIENT_IDS: list[tuple[ClientIdMap, str, str | None]] = [
    (ClientIdMap(), "pump-7", "pump-7"),
    (ClientIdMap(), "dev/pump-7", None),  # not a thing name
    (ClientIdMap(prefix="dev/"), "dev/pump-7", "pump-7"),
    (ClientIdMap(prefix="dev/"), "pump-7", None),
    (ClientIdMap(suffix="-mqtt"), "pump-7-mqtt", "pump-7"),
    (ClientIdMap(prefix="a:", suffix=":b"), "a:pump:b", "pump"),
    (ClientIdMap(prefix="a:", suffix=":b"), "a::b", None),  # nothing left
    (ClientIdMap(prefix="ab", suffix="bc"), "abc", None),  # prefix and suffix overlap
]


@pytest.mark.parametrize(("mapping", "client_id", "thing"), CLIENT_IDS)
def test_client_id_to_thing(mapping: ClientIdMap, client_id: str, thing: str | None) -> None:
    assert mapping.thing_name(client_id) == thing


def test_dedupe_counts_each_key_once() -> None:
    dedupe = Dedupe(3)
    assert [dedupe.first(k) for k in ("a", "b", "a", "c", "b")] == [True, True, False, True, False]


def test_dedupe_is_bounded_and_forgets_the_oldest() -> None:
    dedupe = Dedupe(1000)
    for key in range(100_000):
        dedupe.first(key)
    assert len(dedupe) == 1000
    assert not dedupe.first(99_999)  # recent: still known
    assert dedupe.first(0)  # long gone: a redelivery this late counts again


def test_dedupe_forget_lets_a_redelivery_count() -> None:
    dedupe = Dedupe(10)
    assert dedupe.first("a")
    dedupe.forget("a")
    assert dedupe.first("a")


def test_dedupe_key_tells_connect_from_disconnect() -> None:
    connect, disconnect = parse_body(body(CONNECTED)), parse_body(body(DISCONNECTED))
    assert isinstance(connect, LifecycleEvent)
    assert isinstance(disconnect, LifecycleEvent)
    assert connect.dedupe_key != disconnect.dedupe_key
    dedupe = Dedupe(10)
    assert dedupe.first(disconnect.dedupe_key)
    assert not dedupe.first(disconnect.dedupe_key)


STRIPPED: list[tuple[ClientIdMap, str, str | None]] = [
    (ClientIdMap(), 'pump"7', 'pump"7'),  # claims a name no AWS account could hold
    (ClientIdMap(prefix="dev/"), "dev/a b", "a b"),
    (ClientIdMap(prefix="dev/"), "pump-7", None),  # follows no rule: claims nothing
]


@pytest.mark.parametrize(("mapping", "client_id", "claimed"), STRIPPED)
def test_the_name_a_client_id_claims(
    mapping: ClientIdMap, client_id: str, claimed: str | None
) -> None:
    assert mapping.stripped(client_id) == claimed
    assert mapping.thing_name(client_id) is None
