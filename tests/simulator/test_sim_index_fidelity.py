"""The fleet index's documented quirks via boto3: lag, dropped disconnect details, client IDs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mypy_boto3_iot import IoTClient

from iot_simulator import ManualClock, Simulator, SimulatorConfig
from iot_simulator.index import SnapshotDocument
from iot_simulator.query import parse

ClientFactory = Callable[..., IoTClient]
START = 1_700_000_000.0
HOUR = 3600.0
CONNECTED = "connectivity.connected"
REASON = "connectivity.disconnectReason"


@pytest.fixture
def quiet(clock: ManualClock) -> Iterator[Simulator]:
    """Things that change only when told to: all connected, no special roles."""
    config = SimulatorConfig(
        things=6, churn=False, never_connected_fraction=0, duplicate_clientid_things=0, quotas=False
    )
    with Simulator(config, clock=clock) as simulator:
        yield simulator
        assert simulator.internal_errors() == []


def indexed(iot: IoTClient, name: str) -> dict[str, Any]:
    things = iot.search_index(queryString=f"thingName:{name}")["things"]
    assert len(things) == 1
    return dict(things[0]["connectivity"])


def connected_sum(iot: IoTClient) -> float:
    return iot.get_statistics(queryString="*", aggregationField=CONNECTED)["statistics"]["sum"]


def reason_counts(iot: IoTClient) -> dict[str, int]:
    answer = iot.get_buckets_aggregation(
        queryString="*", aggregationField=REASON, bucketsAggregationType={}
    )
    return {b["keyValue"]: b["count"] for b in answer["buckets"]}


def test_the_index_lags_and_get_thing_connectivity_data_does_not(
    quiet: Simulator, clock: ManualClock, make_client: ClientFactory
) -> None:
    iot = make_client(quiet)
    quiet.set_index_lag(30)
    quiet.fleet.disconnect("thing-00002", reason="AUTH_ERROR")
    assert iot.get_thing_connectivity_data(thingName="thing-00002")["connected"] is False
    assert indexed(iot, "thing-00002")["connected"] is True
    assert connected_sum(iot) == 6
    assert reason_counts(iot) == {}
    assert iot.search_index(queryString="connectivity.connected:false")["things"] == []
    clock.advance(29.999)
    assert connected_sum(iot) == 6
    clock.advance(0.001)
    assert indexed(iot, "thing-00002") == {
        "connected": False,
        "timestamp": round(START * 1000),
        "disconnectReason": "AUTH_ERROR",
    }
    assert connected_sum(iot) == 5
    assert reason_counts(iot) == {"AUTH_ERROR": 1}
    # The lag changes at run time, both ways.
    quiet.set_index_lag(60)
    assert connected_sum(iot) == 6
    quiet.set_index_lag(0)
    assert connected_sum(iot) == 5
    assert quiet.index.lag_seconds == 0
    with pytest.raises(ValueError, match="search_index_lag_seconds"):
        quiet.set_index_lag(-1)


def test_the_lag_configured_at_start(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    config = SimulatorConfig(things=3, churn=False, search_index_lag_seconds=5.0, quotas=False)
    with Simulator(config, clock=clock) as sim:
        iot = make_client(sim)
        before = connected_sum(iot)
        sim.fleet.disconnect(next(n for n in sim.fleet.thing_names() if sim.fleet.state(n)[0]))
        assert connected_sum(iot) == before
        clock.advance(5)
        assert connected_sum(iot) == before - 1


def test_disconnect_details_leave_the_index_after_an_hour(
    quiet: Simulator, clock: ManualClock, make_client: ClientFactory
) -> None:
    iot = make_client(quiet)
    quiet.fleet.disconnect("thing-00003", reason="MQTT_KEEP_ALIVE_TIMEOUT")
    details = {
        "connected": False,
        "timestamp": round(START * 1000),
        "disconnectReason": "MQTT_KEEP_ALIVE_TIMEOUT",
    }
    clock.advance(HOUR - 0.001)
    assert indexed(iot, "thing-00003") == details
    clock.advance(0.001)  # an hour: AWS documents the details may go
    assert indexed(iot, "thing-00003") == {"connected": False}
    assert reason_counts(iot) == {}
    for query in (
        "connectivity.disconnectReason:MQTT_KEEP_ALIVE_TIMEOUT",
        f"connectivity.timestamp:{round(START * 1000)}",
    ):
        assert iot.search_index(queryString=query)["things"] == [], query
    offline = iot.search_index(queryString="connectivity.connected:false")["things"]
    assert [t["thingName"] for t in offline] == ["thing-00003"]
    timestamps = iot.get_statistics(queryString="*", aggregationField="connectivity.timestamp")
    assert timestamps["statistics"]["count"] == 5  # the connected things keep theirs
    # GetThingConnectivityData keeps them: only the index forgets.
    live = iot.get_thing_connectivity_data(thingName="thing-00003")
    assert live["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"
    # The retention is a setting; inf keeps the details for ever.
    quiet.set_index_disconnect_details_retention(math.inf)
    assert indexed(iot, "thing-00003") == details
    quiet.set_index_disconnect_details_retention(60)
    assert indexed(iot, "thing-00003") == {"connected": False}
    # A reconnect brings the thing back with a fresh timestamp.
    quiet.fleet.connect("thing-00003")
    assert indexed(iot, "thing-00003")["connected"] is True


def test_retention_counts_from_the_index_instant(
    quiet: Simulator, clock: ManualClock, make_client: ClientFactory
) -> None:
    iot = make_client(quiet)
    quiet.set_index_lag(10)
    quiet.fleet.disconnect("thing-00001", reason="CONNECTION_LOST")
    clock.advance(HOUR)
    assert indexed(iot, "thing-00001")["disconnectReason"] == "CONNECTION_LOST"
    clock.advance(10)
    assert indexed(iot, "thing-00001") == {"connected": False}


def test_the_retention_configured_at_start(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    config = SimulatorConfig(
        things=2,
        churn=False,
        never_connected_fraction=0,
        index_disconnect_details_retention_seconds=120,
        quotas=False,
    )
    with Simulator(config, clock=clock) as sim:
        iot = make_client(sim)
        sim.fleet.disconnect("thing-00001")
        clock.advance(120)
        assert indexed(iot, "thing-00001") == {"connected": False}
    with pytest.raises(ValueError, match="index_disconnect_details_retention_seconds"):
        SimulatorConfig(index_disconnect_details_retention_seconds=0)


def test_a_thing_connecting_under_another_client_id_looks_never_connected(
    quiet: Simulator, clock: ManualClock, make_client: ClientFactory
) -> None:
    iot = make_client(quiet)
    quiet.fleet.create_thing("gateway-7", client_id="gw-7-primary", groups=["group-1-1"])
    quiet.fleet.connect("gateway-7")
    assert quiet.fleet.device_state("gateway-7").connected
    live: dict[str, Any] = dict(iot.get_thing_connectivity_data(thingName="gateway-7"))
    assert live["connected"] is False
    assert "timestamp" not in live
    assert indexed(iot, "gateway-7") == {"connected": False}
    assert connected_sum(iot) == 6  # the six things named as their clients
    found = iot.search_index(queryString="connectivity.connected:true")["things"]
    assert "gateway-7" not in [t["thingName"] for t in found]
    # Switching the device to its thing name shows from its next connection.
    quiet.fleet.set_client_id("gateway-7", None)
    assert indexed(iot, "gateway-7") == {"connected": False}
    clock.advance(1)
    quiet.fleet.connect("gateway-7")
    assert indexed(iot, "gateway-7")["connected"] is True
    assert iot.get_thing_connectivity_data(thingName="gateway-7")["clientId"] == "gateway-7"


def test_search_documents_agree_with_the_oracle(make_client: ClientFactory) -> None:
    # Long offline periods, so some things pass the retention and lose their details.
    clock = ManualClock(START)
    config = SimulatorConfig(
        things=60,
        seed=4,
        mean_session_seconds=900,
        mean_offline_seconds=2400,
        search_index_lag_seconds=20,
        quotas=False,
    )
    with Simulator(config, clock=clock) as sim:
        iot = make_client(sim)
        sim.fleet.create_thing("foreign", client_id="someone-else")
        sim.fleet.add_to_group("thing-00002", "group-2-1")
        clock.advance(3 * HOUR)
        sim.fleet.remove_from_group("thing-00002", "group-2-1")  # not yet in the index
        docs: list[dict[str, Any]] = []
        more: dict[str, str] = {}
        while True:
            page = iot.search_index(queryString="*", maxResults=7, **more)
            docs.extend(dict(t) for t in page["things"])
            if "nextToken" not in page:
                break
            more = {"nextToken": page["nextToken"]}
        assert len(docs) == 61
        dropped = 0
        for doc in docs:
            expected = sim.index_truth.document(doc["thingName"])
            assert doc == expected, doc["thingName"]
            state = doc["connectivity"]
            dropped += not state["connected"] and "timestamp" not in state
        assert dropped > 3  # the hour-old disconnects, plus "foreign" and any never connected
        assert (
            "group-2-1"
            in next(d for d in docs if d["thingName"] == "thing-00002")["thingGroupNames"]
        )


def test_the_oracle_answers_for_a_past_instant(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    config = SimulatorConfig(things=40, seed=9, mean_session_seconds=60, quotas=False)
    with Simulator(config, clock=clock) as sim:
        iot = make_client(sim)
        sim.set_index_lag(15)
        clock.advance(300)
        then = clock.now()
        stats = dict(iot.get_statistics(queryString="*", aggregationField=CONNECTED)["statistics"])
        reasons = reason_counts(iot)
        clock.advance(600)
        assert sim.index_truth.statistics("*", CONNECTED, at=then) == stats
        answer = sim.index_truth.buckets("*", REASON, at=then)
        assert {b["keyValue"]: b["count"] for b in answer["buckets"]} == reasons
        assert sim.index_truth.statistics("*", CONNECTED) != stats  # the fleet moved on
        with pytest.raises(ValueError, match="future"):
            sim.index_truth.statistics("*", at=clock.now() + 1)


# Queries that mix a registry entry's lasting fields (tested before the snapshot is made)
# with fields that change: the scan must answer as a test of every document would.
SPLIT_QUERIES = [
    "thingTypeName:sensor",
    "(thingTypeName:sensor) AND (thingId:0* OR thingId:1* OR thingId:a*)",
    "thingTypeName:gateway AND connectivity.connected:false",
    "thingId:f* AND NOT connectivity.connected:true",
    "thingTypeName:sensor OR connectivity.connected:false",
    "NOT thingTypeName:sensor AND thingName:thing-00*",
    "attributes.firmware:1* AND thingGroupNames:group-1*",
    "thingName:thing-001* AND thingName:thing-0019*",
]


@pytest.fixture
def varied() -> Iterator[Simulator]:
    """A churning fleet of several types, groups and states, an hour into its life."""
    clock = ManualClock(START)
    with Simulator(SimulatorConfig(things=3000, seed=7, quotas=False), clock=clock) as simulator:
        clock.advance(HOUR)
        yield simulator
        assert simulator.internal_errors() == []


@pytest.mark.parametrize("query", SPLIT_QUERIES)
def test_a_scan_that_tests_registry_fields_first_finds_what_a_full_test_finds(
    varied: Simulator, query: str
) -> None:
    expr = parse(query)
    # The scan goes first: it must not lean on a full scan having made every thing.
    found = [s.name for s in varied.index.matching(expr)]
    expected = [
        s.name
        for s in varied.index.snapshots()
        if expr.matches(SnapshotDocument(s, connectivity=True))
    ]
    assert found == expected
    assert expected  # each query finds something, so the comparison means something
    middle = expected[len(expected) // 2]
    assert [s.name for s in varied.index.matching(expr, after=middle)] == [
        name for name in expected if name > middle
    ]
