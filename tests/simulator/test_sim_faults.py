"""Every fault kind through boto3, with the exception class each one raises."""

from __future__ import annotations

import random
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest
from mypy_boto3_iot import IoTClient

from iot_simulator import FaultConfig, Simulator, SimulatorConfig
from iot_simulator.faults import decide

ClientFactory = Callable[..., IoTClient]
Poll = Callable[..., Any]
THING = "thing-00001"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("InternalFailureException", 500),
        ("ServiceUnavailableException", 503),
        ("UnauthorizedException", 401),
        ("IndexNotReadyException", 400),
        ("ThrottlingException", 400),
        ("InvalidRequestException", 400),
        ("ResourceNotFoundException", 404),
    ],
)
def test_injected_errors_raise_the_modelled_class(
    sim: Simulator, iot: IoTClient, code: str, status: int
) -> None:
    sim.faults.set(error_rates={code: 1.0})
    with pytest.raises(getattr(iot.exceptions, code)) as info:
        iot.get_thing_connectivity_data(thingName=THING)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert info.value.response["Error"]["Code"] == code
    assert sim.request_counts()[("GetThingConnectivityData", code)] == 1
    sim.faults.clear()
    iot.get_thing_connectivity_data(thingName=THING)


def test_error_rate_is_a_probability(sim: Simulator, iot: IoTClient) -> None:
    sim.faults.set(error_rates={"InternalFailureException": 0.3})
    failures = 0
    for _ in range(200):
        try:
            iot.get_thing_connectivity_data(thingName=THING)
        except iot.exceptions.InternalFailureException:
            failures += 1
    assert 30 <= failures <= 90


def test_faults_can_target_operations(sim: Simulator, iot: IoTClient) -> None:
    sim.faults.set(error_rates={"ServiceUnavailableException": 1.0}, operations={"ListThings"})
    iot.get_thing_connectivity_data(thingName=THING)
    with pytest.raises(iot.exceptions.ServiceUnavailableException):
        iot.list_things()


def test_latency_and_jitter(sim: Simulator, iot: IoTClient) -> None:
    sim.faults.set(latency=0.2, jitter=0.1)
    began = time.monotonic()
    iot.get_thing_connectivity_data(thingName=THING)
    took = time.monotonic() - began
    assert 0.2 <= took < 2.0


def test_slow_response_outlasts_the_read_timeout(
    sim: Simulator, make_client: ClientFactory
) -> None:
    impatient = make_client(sim, read_timeout=0.3, connect_timeout=1)
    sim.faults.set(slow_rate=1.0, slow_seconds=2.0)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        impatient.get_thing_connectivity_data(thingName=THING)
    assert sim.request_counts()[("GetThingConnectivityData", "slow")] == 1
    sim.faults.clear()
    assert impatient.get_thing_connectivity_data(thingName=THING)["thingName"] == THING


def test_outage_refuse(sim: Simulator, iot: IoTClient) -> None:
    iot.get_thing_connectivity_data(thingName=THING)  # a pooled keep-alive connection exists
    sim.faults.set(outage="refuse")
    with pytest.raises(
        (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError)
    ):
        iot.get_thing_connectivity_data(thingName=THING)
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        iot.get_thing_connectivity_data(thingName=THING)
    sim.faults.clear()
    assert iot.get_thing_connectivity_data(thingName=THING)["thingName"] == THING


def test_outage_reset(sim: Simulator, iot: IoTClient) -> None:
    sim.faults.set(outage="reset")
    for _ in range(3):
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            iot.get_thing_connectivity_data(thingName=THING)
    sim.faults.set(outage=None)
    assert iot.get_thing_connectivity_data(thingName=THING)["thingName"] == THING


def test_malformed_truncated_body_parses_to_nothing(sim: Simulator, iot: IoTClient) -> None:
    # botocore does not raise on unparseable JSON in a 200: the fields are simply missing.
    sim.faults.set(malformed_rate=1.0, malformed="truncated")
    result: dict[str, Any] = dict(iot.get_thing_connectivity_data(thingName=THING))
    assert "connected" not in result
    assert "thingName" not in result
    assert sim.request_counts()[("GetThingConnectivityData", "malformed")] == 1


def test_malformed_wrong_types_raise_in_the_parser(sim: Simulator, iot: IoTClient) -> None:
    sim.faults.set(malformed_rate=1.0, malformed="wrong_types")
    with pytest.raises(ValueError, match="Invalid timestamp"):
        iot.get_thing_connectivity_data(thingName=THING)
    with pytest.raises(TypeError):
        iot.list_things()


def test_malformed_html_is_a_generic_client_error(sim: Simulator, iot: IoTClient) -> None:
    sim.faults.set(malformed_rate=1.0, malformed="html")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        iot.get_thing_connectivity_data(thingName=THING)
    assert info.value.response["Error"]["Code"] == "502"


def test_faults_at_start_and_clear(make_client: ClientFactory) -> None:
    faults = FaultConfig(error_rates={"UnauthorizedException": 1.0})
    with Simulator(SimulatorConfig(things=2), faults=faults) as sim:
        iot: IoTClient = make_client(sim)
        with pytest.raises(iot.exceptions.UnauthorizedException):
            iot.describe_thing(thingName=THING)
        sim.faults.clear()
        iot.describe_thing(thingName=THING)


def test_outage_at_start(make_client: ClientFactory) -> None:
    with Simulator(SimulatorConfig(things=2), faults=FaultConfig(outage="refuse")) as sim:
        iot: IoTClient = make_client(sim)
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            iot.describe_thing(thingName=THING)
        sim.faults.clear()
        iot.describe_thing(thingName=THING)


def test_fault_settings_are_validated(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown fault settings"):
        sim.faults.set(latancy=1)
    with pytest.raises(ValueError, match="within"):
        sim.faults.set(slow_rate=2)
    with pytest.raises(ValueError, match="add up"):
        sim.faults.set(error_rates={"A": 0.6, "B": 0.6})
    with pytest.raises(ValueError, match="outage"):
        sim.faults.set(outage="explode")
    assert sim.faults.current() == FaultConfig()


def test_decide_is_pure_given_the_generator() -> None:
    config = FaultConfig(latency=0.1, jitter=0.2, error_rates={"X": 0.5}, malformed_rate=0.5)
    first = [decide(config, "Op", random.Random(1)) for _ in range(3)]
    again = [decide(config, "Op", random.Random(1)) for _ in range(3)]
    assert first == again
    assert all(0.1 <= d.delay <= 0.3 for d in first)
    assert (
        decide(config.__class__(operations=frozenset({"Other"})), "Op", random.Random(1)).error
        is None
    )


def test_outage_ends_by_itself(sim: Simulator, iot: IoTClient, wait_for: Poll) -> None:
    # Long enough that a loaded machine still makes its call inside the outage.
    sim.faults.set(outage="refuse", outage_seconds=2.0)
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        iot.get_thing_connectivity_data(thingName=THING)
    wait_for(lambda: sim.faults.current().outage is None)
    assert iot.get_thing_connectivity_data(thingName=THING)["thingName"] == THING


def test_reset_outage_leaves_admin_reachable(sim: Simulator, iot: IoTClient) -> None:
    sim.faults.set(outage="reset")
    request = urllib.request.Request(sim.url + "/_simulator/faults", method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    assert iot.get_thing_connectivity_data(thingName=THING)["thingName"] == THING


def test_foreign_names_are_added_to_every_listing_and_nothing_else(
    sim: Simulator, iot: IoTClient
) -> None:
    foreign = ('pump"7', "a\\b", "new\nline")
    sim.faults.set(foreign_names=foreign)
    group = sim.fleet.groups()[0].name
    listed = [t["thingName"] for t in iot.list_things(maxResults=250)["things"]]
    in_group = iot.list_things_in_thing_group(thingGroupName=group, maxResults=250)["things"]
    searched = iot.search_index(indexName="AWS_Things", queryString="*", maxResults=100)["things"]
    assert listed[-3:] == list(foreign)
    assert in_group[-3:] == list(foreign)
    assert [t["thingName"] for t in searched[-3:]] == list(foreign)
    assert all(t["connectivity"]["connected"] for t in searched[-3:])
    # The fleet itself and the per-thing calls are untouched.
    assert not set(foreign) & set(sim.fleet.thing_names())
    assert iot.get_thing_connectivity_data(thingName=THING)["thingName"] == THING
    sim.faults.clear()
    assert not set(foreign) & {t["thingName"] for t in iot.list_things()["things"]}
