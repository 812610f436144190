"""Counting fidelity: the exporter's disconnect counters against the simulator's ground truth.

A lively fleet (sessions of minutes, offline spells shorter than a poll interval) is
polled every simulated minute for an hour. For every thing and every
interval between two polls the ground truth says what polling could and could not see:

- a disconnect still in force at the next poll must be counted once, with its reason;
- a thing connected at both polls with disconnects in between shows only a newer
  timestamp: it must be counted once as an unobserved flap;
- a thing disconnected at one poll that reconnects, drops and reconnects again before the
  next looks exactly like one reconnect: nothing can be counted (docs/metrics.md says so);
- nothing is ever counted twice.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from dataclasses import dataclass

import pytest

from exporter.fleet.connectivity import UNOBSERVED_FLAP
from iot_simulator import Event, Simulator, SimulatorConfig
from tests.support.harness import HarnessFactory, Samples, series

POLL_INTERVAL = 60.0
CYCLES = 60


@dataclass
class Expected:
    counts: Counter[str]
    hidden: int  # true disconnects no poll can see


def connected_at(events: list[Event], times: list[float], when: float) -> bool:
    """The thing's state at `when` per ground truth (never connected: False)."""
    index = bisect.bisect_right(times, when)
    return index > 0 and events[index - 1].kind == "connect"


def expected_for(sim: Simulator, name: str, polls: list[float]) -> Expected:
    events = sim.ground_truth(thing_name=name)
    times = [e.time for e in events]
    counts: Counter[str] = Counter()
    hidden = 0
    for previous, current in itertools.pairwise(polls):
        inside = [e for e in events if previous < e.time <= current and e.kind == "disconnect"]
        if not inside:
            continue
        if not connected_at(events, times, current):
            counts[inside[-1].reason or "UNKNOWN"] += 1
            hidden += len(inside) - 1
        elif connected_at(events, times, previous):
            counts[UNOBSERVED_FLAP] += 1
            hidden += len(inside) - 1
        else:
            hidden += len(inside)
    return Expected(counts, hidden)


def counted_for(samples: Samples, name: str) -> Counter[str]:
    counted: Counter[str] = Counter()
    for labels, value in series(samples, "iot_thing_disconnects_total").items():
        label_map = dict(labels)
        if label_map["thing_name"] == name:
            counted[label_map["reason"]] = int(value)
    return counted


@pytest.mark.scenario
def test_counts_match_ground_truth(harness: HarnessFactory) -> None:
    sim_config = SimulatorConfig(
        things=100,
        seed=21,
        quotas=False,
        mean_session_seconds=300.0,
        mean_offline_seconds=50.0,
        never_connected_fraction=0.05,
        duplicate_clientid_things=3,
    )
    h = harness(sim_config)
    polls = [h.clock.now()]
    h.cycle()
    for _ in range(CYCLES):
        h.cycle(advance=POLL_INTERVAL)
        polls.append(h.clock.now())
    samples = h.samples()

    totals: Counter[str] = Counter()
    hidden_total = 0
    for name in h.sim.fleet.thing_names():
        expected = expected_for(h.sim, name, polls)
        assert counted_for(samples, name) == expected.counts, name
        totals.update(expected.counts)
        hidden_total += expected.hidden

    # The fleet-wide counters are exactly the sum over things.
    fleet = {dict(k)["reason"]: int(v) for k, v in series(samples, "iot_disconnects_total").items()}
    assert {r: n for r, n in fleet.items() if n} == dict(totals)
    # The fleet really was lively: both kinds of event happened, and plenty of them.
    assert totals[UNOBSERVED_FLAP] > 50
    assert sum(n for r, n in totals.items() if r != UNOBSERVED_FLAP) > 500
    assert len([r for r in totals if r != UNOBSERVED_FLAP]) >= 5
    assert hidden_total > 20  # and flaps that no poll could see
    assert math.isclose(polls[-1] - polls[0], CYCLES * POLL_INTERVAL)
