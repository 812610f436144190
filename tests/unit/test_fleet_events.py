"""Event mode's counting rules as a table: sequences of events and polls against the counts.

docs/events.md shows the same cases to operators.
"""

from dataclasses import dataclass

import pytest

from exporter.fleet.connectivity import (
    MISSED_GRACE_SECONDS,
    UNOBSERVED_FLAP,
    FleetState,
    Observation,
    ThingState,
    event_is_newer,
)

T = 1_700_000_000.0
NAME = "pump-7"


def poll(
    at: float, connected: bool, timestamp: float | None, reason: str | None = None
) -> Observation:
    return Observation.ok(NAME, at, connected=connected, timestamp=timestamp, reason=reason)


def up(at: float, version: int, *, first: bool = True) -> Observation:
    return Observation.event(
        NAME, at, connected=True, timestamp=at, version=version, first_delivery=first
    )


def down(
    ts: float, version: int, reason: str = "CONNECTION_LOST", *, first: bool = True, seen: float = 0
) -> Observation:
    return Observation.event(
        NAME,
        max(ts, seen),
        connected=False,
        timestamp=ts,
        version=version,
        reason=reason,
        first_delivery=first,
    )


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[Observation]
    disconnects: dict[str, int]
    connected: bool
    missed: int = 0
    stale: int = 0


CASES = [
    Case(
        "a disconnect event counts with AWS's reason, even on first sight",
        [down(T, 1, "MQTT_KEEP_ALIVE_TIMEOUT")],
        {"MQTT_KEEP_ALIVE_TIMEOUT": 1},
        connected=False,
    ),
    Case(
        "flaps between polls each count with their reason; no unobserved_flap",
        [
            poll(T, True, T - 100),
            down(T + 1, 1, "CLIENT_ERROR"),
            up(T + 1.2, 2),
            down(T + 2, 2, "DUPLICATE_CLIENTID"),
            up(T + 2.01, 3),
            poll(T + 60, True, T + 2.01),
        ],
        {"CLIENT_ERROR": 1, "DUPLICATE_CLIENTID": 1},
        connected=True,
    ),
    Case(
        "a duplicate delivery counts nothing",
        [down(T, 1), down(T, 1, first=False)],
        {"CONNECTION_LOST": 1},
        connected=False,
        stale=1,
    ),
    Case(
        "reordered: the disconnect after the next connect counts but does not show",
        [up(T, 1), up(T + 5, 2), down(T + 3, 1, seen=T + 6)],
        {"CONNECTION_LOST": 1},
        connected=True,
        stale=1,
    ),
    Case(
        "within the timestamp skew, versionNumber orders (a late clock on the connect)",
        [down(T + 10, 1), up(T + 5, 2)],
        {"CONNECTION_LOST": 1},
        connected=True,
    ),
    Case(
        "the connect and disconnect of one connection: the disconnect is newer",
        [down(T + 10, 4), up(T + 10, 4)],
        {"CONNECTION_LOST": 1},
        connected=False,
        stale=1,
    ),
    Case(
        "versionNumber reset after an hour disconnected: the timestamp orders",
        [up(T, 40), down(T + 10, 40), up(T + 3700, 1)],
        {"CONNECTION_LOST": 1},
        connected=True,
    ),
    Case(
        "a poll that saw the disconnect first: the late event counts it, once",
        [
            poll(T, True, T - 100),
            poll(T + 60, False, T + 50, "CLIENT_ERROR"),
            down(T + 50, 7, "CLIENT_ERROR", seen=T + 61),
            poll(T + 120, False, T + 50, "CLIENT_ERROR"),
        ],
        {"CLIENT_ERROR": 1},
        connected=False,
    ),
    Case(
        "a stale poll (a lagging index) never overwrites an event's newer state",
        [down(T, 1), up(T + 10, 2), poll(T + 20, False, T, "CONNECTION_LOST")],
        {"CONNECTION_LOST": 1},
        connected=True,
    ),
    Case(
        "events missed a disconnect: the next poll after the grace counts it, as missed",
        [
            poll(T, True, T - 100),
            poll(T + 60, False, T + 50, "CLIENT_ERROR"),
            poll(T + 60 + MISSED_GRACE_SECONDS, False, T + 50, "CLIENT_ERROR"),
        ],
        {"CLIENT_ERROR": 1},
        connected=False,
        missed=1,
    ),
    Case(
        "events missed a whole flap: polling's unobserved_flap, as missed",
        [
            up(T, 1),
            poll(T + 60, True, T + 55),
            poll(T + 120, True, T + 55),
        ],
        {UNOBSERVED_FLAP: 1},
        connected=True,
        missed=1,
    ),
    Case(
        "a poll that saw a flap first: the late events count it and clear the flap",
        [
            up(T, 1),
            poll(T + 60, True, T + 55),
            down(T + 50, 1, "CLIENT_ERROR", seen=T + 61),
            up(T + 55, 2),
            poll(T + 120, True, T + 55),
        ],
        {"CLIENT_ERROR": 1},
        connected=True,
        stale=1,
    ),
    Case(
        "a poll within the grace waits; the event arrives before the next",
        [
            poll(T, True, T - 100),
            poll(T + 10, False, T + 5),
            poll(T + 20, False, T + 5),
            down(T + 5, 3, seen=T + 25),
            poll(T + 80, False, T + 5),
        ],
        {"CONNECTION_LOST": 1},
        connected=False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_event_mode(case: Case) -> None:
    fleet = FleetState(events=True)
    missed = stale = 0
    for observation in case.steps:
        summary = fleet.apply([observation])
        missed += summary.missed
        stale += summary.stale
    state = fleet.things[NAME]
    assert dict(state.disconnects) == case.disconnects
    assert {k: v for k, v in fleet.fleet_disconnects.items() if v} == case.disconnects
    assert state.connected is case.connected
    assert (missed, stale) == (case.missed, case.stale)


def test_without_events_a_poll_counts_at_once() -> None:
    fleet = FleetState()
    fleet.apply([poll(T, True, T - 100)])
    summary = fleet.apply([poll(T + 60, True, T + 55)])
    assert summary.counted == {UNOBSERVED_FLAP: 1}


def test_events_for_untargeted_things_are_ignored() -> None:
    fleet = FleetState(events=True)
    summary = fleet.apply([down(T, 1)], targeted=lambda name: False)
    assert (summary.ignored, summary.observed, dict(fleet.fleet_disconnects)) == (
        1,
        0,
        {UNOBSERVED_FLAP: 0},
    )


NEWER = [
    ("no state yet", ThingState(), up(T, 1), True),
    ("poll-set, same time", ThingState(True, T, last_success_at=T), down(T, 1), True),
    ("poll-set, older event", ThingState(True, T, last_success_at=T), down(T - 1, 1), False),
    (
        "event-set, higher version",
        ThingState(False, T, version=3, last_success_at=T),
        up(T - 60, 4),
        True,
    ),
    (
        "event-set, same version",
        ThingState(False, T, version=3, last_success_at=T),
        up(T - 60, 3),
        False,
    ),
    (
        "event-set, same event",
        ThingState(False, T, version=3, last_success_at=T),
        down(T, 3),
        False,
    ),
    (
        "event-set, far newer, reset",
        ThingState(False, T, version=30, last_success_at=T),
        up(T + 3600, 1),
        True,
    ),
    (
        "event-set, far older",
        ThingState(False, T, version=3, last_success_at=T),
        up(T - 3600, 9),
        False,
    ),
]


@pytest.mark.parametrize(
    ("state", "event", "newer"), [c[1:] for c in NEWER], ids=[c[0] for c in NEWER]
)
def test_event_is_newer(state: ThingState, event: Observation, newer: bool) -> None:
    assert event_is_newer(state, event) is newer
