"""metrics.per_thing: problems, rule by rule: enter, stay, leave, the window, the cap, the order."""

from __future__ import annotations

import pytest

from exporter.exposition.series import Exposition, Shape
from exporter.fleet.connectivity import FleetState, Observation, ThingState, in_trouble, step
from exporter.fleet.problems import ranked
from exporter.fleet.targets import Found, SourceSlot, Targets
from tests.support.harness import parse_samples, series

T0 = 1_700_000_000.0
WINDOW = 3600.0


def up(name: str, at: float, ts: float = T0) -> Observation:
    return Observation.ok(name, at, connected=True, timestamp=ts)


def down(name: str, at: float, ts: float = T0 + 10, reason: str = "CONNECTION_LOST") -> Observation:
    return Observation.ok(name, at, connected=False, timestamp=ts, reason=reason)


def never(name: str, at: float) -> Observation:
    return Observation.ok(name, at, connected=False)


def failed(name: str, at: float) -> Observation:
    return Observation.failed(name, at, "Timeout")


@pytest.mark.parametrize(
    ("state", "trouble"),
    [
        (ThingState(), False),  # nothing known yet
        (ThingState(connected=True, timestamp=T0, last_success_at=T0), False),
        (ThingState(connected=False, timestamp=T0, last_success_at=T0), True),
        (ThingState(connected=False, last_success_at=T0), False),  # never connected
        (ThingState(connected=True, timestamp=T0, last_error="Timeout"), True),
        (ThingState(last_error="ResourceNotFoundException"), True),
    ],
    ids=["unknown", "connected", "disconnected", "never-connected", "failing", "not-found"],
)
def test_in_trouble(state: ThingState, trouble: bool) -> None:
    assert in_trouble(state) is trouble


@pytest.mark.parametrize(
    ("observations", "trouble_at"),
    [
        ([up("t", T0)], None),  # first sight, healthy
        ([never("t", T0)], None),  # provisioned, never connected
        ([up("t", T0), down("t", T0 + 60)], T0 + 60),  # enters on a disconnect
        ([down("t", T0)], T0),  # first sight disconnected
        ([down("t", T0), down("t", T0 + 60)], T0 + 60),  # stays: each sight renews it
        ([down("t", T0), up("t", T0 + 60, ts=T0 + 30)], T0 + 60),  # leaves: the window runs
        ([down("t", T0), up("t", T0 + 60, ts=T0 + 30), up("t", T0 + 120, ts=T0 + 30)], T0 + 60),
        ([up("t", T0), failed("t", T0 + 60)], T0 + 60),  # a failed observation
        ([up("t", T0), up("t", T0 + 60, ts=T0 + 30)], T0 + 60),  # a flap polling could not see
    ],
    ids=[
        "healthy",
        "never-connected",
        "disconnects",
        "first-sight-down",
        "stays-down",
        "comes-back",
        "well-since",
        "poll-fails",
        "unseen-flap",
    ],
)
def test_trouble_at_marks_the_last_trouble(
    observations: list[Observation], trouble_at: float | None
) -> None:
    state: ThingState | None = None
    for observation in observations:
        state = step(state, observation, events=False).state
    assert state is not None
    assert state.trouble_at == trouble_at


def fleet_with(*observations: Observation) -> FleetState:
    fleet = FleetState()
    fleet.apply(observations)
    return fleet


def listed(fleet: FleetState, now: float) -> set[str]:
    return {name for name, _ in fleet.problems(now, WINDOW)}


def test_a_recovered_thing_stays_listed_for_the_window_then_leaves_for_good() -> None:
    fleet = fleet_with(down("t", T0), up("t", T0 + 60, ts=T0 + 30))
    assert listed(fleet, T0 + 60 + WINDOW) == {"t"}  # the window's last instant
    assert listed(fleet, T0 + 60 + WINDOW + 1) == set()
    assert "t" not in fleet.troubled  # pruned: the next render does not look at it again
    fleet.apply([down("t", T0 + 9000, ts=T0 + 8000)])
    assert listed(fleet, T0 + 9000) == {"t"}  # back on its next trouble


def test_a_thing_in_trouble_stays_listed_past_the_window() -> None:
    fleet = fleet_with(down("t", T0))
    assert listed(fleet, T0 + 10 * WINDOW) == {"t"}


def test_never_connected_and_healthy_things_are_not_listed() -> None:
    fleet = fleet_with(never("new", T0), up("ok", T0), down("off", T0), failed("ghost", T0))
    assert listed(fleet, T0) == {"off", "ghost"}


def test_a_forgotten_thing_leaves_the_list() -> None:
    fleet = fleet_with(down("t", T0))
    fleet.forget(["t"])
    assert listed(fleet, T0) == set()


def state_of(**fields: object) -> ThingState:
    return ThingState(last_success_at=T0, **fields)  # type: ignore[arg-type]


def test_over_the_cap_the_longest_disconnected_come_first_and_the_rest_are_counted() -> None:
    problems = [
        ("recent-down", state_of(connected=False, timestamp=T0 + 500, trouble_at=T0 + 600)),
        ("long-down", state_of(connected=False, timestamp=T0, trouble_at=T0 + 600)),
        ("failing", state_of(connected=True, timestamp=T0, last_error="Timeout", trouble_at=T0)),
        ("back-early", state_of(connected=True, timestamp=T0, trouble_at=T0 + 100)),
        ("back-late", state_of(connected=True, timestamp=T0, trouble_at=T0 + 300)),
    ]
    kept, left_out = ranked(problems, 4)
    assert [name for name, _ in kept] == ["long-down", "recent-down", "failing", "back-late"]
    assert left_out == 0  # back-early did not fit, but is no longer in trouble
    kept, left_out = ranked(problems, 2)
    assert [name for name, _ in kept] == ["long-down", "recent-down"]
    assert left_out == 1  # failing
    everything, none_left = ranked(problems, 5)
    assert len(everything) == 5
    assert none_left == 0


def render(
    fleet: FleetState, names: list[str], now: float, cap: int = 10
) -> tuple[dict[str, float], int, int]:
    targets = Targets([SourceSlot("static", live=True, max_things=None)])
    targets.extend("static", [Found(name) for name in names])
    shape = Shape(staleness=10 * WINDOW, per_thing="problems", max_problem_things=cap)
    rendered = Exposition(shape).render(targets, fleet, {}, now)
    by_thing = {
        dict(labels)["thing_name"]: value
        for labels, value in series(parse_samples(rendered.text), "iot_thing_connected").items()
    }
    return by_thing, rendered.problems, rendered.left_out


def test_the_page_lists_only_problems_and_says_when_one_leaves() -> None:
    fleet = fleet_with(up("ok", T0), down("off", T0), down("back", T0), never("new", T0))
    fleet.apply([up("back", T0 + 60, ts=T0 + 30)])
    shown, problems, left_out = render(fleet, ["ok", "off", "back", "new"], T0 + 60)
    assert shown == {"off": 0.0, "back": 1.0}
    assert (problems, left_out) == (2, 0)
    targets = Targets([SourceSlot("static", live=True, max_things=None)])
    targets.extend("static", [Found(n) for n in ("ok", "off", "back", "new")])
    shape = Shape(staleness=10 * WINDOW, per_thing="problems")
    rendered = Exposition(shape).render(targets, fleet, {}, T0 + 60)
    assert rendered.stale_at == T0 + 60 + WINDOW  # when "back" leaves the page


def test_a_capped_page_counts_what_it_left_out() -> None:
    # Names sort the other way from the disconnect times: the page must follow the times.
    fleet = fleet_with(*(down(f"t{i}", T0, ts=T0 + 10 - i) for i in range(5)))
    shown, problems, left_out = render(fleet, [f"t{i}" for i in range(5)], T0, cap=3)
    assert set(shown) == {"t4", "t3", "t2"}  # disconnected longest
    assert (problems, left_out) == (3, 2)


def test_things_that_came_back_and_did_not_fit_are_not_left_out() -> None:
    """Left out counts things still in trouble: after an outage ends, nothing pages."""
    fleet = fleet_with(*(down(f"t{i}", T0) for i in range(6)))
    fleet.apply([up(f"t{i}", T0 + 60, ts=T0 + 30) for i in range(6)])
    shown, problems, left_out = render(fleet, [f"t{i}" for i in range(6)], T0 + 60, cap=4)
    assert (problems, left_out) == (4, 0)
    assert set(shown.values()) == {1.0}


def test_a_pruned_thing_healthy_ever_since_is_not_looked_at_again() -> None:
    fleet = fleet_with(down("t", T0), up("t", T0 + 60, ts=T0 + 30))
    assert listed(fleet, T0 + 60 + WINDOW + 1) == set()
    fleet.apply([up("t", T0 + 9000, ts=T0 + 30)])  # still healthy: nothing new
    assert "t" not in fleet.troubled
