"""Lifecycle events end to end in one process: the simulator's topic rule sends to moto's SQS
over HTTP, the exporter consumes it, and the counts meet the simulator's ground truth."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import Exporter
from exporter.config import load_config
from exporter.sources.events import EventSource
from iot_simulator import SimulatorConfig
from iot_simulator.model import Event
from iot_simulator.topic_rule import RuleFaults, TopicRule, lifecycle_document
from tests.support.harness import (
    Harness,
    HarnessFactory,
    client_factory,
    quiet,
    series,
    sqs_client_factory,
)
from tests.support.promstack import wait_until
from tests.support.sqs import MotoServer, moto

__all__ = ["moto"]

_queues = itertools.count()


def events_section(server: MotoServer, **extra: Any) -> tuple[str, dict[str, Any]]:
    url = server.queue(f"lifecycle-{next(_queues)}")
    return url, {"events": {"queue_url": url, "endpoint_url": server.url, **extra}}


def rule_for(
    h: Harness, server: MotoServer, url: str | Sequence[str], faults: RuleFaults | None = None
) -> TopicRule:
    return TopicRule(h.sim.fleet, server.client(), url, clock=h.clock.now, faults=faults, seed=5)


def drained(h: Harness, server: MotoServer, url: str, rule: TopicRule) -> None:
    """Wait until the exporter has received everything sent and the queue is empty."""

    def done() -> bool | None:
        received = h.live_value("iot_exporter_events_received_total")
        return True if received >= rule.sent and server.depth(url) == (0, 0) else None

    wait_until(done, timeout=60, what="the exporter to drain the queue")


def per_thing(h: Harness) -> dict[tuple[str, str], float]:
    samples = h.samples()
    return {
        (dict(labels)["thing_name"], dict(labels)["reason"]): v
        for labels, v in series(samples, "iot_thing_disconnects_total").items()
        if v
    }


def truth(events: list[Event]) -> dict[tuple[str, str], float]:
    counted = Counter((e.thing_name, e.reason or "") for e in events if e.kind == "disconnect")
    return {key: float(n) for key, n in counted.items()}


def lively(things: int) -> SimulatorConfig:
    """Sessions of minutes and outages of seconds: most flaps fall between two polls."""
    return SimulatorConfig(
        things=things,
        seed=11,
        quotas=False,
        never_connected_fraction=0,
        duplicate_clientid_things=2,
        mean_session_seconds=240.0,
        mean_offline_seconds=4.0,
    )


@pytest.mark.scenario
def test_fidelity_over_a_simulated_hour(harness: HarnessFactory, moto: MotoServer) -> None:
    url, sections = events_section(moto)
    h = harness(lively(30), sections={**sections, "events": {**sections["events"], "consumers": 3}})
    rule = rule_for(h, moto, url, RuleFaults(duplicate_rate=0.3, reorder_window=7))
    h.cycle()  # first sight of every thing, and the consumers start
    for _ in range(60):
        h.clock.advance(60)
        rule.publish()
        drained(h, moto, url, rule)
        h.exporter.run_pass("live")
    disconnects = [e for e in rule.published if e.kind == "disconnect"]
    assert len(disconnects) > 300  # lively: many flaps far shorter than the 60 s poll
    assert per_thing(h) == truth(rule.published)
    fleet = {
        dict(labels)["reason"]: v
        for labels, v in series(h.samples(), "iot_disconnects_total").items()
        if v
    }
    assert fleet == {r: float(n) for r, n in Counter(e.reason for e in disconnects).items()}
    assert h.live_value("iot_exporter_events_duplicates_total") > 0
    assert h.live_value("iot_exporter_events_missed_total") == 0


def test_poison_messages_are_counted_deleted_and_never_stop_the_flow(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    url, sections = events_section(moto)
    h = harness(quiet(3, seed=1), sections=sections)
    h.cycle()
    thing = h.sim.fleet.thing_names()[0]
    good = lifecycle_document(
        Event(thing, h.clock.now(), "disconnect", "CLIENT_ERROR"), 9, "s-1", "p"
    )
    client = moto.client()
    bodies = [
        "this is not JSON {",
        json.dumps([1, 2, 3]),
        json.dumps({**good, "eventType": "subscribed"}),
        json.dumps({**good, "timestamp": "yesterday"}),
        "x" * (256 * 1024),
        json.dumps(good),
    ]
    for body in bodies:
        client.send_message(QueueUrl=url, MessageBody=body)

    def all_handled() -> bool | None:
        return (
            True
            if h.live_value("iot_exporter_events_applied_total") == 1 and moto.depth(url) == (0, 0)
            else None
        )

    wait_until(all_handled, timeout=60, what="the poison and the good event to be handled")
    malformed = {
        kind: h.live_value("iot_exporter_events_malformed_total", kind=kind)
        for kind in ("not_json", "not_an_object", "unknown_event_type", "bad_field", "too_large")
    }
    assert malformed == dict.fromkeys(malformed, 1.0)
    assert per_thing(h) == {(thing, "CLIENT_ERROR"): 1.0}
    outcome = h.exporter.run_pass("events")
    assert outcome is not None
    assert outcome.ok
    depth = {
        s: h.live_value("iot_exporter_events_queue_messages", state=s)
        for s in ("visible", "in_flight")
    }
    assert depth == {"visible": 0.0, "in_flight": 0.0}
    assert h.live_value("iot_exporter_api_requests_total", operation="GetQueueAttributes") >= 1


@pytest.mark.scenario
def test_restart_mid_stream_loses_nothing_and_counts_nothing_twice(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    url, sections = events_section(moto, visibility_timeout="2s", consumers=2, wait_time="1s")
    h = harness(lively(15), sections=sections)
    rule = rule_for(h, moto, url)
    h.clock.advance(1)
    h.exporter.run_pass("events")  # consumers of the first exporter start
    h.clock.advance(3600)
    rule.publish()
    # Enough that the first exporter is stopped mid-stream (asserted below), few enough
    # that moto, at 10 to 80 ms of CPU a message, drains the rest in seconds.
    assert rule.sent > 300

    def some_applied() -> bool | None:
        return True if h.live_value("iot_exporter_events_applied_total") >= 50 else None

    wait_until(some_applied, timeout=60, what="the first exporter to apply some events")
    h.exporter.stop()
    first = h.exporter._runtime.plan.source("events")
    assert isinstance(first, EventSource)
    assert first.join(10)
    first_counts = {
        (name, reason): float(n)
        for name, state in h.exporter.state.things().items()
        for reason, n in state.disconnects.items()
    }
    assert sum(first_counts.values()) < sum(truth(rule.published).values())  # stopped mid-stream

    registry = CollectorRegistry()
    second = Exporter(
        lambda: load_config(h.config_path),
        client_factory,
        clock=h.clock.now,
        collectors=registry,
        sqs_client_factory=sqs_client_factory,
    )
    try:
        second.run_pass("events")

        def second_drained() -> bool | None:
            return True if moto.depth(url) == (0, 0) else None

        wait_until(second_drained, timeout=90, what="the second exporter to drain the queue")
        second_counts = Counter(
            {
                (name, reason): float(n)
                for name, state in second.state.things().items()
                for reason, n in state.disconnects.items()
            }
        )
        combined = Counter(first_counts) + second_counts
        assert dict(combined) == truth(rule.published)
    finally:
        second.stop()


def test_dropped_events_are_caught_by_polling_and_reported_missed(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    url, sections = events_section(moto)
    h = harness(quiet(4, seed=2), sections=sections)
    rule = rule_for(h, moto, url)
    h.cycle()
    lost, seen = h.sim.fleet.thing_names()[:2]
    now = h.clock.now()
    rule.faults = RuleFaults(drop_from=now, drop_until=now + 30)
    h.clock.advance(10)
    h.sim.fleet.disconnect(lost, "SERVER_ERROR")  # inside the window: its event is lost
    h.clock.advance(30)
    h.sim.fleet.disconnect(seen, "CLIENT_ERROR")  # after it: delivered
    rule.publish()
    drained(h, moto, url, rule)
    assert [e.thing_name for e in rule.dropped] == [lost]
    h.exporter.run_pass("live")  # sees both; the event already counted `seen`
    assert per_thing(h) == {(seen, "CLIENT_ERROR"): 1.0}
    h.clock.advance(60)
    h.exporter.run_pass("live")  # no event came for `lost`: polling counts it, as missed
    assert per_thing(h) == {(seen, "CLIENT_ERROR"): 1.0, (lost, "SERVER_ERROR"): 1.0}
    assert h.live_value("iot_exporter_events_missed_total") == 1
    assert (
        series(h.samples(), "iot_disconnects_total")[frozenset({("reason", "unobserved_flap")})]
        == 0
    )


def test_reload_replaces_the_consumers_and_keeps_counting(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    # A one-second long poll: a consumer that a reload closed ends after its current poll.
    url, sections = events_section(moto, visibility_timeout="2s", wait_time="1s")
    h = harness(quiet(3, seed=4), sections=sections)
    rule = rule_for(h, moto, url)
    h.cycle()
    first, second = h.sim.fleet.thing_names()[:2]
    h.clock.advance(5)
    h.sim.fleet.disconnect(first, "CLIENT_ERROR")
    rule.publish()
    drained(h, moto, url, rule)
    old = h.exporter._runtime.plan.source("events")
    assert isinstance(old, EventSource)
    # An unchanged reload keeps the SQS client (no second botocore model load) ...
    assert h.exporter.reload().ok
    kept = h.exporter._runtime.plan.source("events")
    assert isinstance(kept, EventSource)
    assert kept._calls.client is old._calls.client
    assert old.join(10)  # well before the default 20 s poll would end
    h.exporter.run_pass("events")
    old = kept
    # ... and a changed one makes a new one.
    h.rewrite_config(events={**sections["events"], "consumers": 2})
    assert h.exporter.reload().ok
    changed = h.exporter._runtime.plan.source("events")
    assert isinstance(changed, EventSource)
    assert changed._calls.client is not old._calls.client
    assert old.join(10)  # closed: its consumer ends after its current long poll
    h.exporter.run_pass("events")  # the new source's consumers start
    h.clock.advance(5)
    h.sim.fleet.disconnect(second, "SERVER_ERROR")
    rule.publish()
    drained(h, moto, url, rule)
    assert per_thing(h) == {(first, "CLIENT_ERROR"): 1.0, (second, "SERVER_ERROR"): 1.0}
