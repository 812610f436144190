"""Time connected against the simulator's ground truth, over a simulated hour: exact from
lifecycle events, within a poll interval per session when polling."""

from __future__ import annotations

from collections import defaultdict

import pytest

from iot_simulator.model import Event
from tests.integration.test_events import drained, events_section, lively, rule_for
from tests.support.harness import Harness, HarnessFactory, series
from tests.support.sqs import MotoServer, moto

__all__ = ["moto"]

MINUTE = 60.0


def connected_seconds(h: Harness) -> dict[str, float]:
    return {
        dict(labels)["thing_name"]: v
        for labels, v in series(h.samples(), "iot_thing_connected_seconds_total").items()
    }


def truth(events: list[Event], names: list[str], start: float, end: float) -> dict[str, float]:
    """Each thing's seconds connected within [start, end], from the events AWS published."""
    timeline: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        timeline[event.thing_name].append(event)
    seconds = {}
    for name in names:
        connected_since: float | None = None
        total = 0.0
        for event in sorted(timeline[name], key=lambda e: e.time):
            if event.kind == "connect" and connected_since is None:
                connected_since = event.time
            elif event.kind == "disconnect" and connected_since is not None:
                total += max(0.0, min(event.time, end) - max(connected_since, start))
                connected_since = None
        if connected_since is not None:
            total += max(0.0, end - max(connected_since, start))
        seconds[name] = total
    return seconds


def sessions(events: list[Event], start: float) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        if event.kind == "connect" and event.time > start:
            counts[event.thing_name] += 1
    return counts


@pytest.mark.scenario
def test_connected_seconds_are_exact_from_events(harness: HarnessFactory, moto: MotoServer) -> None:
    url, sections = events_section(moto)
    h = harness(lively(20), sections=sections)
    rule = rule_for(h, moto, url)
    h.cycle()  # first sight: the counters start here
    start = h.clock.now()
    for _ in range(60):
        h.clock.advance(MINUTE)
        rule.publish()
        drained(h, moto, url, rule)
    h.exporter.run_pass("live")  # a last observation of every thing, at the end
    end = h.clock.now()
    names = h.sim.fleet.thing_names()
    expected = truth(h.sim.ground_truth(), names, start, end)
    got = connected_seconds(h)
    assert sum(sessions(rule.published, start).values()) > 100  # minutes-long sessions
    off = {
        name: got[name] - expected[name] for name in names if abs(got[name] - expected[name]) > 1
    }
    assert off == {}


@pytest.mark.scenario
def test_connected_seconds_under_polling_are_within_a_poll_per_session(
    harness: HarnessFactory,
) -> None:
    h = harness(lively(20))
    h.cycle()
    start = h.clock.now()
    for _ in range(60):
        h.cycle(advance=MINUTE)
    end = h.clock.now()
    names = h.sim.fleet.thing_names()
    events = h.sim.ground_truth()
    expected = truth(events, names, start, end)
    per_thing = sessions(events, start)
    got = connected_seconds(h)
    for name in names:
        assert abs(got[name] - expected[name]) <= MINUTE * (per_thing[name] + 1), name
    assert sum(per_thing.values()) > 100
