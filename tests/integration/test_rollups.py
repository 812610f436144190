"""Rollups through boto3 against the simulator: the counts by segment equal its truth.

A lively fleet is watched for a simulated hour in live mode, index mode and event mode.
After every cycle, `iot_things` and `iot_things_never_connected` equal, segment by segment,
what the simulator says of its things at that instant; the segment counters equal the
disconnects polling could see (test_fidelity's rule), or, with events, every disconnect.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from iot_simulator import SimulatorConfig
from tests.integration.test_events import drained, events_section, lively, rule_for
from tests.integration.test_fidelity import expected_for
from tests.support.harness import Harness, HarnessFactory, Samples, series
from tests.support.sqs import MotoServer, moto

__all__ = ["moto"]

TYPES = ("sensor", "gateway", "controller")
Key = tuple[str, ...]


def fleet(seed: int, **changes: Any) -> SimulatorConfig:
    """Sessions of minutes, outages shorter than a poll, and some things never connected."""
    settings: dict[str, Any] = {
        "things": 90,
        "seed": seed,
        "quotas": False,
        "mean_session_seconds": 400.0,
        "mean_offline_seconds": 120.0,
        "never_connected_fraction": 0.08,
        "duplicate_clientid_things": 0,
        # The index keeps a disconnected thing's timestamp, so "never connected" is exact.
        "index_disconnect_details_retention_seconds": float("inf"),
        **changes,
    }
    return SimulatorConfig(**settings)


def by_segment(samples: Samples, family: str, labels: tuple[str, ...]) -> dict[Any, float]:
    """A rollup family's non-zero values by (segment, connected or reason if present)."""
    found: dict[Any, float] = {}
    for series_labels, v in series(samples, family).items():
        label_map = dict(series_labels)
        key = tuple(label_map[label] for label in labels)
        extra = label_map.get("connected", label_map.get("reason"))
        if v:
            found[key if extra is None else (key, extra)] = v
    return found


def truth(
    h: Harness, key_of: Callable[[Any], list[Key]]
) -> tuple[dict[Any, float], dict[Any, float]]:
    """Things by (segment, connected) and never-connected things by segment, per AWS now."""
    things: Counter[Any] = Counter()
    never: Counter[Any] = Counter()
    for name in h.sim.fleet.thing_names():
        record = h.sim.fleet.record(name)
        state = record.connectivity
        for key in key_of(record):
            things[(key, "true" if state.connected else "false")] += 1
            if not state.connected and state.timestamp_ms is None:
                never[key] += 1
    return {k: float(n) for k, n in things.items()}, {k: float(n) for k, n in never.items()}


def type_and_site(record: Any) -> list[Key]:
    return [(record.type_name or "", record.attributes.get("site", ""))]


LABELS = ("thing_type", "site")
SECTIONS = {
    "discovery": {"thing_types": list(TYPES), "interval": "1h"},
    "registry": {"attributes": ["site"]},
    "metrics": {"rollup_by": list(LABELS)},
    # A test's cycle runs discovery too: its budget must not pace the simulated hour.
    "budgets": {"ListThings": 1000, "SearchIndex": 1000},
}


def assert_counts_match(h: Harness, samples: Samples, labels: tuple[str, ...], key_of: Any) -> None:
    things, never = truth(h, key_of)
    assert by_segment(samples, "iot_things", labels) == things
    assert by_segment(samples, "iot_things_never_connected", labels) == never


@pytest.mark.scenario
@pytest.mark.parametrize("mode", ["live", "index"])
def test_counts_by_segment_equal_the_simulator_over_an_hour(
    harness: HarnessFactory, mode: str
) -> None:
    h = harness(fleet(31), things=[], sections=SECTIONS, mode=mode)
    polls = [h.clock.now()]
    samples = h.cycle()
    assert_counts_match(h, samples, LABELS, type_and_site)
    for _ in range(60):
        samples = h.cycle(advance=60)
        polls.append(h.clock.now())
        assert_counts_match(h, samples, LABELS, type_and_site)
    # Several segments, and things in both states in them: the test saw a lively fleet.
    things, never = truth(h, type_and_site)
    assert len({key for key, _ in things}) >= 6
    assert sum(never.values()) >= 3

    # Each segment's counter holds what polling could see of its things' disconnects.
    expected: Counter[Any] = Counter()
    for name in h.sim.fleet.thing_names():
        (key,) = type_and_site(h.sim.fleet.record(name))
        for reason, n in expected_for(h.sim, name, polls).counts.items():
            expected[(key, reason)] += n
    assert by_segment(samples, "iot_disconnects_total", LABELS) == {
        k: float(n) for k, n in expected.items() if n
    }
    assert sum(expected.values()) > 100


def test_a_thing_in_two_groups_counts_in_each(harness: HarnessFactory) -> None:
    config = fleet(32, mean_session_seconds=float("inf"), never_connected_fraction=0)
    groups = ["group-1", "group-2"]  # the simulator's top-level groups
    sections = {
        "discovery": {"thing_groups": [{"name": g, "recursive": True} for g in groups]},
        "metrics": {"rollup_by": ["thing_group"]},
    }
    h = harness(config, things=[], sections=sections, mode="index")
    both = h.sim.fleet.members("group-2", recursive=True)[0]
    h.sim.fleet.add_to_group(both, "group-1")
    samples = h.cycle()

    def in_groups(record: Any) -> list[Key]:
        return [(g,) for g in groups if record.name in h.sim.fleet.members(g, recursive=True)] or [
            ("",)
        ]

    assert_counts_match(h, samples, ("thing_group",), in_groups)
    counted = by_segment(samples, "iot_things", ("thing_group",))
    assert sum(counted.values()) == len(h.sim.fleet.thing_names()) + 1  # `both` twice
    assert series(samples, "iot_exporter_rollup_segments") == {frozenset(): 2.0}
    assert series(samples, "iot_exporter_max_rollup_segments") == {frozenset(): 1000.0}


@pytest.mark.scenario
def test_with_events_every_disconnect_counts_in_its_segment(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    url, sections = events_section(moto)
    h = harness(
        lively(30),
        sections={
            **sections,
            "registry": {"attributes": ["site"]},
            "metrics": {"rollup_by": list(LABELS)},
        },
    )
    rule = rule_for(h, moto, url)
    h.cycle()
    for _ in range(60):
        h.clock.advance(60)
        rule.publish()
        drained(h, moto, url, rule)
        assert_counts_match(h, h.samples(), LABELS, type_and_site)
        h.exporter.run_pass("live")
    kinds = {name: type_and_site(h.sim.fleet.record(name))[0] for name in h.sim.fleet.thing_names()}
    published = Counter(
        (kinds[e.thing_name], e.reason or "UNKNOWN")
        for e in rule.published
        if e.kind == "disconnect"
    )
    assert sum(published.values()) > 100
    counted = by_segment(h.samples(), "iot_disconnects_total", LABELS)
    assert counted == {k: float(n) for k, n in published.items()}


def test_counts_agree_with_the_fleet_index_aggregation(harness: HarnessFactory) -> None:
    sections = {
        **SECTIONS,
        "aggregates": {
            "interval": "1m",
            "queries": [{"name": t, "query": f"thingTypeName:{t}"} for t in TYPES],
        },
        "budgets": {"GetStatistics": 100, "GetBucketsAggregation": 100},
    }
    h = harness(fleet(33), things=[], sections=sections, mode="index")
    for samples in itertools.islice(iter(lambda: h.cycle(advance=60), None), 5):
        for thing_type in TYPES:
            for connected in ("true", "false"):
                ours = sum(
                    v
                    for labels, v in series(samples, "iot_things").items()
                    if ("thing_type", thing_type) in labels and ("connected", connected) in labels
                )
                aws = series(samples, "iot_fleet_things")[
                    frozenset({("query", thing_type), ("connected", connected)})
                ]
                assert ours == aws, (thing_type, connected)
