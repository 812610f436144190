"""Every IoT operation through boto3: parsed results, paging to exhaustion, modelled errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from mypy_boto3_iot import IoTClient

from iot_simulator import ManualClock, Simulator, SimulatorConfig

START = 1_700_000_000.0
ClientFactory = Callable[..., IoTClient]


def test_get_thing_connectivity_data_connected(sim: Simulator, iot: IoTClient) -> None:
    name = "thing-00001"
    sim.fleet.set_process(name, churn=False)
    sim.fleet.connect(name)
    # A plain dict: the stubs' TypedDict makes mypy think "key not in result" is final.
    result: dict[str, Any] = dict(iot.get_thing_connectivity_data(thingName=name))
    assert result["thingName"] == name
    assert result["connected"] is True
    assert result["timestamp"] == dt.datetime.fromtimestamp(START, dt.UTC)
    assert "disconnectReason" not in result
    assert result["clientId"] == name
    assert result["keepAliveDuration"] in (30, 60, 300, 1200)
    assert isinstance(result["cleanSession"], bool)
    assert isinstance(result["sessionExpiry"], int)
    assert "sourceIp" not in result
    with_socket = iot.get_thing_connectivity_data(thingName=name, includeSocketInformation=True)
    assert with_socket["sourceIp"].startswith("198.51.100.")
    assert 1024 <= with_socket["sourcePort"] <= 65535
    assert with_socket["targetPort"] == 8883


def test_get_thing_connectivity_data_disconnected_and_never(
    sim: Simulator, clock: ManualClock, iot: IoTClient
) -> None:
    name = "thing-00002"
    sim.fleet.set_process(name, churn=False)
    sim.fleet.connect(name)
    clock.advance(1.5)
    sim.fleet.disconnect(name, reason="API_INITIATED_DISCONNECT")
    result: dict[str, Any] = dict(iot.get_thing_connectivity_data(thingName=name))
    assert result["connected"] is False
    assert result["disconnectReason"] == "API_INITIATED_DISCONNECT"
    assert result["timestamp"].timestamp() == START + 1.5
    assert "clientId" not in result
    sim.fleet.create_thing("fresh", never_connected=True)
    never: dict[str, Any] = dict(iot.get_thing_connectivity_data(thingName="fresh"))
    assert never["connected"] is False
    assert "timestamp" not in never
    assert "disconnectReason" not in never


def test_unknown_reason_passes_through(sim: Simulator, iot: IoTClient) -> None:
    sim.fleet.set_process("thing-00003", churn=False)
    sim.fleet.connect("thing-00003")
    sim.fleet.disconnect("thing-00003", reason="BRAND_NEW_REASON")
    result: dict[str, Any] = dict(iot.get_thing_connectivity_data(thingName="thing-00003"))
    assert result["disconnectReason"] == "BRAND_NEW_REASON"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("no-such-thing", "ResourceNotFoundException"),
        ("bad name", "InvalidRequestException"),
        ("x" * 129, "InvalidRequestException"),
        ("thing/../x", "InvalidRequestException"),
        ("ünïcode", "InvalidRequestException"),
    ],
)
def test_get_thing_connectivity_data_errors(iot: IoTClient, name: str, error: str) -> None:
    with pytest.raises(getattr(iot.exceptions, error)):
        iot.get_thing_connectivity_data(thingName=name)


def test_deleted_thing_is_not_found(sim: Simulator, iot: IoTClient) -> None:
    sim.fleet.delete_thing("thing-00004")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_thing_connectivity_data(thingName="thing-00004")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="thing-00004")


def test_index_not_ready_when_connectivity_indexing_is_off(make_client: ClientFactory) -> None:
    with Simulator(SimulatorConfig(things=3, connectivity_indexing=False)) as sim:
        iot: IoTClient = make_client(sim)
        with pytest.raises(iot.exceptions.IndexNotReadyException):
            iot.get_thing_connectivity_data(thingName="thing-00001")
        config = iot.get_indexing_configuration()["thingIndexingConfiguration"]
        assert config["thingConnectivityIndexingMode"] == "OFF"
        things = iot.search_index(queryString="thingName:*")["things"]
        assert things
        assert all("connectivity" not in t for t in things)
        assert iot.describe_index(indexName="AWS_Things")["schema"] == "REGISTRY"


def drain(call: Callable[..., Any], key: str, **kwargs: Any) -> tuple[list[Any], int]:
    """Follow nextToken to the end; return every item and the number of pages."""
    items: list[Any] = []
    pages = 0
    token = None
    while True:
        response = call(**kwargs, **({"nextToken": token} if token else {}))
        items.extend(response[key])
        pages += 1
        token = response.get("nextToken")
        if not token:
            return items, pages


@pytest.mark.parametrize("page", [1, 7, 30, 100])
def test_search_index_pages(sim: Simulator, iot: IoTClient, page: int) -> None:
    things, pages = drain(
        iot.search_index, "things", queryString="thingName:thing-*", maxResults=page
    )
    assert [t["thingName"] for t in things] == sim.fleet.thing_names()
    assert pages == -(-30 // page)
    assert all(len(t["thingName"]) > 0 for t in things)


def test_search_index_documents_and_queries(sim: Simulator, iot: IoTClient) -> None:
    sim.fleet.set_process("thing-00005", churn=False)
    sim.fleet.connect("thing-00005")
    sim.fleet.disconnect("thing-00005", reason="THROTTLED")
    doc = iot.search_index(queryString="thingName:thing-00005")["things"][0]
    assert doc["thingName"] == "thing-00005"
    assert doc["thingTypeName"] in ("sensor", "gateway", "controller")
    assert doc["thingGroupNames"]
    assert doc["attributes"]["site"] == doc["thingGroupNames"][0]
    assert doc["connectivity"] == {
        "connected": False,
        "timestamp": int(START * 1000),
        "disconnectReason": "THROTTLED",
    }
    offline = iot.search_index(queryString="connectivity.connected:false")["things"]
    expected = [n for n in sim.fleet.thing_names() if not sim.fleet.state(n).connected]
    assert [t["thingName"] for t in offline] == expected
    throttled = iot.search_index(queryString="connectivity.disconnectReason:THROTTLED")["things"]
    assert "thing-00005" in [t["thingName"] for t in throttled]
    grouped = iot.search_index(
        queryString="thingGroupNames:group-1-1 AND NOT thingTypeName:sensor", maxResults=100
    )["things"]
    assert grouped
    assert all(
        "group-1-1" in t["thingGroupNames"] and t["thingTypeName"] != "sensor" for t in grouped
    )
    by_attribute = iot.search_index(queryString="attributes.model:m0 OR attributes.model:m2")
    assert {t["attributes"]["model"] for t in by_attribute["things"]} == {"m0", "m2"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"queryString": "nosuch:x"}, "InvalidQueryException"),
        ({"queryString": "(thingName:x"}, "InvalidQueryException"),
        ({"queryString": "thingName:x", "maxResults": 101}, "InvalidRequestException"),
        ({"queryString": "thingName:x", "indexName": "AWS_Other"}, "ResourceNotFoundException"),
        ({"queryString": "thingName:x", "nextToken": "garbage"}, "InvalidRequestException"),
    ],
)
def test_search_index_errors(iot: IoTClient, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(getattr(iot.exceptions, error)):
        iot.search_index(**kwargs)


def test_search_index_is_eventually_consistent(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    config = SimulatorConfig(things=3, churn=False, search_index_lag_seconds=5.0)
    with Simulator(config, clock=clock) as sim:
        iot: IoTClient = make_client(sim)
        sim.fleet.disconnect("thing-00001")
        query = "thingName:thing-00001"
        assert iot.search_index(queryString=query)["things"][0]["connectivity"]["connected"]
        assert not iot.get_thing_connectivity_data(thingName="thing-00001")["connected"]
        clock.advance(5)
        assert not iot.search_index(queryString=query)["things"][0]["connectivity"]["connected"]


@pytest.mark.parametrize("page", [1, 4, 30, 250])
def test_list_things_pages(sim: Simulator, iot: IoTClient, page: int) -> None:
    things, pages = drain(iot.list_things, "things", maxResults=page)
    assert [t["thingName"] for t in things] == sim.fleet.thing_names()
    assert pages == -(-30 // page)
    first = things[0]
    assert first["thingArn"] == "arn:aws:iot:eu-west-1:123456789012:thing/thing-00001"
    assert first["version"] == 1


def test_list_things_without_max_results_and_with_paginator(sim: Simulator, iot: IoTClient) -> None:
    assert len(iot.list_things()["things"]) == 30
    names = [
        t["thingName"]
        for page in iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 8})
        for t in page["things"]
    ]
    assert names == sim.fleet.thing_names()


def test_list_things_filters(sim: Simulator, iot: IoTClient) -> None:
    pumps = drain(iot.list_things, "things", thingTypeName="gateway", maxResults=3)[0]
    assert pumps
    assert all(t["thingTypeName"] == "gateway" for t in pumps)
    exact = drain(iot.list_things, "things", attributeName="firmware", attributeValue="1.2.0")[0]
    assert exact
    assert all(t["attributes"]["firmware"] == "1.2.0" for t in exact)
    prefixed = iot.list_things(
        attributeName="firmware", attributeValue="1.", usePrefixAttributeValue=True
    )
    assert len(prefixed["things"]) == 30
    assert iot.list_things(attributeName="firmware", attributeValue="9")["things"] == []
    assert len(iot.list_things(attributeName="model")["things"]) == 30


@pytest.mark.parametrize("bad", [0, 251])
def test_list_max_results_bounds(sim: Simulator, make_client: ClientFactory, bad: int) -> None:
    # boto3 would refuse these itself; without its check the server must answer as AWS does.
    loose: IoTClient = make_client(sim, parameter_validation=False)
    with pytest.raises(loose.exceptions.InvalidRequestException, match="maxResults"):
        loose.list_things(maxResults=bad)
    with pytest.raises(loose.exceptions.InvalidRequestException, match="maxResults"):
        loose.list_things_in_thing_group(thingGroupName="group-1", maxResults=bad)


def test_list_things_in_thing_group(sim: Simulator, iot: IoTClient) -> None:
    direct, _ = drain(iot.list_things_in_thing_group, "things", thingGroupName="group-1")
    assert direct == []  # things live in the leaf groups
    recursive, pages = drain(
        iot.list_things_in_thing_group,
        "things",
        thingGroupName="group-1",
        recursive=True,
        maxResults=2,
    )
    leaf_1, _ = drain(iot.list_things_in_thing_group, "things", thingGroupName="group-1-1")
    leaf_2, _ = drain(iot.list_things_in_thing_group, "things", thingGroupName="group-1-2")
    assert recursive == sorted(leaf_1 + leaf_2)
    assert pages >= len(recursive) // 2
    assert all(isinstance(n, str) for n in recursive)
    everything = set()
    for group in ("group-1", "group-2"):
        everything |= set(
            drain(iot.list_things_in_thing_group, "things", thingGroupName=group, recursive=True)[0]
        )
    assert everything == set(sim.fleet.thing_names())
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.list_things_in_thing_group(thingGroupName="nope")


def test_list_thing_groups(sim: Simulator, iot: IoTClient) -> None:
    groups, pages = drain(iot.list_thing_groups, "thingGroups", maxResults=2)
    names = [g["groupName"] for g in groups]
    assert names == ["group-1", "group-1-1", "group-1-2", "group-2", "group-2-1", "group-2-2"]
    assert pages == 3
    assert groups[0]["groupArn"] == "arn:aws:iot:eu-west-1:123456789012:thinggroup/group-1"
    children = iot.list_thing_groups(parentGroup="group-2")["thingGroups"]
    assert [g["groupName"] for g in children] == ["group-2-1", "group-2-2"]
    sim.fleet.create_group("group-2-1-a", parent="group-2-1")
    deep = iot.list_thing_groups(parentGroup="group-2", recursive=True)["thingGroups"]
    assert [g["groupName"] for g in deep] == ["group-2-1", "group-2-1-a", "group-2-2"]
    prefixed = iot.list_thing_groups(namePrefixFilter="group-1")["thingGroups"]
    assert [g["groupName"] for g in prefixed] == ["group-1", "group-1-1", "group-1-2"]
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.list_thing_groups(parentGroup="nope")


def test_describe_thing(iot: IoTClient) -> None:
    thing = iot.describe_thing(thingName="thing-00007")
    assert thing["thingName"] == "thing-00007"
    assert thing["defaultClientId"] == "thing-00007"
    assert thing["thingArn"].endswith(":thing/thing-00007")
    assert len(thing["thingId"]) == 36
    assert thing["version"] == 1
    assert set(thing["attributes"]) == {"site", "firmware", "model"}


def test_indexing_configuration_and_index(iot: IoTClient) -> None:
    config = iot.get_indexing_configuration()
    assert config["thingIndexingConfiguration"]["thingConnectivityIndexingMode"] == "STATUS"
    assert config["thingIndexingConfiguration"]["thingIndexingMode"] == "REGISTRY"
    index = iot.describe_index(indexName="AWS_Things")
    assert index["indexStatus"] == "ACTIVE"
    assert index["schema"] == "REGISTRY_AND_CONNECTIVITY_STATUS"
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_index(indexName="AWS_ThingGroups")


def test_paging_survives_deletes(sim: Simulator, iot: IoTClient) -> None:
    first = iot.list_things(maxResults=5)
    sim.fleet.delete_thing("thing-00006")  # the next page's first thing
    second = iot.list_things(maxResults=5, nextToken=first["nextToken"])
    assert second["things"][0]["thingName"] == "thing-00007"


def test_request_counts(sim: Simulator, iot: IoTClient) -> None:
    sim.reset_request_counts()
    iot.describe_thing(thingName="thing-00001")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="none")
    assert sim.request_counts() == {
        ("DescribeThing", "ok"): 1,
        ("DescribeThing", "ResourceNotFoundException"): 1,
    }
    assert sim.access_key_counts() == {"AKIDEXAMPLE": 2}
