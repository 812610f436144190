"""Refused connect attempts: parsed, de-duplicated, mapped to things, counted by shard."""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from exporter.aws.calls import AwsCalls
from exporter.config.events import EventsSettings
from exporter.exposition.event_metrics import EventMetrics
from exporter.exposition.series import Exposition, Shape
from exporter.fleet.connectivity import FleetState, Observation, in_trouble
from exporter.fleet.lifecycle import ConnectFailure, Malformed, Rejected, parse_event
from exporter.fleet.shards import Shard, owner
from exporter.fleet.targets import STATIC_SOURCE, Found, SourceSlot, Targets
from exporter.sources.base import EventWiring
from exporter.sources.events import EventSource
from tests.support.updates import RecordingUpdates

T0 = 1_700_000_000.0
STAMP = int(T0 * 1000)
FAILED: dict[str, Any] = {
    "clientId": "pump-7",
    "timestamp": STAMP,
    "eventType": "connect_failed",
    "failureType": "AUTHORIZATION_FAILURE",
    "principalIdentifier": "p-1",
}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            FAILED,
            ConnectFailure("pump-7", T0, "AUTHORIZATION_FAILURE", "p-1"),
            id="AWS's document: no session, no version",
        ),
        pytest.param(
            {**FAILED, "failureType": "not an enum value!"},
            ConnectFailure("pump-7", T0, "UNKNOWN", "p-1"),
            id="a malformed type counts as AWS's catch-all",
        ),
        pytest.param(
            {**FAILED, "failureType": None},
            ConnectFailure("pump-7", T0, "UNKNOWN", "p-1"),
            id="no type",
        ),
        pytest.param(
            {**FAILED, "thingName": "pump-7b"},
            ConnectFailure("pump-7", T0, "AUTHORIZATION_FAILURE", "p-1", "pump-7b"),
            id="the exclusive association names the thing",
        ),
    ],
)
def test_a_connect_failure_event(document: dict[str, Any], expected: ConnectFailure) -> None:
    assert parse_event(document) == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [({"clientId": ""}, "clientId"), ({"timestamp": "soon"}, "timestamp"),
     ({"thingName": "a b"}, "thingName")],
)  # fmt: skip
def test_a_malformed_failure_is_rejected_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    parsed = parse_event({**FAILED, **change})
    assert isinstance(parsed, Rejected)
    assert parsed.kind is Malformed.BAD_FIELD
    assert parsed.detail.startswith(field)


def test_the_fleet_counts_failures_of_its_things_and_of_clients_it_cannot_map() -> None:
    fleet = FleetState()
    fleet.apply([Observation.ok("pump-7", T0, connected=True, timestamp=T0 - 5)])
    counted = fleet.connect_failed(
        [("pump-7", "AUTHORIZATION_FAILURE"), ("pump-7", "AUTHORIZATION_FAILURE"),
         (None, "AUTHORIZATION_FAILURE"), ("stranger", "UNKNOWN")],
        T0 + 10,
        targeted=lambda name: name == "pump-7",
    )  # fmt: skip
    assert counted == 2
    assert fleet.things["pump-7"].connect_failures == {"AUTHORIZATION_FAILURE": 2}
    assert "stranger" not in fleet.things
    assert dict(fleet.fleet_connect_failures) == {
        ("AUTHORIZATION_FAILURE", True): 2,
        ("AUTHORIZATION_FAILURE", False): 1,
        ("UNKNOWN", False): 1,
    }
    state = fleet.things["pump-7"]
    # Connectivity is untouched; the thing is listed among the problems for a window.
    assert state.connected
    assert not in_trouble(state)
    assert [name for name, _ in fleet.problems(T0 + 60, window=3600)] == ["pump-7"]
    # The next poll keeps the count.
    fleet.apply([Observation.ok("pump-7", T0 + 60, connected=True, timestamp=T0 + 50)])
    assert fleet.things["pump-7"].connect_failures == {"AUTHORIZATION_FAILURE": 2}


class NoCalls:
    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        return {}


def source(shard: Shard | None = None) -> EventSource:
    wiring = EventWiring(
        cast(AwsCalls, NoCalls()), EventMetrics(CollectorRegistry()), threading.Event()
    )
    return EventSource(
        EventsSettings(queue_url="https://sqs.example/q"),
        wiring,
        stop=threading.Event(),
        shard=shard,
    )


def messages(*documents: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Body": json.dumps(d), "ReceiptHandle": str(i)} for i, d in enumerate(documents)]


def test_a_redelivered_failure_counts_once() -> None:
    events = source()
    updates = RecordingUpdates()
    events.handle(messages(FAILED, FAILED), updates)
    events.handle(messages(FAILED), updates)
    assert updates.connect_failures == [("pump-7", "AUTHORIZATION_FAILURE")]
    assert updates.observations == []


@pytest.mark.parametrize("ordinal", [0, 1, 2])
def test_each_failure_is_counted_by_one_shard(ordinal: int) -> None:
    names = [f"thing-{i}" for i in range(30)]
    documents = [{**FAILED, "clientId": name, "timestamp": STAMP + i}
                 for i, name in enumerate(names)]  # fmt: skip
    unknown = {**FAILED, "clientId": "not a thing name"}
    updates = RecordingUpdates()
    source(Shard(ordinal, 3)).handle(messages(*documents, unknown), updates)
    expected: list[tuple[str | None, str]] = [
        (name, "AUTHORIZATION_FAILURE") for name in names if owner(name, 3) == ordinal
    ]
    if ordinal == 0:  # every shard's queue has it; shard 0 counts it
        expected.append((None, "AUTHORIZATION_FAILURE"))
    assert updates.connect_failures == expected


def test_a_thing_known_only_by_a_refused_connect_shows_no_poll() -> None:
    targets = Targets([SourceSlot(STATIC_SOURCE, live=True, max_things=None)])
    targets.extend(STATIC_SOURCE, [Found("pump-7")])
    fleet = FleetState()
    fleet.connect_failed([("pump-7", "AUTHORIZATION_FAILURE")], T0)
    text = Exposition(Shape(staleness=180)).render(targets, fleet, {}, T0).text.decode()
    failures = 'iot_thing_connect_failures_total{failure_type="AUTHORIZATION_FAILURE",'
    assert failures + 'thing_name="pump-7"} 1.0' in text
    assert 'iot_thing_poll_success{thing_name="pump-7"}' not in text
