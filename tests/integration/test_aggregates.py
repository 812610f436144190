"""Fleet aggregates through boto3 against the simulator: they equal its ground truth."""

from __future__ import annotations

import logging

import pytest

from iot_simulator import SimulatorConfig
from tests.support.harness import Harness, HarnessFactory, Samples, series, value

AGGREGATES = {
    "interval": "1m",
    "queries": [
        {"name": "all"},
        {"name": "sensors", "query": "thingTypeName:sensor", "by": ["attributes.firmware"]},
        {"name": "fleet", "query": "*", "by": ["thingTypeName", "thingGroupNames"]},
    ],
}


def lively(seed: int) -> SimulatorConfig:
    return SimulatorConfig(
        things=60, seed=seed, quotas=False, mean_session_seconds=600.0, mean_offline_seconds=300.0
    )


def fleet_things(samples: Samples, query: str, connected: str) -> float | None:
    return value(samples, "iot_fleet_things", query=query, connected=connected)


def truth_connected(h: Harness, query: str) -> tuple[int, int]:
    """(connected, disconnected) among the things matching `query`, in the index now."""
    stats = h.sim.index_truth.statistics(query, "connectivity.connected")
    connected = round(stats.get("sum", 0))
    return connected, int(stats["count"]) - connected


def test_aggregates_equal_the_simulator_s_truth(harness: HarnessFactory) -> None:
    h = harness(lively(61), things=[], sections={"aggregates": AGGREGATES})
    h.clock.advance(3 * 3600)  # an index with old disconnects, whose reasons are gone
    samples = h.cycle()
    truth = h.sim.index_truth
    for name, query in (("all", "*"), ("sensors", "thingTypeName:sensor"), ("fleet", "*")):
        connected, disconnected = truth_connected(h, query)
        assert fleet_things(samples, name, "true") == connected
        assert fleet_things(samples, name, "false") == disconnected
        narrowed = (
            "connectivity.connected:false"
            if query == "*"
            else f"({query}) AND connectivity.connected:false"
        )
        reasons = truth.buckets(narrowed, "connectivity.disconnectReason", max_buckets=100)
        shown = {
            dict(labels)["reason"]: count
            for labels, count in series(samples, "iot_fleet_disconnected_things").items()
            if dict(labels)["query"] == name
        }
        assert shown == {b["keyValue"]: b["count"] for b in reasons["buckets"]}
    # Some disconnected things have lost their reason in the index: buckets sum to less.
    with_reason = sum(
        count
        for labels, count in series(samples, "iot_fleet_disconnected_things").items()
        if dict(labels)["query"] == "all"
    )
    assert with_reason < (fleet_things(samples, "all", "false") or 0)
    by_type = truth.buckets("connectivity.connected:true", "thingTypeName", max_buckets=100)
    for bucket in by_type["buckets"]:
        assert (
            value(
                samples,
                "iot_fleet_connected_things",
                query="fleet",
                field="thingTypeName",
                value=str(bucket["keyValue"]),
            )
            == bucket["count"]
        )
    firmware = truth.buckets(
        "(thingTypeName:sensor) AND connectivity.connected:true",
        "attributes.firmware",
        max_buckets=100,
    )
    assert {
        dict(labels)["value"]: count
        for labels, count in series(samples, "iot_fleet_connected_things").items()
        if dict(labels)["query"] == "sensors"
    } == {b["keyValue"]: b["count"] for b in firmware["buckets"]}
    counts = h.sim.request_counts()
    assert counts[("GetStatistics", "ok")] == 3
    assert counts[("GetBucketsAggregation", "ok")] == 3 + 1 + 2  # reasons, then `by` fields


def test_per_thing_connected_sums_to_the_aggregate(harness: HarnessFactory) -> None:
    # The same fleet watched thing by thing (index mode, no lag) and counted in one call.
    h = harness(
        lively(62),
        things=[],
        sections={
            "discovery": {"queries": ["thingName:*"]},
            "aggregates": {"queries": [{"name": "all"}]},
        },
        mode="index",
    )
    for _ in range(5):
        samples = h.cycle(advance=60)
        per_thing = sum(series(samples, "iot_thing_connected").values())
        assert per_thing == fleet_things(samples, "all", "true")
        assert len(series(samples, "iot_thing_connected")) == (
            (fleet_things(samples, "all", "true") or 0)
            + (fleet_things(samples, "all", "false") or 0)
        )


def test_metrics_per_thing_off_keeps_fleet_counts_only(harness: HarnessFactory) -> None:
    h = harness(
        lively(63),
        things=["thing-00001", "thing-00002"],
        sections={"aggregates": {"queries": [{"name": "all"}]}, "metrics": {"per_thing": False}},
    )
    samples = h.cycle()
    assert not any(name.startswith("iot_thing_") for name, _ in samples)
    assert fleet_things(samples, "all", "true") is not None
    assert value(samples, "iot_disconnects_total", reason="CONNECTION_LOST") is not None


def test_a_failing_aggregate_is_named_and_the_others_are_kept(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(
        lively(64),
        things=[],
        sections={
            "aggregates": {
                "queries": [{"name": "all"}, {"name": "broken", "query": "thingName:(a"}]
            }
        },
    )
    with caplog.at_level(logging.ERROR, logger="exporter.app"):
        samples = h.cycle()
    assert fleet_things(samples, "all", "true") is not None
    assert fleet_things(samples, "broken", "true") is None
    assert value(samples, "iot_exporter_source_last_pass_successful", source="aggregates") == 0
    [failure] = [r for r in caplog.records if "source failed" in r.getMessage()]
    assert "aggregates.queries[1] (broken)" in failure.__dict__["problem"]
    assert "InvalidQueryException" in failure.__dict__["problem"]


def test_stale_aggregates_are_withdrawn(harness: HarnessFactory) -> None:
    h = harness(lively(65), things=[], sections={"aggregates": {"queries": [{"name": "all"}]}})
    assert fleet_things(h.cycle(), "all", "true") is not None
    h.clock.advance(3 * 60)  # three aggregates.interval with no new count: still shown
    assert fleet_things(h.samples(), "all", "true") is not None
    h.clock.advance(1)  # older than that: withdrawn
    assert fleet_things(h.samples(), "all", "true") is None
