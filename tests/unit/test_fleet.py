"""Counting rules and state transitions of the fleet, as tables."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from exporter.fleet import (
    MISSING_REASON,
    UNOBSERVED_FLAP,
    FleetState,
    Observation,
    Outcome,
    ThingState,
    is_fresh,
    transition,
    went_stale_between,
)

T0 = 1_700_000_000.0


def up(ts: float | None) -> Observation:
    return Observation.ok("t", T0, connected=True, timestamp=ts)


def down(ts: float | None, reason: str | None = "CONNECTION_LOST") -> Observation:
    return Observation.ok("t", T0, connected=False, timestamp=ts, reason=reason)


def known(*, connected: bool, ts: float | None, reason: str | None = None) -> ThingState:
    return ThingState(connected=connected, timestamp=ts, reason=reason, last_success_at=T0)


@dataclass(frozen=True)
class Case:
    name: str
    previous: ThingState | None
    observation: Observation
    counted: str | None
    connected: bool


CASES = [
    Case("first sight connected counts nothing", None, up(100), None, True),
    Case("first sight disconnected counts nothing", None, down(100), None, False),
    Case("first sight never connected", None, down(None, None), None, False),
    Case(
        "connected then disconnected counts reason",
        known(connected=True, ts=100),
        down(200, "AUTH_ERROR"),
        "AUTH_ERROR",
        False,
    ),
    Case(
        "disconnected, newer disconnect counts again",
        known(connected=False, ts=100),
        down(200, "THROTTLED"),
        "THROTTLED",
        False,
    ),
    Case(
        "disconnected, same timestamp counts nothing",
        known(connected=False, ts=100),
        down(100),
        None,
        False,
    ),
    Case(
        "disconnected then connected counts nothing",
        known(connected=False, ts=100),
        up(200),
        None,
        True,
    ),
    Case(
        "connected, same timestamp counts nothing",
        known(connected=True, ts=100),
        up(100),
        None,
        True,
    ),
    Case(
        "connected, newer timestamp is an unseen flap",
        known(connected=True, ts=100),
        up(200),
        UNOBSERVED_FLAP,
        True,
    ),
    Case(
        "unknown new AWS reason passes through",
        known(connected=True, ts=100),
        down(200, "SOME_NEW_REASON"),
        "SOME_NEW_REASON",
        False,
    ),
    Case(
        "disconnect without reason counts UNKNOWN",
        known(connected=True, ts=100),
        down(200, None),
        MISSING_REASON,
        False,
    ),
    Case(
        "never connected to connected counts nothing",
        known(connected=False, ts=None),
        up(200),
        None,
        True,
    ),
    Case(
        "never connected stays so", known(connected=False, ts=None), down(None, None), None, False
    ),
    Case(
        "recreated thing (timestamp gone) counts nothing",
        known(connected=True, ts=100),
        down(None, None),
        None,
        False,
    ),
    Case("older answer than held is ignored", known(connected=True, ts=200), down(100), None, True),
    Case(
        "unknown previous (failed polls only) counts nothing",
        ThingState(last_error="Timeout"),
        down(200),
        None,
        False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transition_counts_by_the_rules(case: Case) -> None:
    state, counted = transition(case.previous, case.observation)
    assert counted == case.counted
    assert state.connected is case.connected
    assert state.known
    assert state.last_error is None
    if case.counted is not None:
        before = case.previous.disconnects.get(case.counted, 0) if case.previous else 0
        assert state.disconnects[case.counted] == before + 1


@pytest.mark.parametrize(
    ("observation", "error"),
    [
        (Observation.failed("t", T0 + 60, "ThrottlingException"), "ThrottlingException"),
        (
            Observation.failed("t", T0 + 60, "ResourceNotFoundException", not_found=True),
            "ResourceNotFoundException",
        ),
        (Observation.failed("t", T0 + 60, "Timeout"), "Timeout"),
        # A failure without a code still reads as a failure, never as a success.
        (Observation("t", Outcome.ERROR, T0 + 60), "Unknown"),
    ],
)
def test_failed_poll_keeps_connectivity_and_marks_failure(
    observation: Observation, error: str
) -> None:
    previous = known(connected=True, ts=100)
    state, counted = transition(previous, observation)
    assert counted is None
    assert (state.connected, state.timestamp, state.known) == (True, 100, True)
    assert state.last_error == error
    assert state.last_success_at == T0  # unchanged: the failure is not a success


def test_known_only_after_a_successful_poll() -> None:
    state, _ = transition(None, Observation.failed("t", T0, "Timeout"))
    assert not state.known
    state, _ = transition(state, up(100))
    assert state.known
    state, _ = transition(state, Observation.failed("t", T0 + 60, "Timeout"))
    assert state.known  # a later failure does not forget what a success established


def test_reason_kept_only_while_disconnected() -> None:
    state, _ = transition(known(connected=True, ts=100), down(200, "AUTH_ERROR"))
    assert state.reason == "AUTH_ERROR"
    state, _ = transition(state, up(300))
    assert state.reason is None


def test_fleet_counts_every_reason_from_zero_and_sums_things() -> None:
    fleet = FleetState(["AUTH_ERROR", "CONNECTION_LOST"])
    assert fleet.fleet_disconnects == {"AUTH_ERROR": 0, "CONNECTION_LOST": 0, UNOBSERVED_FLAP: 0}
    fleet.apply([Observation.ok(n, T0, connected=True, timestamp=1) for n in ("a", "b")])
    summary = fleet.apply(
        [
            Observation.ok("a", T0 + 60, connected=False, timestamp=2, reason="AUTH_ERROR"),
            Observation.ok("b", T0 + 60, connected=True, timestamp=3),
            Observation.failed("c", T0 + 60, "ResourceNotFoundException", not_found=True),
        ]
    )
    assert summary.counted == {"AUTH_ERROR": 1, UNOBSERVED_FLAP: 1}
    assert (summary.observed, summary.succeeded, summary.failed, summary.not_found) == (3, 2, 1, 1)
    assert summary.error_codes == {"ResourceNotFoundException": 1}
    assert summary.not_found_names == {"c"}
    assert fleet.fleet_disconnects["AUTH_ERROR"] == 1
    assert fleet.things["a"].disconnects == {"AUTH_ERROR": 1}


def test_restart_never_counts_twice() -> None:
    # A fresh FleetState (a restarted exporter) seeing a thing that dropped long ago.
    fleet = FleetState()
    fleet.apply([Observation.ok("a", T0, connected=False, timestamp=1, reason="AUTH_ERROR")])
    fleet.apply([Observation.ok("a", T0 + 60, connected=False, timestamp=1, reason="AUTH_ERROR")])
    assert fleet.things["a"].disconnects == {}


def test_retain_forgets_removed_things_but_keeps_fleet_counters() -> None:
    fleet = FleetState()
    fleet.apply([Observation.ok(n, T0, connected=True, timestamp=1) for n in ("a", "b")])
    fleet.apply([Observation.ok("a", T0, connected=False, timestamp=2, reason="AUTH_ERROR")])
    assert fleet.retain(["b"]) == ["a"]
    assert set(fleet.things) == {"b"}
    assert fleet.fleet_disconnects["AUTH_ERROR"] == 1


@pytest.mark.parametrize(
    ("last_success_at", "now", "fresh"),
    [(None, T0, False), (T0, T0 + 299, True), (T0, T0 + 300, True), (T0, T0 + 301, False)],
)
def test_staleness_window(last_success_at: float | None, now: float, fresh: bool) -> None:
    state = ThingState(last_success_at=last_success_at)
    assert is_fresh(state, now, staleness=300) is fresh


@pytest.mark.parametrize(
    ("state", "since", "until", "went_stale"),
    [
        # Shown at the last render, past the window now: a new render would withdraw it.
        (ThingState(last_success_at=T0), T0 + 300, T0 + 301, True),
        (ThingState(last_success_at=T0), T0 + 10, T0 + 900, True),
        # Still inside the window: nothing would change.
        (ThingState(last_success_at=T0), T0 + 10, T0 + 300, False),
        # Already withdrawn at the last render: withdrawing again changes nothing.
        (ThingState(last_success_at=T0), T0 + 301, T0 + 900, False),
        # Never shown: never polled successfully, whether never polled or only failing.
        (ThingState(), T0 + 10, T0 + 900, False),
        (ThingState(last_error="Timeout"), T0 + 10, T0 + 900, False),
    ],
)
def test_went_stale_between_renders(
    state: ThingState, since: float, until: float, went_stale: bool
) -> None:
    fresh_elsewhere = ThingState(last_success_at=until)
    assert went_stale_between([fresh_elsewhere, state], since, until, staleness=300) is went_stale
