"""Token buckets (table-driven) and quotas as boto3 sees them: ThrottlingException past the rate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mypy_boto3_iot import IoTClient

from iot_simulator import ManualClock, Simulator, SimulatorConfig
from iot_simulator.quotas import Quotas, TokenBucket

ClientFactory = Callable[..., IoTClient]


@pytest.mark.parametrize(
    ("rate", "capacity", "takes_at", "expected"),
    [
        (10.0, 1.0, [0.0, 0.0], [True, False]),
        (10.0, 1.0, [0.0, 0.05, 0.1], [True, False, True]),
        (10.0, 3.0, [0.0, 0.0, 0.0, 0.0], [True, True, True, False]),
        (1.0, 2.0, [0.0, 0.0, 0.0, 10.0, 10.0, 10.0], [True, True, False, True, True, False]),
        (2.0, 1.0, [0.0, 0.4, 0.5, 0.9, 1.0], [True, False, True, False, True]),
    ],
)
def test_token_bucket(
    rate: float, capacity: float, takes_at: list[float], expected: list[bool]
) -> None:
    bucket = TokenBucket.full(rate, capacity, now=0.0)
    assert [bucket.try_take(t) for t in takes_at] == expected


def test_quotas_per_operation_and_unlimited() -> None:
    now = [0.0]
    quotas = Quotas({"A": 2.0, "B": None}, burst_seconds=1.0, monotonic=lambda: now[0])
    assert [quotas.allow("A") for _ in range(3)] == [True, True, False]
    assert all(quotas.allow("B") for _ in range(100))
    assert all(quotas.allow("Unlisted") for _ in range(100))
    now[0] = 0.5
    assert quotas.allow("A")
    quotas.set_rates({"A": None})
    assert all(quotas.allow("A") for _ in range(100))


def test_default_rates_are_awss() -> None:
    rates = SimulatorConfig().effective_rates()
    assert rates["GetThingConnectivityData"] == 350
    assert rates["ListThingsInThingGroup"] == 25
    assert rates["ListThings"] == 10
    assert SimulatorConfig(rates={"SearchIndex": 3}).effective_rates()["SearchIndex"] == 3
    assert set(SimulatorConfig(quotas=False).effective_rates().values()) == {None}


def test_every_operation_the_exporter_calls_has_a_default_rate() -> None:
    # AWS documents no rate for the index queries or DescribeThingGroup: these are the
    # simulator's assumptions (see config.DEFAULT_RATES), but each has one.
    rates = SimulatorConfig().effective_rates()
    assert {op: rates[op] for op in EXPORTER_CALLS} == {
        "GetThingConnectivityData": 350,
        "SearchIndex": 15,
        "GetStatistics": 5,
        "GetBucketsAggregation": 5,
        "ListThings": 10,
        "ListThingsInThingGroup": 25,
        "ListThingGroups": 10,
        "DescribeThingGroup": 100,
    }


EXPORTER_CALLS: dict[str, Callable[[IoTClient], object]] = {
    "GetThingConnectivityData": lambda iot: iot.get_thing_connectivity_data(
        thingName="thing-00001"
    ),
    "SearchIndex": lambda iot: iot.search_index(queryString="thingTypeName:sensor"),
    "GetStatistics": lambda iot: iot.get_statistics(
        queryString="*", aggregationField="connectivity.connected"
    ),
    "GetBucketsAggregation": lambda iot: iot.get_buckets_aggregation(
        queryString="*",
        aggregationField="connectivity.disconnectReason",
        bucketsAggregationType={},
    ),
    "ListThings": lambda iot: iot.list_things(),
    "ListThingsInThingGroup": lambda iot: iot.list_things_in_thing_group(
        thingGroupName="group-1-1"
    ),
    "ListThingGroups": lambda iot: iot.list_thing_groups(),
    "DescribeThingGroup": lambda iot: iot.describe_thing_group(thingGroupName="group-1"),
}


@pytest.mark.parametrize("operation", sorted(EXPORTER_CALLS))
def test_each_operation_the_exporter_calls_is_throttled_past_its_rate(
    make_client: ClientFactory, operation: str
) -> None:
    # A bucket of two that refills once in 100 s: the third call in a row is throttled.
    config = SimulatorConfig(things=5, rates={operation: 0.01}, burst_seconds=200)
    with Simulator(config, clock=ManualClock()) as sim:
        iot: IoTClient = make_client(sim)
        call = EXPORTER_CALLS[operation]
        call(iot)
        call(iot)
        with pytest.raises(iot.exceptions.ThrottlingException):
            call(iot)
        assert sim.request_counts() == {(operation, "ok"): 2, (operation, "ThrottlingException"): 1}
        # The others keep their own buckets.
        for other, other_call in EXPORTER_CALLS.items():
            if other != operation:
                other_call(iot)
        # The rate changes at run time.
        sim.quotas.set_rates({operation: None})
        call(iot)


def test_exceeding_the_rate_is_throttled(make_client: ClientFactory) -> None:
    # burst_seconds makes the bucket tiny and its refill slow, so no timing luck is involved.
    config = SimulatorConfig(things=5, rates={"ListThings": 0.01}, burst_seconds=200)
    with Simulator(config, clock=ManualClock()) as sim:
        iot: IoTClient = make_client(sim)
        iot.list_things()
        iot.list_things()
        with pytest.raises(iot.exceptions.ThrottlingException) as info:
            iot.list_things()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert info.value.response["Error"]["Message"] == "Rate exceeded"
        # Other operations have their own buckets.
        iot.get_thing_connectivity_data(thingName="thing-00001")
        assert sim.request_counts()[("ListThings", "ThrottlingException")] == 1
        sim.quotas.set_rates({"ListThings": None})
        iot.list_things()


def test_a_burst_past_the_rate_is_throttled(make_client: ClientFactory) -> None:
    config = SimulatorConfig(things=3, rates={"GetThingConnectivityData": 20.0}, burst_seconds=0.1)
    with Simulator(config, clock=ManualClock()) as sim:
        iot: IoTClient = make_client(sim)
        throttled = 0
        for _ in range(30):
            try:
                iot.get_thing_connectivity_data(thingName="thing-00001")
            except iot.exceptions.ThrottlingException:
                throttled += 1
        # 2 tokens of burst refilled at 20/s; back-to-back boto3 calls run far faster than that.
        assert throttled > 0
        assert (
            sim.request_counts()[("GetThingConnectivityData", "ThrottlingException")] == throttled
        )
