"""Discovery through boto3 against the simulator: groups, types, attributes, queries.

Things that join a source appear, things that leave lose their series, a failing source
keeps its last list, the cap holds, and every bad input is named by its config key.
"""

from __future__ import annotations

import logging

import pytest

from iot_simulator import FaultConfig, SimulatorConfig
from tests.support.harness import (
    Harness,
    HarnessFactory,
    connected_by_thing,
    quiet,
    series,
    value,
)
from tests.support.promstack import wait_until

# The simulator's registry: group-1 has children group-1-1 and group-1-2, group-2 likewise;
# things sit in the leaves in turn (thing i in leaf i % 4), types go sensor, gateway,
# controller in turn, and attribute site is the thing's group.
LEAVES = ("group-1-1", "group-1-2", "group-2-1", "group-2-2")


def members(h: Harness, *groups: str) -> set[str]:
    """The simulator's truth: things directly in any of `groups`."""
    return {
        name
        for name in h.sim.fleet.thing_names()
        if set(h.sim.fleet.record(name).groups) & set(groups)
    }


def of_type(h: Harness, thing_type: str) -> set[str]:
    return {
        name
        for name in h.sim.fleet.thing_names()
        if h.sim.fleet.record(name).type_name == thing_type
    }


def discovery(**sources: object) -> dict[str, object]:
    return {"discovery": {"interval": "5m", **sources}}


def test_a_recursive_group_targets_its_subtree_and_polls_each_thing_once(
    harness: HarnessFactory,
) -> None:
    h = harness(
        quiet(16, seed=31),
        things=[],
        sections=discovery(thing_groups=[{"name": "group-1", "recursive": True}]),
    )
    samples = h.cycle()
    expected = members(h, "group-1-1", "group-1-2")
    assert len(expected) == 8
    assert set(connected_by_thing(samples)) == expected
    assert value(samples, "iot_exporter_source_things", source="thing_group:group-1") == 8
    counts = h.sim.request_counts()
    assert counts[("GetThingConnectivityData", "ok")] == 8


def test_a_thing_named_by_several_sources_is_polled_once(harness: HarnessFactory) -> None:
    h = harness(
        quiet(12, seed=32),
        things=["thing-00001"],
        sections=discovery(
            thing_groups=["group-1-1"],
            thing_types=["sensor"],
            queries=["thingName:thing-0000*"],
        ),
    )
    samples = h.cycle()
    expected = {"thing-00001"} | members(h, "group-1-1") | of_type(h, "sensor")
    expected |= {n for n in h.sim.fleet.thing_names() if n.startswith("thing-0000")}
    assert set(connected_by_thing(samples)) == expected
    assert h.sim.request_counts()[("GetThingConnectivityData", "ok")] == len(expected)


def test_things_join_and_leave_a_group_with_no_reload(harness: HarnessFactory) -> None:
    h = harness(quiet(8, seed=33), things=[], sections=discovery(thing_groups=["group-1-1"]))
    first = h.cycle()
    before = members(h, "group-1-1")
    assert set(connected_by_thing(first)) == before
    leaving = sorted(before)[0]
    h.sim.fleet.create_thing("newcomer", groups=["group-1-1"])
    h.sim.fleet.connect("newcomer")
    h.sim.fleet.delete_thing(leaving)
    samples = h.cycle(advance=60)
    shown = connected_by_thing(samples)
    assert "newcomer" in shown
    assert shown["newcomer"] == 1
    assert leaving not in shown
    # Every series of the thing that left is gone, not only iot_thing_connected.
    assert not any(dict(labels).get("thing_name") == leaving for (_, labels) in samples)


def test_a_new_member_shows_within_one_discovery_interval(harness: HarnessFactory) -> None:
    # Polling once an hour: only discovery (every second here) can bring the newcomer in,
    # and it is polled as soon as it is found rather than at the next poll cycle.
    h = harness(
        quiet(4, seed=34),
        things=[],
        sections={"discovery": {"interval": "1s", "thing_groups": ["group-1-1"]}},
        interval="1h",
    )
    h.exporter.start()
    wait_until(lambda: h.exporter.ready() or None, timeout=20, what="ready")
    h.sim.fleet.create_thing("latecomer", groups=["group-1-1"])
    h.sim.fleet.connect("latecomer")
    wait_until(
        lambda: connected_by_thing(h.served()).get("latecomer") == 1 or None,
        timeout=20,
        what="the latecomer on /metrics",
    )


def test_a_reload_to_a_static_list_starts_the_live_poller(harness: HarnessFactory) -> None:
    # Index mode has no live poller; the reload brings one with nothing to discover first.
    # Polling once an hour: only starting the poller at once shows the things in time.
    h = harness(
        quiet(4, seed=36),
        things=[],
        sections={"discovery": {"thing_types": [{"name": "sensor", "mode": "index"}]}},
        interval="1h",
    )
    h.exporter.start()
    wait_until(lambda: h.exporter.ready() or None, timeout=20, what="ready")
    names = h.sim.fleet.thing_names()[:2]
    h.rewrite_config(things=names, discovery={})
    assert h.exporter.reload().ok
    wait_until(
        lambda: set(connected_by_thing(h.served())) == set(names) or None,
        timeout=20,
        what="the static things polled after the reload",
    )


def test_static_things_a_reload_adds_are_polled_at_once(harness: HarnessFactory) -> None:
    first, second = "thing-00001", "thing-00002"
    h = harness(quiet(4, seed=37), things=[first], interval="1h")
    assert second in h.sim.fleet.thing_names()
    h.exporter.start()
    wait_until(lambda: h.exporter.ready() or None, timeout=20, what="ready")
    h.rewrite_config(things=[first, second])
    assert h.exporter.reload().ok
    wait_until(
        lambda: connected_by_thing(h.served()).get(second) == 1 or None,
        timeout=20,
        what="the thing the reload added, polled before the next hourly cycle",
    )


def test_a_failing_discovery_keeps_its_last_list_and_says_so(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(quiet(8, seed=35), things=[], sections=discovery(thing_groups=["group-1-1"]))
    listed = set(connected_by_thing(h.cycle()))
    h.sim.faults.replace(
        FaultConfig(
            error_rates={"InternalFailureException": 1.0},
            operations=frozenset({"ListThingsInThingGroup"}),
        )
    )
    with caplog.at_level(logging.ERROR, logger="exporter.app"):
        samples = h.cycle(advance=60)
        h.cycle(advance=60)
    assert set(connected_by_thing(samples)) == listed
    source = "thing_group:group-1-1"
    assert value(samples, "iot_exporter_source_last_pass_successful", source=source) == 0
    assert value(samples, "iot_exporter_source_things", source=source) == len(listed)
    failures = [r for r in caplog.records if "source failed" in r.getMessage()]
    assert len(failures) == 1  # once per episode, not once per pass
    assert failures[0].getMessage() == (
        "discovery.thing_groups[0]: source failed; keeping its last list"
    )
    assert "InternalFailureException" in failures[0].__dict__["problem"]
    h.sim.faults.clear()
    recovered = h.cycle(advance=60)
    assert value(recovered, "iot_exporter_source_last_pass_successful", source=source) == 1


def test_types_attributes_and_queries_discover_with_registry_labels(
    harness: HarnessFactory,
) -> None:
    h = harness(
        quiet(12, seed=36),
        things=[],
        sections={
            **discovery(
                thing_types=["gateway"],
                attributes=[{"attribute": "site", "value": "group-2-2"}],
                queries=[{"query": "attributes.model:m2", "name": "model-2"}],
            ),
            "registry": {"attributes": ["site", "firmware"], "promote": ["thing_type"]},
        },
    )
    samples = h.cycle()
    fleet = h.sim.fleet
    expected = of_type(h, "gateway") | members(h, "group-2-2")
    expected |= {n for n in fleet.thing_names() if fleet.record(n).attributes["model"] == "m2"}
    assert set(connected_by_thing(samples)) == expected
    info = series(samples, "iot_thing_info")
    assert len(info) == len(expected)
    for name in expected:
        record = fleet.record(name)
        labels = {
            "thing_name": name,
            "thing_type": record.type_name or "",
            "site": record.attributes["site"],
            "firmware": record.attributes["firmware"],
        }
        assert info[frozenset(labels.items())] == 1
        promoted = {"thing_name": name, "thing_type": record.type_name or ""}
        assert value(samples, "iot_thing_connected", **promoted) == 1


def test_with_registry_labels_a_group_and_the_static_list_are_read_from_the_index(
    harness: HarnessFactory,
) -> None:
    h = harness(
        quiet(8, seed=37),
        things=["thing-00004"],
        sections={
            **discovery(thing_groups=["group-1-1"]),
            "registry": {"promote": ["thing_type"]},
        },
    )
    samples = h.cycle()
    expected = members(h, "group-1-1") | {"thing-00004"}
    assert {dict(labels)["thing_name"] for labels in series(samples, "iot_thing_info")} == expected
    for name in expected:
        thing_type = h.sim.fleet.record(name).type_name or ""
        assert value(samples, "iot_thing_connected", thing_name=name, thing_type=thing_type) == 1
    counts = h.sim.request_counts()
    assert ("ListThingsInThingGroup", "ok") not in counts
    assert counts[("SearchIndex", "ok")] >= 2


def test_the_cap_keeps_a_source_to_max_things_and_says_so(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(
        quiet(12, seed=38),
        things=[],
        sections=discovery(thing_types=[{"name": "sensor", "max_things": 2}]),
    )
    with caplog.at_level(logging.WARNING, logger="exporter.app"):
        samples = h.cycle()
    source = "thing_type:sensor"
    assert len(connected_by_thing(samples)) == 2
    assert value(samples, "iot_exporter_source_things", source=source) == 2
    assert value(samples, "iot_exporter_source_max_things", source=source) == 2
    assert value(samples, "iot_exporter_source_things_refused", source=source) == 2
    assert any(
        r.getMessage() == "discovery.thing_types[0]: more things than max_things; the rest are"
        " left out"
        for r in caplog.records
    )


def test_a_group_that_does_not_exist_is_named_by_its_key(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(
        quiet(4, seed=39),
        things=["thing-00001"],
        sections=discovery(thing_groups=["group-1-1", "no-such-group"]),
    )
    with caplog.at_level(logging.ERROR, logger="exporter.app"):
        samples = h.cycle()
    [failure] = [r for r in caplog.records if "source failed" in r.getMessage()]
    assert failure.getMessage().startswith("discovery.thing_groups[1]: source failed")
    assert "ResourceNotFoundException" in failure.__dict__["problem"]
    source = "thing_group:no-such-group"
    assert value(samples, "iot_exporter_source_last_pass_successful", source=source) == 0
    # The other sources carry on.
    assert set(connected_by_thing(samples)) == members(h, "group-1-1") | {"thing-00001"}


def test_an_invalid_index_query_is_named_by_its_key(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(quiet(4, seed=40), things=[], sections=discovery(queries=["thingName:(a"]))
    with caplog.at_level(logging.ERROR, logger="exporter.app"):
        samples = h.cycle()
    [failure] = [r for r in caplog.records if "source failed" in r.getMessage()]
    assert failure.getMessage().startswith("discovery.queries[0]: source failed")
    assert "InvalidQueryException" in failure.__dict__["problem"]
    assert (
        value(samples, "iot_exporter_source_last_pass_successful", source="query:thingName:(a") == 0
    )


def test_a_thing_type_with_no_things_is_named_by_its_key(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(quiet(4, seed=41), things=[], sections=discovery(thing_types=["sensor", "pump"]))
    with caplog.at_level(logging.WARNING, logger="exporter.app"):
        samples = h.cycle()
    assert [r.getMessage() for r in caplog.records if "names no things" in r.getMessage()] == [
        "discovery.thing_types[1]: names no things"
    ]
    assert value(samples, "iot_exporter_source_things", source="thing_type:pump") == 0
    assert set(connected_by_thing(samples)) == of_type(h, "sensor")


def test_discovery_spends_its_own_operation_s_budget(harness: HarnessFactory) -> None:
    # Six attribute filters make six ListThings calls a pass. The simulator allows 2 a
    # second (a bucket of 2); unpaced, the third call would be throttled.
    sim = SimulatorConfig(things=12, seed=42, quotas=True, rates={"ListThings": 2.0})
    filters = [{"attribute": "firmware", "value": f"1.{i}.0"} for i in range(4)]
    filters += [{"attribute": "model", "value": f"m{i}"} for i in range(2)]
    h = harness(
        sim,
        things=[],
        sections={**discovery(attributes=filters), "budgets": {"ListThings": 1.5}},
    )
    samples = h.cycle()
    assert value(samples, "iot_exporter_request_budget_per_second", operation="ListThings") == 1.5
    counts = h.sim.request_counts()
    assert counts[("ListThings", "ok")] == 6
    assert ("ListThings", "ThrottlingException") not in counts
    assert len(connected_by_thing(samples)) == 12


def test_a_budget_too_small_for_what_discovery_found_is_warned(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(
        quiet(12, seed=43),
        things=[],
        sections=discovery(thing_types=["sensor"]),
        interval="1s",
        max_requests_per_second=1,
    )
    with caplog.at_level(logging.WARNING, logger="exporter.app"):
        h.exporter.run_pass("thing_type:sensor")
    [warning] = [
        r for r in caplog.records if "cannot finish within poll.interval" in r.getMessage()
    ]
    assert warning.__dict__["things"] == 4
    assert warning.__dict__["shortest_cycle_seconds"] == 4.0
