"""Rollups: counts by segment that move with every change, and always equal a recount."""

from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from exporter.fleet.connectivity import Observation, mismatched
from exporter.fleet.rollups import OTHER, RollupSpec
from exporter.fleet.sessions import Session
from exporter.fleet.shared import SharedState, Snapshot
from exporter.fleet.targets import Found, RegistryInfo, SourceSlot

T0 = 1_700_000_000.0
INFO = ("thing_type", "site")
GROUP_A, GROUP_B, TYPES = "thing_group:a", "thing_group:b", "thing_type:all"
SLOTS = [
    SourceSlot(GROUP_A, live=False, max_things=None, group="a"),
    SourceSlot(GROUP_B, live=False, max_things=None, group="b"),
    SourceSlot(TYPES, live=False, max_things=None),
]


def shared(labels: tuple[str, ...], **spec: object) -> SharedState:
    state = SharedState(["CONNECTION_LOST"], clock=lambda: T0)
    state.configure(
        SLOTS,
        (),
        events=False,
        aggregates=(),
        rollups=RollupSpec(labels=labels, info_labels=INFO, **spec),  # type: ignore[arg-type]
    )
    return state


def info(thing_type: str, site: str) -> RegistryInfo:
    return RegistryInfo(thing_type, (site,))


def up(name: str, at: float, ts: float) -> Observation:
    return Observation.ok(name, at, connected=True, timestamp=ts)


def down(name: str, at: float, ts: float | None, reason: str = "CONNECTION_LOST") -> Observation:
    return Observation.ok(name, at, connected=False, timestamp=ts, reason=reason)


def counts(state: SharedState) -> dict[tuple[str, ...], tuple[int, int]]:
    """Each segment's (disconnected, connected), leaving out empty ones."""
    return {
        key: (s.disconnected, s.connected)
        for key, s in state.segments().items()
        if s.disconnected or s.connected
    }


def disconnects(state: SharedState) -> dict[tuple[str, ...], dict[str, int]]:
    return {
        key: {reason: n for reason, n in s.disconnects.items() if n}
        for key, s in state.segments().items()
        if any(s.disconnects.values())
    }


# -- the whole fleet, no labels --------------------------------------------------------------


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        pytest.param([], {}, id="targeted, never observed: not counted"),
        pytest.param([up("t", T0, T0 - 5)], {(): (0, 1)}, id="connected"),
        pytest.param([down("t", T0, T0 - 5)], {(): (1, 0)}, id="disconnected"),
        pytest.param([down("t", T0, None)], {(): (1, 0)}, id="never connected: disconnected"),
        pytest.param(
            [Observation.failed("t", T0, "Throttling")], {}, id="first poll failed: unknown"
        ),
        pytest.param(
            [up("t", T0, T0 - 5), Observation.failed("t", T0 + 60, "Throttling")],
            {(): (0, 1)},
            id="a failed poll keeps what was known",
        ),
        pytest.param([up("t", T0, T0 - 5), down("t", T0 + 60, T0 + 50)], {(): (1, 0)}, id="drops"),
        pytest.param(
            [down("t", T0, T0 - 5), up("t", T0 + 60, T0 + 50)], {(): (0, 1)}, id="comes back"
        ),
    ],
)
def test_the_whole_fleet_by_connectivity(
    observations: list[Observation], expected: dict[tuple[str, ...], tuple[int, int]]
) -> None:
    state = shared(())
    state.found(TYPES, [Found("t")])
    for observation in observations:
        state.observed([observation])
    assert counts(state) == expected


def test_a_thing_that_never_connected_is_counted_apart_until_it_connects() -> None:
    state = shared(())
    state.found(TYPES, [Found("t")])
    state.observed([down("t", T0, None)])
    assert state.segments()[()].never_connected == 1
    state.observed([up("t", T0 + 60, T0 + 50)])
    state.observed([down("t", T0 + 120, T0 + 110)])
    assert state.segments()[()].never_connected == 0
    assert counts(state) == {(): (1, 0)}


def test_an_untargeted_thing_is_not_counted_and_one_that_leaves_is_taken_out() -> None:
    state = shared(())
    state.found(TYPES, [Found("t"), Found("u")])
    state.observed([up("t", T0, T0 - 5), down("u", T0, T0 - 5), up("stranger", T0, T0)])
    assert counts(state) == {(): (1, 1)}
    state.settled(TYPES, {"t"})
    assert counts(state) == {(): (0, 1)}


# -- segments --------------------------------------------------------------------------------


def test_type_and_site_partition_the_fleet_and_disconnects_count_in_the_segment() -> None:
    state = shared(("thing_type", "site"))
    state.found(
        TYPES,
        [
            Found("s1", info("sensor", "north")),
            Found("s2", info("sensor", "north")),
            Found("g1", info("gateway", "north")),
            Found("s3", info("sensor", "south")),
        ],
    )
    state.observed([up(n, T0, T0 - 5) for n in ("s1", "s2", "g1", "s3")])
    state.observed([down("s2", T0 + 60, T0 + 50), down("s3", T0 + 60, T0 + 50, "AUTH_ERROR")])
    assert counts(state) == {
        ("sensor", "north"): (1, 1),
        ("gateway", "north"): (0, 1),
        ("sensor", "south"): (1, 0),
    }
    assert disconnects(state) == {
        ("sensor", "north"): {"CONNECTION_LOST": 1},
        ("sensor", "south"): {"AUTH_ERROR": 1},
    }
    # Every known reason starts at 0 in every segment, so increase() sees the first.
    assert state.segments()[("gateway", "north")].disconnects == {
        "CONNECTION_LOST": 0,
        "unobserved_flap": 0,
    }


def test_a_thing_whose_attributes_change_moves_with_its_state() -> None:
    state = shared(("site",))
    state.found(TYPES, [Found("t", info("sensor", "north"))])
    state.observed([down("t", T0, T0 - 5)])
    state.found(TYPES, [Found("t", info("sensor", "south"))])
    assert counts(state) == {("south",): (1, 0)}
    assert state.segments()[("north",)].disconnected == 0  # the segment stays, at 0


def test_a_thing_that_leaves_keeps_its_disconnects_in_the_counter() -> None:
    state = shared(("site",))
    state.found(TYPES, [Found("t", info("sensor", "north"))])
    state.observed([up("t", T0, T0 - 5)])
    state.observed([down("t", T0 + 60, T0 + 50)])
    state.settled(TYPES, set())
    assert counts(state) == {}
    assert disconnects(state) == {("north",): {"CONNECTION_LOST": 1}}


def test_a_thing_in_two_groups_counts_in_each_and_one_in_none_under_empty() -> None:
    state = shared(("thing_group",))
    state.found(GROUP_A, [Found("both"), Found("a-only")])
    state.found(GROUP_B, [Found("both")])
    state.found(TYPES, [Found("loner")])
    state.observed([up(n, T0, T0 - 5) for n in ("both", "a-only", "loner")])
    state.observed([down("both", T0 + 60, T0 + 50)])
    assert counts(state) == {("a",): (1, 1), ("b",): (1, 0), ("",): (0, 1)}
    assert disconnects(state) == {("a",): {"CONNECTION_LOST": 1}, ("b",): {"CONNECTION_LOST": 1}}
    # It leaves one group: counted in the other only.
    state.settled(GROUP_B, set())
    assert counts(state) == {("a",): (1, 1), ("",): (0, 1)}


def test_configured_labels_segment_the_static_list() -> None:
    state = shared(
        ("region",),
        static_labels={"region": "hq"},
        thing_labels={"far": {"region": "branch"}},
    )
    state.found(TYPES, [Found("near"), Found("far")])
    state.observed([up("near", T0, T0 - 5), down("far", T0, T0 - 5)])
    assert counts(state) == {("hq",): (0, 1), ("branch",): (1, 0)}


def test_over_the_cap_segments_fold_into_other_and_the_sum_is_the_fleet() -> None:
    state = shared(("site",), max_segments=2)
    sites = ["s0", "s1", "s2", "s3", "s2"]
    state.found(TYPES, [Found(f"t{i}", info("x", site)) for i, site in enumerate(sites)])
    state.observed([up(f"t{i}", T0, T0 - 5) for i in range(len(sites))])
    # First come, first kept; s2 and s3 fold (counted once each, however many things).
    assert counts(state) == {("s0",): (0, 1), ("s1",): (0, 1), (OTHER,): (0, 3)}
    with_lock = state.read(lambda snap: snap.fleet.rollups, aggregate_max_age=1)
    assert with_lock is not None
    assert (with_lock.shown, with_lock.dropped) == (2, 2)


# -- reloads ---------------------------------------------------------------------------------


def reconfigure(state: SharedState, labels: tuple[str, ...], slots: list[SourceSlot]) -> None:
    state.configure(
        slots,
        (),
        events=False,
        aggregates=(),
        rollups=RollupSpec(labels=labels, info_labels=INFO),
    )


def test_a_reload_with_the_same_labels_keeps_counters_and_order() -> None:
    state = shared(("site",))
    state.found(TYPES, [Found("t", info("x", "north")), Found("u", info("x", "south"))])
    state.observed([up("t", T0, T0 - 5), up("u", T0, T0 - 5)])
    state.observed([down("t", T0 + 60, T0 + 50)])
    before = list(state.segments())
    reconfigure(state, ("site",), [SLOTS[2], SLOTS[1], SLOTS[0]])  # bits move
    assert list(state.segments()) == before
    assert disconnects(state) == {("north",): {"CONNECTION_LOST": 1}}
    assert counts(state) == {("north",): (1, 0), ("south",): (0, 1)}


def test_a_reload_with_new_labels_recounts_and_restarts_the_counters() -> None:
    state = shared(("site",))
    state.found(TYPES, [Found("t", info("x", "north"))])
    state.observed([up("t", T0, T0 - 5)])
    state.observed([down("t", T0 + 60, T0 + 50)])
    reconfigure(state, ("thing_type",), SLOTS)
    assert counts(state) == {("x",): (1, 0)}
    assert disconnects(state) == {}


def test_group_sources_that_move_on_reload_recount_the_groups() -> None:
    state = shared(("thing_group",))
    state.found(GROUP_A, [Found("t")])
    state.observed([up("t", T0, T0 - 5)])
    reconfigure(state, ("thing_group",), [SLOTS[1], SLOTS[0], SLOTS[2]])
    assert counts(state) == {("a",): (0, 1)}


def test_event_mode_counts_every_first_delivery() -> None:
    state = shared(("site",))
    state.configure(
        SLOTS, (), events=True, aggregates=(), rollups=RollupSpec(("site",), info_labels=INFO)
    )
    state.found(TYPES, [Found("t", info("x", "north"))])
    state.observed([Observation.event("t", T0, connected=True, timestamp=T0 - 5, version=1)])
    state.observed(
        [Observation.event("t", T0 + 1, connected=False, timestamp=T0, version=1, reason="X")]
    )
    assert counts(state) == {("north",): (1, 0)}
    assert disconnects(state) == {("north",): {"X": 1}}


# -- the incremental counts equal a recount, whatever happens -------------------------------

NAMES = ["t0", "t1", "t2"]
SITES = ["n", "s", "e"]

operation = st.one_of(
    st.tuples(
        st.just("found"),
        st.sampled_from([GROUP_A, GROUP_B, TYPES]),
        st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(SITES)), max_size=4),
    ),
    st.tuples(
        st.just("settled"),
        st.sampled_from([GROUP_A, GROUP_B, TYPES]),
        st.sets(st.sampled_from(NAMES)),
    ),
    st.tuples(
        st.just("observed"),
        st.sampled_from(NAMES),
        st.sampled_from(
            [
                "up",
                "down",
                "never",
                "failed",
                "event-up",
                "event-down-again",
                # Connected under a client ID other than the thing's name.
                "up-foreign",
                "event-up-foreign",
                "stale-up-foreign",
                # The same connection seen again, with and without its client ID's mismatch.
                "up-at-t0",
                "up-foreign-at-t0",
            ]
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=30), st.sampled_from([("site",), ("thing_group", "site")]))
def test_counts_equal_a_recount_after_any_sequence(
    operations: list[tuple[object, ...]], labels: tuple[str, ...]
) -> None:
    state = shared(labels)
    clock = T0
    for op in operations:
        clock += 10
        if op[0] == "found":
            _, source, things = op
            state.found(str(source), [Found(n, info("x", s)) for n, s in things])  # type: ignore[attr-defined]
        elif op[0] == "settled":
            _, source, names = op
            state.settled(str(source), names)  # type: ignore[arg-type]
        else:
            _, name, what = op
            observation = {
                "up": up(str(name), clock, clock - 1),
                "down": down(str(name), clock, clock - 1),
                "never": down(str(name), clock, None),
                "failed": Observation.failed(str(name), clock, "Throttling"),
                "event-up": Observation.event(
                    str(name), clock, connected=True, timestamp=clock - 1, version=1
                ),
                "up-foreign": Observation.ok(
                    str(name), clock, connected=True, timestamp=clock - 1, session=FOREIGN
                ),
                "event-up-foreign": Observation.event(
                    str(name),
                    clock,
                    connected=True,
                    timestamp=clock - 1,
                    version=3,
                    session=FOREIGN,
                ),
                "up-at-t0": Observation.ok(str(name), clock, connected=True, timestamp=T0),
                "up-foreign-at-t0": Observation.ok(
                    str(name), clock, connected=True, timestamp=T0, session=FOREIGN
                ),
                # Older than anything held: shows nothing, so moves no count.
                "stale-up-foreign": Observation.ok(
                    str(name), clock, connected=True, timestamp=T0 - 1, session=FOREIGN
                ),
                # A redelivery: it counts nothing, but still shows the newer state.
                "event-down-again": Observation.event(
                    str(name),
                    clock,
                    connected=False,
                    timestamp=clock - 1,
                    version=2,
                    first_delivery=False,
                ),
            }[str(what)]
            state.observed([observation])
    assert counts(state) == recount(state, labels, never=False)
    never = {key: s.never_connected for key, s in state.segments().items() if s.never_connected}
    assert never == recount(state, labels, never=True)
    foreign = {
        key: s.client_id_mismatch for key, s in state.segments().items() if s.client_id_mismatch
    }
    assert foreign == recount(state, labels, mismatch=True)


FOREIGN = Session("device-1", 60, False, 0)


def recount(
    state: SharedState, labels: tuple[str, ...], *, never: bool = False, mismatch: bool = False
) -> dict[Any, Any]:
    """What the counts must be, from the targets and the things as they are now: each
    segment's (disconnected, connected), its never-connected things, or its connected
    things under a client ID not their name."""

    def reader(snap: Snapshot) -> dict[Any, Any]:
        targets, fleet = snap.targets, snap.fleet
        tally: Counter[tuple[tuple[str, ...], bool]] = Counter()
        groups = targets.groups()
        for name, target in targets.things.items():
            thing = fleet.things.get(name)
            if thing is None or thing.last_success_at is None:
                continue
            if never and (thing.connected or thing.timestamp is not None):
                continue
            if mismatch and not mismatched(thing):
                continue
            in_groups = [g for bit, g in groups if target.sources & bit] or [""]
            site = target.info.attributes[0] if target.info else ""
            keys = [(g, site) for g in in_groups] if labels[0] == "thing_group" else [(site,)]
            for key in keys:
                tally[(key, thing.connected)] += 1
        segments = {key for key, _ in tally}
        if never:
            return {key: tally[(key, False)] for key in segments}
        if mismatch:
            return {key: tally[(key, True)] for key in segments}
        return {key: (tally[(key, False)], tally[(key, True)]) for key in segments}

    return state.read(reader, aggregate_max_age=1)


def test_a_reload_that_changes_the_attributes_read_forgets_the_old_info() -> None:
    state = shared(("site",))
    state.found(TYPES, [Found("t", info("x", "north"))])
    state.observed([up("t", T0, T0 - 5)])
    # firmware is read now, before site: the info in hand has the old order.
    state.configure(
        SLOTS,
        (),
        events=False,
        aggregates=(),
        rollups=RollupSpec(("site",), info_labels=("thing_type", "firmware", "site")),
    )
    assert counts(state) == {("",): (0, 1)}  # not site "north" read as firmware
    state.found(TYPES, [Found("t", RegistryInfo("x", ("1.0", "north")))])
    assert counts(state) == {("north",): (0, 1)}


def test_a_reload_keeps_the_folded_counter_and_leaves_empty_segments_behind() -> None:
    state = shared(("site",), max_segments=1)
    state.found(TYPES, [Found("a", info("x", "s0")), Found("b", info("x", "s1"))])
    state.observed([up("a", T0, T0 - 5), up("b", T0, T0 - 5)])
    state.observed([down("b", T0 + 60, T0 + 50)])
    state.settled(TYPES, {"b"})  # a leaves: s0 has no things and no disconnects
    assert disconnects(state) == {(OTHER,): {"CONNECTION_LOST": 1}}
    # A reload that keeps rollup_by but changes the cap: the same counters go on.
    state.configure(
        SLOTS,
        (),
        events=False,
        aggregates=(),
        rollups=RollupSpec(("site",), info_labels=INFO, max_segments=5),
    )
    assert disconnects(state) == {(OTHER,): {"CONNECTION_LOST": 1}}
    assert ("s0",) not in state.segments()
    assert counts(state) == {("s1",): (1, 0)}


def test_a_thing_that_changes_segment_only_wakes_the_renderer() -> None:
    state = shared(("site",))
    state.found(TYPES, [Found("t", info("x", "north"))])
    state.observed([up("t", T0, T0 - 5)])
    version = state.version
    state.found(TYPES, [Found("t", info("x", "south"))])
    assert state.version > version
    version = state.version
    state.found(TYPES, [Found("t", info("x", "south"))])  # nothing new
    assert state.version == version
