"""Session details: read from every source, validated, ordered like connectivity, shared."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from exporter.fleet.connectivity import FleetState, Observation, mismatched, shown_session
from exporter.fleet.lifecycle import ClientIdMap, LifecycleEvent, Malformed, Rejected, parse_event
from exporter.fleet.sessions import (
    MAX_SHARED_SESSIONS,
    Session,
    Sessions,
    Socket,
    session_in,
    session_of,
    socket_in,
)
from exporter.sources.index import observation_of
from exporter.sources.live import parse_response
from tests.support.replay import replay

T0 = 1_700_000_000.0
NAME = "pump-7"
WIRE = {"clientId": NAME, "keepAliveDuration": 30, "cleanSession": False, "sessionExpiry": 3600}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(WIRE, Session(None, 30, False, 3600), id="the thing's own client ID"),
        pytest.param(
            {**WIRE, "clientId": "pump-7-dev"},
            Session("pump-7-dev", 30, False, 3600),
            id="another client ID",
        ),
        pytest.param({}, None, id="no session fields: none"),
        pytest.param({"keepAliveDuration": 1200}, Session(None, 1200), id="some fields"),
        pytest.param(
            {"clientId": "", "keepAliveDuration": -1, "cleanSession": "no", "sessionExpiry": 1.5},
            None,
            id="every field malformed: none",
        ),
        pytest.param(
            {**WIRE, "keepAliveDuration": True},
            Session(None, None, False, 3600),
            id="a bool is no keep-alive",
        ),
        pytest.param(
            {**WIRE, "keepAliveDuration": 65_536},
            Session(None, None, False, 3600),
            id="keep-alive past MQTT's 16 bits",
        ),
        pytest.param(
            {**WIRE, "sessionExpiry": 2**32},
            Session(None, 30, False, None),
            id="expiry past MQTT's 32 bits",
        ),
        pytest.param(
            {**WIRE, "clientId": "x" * 129},
            Session(None, 30, False, 3600),
            id="a client ID over AWS's 128 characters is not kept",
        ),
    ],
)
def test_the_fields_of_an_answer(fields: dict[str, Any], expected: Session | None) -> None:
    assert session_in(NAME, fields) == expected


SOCKET = {
    "sourceIp": "198.51.100.7",
    "sourcePort": 50123,
    "targetIp": "2001:db8::10",
    "targetPort": 8883,
    "vpcEndpointId": "vpce-0a1b2c3d",
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            SOCKET,
            Socket("198.51.100.7", 50123, "2001:db8::10", 8883, "vpce-0a1b2c3d"),
            id="every field",
        ),
        pytest.param({}, None, id="none asked for"),
        pytest.param(
            {**SOCKET, "sourceIp": "<script>", "targetPort": 70_000, "vpcEndpointId": "vpc-1"},
            Socket(None, 50123, "2001:db8::10", None, None),
            id="malformed fields are left out",
        ),
    ],
)
def test_the_socket_of_an_answer(fields: dict[str, Any], expected: Socket | None) -> None:
    assert socket_in(fields) == expected
    session = session_in(NAME, {**WIRE, **fields})
    assert session is not None
    assert session.socket == expected
    assert replace(session, socket=None) == Session(None, 30, False, 3600)


def test_a_session_with_a_socket_is_its_things_own() -> None:
    sessions = Sessions()
    with_socket = Session(None, 30, socket=Socket("198.51.100.7"))
    assert sessions.shared(with_socket) is with_socket
    assert sessions.shared(Session(None, 30, socket=Socket("198.51.100.7"))) is not with_socket


def test_only_a_connected_answer_has_a_session() -> None:
    up = parse_response(NAME, {"connected": True, "timestamp": T0 - 5, **WIRE}, T0)
    assert up.session == Session(None, 30, False, 3600)
    down = {"connected": False, "timestamp": dt.datetime.fromtimestamp(T0 - 5, dt.UTC), **WIRE}
    assert parse_response(NAME, down, T0).session is None


def test_the_index_reads_the_same_fields_from_connectivity() -> None:
    connectivity: dict[str, Any] = {"connected": True, "timestamp": int((T0 - 5) * 1000), **WIRE}
    entry = {"thingName": NAME, "connectivity": connectivity}
    assert observation_of(entry, NAME, T0).session == Session(None, 30, False, 3600)
    connectivity["clientId"] = "pump-7-dev"
    assert observation_of(entry, NAME, T0).session == Session("pump-7-dev", 30, False, 3600)


# -- ordering: the session follows the connectivity it came with ------------------------------

OWN = Session(None, 30, False, 3600)
FOREIGN = Session("pump-7-dev", 60, True, 0)


def polled(at: float, ts: float, session: Session | None, connected: bool = True) -> Observation:
    return Observation.ok(NAME, at, connected=connected, timestamp=ts, session=session)


def event(at: float, ts: float, version: int, client: str, connected: bool = True) -> Observation:
    return Observation.event(
        NAME,
        at,
        connected=connected,
        timestamp=ts,
        version=version,
        session=session_of(NAME, client),
        reason=None if connected else "CONNECTION_LOST",
    )


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        pytest.param([polled(T0, T0 - 5, OWN)], OWN, id="a poll sets it"),
        pytest.param(
            [polled(T0, T0 - 5, OWN), polled(T0 + 60, T0 - 5, FOREIGN)],
            FOREIGN,
            id="the same connection seen again: the newer answer's details",
        ),
        pytest.param(
            [polled(T0, T0 - 5, OWN), polled(T0 + 60, T0 - 50, FOREIGN)],
            OWN,
            id="an older answer (a lagging index) changes nothing",
        ),
        pytest.param(
            [polled(T0, T0 - 5, OWN), polled(T0 + 60, T0 + 30, None, connected=False)],
            None,
            id="a disconnect ends it",
        ),
        pytest.param(
            [
                polled(T0, T0 - 5, OWN),
                event(T0 + 60, T0 + 30, 1, NAME, connected=False),
                event(T0 + 90, T0 + 80, 2, NAME),
            ],
            OWN,
            id="a reconnect after a disconnect keeps the last connection's details",
        ),
        pytest.param(
            [polled(T0, T0 - 5, OWN), event(T0 + 60, T0 + 30, 2, NAME)],
            OWN,
            id="a reconnect under the same client ID keeps the polled details",
        ),
        pytest.param(
            [polled(T0, T0 - 5, OWN), event(T0 + 60, T0 + 30, 2, "pump-7-dev")],
            Session("pump-7-dev"),
            id="a reconnect under another client ID knows only that",
        ),
        pytest.param(
            [polled(T0, T0 + 30, OWN), event(T0 + 60, T0 - 300, 1, "pump-7-dev")],
            OWN,
            id="an older event changes nothing",
        ),
        pytest.param(
            [event(T0, T0 - 5, 1, "pump-7-dev"), event(T0 + 1, T0 - 4, 1, "x", connected=False)],
            None,
            id="a disconnect event ends it",
        ),
    ],
)
def test_the_session_shown_is_the_one_of_the_connection_shown(
    observations: list[Observation], expected: Session | None
) -> None:
    assert shown_session(replay(*observations)) == expected
    assert shown_session(replay(*observations, events=True)) == expected


def test_a_fleet_shares_one_object_among_sessions_alike() -> None:
    fleet = FleetState()
    fleet.apply(
        [
            Observation.ok(f"t{i}", T0, connected=True, timestamp=T0 - i, session=Session(None, 30))
            for i in range(100)
        ]
    )
    assert len({id(state.session) for state in fleet.things.values()}) == 1
    fleet.apply([polled(T0 + 1, T0 - 1, FOREIGN)])
    assert mismatched(fleet.things[NAME])
    assert not mismatched(fleet.things["t1"])


def test_the_shared_table_stops_growing_at_its_bound() -> None:
    sessions = Sessions()
    for keep_alive in range(MAX_SHARED_SESSIONS + 10):
        sessions.shared(Session(None, keep_alive))
    late = Session(None, MAX_SHARED_SESSIONS + 20)
    assert sessions.shared(late) is late
    assert sessions.shared(Session(None, 1)) == Session(None, 1)


# -- lifecycle events: the exclusive thing association's thingName ---------------------------

EVENT = {
    "clientId": "pump-7-dev",
    "timestamp": int(T0 * 1000),
    "eventType": "connected",
    "sessionIdentifier": "s-1",
    "principalIdentifier": "p",
    "versionNumber": 1,
}


def test_an_event_names_its_thing_under_the_exclusive_association() -> None:
    parsed = parse_event({**EVENT, "thingName": NAME})
    assert isinstance(parsed, LifecycleEvent)
    assert ClientIdMap().thing_of(parsed) == NAME
    without = parse_event(EVENT)
    assert isinstance(without, LifecycleEvent)
    assert ClientIdMap().thing_of(without) == "pump-7-dev"  # the client ID, taken as a name
    assert ClientIdMap(suffix="-dev").thing_of(without) == NAME


@pytest.mark.parametrize("bad", [42, "", "a b", "x" * 129])
def test_a_malformed_thing_name_rejects_the_event_and_says_why(bad: object) -> None:
    parsed = parse_event({**EVENT, "thingName": bad})
    assert isinstance(parsed, Rejected)
    assert parsed.kind is Malformed.BAD_FIELD
    assert parsed.detail.startswith("thingName ")
