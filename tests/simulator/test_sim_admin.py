"""Admin HTTP endpoints under /_simulator/."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from mypy_boto3_iot import IoTClient

from exporter.simulator import ManualClock, Simulator, SimulatorConfig

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
