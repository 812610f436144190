"""Time connected and session lengths, in a table: the counter never goes back."""

from __future__ import annotations

import pytest

from exporter.fleet.connectivity import FleetState, Observation
from exporter.fleet.uptime import SESSION_BUCKETS, SessionDurations, accrued
from tests.support.replay import replay

T0 = 1_700_000_000.0


def up(at: float, since: float) -> Observation:
    return Observation.ok("t", at, connected=True, timestamp=since)


def down(at: float, since: float | None, reason: str = "CONNECTION_LOST") -> Observation:
    return Observation.ok("t", at, connected=False, timestamp=since, reason=reason)


def event(at: float, ts: float, version: int, *, connected: bool) -> Observation:
    return Observation.event(
        "t", at, connected=connected, timestamp=ts, version=version, reason="CONNECTION_LOST"
    )


@pytest.mark.parametrize(
    ("observations", "seconds"),
    [
        pytest.param([up(T0, T0 - 500)], 0.0, id="first sight counts nothing of the past"),
        pytest.param([up(T0, T0 - 500), up(T0 + 60, T0 - 500)], 60.0, id="up for a poll"),
        pytest.param(
            [up(T0, T0 - 500), down(T0 + 60, T0 + 20)], 20.0, id="closed at AWS's disconnect"
        ),
        pytest.param(
            [down(T0, T0 - 5), up(T0 + 60, T0 + 30), up(T0 + 120, T0 + 30)],
            90.0,
            id="from AWS's connect time",
        ),
        pytest.param(
            [up(T0, T0 - 5), up(T0 + 60, T0 - 5), down(T0 + 120, T0 + 30)],
            60.0,
            id="a disconnect dated before the cursor takes nothing back",
        ),
        pytest.param(
            [down(T0, None), up(T0 + 60, T0 + 10)], 50.0, id="a first connect after first sight"
        ),
        pytest.param(
            [up(T0, T0 - 5), Observation.failed("t", T0 + 60, "Throttling"), up(T0 + 120, T0 - 5)],
            120.0,
            id="a failed poll pauses nothing: the next one catches up",
        ),
        pytest.param(
            [up(T0, T0 - 5), up(T0 + 60, T0 + 30)], 60.0, id="an unseen flap counts (bounded)"
        ),
    ],
)
def test_connected_seconds_under_polling(observations: list[Observation], seconds: float) -> None:
    assert replay(*observations).connected_seconds == seconds


def test_events_count_from_their_own_times_whenever_they_arrive() -> None:
    # A minute's events applied at once, at its end: the connect does not vouch for the
    # time after the disconnect that follows it.
    state = replay(
        down(T0, T0 - 5),
        event(T0 + 60, T0 + 10, 1, connected=True),
        event(T0 + 60, T0 + 25, 1, connected=False),
        events=True,
    )
    assert state.connected_seconds == 15.0
    assert state.uptime_cursor is None


def test_accrued_never_takes_back() -> None:
    seconds, cursor = accrued(
        100.0, T0, known=True, was_at=T0 - 50, connected=False, timestamp=T0 - 30, at=T0 + 5
    )
    assert (seconds, cursor) == (100.0, None)


def test_a_session_length_is_aws_disconnect_minus_its_connect() -> None:
    fleet = FleetState(["CONNECTION_LOST"])
    fleet.apply([up(T0, T0 - 500)])
    fleet.apply([down(T0 + 60, T0 + 20)])
    fleet.apply([up(T0 + 120, T0 + 100)])
    fleet.apply([down(T0 + 180, T0 + 104, "DUPLICATE_CLIENTID")])
    durations = fleet.session_durations
    assert durations.sums == {"CONNECTION_LOST": 520.0, "DUPLICATE_CLIENTID": 4.0}
    assert sum(durations.buckets["CONNECTION_LOST"]) == 1
    assert durations.buckets["DUPLICATE_CLIENTID"][SESSION_BUCKETS.index(5.0)] == 1


def test_a_disconnect_seen_again_is_no_second_session() -> None:
    fleet = FleetState(["CONNECTION_LOST"], events=True)
    fleet.apply([up(T0, T0 - 500)])
    fleet.apply([down(T0 + 60, T0 + 20)])  # the poll shows it first
    fleet.apply([event(T0 + 61, T0 + 20, 3, connected=False)])  # then the event
    assert sum(fleet.session_durations.buckets["CONNECTION_LOST"]) == 1


def test_each_known_reason_starts_at_zero_and_a_new_one_joins() -> None:
    durations = SessionDurations(["A", "B"])
    durations.observe("C", 1e9)
    assert set(durations.buckets) == {"A", "B", "C"}
    assert durations.buckets["C"][-1] == 1  # past the last bound: +Inf only
