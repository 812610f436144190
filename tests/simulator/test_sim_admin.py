"""Admin HTTP endpoints under /_simulator/."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any

import pytest
from mypy_boto3_iot import IoTClient

from iot_simulator import ManualClock, Simulator, SimulatorConfig

START = 1_700_000_000.0


def call(sim: Simulator, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sim.url + "/_simulator/" + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_health_config_and_clock(sim: Simulator, clock: ManualClock) -> None:
    assert call(sim, "GET", "health") == (200, {"status": "ok"})
    status, config = call(sim, "GET", "config")
    assert status == 200
    assert config["things"] == 30
    assert config["url"] == sim.url
    assert call(sim, "GET", "clock") == (200, {"now": START})
    assert call(sim, "POST", "clock/advance", {"seconds": 90}) == (200, {"now": START + 90})
    assert clock.now() == START + 90


def test_clock_advance_needs_a_manual_clock() -> None:
    with Simulator(SimulatorConfig(things=1)) as sim:
        status, body = call(sim, "POST", "clock/advance", {"seconds": 1})
        assert status == 409
        assert "wall-clock" in body["message"]


def test_config_hides_secrets() -> None:
    with Simulator(SimulatorConfig(things=1, credentials={"AKID": "s3cret"})) as sim:
        assert call(sim, "GET", "config")[1]["credentials"] == {"AKID": "***"}


def test_things_and_actions(sim: Simulator, iot: IoTClient) -> None:
    status, body = call(sim, "GET", "things")
    assert status == 200
    assert [t["thing_name"] for t in body["things"]] == sim.fleet.thing_names()
    sim.fleet.set_process("thing-00009", churn=False)
    status, body = call(sim, "POST", "things/thing-00009/disconnect", {"reason": "AUTH_ERROR"})
    assert status == 200
    assert body["connected"] is False
    assert body["reason"] == "AUTH_ERROR"
    assert (
        iot.get_thing_connectivity_data(thingName="thing-00009")["disconnectReason"] == "AUTH_ERROR"
    )
    status, body = call(sim, "POST", "things/thing-00009/connect")
    assert (status, body["changed"], body["connected"]) == (200, True, True)
    assert call(sim, "GET", "things/thing-00009")[1]["connected"] is True
    status, body = call(
        sim, "PUT", "things/added-1", {"groups": ["group-2"], "attributes": {"k": "v"}}
    )
    assert (status, body["connected"], body["timestamp_ms"]) == (201, False, None)
    assert iot.describe_thing(thingName="added-1")["attributes"] == {"k": "v"}
    assert call(sim, "DELETE", "things/added-1") == (200, {"deleted": "added-1"})
    assert call(sim, "GET", "things/added-1")[0] == 404
    assert call(sim, "PUT", "things/bad%20name")[0] == 400


def test_ground_truth_endpoint(sim: Simulator, clock: ManualClock) -> None:
    clock.advance(3600)
    status, body = call(sim, "GET", f"ground-truth?since={START}")
    assert status == 200
    expected = sim.ground_truth(since=START)
    assert len(body["events"]) == len(expected)
    assert body["events"][0] == {
        "thing_name": expected[0].thing_name,
        "time": expected[0].time,
        "kind": expected[0].kind,
        "reason": expected[0].reason,
        "client_id": None,  # the thing's own name
        "exclusive": False,
    }
    name = expected[0].thing_name
    status, body = call(sim, "GET", f"ground-truth?thing={name}&until={START + 60}")
    assert {e["thing_name"] for e in body["events"]} == {name}
    assert call(sim, "GET", "ground-truth?since=yesterday")[0] == 400


def test_faults_endpoint(sim: Simulator, iot: IoTClient) -> None:
    status, body = call(sim, "POST", "faults", {"error_rates": {"ThrottlingException": 1.0}})
    assert status == 200
    assert body["error_rates"] == {"ThrottlingException": 1.0}
    with pytest.raises(iot.exceptions.ThrottlingException):
        iot.list_things()
    call(sim, "PATCH", "faults", {"latency": 0.01})
    assert call(sim, "GET", "faults")[1]["latency"] == 0.01
    assert call(sim, "GET", "faults")[1]["error_rates"] == {"ThrottlingException": 1.0}
    status, body = call(sim, "PUT", "faults", {"latency": 0.02})  # replaces everything
    assert body["error_rates"] == {}
    assert call(sim, "DELETE", "faults")[1]["latency"] == 0.0
    iot.list_things()
    assert call(sim, "POST", "faults", {"nonsense": 1})[0] == 400
    assert call(sim, "POST", "faults", {"outage": "sometimes"})[0] == 400


def test_outage_via_admin_keeps_the_admin_reachable_after_clear(sim: Simulator) -> None:
    call(sim, "POST", "faults", {"outage": "refuse"})
    with pytest.raises(urllib.error.URLError):
        call(sim, "GET", "health")
    sim.faults.clear()
    assert call(sim, "GET", "health")[0] == 200


def test_requests_and_quotas_endpoints(sim: Simulator, iot: IoTClient) -> None:
    iot.list_things()
    status, body = call(sim, "GET", "requests")
    assert status == 200
    assert {"operation": "ListThings", "outcome": "ok", "count": 1} in body["requests"]
    assert body["access_keys"] == {"AKIDEXAMPLE": 1}
    assert call(sim, "DELETE", "requests")[1]["requests"] == []
    assert sim.request_counts() == {}
    status, rates = call(sim, "PUT", "quotas", {"ListThings": 0.001})
    assert rates["ListThings"] == 0.001
    iot.list_things()
    with pytest.raises(iot.exceptions.ThrottlingException):
        iot.list_things()
    assert call(sim, "GET", "quotas")[1]["ListThings"] == 0.001


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "nothing", 404),
        ("POST", "health", 404),
        ("POST", "things/thing-00001/explode", 404),
        ("GET", "things/nobody", 404),
    ],
)
def test_unknown_admin_requests(sim: Simulator, method: str, path: str, status: int) -> None:
    assert call(sim, method, path)[0] == status


def test_admin_bad_json(sim: Simulator) -> None:
    request = urllib.request.Request(sim.url + "/_simulator/faults", data=b"{oops", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400


def test_index_settings_endpoint(sim: Simulator, clock: ManualClock, iot: IoTClient) -> None:
    assert call(sim, "GET", "index") == (
        200,
        {"lag_seconds": 0.0, "disconnect_details_retention_seconds": 3600.0},
    )
    status, body = call(sim, "PUT", "index", {"lag_seconds": 30})
    assert (status, body["lag_seconds"]) == (200, 30.0)
    assert sim.index.lag_seconds == 30
    status, body = call(sim, "PUT", "index", {"disconnect_details_retention_seconds": None})
    assert body == {"lag_seconds": 30.0, "disconnect_details_retention_seconds": None}
    assert sim.index.disconnect_details_retention_seconds == math.inf
    for bad in (
        {"lag_seconds": -1},
        {"lag_seconds": "soon"},
        {"disconnect_details_retention_seconds": 0},
        {"lag": 3},
    ):
        assert call(sim, "PUT", "index", bad)[0] == 400, bad
    assert sim.index.lag_seconds == 30  # a refused change changes nothing


def test_index_oracle_endpoints(sim: Simulator, clock: ManualClock, iot: IoTClient) -> None:
    sim.set_index_lag(5)
    clock.advance(600)
    boto_doc = iot.search_index(queryString="thingName:thing-00008")["things"][0]
    assert call(sim, "GET", "index/things/thing-00008") == (200, boto_doc)
    assert call(sim, "GET", "index/things/nobody")[0] == 404
    query = "thingGroupNames:(group-1-1 OR group-2-1)"
    found = [t["thingName"] for t in iot.search_index(queryString=query)["things"]]
    assert call(sim, "POST", "index/search", {"query": query}) == (200, {"things": found})
    stats = iot.get_statistics(queryString=query, aggregationField="connectivity.connected")
    status, body = call(
        sim, "POST", "index/statistics", {"query": query, "field": "connectivity.connected"}
    )
    assert (status, body) == (200, {"statistics": stats["statistics"]})
    everything = call(sim, "POST", "index/statistics", {})[1]["statistics"]
    assert everything["count"] == 30
    buckets = iot.get_buckets_aggregation(
        queryString="*",
        aggregationField="thingTypeName",
        bucketsAggregationType={"termsAggregation": {"maxBuckets": 2}},
    )
    status, body = call(sim, "POST", "index/buckets", {"field": "thingTypeName", "max_buckets": 2})
    assert (status, body) == (
        200,
        {"totalCount": buckets["totalCount"], "buckets": buckets["buckets"]},
    )
    then = clock.now()
    clock.advance(60)
    past = call(sim, "POST", "index/statistics", {"field": "connectivity.connected", "at": then})
    assert past[1]["statistics"] == sim.index_truth.statistics(
        "*", "connectivity.connected", at=then
    )
    assert call(sim, "POST", "index/search", {"query": "nosuch:x"})[0] == 400
    assert call(sim, "POST", "index/buckets", {"query": "*"})[0] == 400
    assert call(sim, "POST", "index/statistics", {"field": "shadow.x"})[0] == 400


def test_group_endpoints(sim: Simulator, iot: IoTClient) -> None:
    status, body = call(sim, "GET", "groups")
    assert status == 200
    assert [g["name"] for g in body["groups"]][:3] == ["group-1", "group-1-1", "group-1-2"]
    status, body = call(sim, "PUT", "groups/group-9", {"parent": "group-1"})
    assert (status, body["name"], body["parent"]) == (201, "group-9", "group-1")
    assert iot.describe_thing_group(thingGroupName="group-9")["thingGroupName"] == "group-9"
    status, body = call(sim, "PUT", "groups/group-9/things/thing-00003")
    assert (status, body["changed"]) == (200, True)
    assert "group-9" in body["groups"]
    assert call(sim, "PUT", "groups/group-9/things/thing-00003")[1]["changed"] is False
    assert call(sim, "GET", "groups/group-9/things") == (200, {"things": ["thing-00003"]})
    assert iot.list_things_in_thing_group(thingGroupName="group-9")["things"] == ["thing-00003"]
    recursive = call(sim, "GET", "groups/group-1/things?recursive=true")[1]["things"]
    assert recursive == sim.fleet.members("group-1", recursive=True)
    assert "thing-00003" in recursive
    assert call(sim, "GET", "groups/group-1/things")[1]["things"] == []
    status, body = call(sim, "DELETE", "groups/group-9/things/thing-00003")
    assert (status, body["changed"]) == (200, True)
    assert call(sim, "GET", "groups/group-9/things")[1]["things"] == []
    assert call(sim, "PUT", "groups/nope/things/thing-00003")[0] == 404
    assert call(sim, "PUT", "groups/group-9/things/nobody")[0] == 404
    assert call(sim, "GET", "groups/nope/things")[0] == 404
    assert call(sim, "PUT", "groups/child", {"parent": "nope"})[0] == 400
    assert call(sim, "POST", "groups/group-9/explode")[0] == 404


def test_client_id_endpoints(sim: Simulator, iot: IoTClient) -> None:
    status, _ = call(sim, "PUT", "things/meter-1", {"client_id": "meter-1-fw2"})
    assert status == 201
    assert call(sim, "GET", "things/meter-1")[1]["client_id"] == "meter-1-fw2"
    call(sim, "POST", "things/meter-1/connect")
    assert sim.fleet.device_state("meter-1").connected
    assert iot.get_thing_connectivity_data(thingName="meter-1")["connected"] is False
    status, body = call(sim, "PUT", "things/meter-1/client-id", {"client_id": None})
    assert (status, body) == (200, {"thing_name": "meter-1", "client_id": "meter-1"})
    call(sim, "POST", "things/meter-1/connect")  # reconnects under its name
    assert iot.get_thing_connectivity_data(thingName="meter-1")["connected"] is True
    assert call(sim, "PUT", "things/meter-1/client-id", {"client_id": ""})[0] == 400
    assert call(sim, "GET", "things/thing-00001")[1]["client_id"] == "thing-00001"
