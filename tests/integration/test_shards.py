"""Shards against the simulator: three exporters split the fleet, and together they show
exactly what one unsharded exporter shows, each thing once, within the account's budgets."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.app import SetupError
from exporter.fleet.shards import Shard, owner
from exporter.sources.index import IndexPager
from iot_simulator import SimulatorConfig
from tests.integration.test_events import drained, events_section, lively, rule_for, truth
from tests.support.harness import Harness, HarnessFactory, Samples, quiet, series
from tests.support.sqs import MotoServer, moto

__all__ = ["moto"]

TOTAL = 3
PER_THING = (
    "iot_thing_connected",
    "iot_thing_connectivity_timestamp_seconds",
    "iot_thing_disconnect_reason_info",
    "iot_thing_disconnects_total",
    "iot_thing_poll_success",
    "iot_thing_info",
)


def fleet(things: int = 150, seed: int = 41) -> SimulatorConfig:
    """A lively fleet: sessions of minutes, so disconnects happen between cycles."""
    return SimulatorConfig(
        things=things,
        seed=seed,
        quotas=False,
        mean_session_seconds=300.0,
        mean_offline_seconds=200.0,
        duplicate_clientid_things=0,
    )


def per_thing(samples: Samples) -> dict[Any, float]:
    """Every per-thing sample but the poll time (each process polls at its own instant)."""
    return {
        (family, labels): value
        for family in PER_THING
        for labels, value in series(samples, family).items()
    }


def per_thing_disconnects(h: Harness) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["thing_name"], dict(labels)["reason"]): v
        for labels, v in series(h.samples(), "iot_thing_disconnects_total").items()
        if v
    }


def things_of(samples: Samples) -> set[str]:
    return {dict(labels)["thing_name"] for labels in series(samples, "iot_thing_poll_success")}


def shards_and_whole(harness: HarnessFactory, **options: Any) -> tuple[list[Harness], Harness]:
    whole = harness(fleet(), **options)
    shards = [harness(sim=whole.sim, shard=Shard(k, TOTAL), **options) for k in range(TOTAL)]
    return shards, whole


def cycle(exporters: list[Harness], advance: float) -> list[Samples]:
    exporters[0].clock.advance(advance)
    return [h.cycle() for h in exporters]


@pytest.mark.parametrize(
    "source",
    [
        pytest.param({}, id="static list, live mode"),
        pytest.param(
            {
                "things": [],
                "sections": {
                    "discovery": {"thing_types": ["sensor", "gateway", "controller"]},
                    "registry": {"attributes": ["site"]},
                    "budgets": {"ListThings": 1000},
                },
            },
            id="discovery, live mode",
        ),
    ],
)
def test_three_shards_show_what_one_process_shows(
    harness: HarnessFactory, source: dict[str, Any]
) -> None:
    shards, whole = shards_and_whole(harness, **source)
    for advance in (0, 60, 60, 60):
        *pages, alone = cycle([*shards, whole], advance)
        owned = [things_of(page) for page in pages]
        # Every thing in exactly one shard, and together the whole fleet.
        assert sum(len(things) for things in owned) == len(things_of(alone)) == 150
        assert set().union(*owned) == things_of(alone)
        # The same series with the same values, shard by shard, as the one process's.
        union: dict[Any, float] = {}
        for page in pages:
            union.update(per_thing(page))
        assert union == per_thing(alone)
    # Each shard takes about a third (CRC-32 of 150 names: within a wide margin).
    assert all(30 <= len(things) <= 70 for things in owned)
    # A shard polls its own things only: one call each.
    whole.sim.reset_request_counts()
    shards[1].exporter.run_pass("live")
    calls = whole.sim.request_counts()
    polls = sum(n for (operation, _), n in calls.items() if operation == "GetThingConnectivityData")
    assert polls == len(owned[1])


def test_each_shard_spends_its_share_of_the_budgets_and_says_which_it_is(
    harness: HarnessFactory,
) -> None:
    shards, _ = shards_and_whole(harness, max_requests_per_second=300)
    for k, h in enumerate(shards):
        samples = h.cycle()
        assert series(samples, "iot_exporter_shard_ordinal") == {frozenset(): float(k)}
        assert series(samples, "iot_exporter_total_shards") == {frozenset(): float(TOTAL)}
        budget = {
            dict(labels)["operation"]: v
            for labels, v in series(samples, "iot_exporter_request_budget_per_second").items()
        }
        assert budget["GetThingConnectivityData"] == 100.0
        assert budget["SearchIndex"] == pytest.approx(10.0 / TOTAL)
        # Shard 0 alone makes the aggregates' calls: their budget is not shared.
        assert budget["GetStatistics"] == 1.0


def test_only_shard_zero_counts_the_fleet_aggregates(harness: HarnessFactory) -> None:
    sections = {"aggregates": {"queries": [{"name": "all"}]}, "budgets": {"GetStatistics": 100}}
    shards, _ = shards_and_whole(harness, sections=sections)
    counted = [bool(series(h.cycle(), "iot_fleet_things")) for h in shards]
    assert counted == [True, False, False]


def index_queries(h: Harness) -> int:
    """How many SearchIndex queries a pass of the exporter's discovery sources makes."""
    runtime = h.exporter._runtime
    return sum(
        len(source._queries(runtime.calls))
        for source in runtime.plan.sources
        if isinstance(source, IndexPager)
    )


def search_calls(h: Harness) -> int:
    return sum(n for (op, _), n in h.sim.request_counts().items() if op == "SearchIndex")


@pytest.mark.parametrize(
    "discovery",
    [
        pytest.param({"thing_types": ["sensor"]}, id="a thing type"),
        pytest.param(
            {"thing_groups": [{"name": "group-1", "recursive": True}, "group-2-1"]},
            id="thing groups",
        ),
    ],
)
def test_in_index_mode_the_shards_split_the_pages_and_show_the_whole(
    harness: HarnessFactory, discovery: dict[str, Any]
) -> None:
    options: dict[str, Any] = {
        "things": [],
        "mode": "index",
        "sections": {
            "discovery": {**discovery, "max_things": 10_000},
            "registry": {"attributes": ["site"]},
            "budgets": {"SearchIndex": 3000, "DescribeThingGroup": 300, "ListThingGroups": 300},
        },
    }
    whole = harness(fleet(3000, seed=43), **options)
    shards = [harness(sim=whole.sim, shard=Shard(k, TOTAL), **options) for k in range(TOTAL)]
    for advance in (0, 60, 60):
        whole.clock.advance(advance)
        whole.sim.reset_request_counts()
        alone = whole.cycle()
        one_process = search_calls(whole)
        whole.sim.reset_request_counts()
        pages = [h.cycle() for h in shards]
        all_shards = search_calls(whole)
        owned = [things_of(page) for page in pages]
        assert sum(len(things) for things in owned) == len(things_of(alone)) > 500
        assert set().union(*owned) == things_of(alone)
        union: dict[Any, float] = {}
        for page in pages:
            union.update(per_thing(page))
        assert union == per_thing(alone)
        # Each shard reads its own pages, not the whole index: together one process's
        # pages, plus at most one part-filled page per query a shard's share takes.
        queries = sum(index_queries(h) for h in shards)
        assert all_shards <= one_process + queries < TOTAL * one_process


def test_with_events_each_shard_reads_its_queue_and_keeps_its_own_things(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    """The rule sends every event to each shard's queue; each shard applies its things'
    events and counts and deletes the others', and together they count every disconnect."""
    urls = [moto.queue(f"sharded-lifecycle-{k}") for k in range(TOTAL)]
    pattern = urls[0].removesuffix("-0") + "-{shard}"
    assert [pattern.replace("{shard}", str(k)) for k in range(TOTAL)] == urls
    events = {"events": {"queue_url": pattern, "endpoint_url": moto.url}}
    whole = harness(lively(24), sections={"events": {**events["events"], "queue_url": urls[0]}})
    shards = [harness(sim=whole.sim, shard=Shard(k, TOTAL), sections=events) for k in range(TOTAL)]
    for h in shards:
        h.cycle()
    rule = rule_for(shards[0], moto, urls)
    for _ in range(20):
        whole.clock.advance(60)
        rule.publish()
        for h, url in zip(shards, urls, strict=True):
            drained(h, moto, url, rule)
    disconnects = [e for e in rule.published if e.kind == "disconnect"]
    assert len(disconnects) > 50
    union: dict[tuple[str, str], float] = {}
    for h in shards:
        union.update(per_thing_disconnects(h))
    assert union == truth(rule.published)
    for k, h in enumerate(shards):
        theirs = sum(1 for e in rule.published if owner(e.thing_name, TOTAL) != k)
        assert h.live_value("iot_exporter_events_other_shard_total") == theirs
        assert h.live_value("iot_exporter_events_not_targeted_total") == 0


def test_sharded_events_need_a_queue_per_shard(harness: HarnessFactory, moto: MotoServer) -> None:
    _, sections = events_section(moto)
    with pytest.raises(SetupError, match=r"write \{shard\} in the URL"):
        harness(quiet(3, seed=2), sections=sections, shard=Shard(1, TOTAL))


def test_resharding_from_two_to_three_hands_every_thing_to_one_new_owner(
    harness: HarnessFactory,
) -> None:
    first = harness(fleet(), shard=Shard(0, 2))
    old = [first, harness(sim=first.sim, shard=Shard(1, 2))]
    cycle(old, 0)
    for _ in range(5):
        before = cycle(old, 60)
    counted = sum(sum(series(page, "iot_thing_disconnects_total").values()) for page in before)
    assert counted > 0
    # The rolling change starts the three new shards beside the old two.
    new = [harness(sim=first.sim, shard=Shard(k, 3)) for k in range(3)]
    pages = cycle(new, 60)
    owned = [things_of(page) for page in pages]
    # After one cycle of the new shards every thing is exported by exactly one of them...
    assert sum(len(things) for things in owned) == len(set().union(*owned)) == 150
    # ...and its counters restart there: a new owner counts nothing on first sight, so
    # Prometheus sees a new series from 0 (docs/sharding.md has the queries for it).
    assert all(not any(series(page, "iot_thing_disconnects_total").values()) for page in pages)
    later = cycle(new, 60)
    assert sum(sum(series(page, "iot_thing_disconnects_total").values()) for page in later) > 0
