"""Counting rules and state transitions of the fleet, as tables."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from exporter.fleet.connectivity import (
    MISSING_REASON,
    UNOBSERVED_FLAP,
    FleetState,
    Observation,
    Outcome,
    ThingState,
    is_fresh,
    transition,
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


def test_forget_removes_things_but_keeps_fleet_counters() -> None:
    fleet = FleetState()
    fleet.apply([Observation.ok(n, T0, connected=True, timestamp=1) for n in ("a", "b")])
    fleet.apply([Observation.ok("a", T0, connected=False, timestamp=2, reason="AUTH_ERROR")])
    fleet.forget(["a", "never-seen"])
    assert set(fleet.things) == {"b"}
    assert fleet.fleet_disconnects["AUTH_ERROR"] == 1


def test_observations_of_things_no_source_targets_are_ignored() -> None:
    fleet = FleetState()
    summary = fleet.apply(
        [
            Observation.ok("a", T0, connected=True, timestamp=1),
            Observation.ok("gone", T0, connected=True, timestamp=1),
        ],
        targeted=lambda name: name != "gone",
    )
    assert set(fleet.things) == {"a"}
    assert (summary.observed, summary.ignored) == (1, 1)


def test_the_index_dropping_a_long_disconnect_s_details_changes_nothing() -> None:
    # AWS's index forgets the timestamp and reason of a thing disconnected for about an
    # hour; that is no new disconnect, and the details the exporter holds stay true.
    held = known(connected=False, ts=100, reason="AUTH_ERROR")
    state, counted = transition(held, Observation.ok("t", T0 + 3600, connected=False))
    assert counted is None
    assert (state.connected, state.timestamp, state.reason) == (False, 100, "AUTH_ERROR")
    assert state.last_success_at == T0 + 3600
    # A live answer with the same event afterwards counts nothing either.
    state, counted = transition(state, down(100, "AUTH_ERROR"))
    assert counted is None


def test_a_lagging_index_interleaved_with_live_answers_never_counts_twice() -> None:
    live, index = "live", "index"
    # (who answers, connected, timestamp): the thing drops at 200 and is back at 300; the
    # index shows each change late and is asked in between the live polls.
    answers = [
        (live, True, 100.0),
        (index, True, 100.0),
        (live, False, 200.0),
        (index, True, 100.0),  # lagging: older than held, ignored
        (index, False, 200.0),  # caught up: the same event, nothing new
        (live, True, 300.0),
        (index, False, 200.0),  # lagging again
        (index, True, 300.0),
        (live, True, 300.0),
    ]
    fleet = FleetState()
    for at, (_, connected, timestamp) in enumerate(answers):
        reason = None if connected else "CONNECTION_LOST"
        fleet.apply(
            [Observation.ok("t", T0 + at, connected=connected, timestamp=timestamp, reason=reason)]
        )
    assert fleet.things["t"].disconnects == {"CONNECTION_LOST": 1}
    assert fleet.things["t"].connected
    assert {who for who, _, _ in answers} == {live, index}


def test_batch_summaries_add_up() -> None:
    fleet = FleetState()
    first = fleet.apply([Observation.failed("a", T0, "ResourceNotFoundException", not_found=True)])
    second = fleet.apply(
        [
            Observation.failed("a", T0, "ResourceNotFoundException", not_found=True),
            Observation.ok("b", T0, connected=True, timestamp=1),
        ]
    )
    both = first + second
    assert (both.observed, both.succeeded, both.failed, both.not_found) == (3, 1, 2, 1)
    assert both.error_codes == {"ResourceNotFoundException": 2}


@pytest.mark.parametrize(
    ("last_success_at", "now", "fresh"),
    [(None, T0, False), (T0, T0 + 299, True), (T0, T0 + 300, True), (T0, T0 + 301, False)],
)
def test_staleness_window(last_success_at: float | None, now: float, fresh: bool) -> None:
    state = ThingState(last_success_at=last_success_at)
    assert is_fresh(state, now, staleness=300) is fresh
