"""The fleet model: seeded process, determinism, special things, explicit actions, ground truth."""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise

import pytest

from iot_simulator import (
    Event,
    Fleet,
    ManualClock,
    SimulatorConfig,
    UnknownGroupError,
    UnknownThingError,
    disconnect_reasons,
)

START = 1_700_000_000.0


def fleet(**changes: object) -> tuple[Fleet, ManualClock]:
    clock = ManualClock(START)
    return Fleet(SimulatorConfig(seed=3, things=20).replace(**changes), clock), clock


def run(f: Fleet, clock: ManualClock, steps: int, step: float, look: bool) -> list[Event]:
    for _ in range(steps):
        clock.advance(step)
        if look:
            for name in f.thing_names():
                f.state(name)
    return f.ground_truth()


def test_same_seed_same_history_whoever_looks_when() -> None:
    a, clock_a = fleet(mean_session_seconds=30, mean_offline_seconds=10)
    b, clock_b = fleet(mean_session_seconds=30, mean_offline_seconds=10)
    history_a = run(a, clock_a, 60, 5.0, look=True)  # looked at every 5 s
    history_b = run(b, clock_b, 1, 300.0, look=False)  # looked at once, at the end
    assert history_a == history_b
    assert len([e for e in history_a if e.time > START]) > 100
    c, clock_c = fleet(seed=4, mean_session_seconds=30, mean_offline_seconds=10)
    assert run(c, clock_c, 1, 300.0, look=False) != history_a


def test_explicit_actions_are_part_of_the_determinism() -> None:
    histories = []
    for _ in range(2):
        f, clock = fleet(mean_session_seconds=20, mean_offline_seconds=5)
        clock.advance(30)
        f.connect("thing-00003")
        f.disconnect("thing-00003", reason="AUTH_ERROR")
        clock.advance(100)
        histories.append(f.ground_truth())
    assert histories[0] == histories[1]


def test_events_alternate_and_timestamps_match_ground_truth() -> None:
    f, clock = fleet(mean_session_seconds=3, mean_offline_seconds=2)
    clock.advance(120)
    for name in f.thing_names():
        events = f.ground_truth(thing_name=name)
        state = f.state(name)
        if not events:
            assert state == (False, None, None) or state.timestamp_ms is None
            continue
        kinds = [e.kind for e in events]
        assert all(x != y for x, y in pairwise(kinds))
        assert [e.time for e in events] == sorted(e.time for e in events)
        last = events[-1]
        assert state.connected == (last.kind == "connect")
        assert state.timestamp_ms == round(last.time * 1000)
        assert state.reason == last.reason


def test_flaps_shorter_than_a_poll_interval() -> None:
    f, clock = fleet(things=5, mean_session_seconds=0.5, mean_offline_seconds=0.2)
    clock.advance(60)
    per_thing = Counter(e.thing_name for e in f.ground_truth(since=START) if e.kind == "disconnect")
    # About 60 / 0.7 ~ 85 disconnects per thing in a minute: many between two 60 s polls.
    assert min(per_thing.values()) > 40


def test_long_sessions_rarely_change() -> None:
    f, clock = fleet(things=50, mean_session_seconds=86400 * 30, mean_offline_seconds=86400)
    clock.advance(3600)
    assert len(f.ground_truth(since=START)) < 10


def test_never_connected_things() -> None:
    f, clock = fleet(things=40, never_connected_fraction=0.1, mean_session_seconds=1)
    clock.advance(600)
    never = [n for n in f.thing_names() if f.state(n).timestamp_ms is None]
    assert len(never) == 4
    for name in never:
        assert f.state(name) == (False, None, None)
        assert f.ground_truth(thing_name=name) == []


def test_duplicate_clientid_thing_reconnects_at_once() -> None:
    f, clock = fleet(things=10, duplicate_clientid_things=1, mean_session_seconds=5)
    clock.advance(600)
    duplicates = {
        e.thing_name for e in f.ground_truth(since=START) if e.reason == "DUPLICATE_CLIENTID"
    }
    assert duplicates
    dup = next(
        n
        for n in duplicates
        if all(e.reason in (None, "DUPLICATE_CLIENTID") for e in f.ground_truth(thing_name=n))
    )
    events = f.ground_truth(thing_name=dup)
    assert len(events) > 50
    gaps = [b.time - a.time for a, b in pairwise(events) if a.kind == "disconnect"]
    assert max(gaps) < 0.0205  # float seconds of whole milliseconds


def test_reasons_cover_every_modelled_value() -> None:
    assert "API_INITIATED_DISCONNECT" in disconnect_reasons()
    uniform = dict.fromkeys(disconnect_reasons(), 1.0)
    f, clock = fleet(
        things=20, mean_session_seconds=1, mean_offline_seconds=1, reason_weights=uniform
    )
    clock.advance(300)
    seen = {e.reason for e in f.ground_truth() if e.kind == "disconnect"}
    assert seen == set(disconnect_reasons())


def test_reason_mix_is_configurable() -> None:
    weights = {"AUTH_ERROR": 1.0, "THROTTLED": 3.0}
    f, clock = fleet(
        things=20, mean_session_seconds=1, mean_offline_seconds=1, reason_weights=weights
    )
    clock.advance(300)
    counts = Counter(e.reason for e in f.ground_truth() if e.kind == "disconnect")
    # the duplicate-client-id thing keeps its own reason
    counts.pop("DUPLICATE_CLIENTID", None)
    assert set(counts) == {"AUTH_ERROR", "THROTTLED"}
    assert counts["THROTTLED"] > 2 * counts["AUTH_ERROR"]


def test_disconnect_and_connect_now() -> None:
    f, clock = fleet(churn=False, never_connected_fraction=0, duplicate_clientid_things=0)
    name = "thing-00001"
    assert f.state(name).connected
    clock.advance(10)
    assert f.disconnect(name, reason="SOME_FUTURE_REASON") is True
    now_ms = round((START + 10) * 1000)
    assert f.state(name) == (False, now_ms, "SOME_FUTURE_REASON")
    assert f.disconnect(name) is False  # already offline: nothing happens
    clock.advance(1)
    assert f.connect(name) is True
    assert f.state(name) == (True, now_ms + 1000, None)
    clock.advance(1)
    assert f.connect(name) is False  # a second client with the same id takes over
    tail = f.ground_truth(thing_name=name)[-2:]
    assert [(e.kind, e.reason) for e in tail] == [
        ("disconnect", "DUPLICATE_CLIENTID"),
        ("connect", None),
    ]
    with pytest.raises(ValueError, match="reason"):
        f.disconnect(name, reason="")


def test_create_and_delete_things() -> None:
    f, clock = fleet(mean_offline_seconds=5, mean_session_seconds=math.inf)
    state = f.create_thing(
        "new:thing_1", thing_type="pump", groups=["group-1"], attributes={"a": "b"}
    )
    assert state == (False, None, None)  # never connected yet
    assert "new:thing_1" in f.thing_names()
    clock.advance(300)
    assert f.state("new:thing_1").connected  # joined the random process
    with pytest.raises(ValueError, match="already exists"):
        f.create_thing("new:thing_1")
    with pytest.raises(ValueError, match="invalid thing name"):
        f.create_thing("bad name")
    with pytest.raises(ValueError, match="unknown thing groups"):
        f.create_thing("x", groups=["nope"])
    before = f.ground_truth(thing_name="new:thing_1")
    f.delete_thing("new:thing_1")
    assert "new:thing_1" not in f.thing_names()
    with pytest.raises(UnknownThingError):
        f.state("new:thing_1")
    assert f.ground_truth(thing_name="new:thing_1") == before  # the past stays true
    quiet = f.create_thing("quiet", never_connected=True)
    clock.advance(3600)
    assert f.state("quiet") == quiet


def test_a_foreign_client_id_is_invisible_to_aws() -> None:
    # AWS relates connectivity to a thing only through a client ID equal to its name.
    f, clock = fleet(mean_offline_seconds=5, mean_session_seconds=math.inf)
    f.create_thing("meter", client_id="meter-firmware-2")
    assert f.client_id("meter") == "meter-firmware-2"
    clock.advance(300)
    assert f.device_state("meter").connected
    assert f.state("meter") == (False, None, None)  # never connected, as AWS sees it
    record = f.record("meter")
    assert record.connectivity == (False, None, None)
    assert record.session is None
    assert [e.kind for e in f.ground_truth(thing_name="meter")] == ["connect"]


def test_a_client_id_change_shows_from_the_next_connection() -> None:
    f, clock = fleet(churn=False, never_connected_fraction=0, duplicate_clientid_things=0)
    name = "thing-00001"
    before = f.state(name)
    assert before.connected
    f.set_client_id(name, "other-id")
    assert f.state(name) == before  # the connection under its name goes on
    clock.advance(1)
    f.disconnect(name, reason="CONNECTION_LOST")  # ends the connection under its name
    gone = f.state(name)
    assert gone == (False, round((START + 1) * 1000), "CONNECTION_LOST")
    clock.advance(1)
    f.connect(name)  # now under "other-id": AWS keeps the last state of the named client
    assert f.device_state(name).connected
    assert f.state(name) == gone
    clock.advance(1)
    f.disconnect(name, reason="AUTH_ERROR")
    assert f.state(name) == gone
    assert f.record(name, lag_seconds=2).connectivity == gone
    f.set_client_id(name, None)  # back to its name
    clock.advance(1)
    f.connect(name)
    assert f.state(name) == (True, round((START + 4) * 1000), None)
    assert f.record(name, lag_seconds=1).connectivity == gone
    assert len(f.ground_truth(thing_name=name)) == 5  # every connection the device made
    for bad in ("", "x" * 129):
        with pytest.raises(ValueError, match="client ID"):
            f.set_client_id(name, bad)
    with pytest.raises(ValueError, match="client ID"):
        f.create_thing("y", client_id="")


def test_group_membership_changes_now_and_in_the_past() -> None:
    f, clock = fleet(things=8)
    assert f.members("group-1-1") == ["thing-00001", "thing-00005"]
    assert f.members("group-1") == []
    assert f.members("group-1", recursive=True) == sorted(
        f.members("group-1-1") + f.members("group-1-2")
    )
    clock.advance(10)
    assert f.add_to_group("thing-00002", "group-1-1") is True
    assert f.add_to_group("thing-00002", "group-1-1") is False
    assert f.members("group-1-1") == ["thing-00001", "thing-00002", "thing-00005"]
    assert f.record("thing-00002").groups == ("group-1-2", "group-1-1")
    clock.advance(10)
    assert f.remove_from_group("thing-00002", "group-1-2") is True
    assert f.remove_from_group("thing-00002", "group-1-2") is False
    assert f.record("thing-00002").groups == ("group-1-1",)
    # A lagging view sees the memberships of its instant.
    assert f.record("thing-00002", lag_seconds=5).groups == ("group-1-2", "group-1-1")
    assert f.record("thing-00002", lag_seconds=15).groups == ("group-1-2",)
    assert f.record("thing-00002", at=START + 20).groups == ("group-1-1",)
    f.add_to_group("thing-00003", "group-2")
    f.remove_from_group("thing-00003", "group-2")  # twice in one millisecond: the last counts
    assert f.record("thing-00003", lag_seconds=0).groups == f.record("thing-00003").groups
    assert "thing-00003" not in f.members("group-2")
    for call in (f.add_to_group, f.remove_from_group):
        with pytest.raises(UnknownGroupError):
            call("thing-00001", "nope")
        with pytest.raises(UnknownThingError):
            call("nobody", "group-1")
    with pytest.raises(UnknownGroupError):
        f.members("nope")


def test_group_metadata() -> None:
    f, clock = fleet(things=1)
    clock.advance(5)
    deep = f.create_group("group-1-1-a", parent="group-1-1")
    assert [g.name for g in f.ancestors("group-1-1-a")] == ["group-1", "group-1-1"]
    assert f.ancestors("group-1") == []
    assert deep.created == START + 5
    assert f.group("group-1") is not None
    assert len(deep.group_id) == 36
    assert deep.group_id != f.groups()[0].group_id


def test_set_process_freezes_or_speeds_up_one_thing() -> None:
    f, clock = fleet(mean_session_seconds=1, mean_offline_seconds=1)
    f.set_process("thing-00002", churn=False)
    frozen = f.state("thing-00002")
    f.set_process("thing-00004", mean_session_seconds=math.inf)
    f.connect("thing-00004")
    clock.advance(600)
    assert f.state("thing-00002") == frozen
    assert f.state("thing-00004").connected


def test_lagging_view_shows_the_past() -> None:
    f, clock = fleet(churn=False, never_connected_fraction=0, duplicate_clientid_things=0)
    clock.advance(5)
    f.disconnect("thing-00001")
    assert f.record("thing-00001", lag_seconds=2).connectivity.connected
    clock.advance(3)
    assert not f.record("thing-00001", lag_seconds=2).connectivity.connected


def test_ground_truth_filters() -> None:
    f, clock = fleet(mean_session_seconds=10, mean_offline_seconds=10)
    clock.advance(100)
    everything = f.ground_truth()
    window = f.ground_truth(since=START + 20, until=START + 50)
    assert window == [e for e in everything if START + 20 < e.time <= START + 50]
    assert all(e.time <= START for e in f.ground_truth(until=START))


def test_demo_shows_several_reasons_within_minutes() -> None:
    clock = ManualClock(START)
    f = Fleet(SimulatorConfig.demo(), clock)
    assert len(f.thing_names()) >= 200
    clock.advance(180)
    reasons = Counter(e.reason for e in f.ground_truth(since=START) if e.kind == "disconnect")
    assert sum(reasons.values()) > 100
    assert len(reasons) >= 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"things": -1}, "things must be >= 0"),
        ({"mean_session_seconds": 0}, "mean_session_seconds must be > 0"),
        ({"mean_offline_seconds": -1}, "mean_offline_seconds must be > 0"),
        ({"never_connected_fraction": 2}, "never_connected_fraction"),
        ({"duplicate_clientid_things": -1}, "duplicate_clientid_things"),
        ({"reason_weights": {"A": -1}}, "reason weight for A"),
        ({"reason_weights": {"A": 0}}, "at least one positive weight"),
    ],
)
def test_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorConfig().replace(**changes)
