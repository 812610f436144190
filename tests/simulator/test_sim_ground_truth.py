"""The ground-truth record against what boto3 observes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mypy_boto3_iot import IoTClient

from iot_simulator import Event, ManualClock, Simulator, SimulatorConfig

ClientFactory = Callable[..., IoTClient]
START = 1_700_000_000.0


def expected_at(events: list[Event], now: float) -> tuple[bool, float | None, str | None]:
    past = [e for e in events if e.time <= now]
    if not past:
        return False, None, None
    last = past[-1]
    return last.kind == "connect", last.time, last.reason


def observe(iot: IoTClient, name: str) -> tuple[bool, float | None, str | None]:
    data: dict[str, Any] = dict(iot.get_thing_connectivity_data(thingName=name))
    stamp = data["timestamp"].timestamp() if "timestamp" in data else None
    return data["connected"], stamp, data.get("disconnectReason")


def test_every_poll_agrees_with_the_ground_truth(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    config = SimulatorConfig(
        things=8,
        quotas=False,
        seed=11,
        mean_session_seconds=20,
        mean_offline_seconds=8,
        never_connected_fraction=0.2,
    )
    with Simulator(config, clock=clock) as sim:
        iot = make_client(sim)
        names = sim.fleet.thing_names()
        observed: list[tuple[str, float, tuple[bool, float | None, str | None]]] = []
        for _ in range(150):
            clock.advance(1.0)
            observed.extend((n, clock.now(), observe(iot, n)) for n in names)
        truth = {n: sim.ground_truth(thing_name=n) for n in names}
        for name, when, seen in observed:
            assert seen == expected_at(truth[name], when), (name, when)
        # Polls every second see every offline period of a second or more, and only real ones.
        seen_offline = {(n, s[1]) for n, _, s in observed if not s[0] and s[1] is not None}
        last_poll = clock.now()
        must_see = set()
        for name, events in truth.items():
            for event, after in zip(events, [*events[1:], None], strict=False):
                ends = after.time if after is not None else last_poll + 1
                if event.kind == "disconnect" and event.time > START and ends - event.time >= 1:
                    must_see.add((name, event.time))
        assert must_see
        assert must_see <= seen_offline
        assert seen_offline <= {
            (e.thing_name, e.time) for e in sim.ground_truth() if e.kind == "disconnect"
        }


def test_flaps_between_polls_show_only_as_newer_timestamps(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    config = SimulatorConfig(
        things=4,
        quotas=False,
        seed=5,
        mean_session_seconds=3,
        mean_offline_seconds=0.05,
        never_connected_fraction=0,
        duplicate_clientid_things=0,
    )
    with Simulator(config, clock=clock) as sim:
        iot = make_client(sim)
        unobserved = 0
        previous = {n: observe(iot, n) for n in sim.fleet.thing_names()}
        for _ in range(20):
            clock.advance(30)  # the poll interval
            for name, before in previous.items():
                now = observe(iot, name)
                if before[0] and now[0] and now[1] != before[1]:
                    unobserved += 1
                previous[name] = now
        disconnects = [e for e in sim.ground_truth(since=START) if e.kind == "disconnect"]
        assert len(disconnects) > 100  # ~10 per thing per poll interval
        assert unobserved > 0  # the only trace polling gets


def test_search_index_agrees_with_the_ground_truth(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    with Simulator(
        SimulatorConfig(things=25, seed=2, mean_session_seconds=30, quotas=False), clock=clock
    ) as sim:
        iot = make_client(sim)
        clock.advance(500)
        docs = iot.search_index(queryString="thingName:*", maxResults=100)["things"]
        for doc in docs:
            connectivity = doc["connectivity"]
            connected, stamp, reason = expected_at(
                sim.ground_truth(thing_name=doc["thingName"]), clock.now()
            )
            assert connectivity["connected"] is connected
            assert connectivity.get("timestamp") == (None if stamp is None else round(stamp * 1000))
            assert connectivity.get("disconnectReason") == reason
