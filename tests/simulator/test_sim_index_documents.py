"""Index documents from snapshots, in tables: field values, dropped details, SearchIndex shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from iot_simulator.index import (
    SnapshotDocument,
    field_values,
    forget_disconnect_details,
    search_document,
)
from iot_simulator.model import ThingSnapshot
from iot_simulator.query import parse

T = 1_700_000_000_000  # epoch ms
CONNECTED = ThingSnapshot(
    name="pump-7",
    thing_id="id-7",
    type_name="pump",
    groups=("site-a", "site-a-line-1"),
    attributes={"fw": "1.2.0"},
    version=3,
    connected=True,
    timestamp_ms=T,
    reason=None,
    keep_alive=60,
    clean_session=False,
    created_ms=None,
    client_id="pump-7",
)
OFFLINE = CONNECTED._replace(connected=False, reason="CONNECTION_LOST", groups=())
NEVER = CONNECTED._replace(connected=False, timestamp_ms=None, type_name=None, attributes={})


@pytest.mark.parametrize(
    ("snapshot", "field", "connectivity", "expected"),
    [
        (CONNECTED, "thingName", True, ("pump-7",)),
        (CONNECTED, "thingId", True, ("id-7",)),
        (CONNECTED, "thingTypeName", True, ("pump",)),
        (NEVER, "thingTypeName", True, ()),
        (CONNECTED, "thingGroupNames", True, ("site-a", "site-a-line-1")),
        (OFFLINE, "thingGroupNames", True, ()),
        (CONNECTED, "registry.version", True, ("3",)),
        (CONNECTED, "attributes.fw", True, ("1.2.0",)),
        (CONNECTED, "attributes.missing", True, ()),
        (CONNECTED, "connectivity.connected", True, ("true",)),
        (CONNECTED, "connectivity.connected", False, ()),  # connectivity not indexed
        (CONNECTED, "connectivity.timestamp", True, (str(T),)),
        (NEVER, "connectivity.timestamp", True, ()),
        (CONNECTED, "connectivity.disconnectReason", True, ()),
        (OFFLINE, "connectivity.disconnectReason", True, ("CONNECTION_LOST",)),
        (CONNECTED, "connectivity.clientId", True, ("pump-7",)),
        (OFFLINE, "connectivity.clientId", True, ()),
        (CONNECTED, "connectivity.keepAliveDuration", True, ("60",)),
        (CONNECTED, "connectivity.cleanSession", True, ("false",)),
        (CONNECTED, "connectivity.sessionExpiry", True, ("3600",)),
        (OFFLINE, "connectivity.sessionExpiry", True, ()),
        (CONNECTED, "shadow.reported.x", True, ()),
    ],
)
def test_field_values(
    snapshot: ThingSnapshot, field: str, connectivity: bool, expected: Sequence[str]
) -> None:
    assert tuple(field_values(snapshot, field, connectivity=connectivity)) == expected


@pytest.mark.parametrize(
    ("snapshot", "age_ms", "retention_ms", "expected"),
    [
        (OFFLINE, 3_599_999, 3_600_000, OFFLINE),
        (OFFLINE, 3_600_000, 3_600_000, OFFLINE._replace(timestamp_ms=None, reason=None)),
        (OFFLINE, 10**9, float("inf"), OFFLINE),
        (CONNECTED, 10**9, 3_600_000, CONNECTED),  # a session never loses its timestamp
        (NEVER, 10**9, 3_600_000, NEVER),
    ],
)
def test_forget_disconnect_details(
    snapshot: ThingSnapshot, age_ms: int, retention_ms: float, expected: ThingSnapshot
) -> None:
    assert forget_disconnect_details(snapshot, T + age_ms, retention_ms) == expected


@pytest.mark.parametrize(
    ("snapshot", "connectivity", "expected"),
    [
        (
            CONNECTED,
            True,
            {
                "thingName": "pump-7",
                "thingId": "id-7",
                "thingTypeName": "pump",
                "thingGroupNames": ["site-a", "site-a-line-1"],
                "attributes": {"fw": "1.2.0"},
                "connectivity": {
                    "connected": True,
                    "timestamp": T,
                    "clientId": "pump-7",
                    "keepAliveDuration": 60,
                    "cleanSession": False,
                    "sessionExpiry": 3600,
                },
            },
        ),
        (
            OFFLINE,
            True,
            {
                "thingName": "pump-7",
                "thingId": "id-7",
                "thingTypeName": "pump",
                "thingGroupNames": None,
                "attributes": {"fw": "1.2.0"},
                "connectivity": {
                    "connected": False,
                    "timestamp": T,
                    "disconnectReason": "CONNECTION_LOST",
                },
            },
        ),
        (
            NEVER,
            False,
            {
                "thingName": "pump-7",
                "thingId": "id-7",
                "thingTypeName": None,
                "thingGroupNames": ["site-a", "site-a-line-1"],
                "attributes": None,
            },
        ),
    ],
)
def test_search_document(
    snapshot: ThingSnapshot, connectivity: bool, expected: dict[str, Any]
) -> None:
    assert search_document(snapshot, connectivity=connectivity) == expected


@pytest.mark.parametrize(
    ("query", "snapshot", "expected"),
    [
        ("*", NEVER, True),
        ("thingGroupNames:(site-b OR site-a-line-1)", CONNECTED, True),
        ("connectivity.disconnectReason:*", OFFLINE, True),
        ("connectivity.disconnectReason:*", CONNECTED, False),
        ("connectivity.connected:false -connectivity.timestamp:*", NEVER, True),
        ("connectivity.connected:false -connectivity.timestamp:*", OFFLINE, False),
        ("attributes.fw:1.2.* AND thingTypeName:pump", CONNECTED, True),
    ],
)
def test_queries_on_lazy_documents(query: str, snapshot: ThingSnapshot, expected: bool) -> None:
    assert parse(query).matches(SnapshotDocument(snapshot, connectivity=True)) is expected


def test_a_lazy_document_is_a_mapping_of_the_fields_present() -> None:
    doc = SnapshotDocument(OFFLINE, connectivity=True)
    assert dict(doc) == {
        "thingName": ("pump-7",),
        "thingId": ("id-7",),
        "thingTypeName": ("pump",),
        "registry.version": ("3",),
        "attributes.fw": ("1.2.0",),
        "connectivity.connected": ("false",),
        "connectivity.timestamp": (str(T),),
        "connectivity.disconnectReason": ("CONNECTION_LOST",),
    }
    assert len(doc) == 8
    assert "thingGroupNames" not in doc
    with pytest.raises(KeyError):
        doc["thingGroupNames"]
