"""Shares of a fleet for benches: disconnected at the start, flapping, and mass outages."""

from __future__ import annotations

import json
import math
import statistics
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest

from iot_simulator import ManualClock, Simulator, SimulatorConfig
from iot_simulator.cli import build_parser, config_from_args, main
from iot_simulator.model import Event, Fleet
from tests.simulator.conftest import ClientFactory

START = 1_700_000_000.0
THINGS = 4000


def offline_with_reason(fleet: Fleet) -> list[str]:
    """Things disconnected now after having been connected (never-connected ones excluded)."""
    names = []
    for name in fleet.thing_names():
        state = fleet.state(name)
        if not state.connected and state.reason is not None:
            names.append(name)
    return names


def test_disconnected_share_without_churn_is_exact() -> None:
    config = SimulatorConfig(things=THINGS, seed=11, churn=False, disconnected_fraction=0.25)
    fleet = Fleet(config, ManualClock(START))
    offline = offline_with_reason(fleet)
    assert len(offline) == THINGS // 4
    # Their reasons are drawn as for any disconnect: a mix, CONNECTION_LOST the most common.
    reasons = Counter(fleet.state(name).reason for name in offline)
    assert len(reasons) > 5
    assert reasons.most_common(1)[0][0] == "CONNECTION_LOST"
    # And every one of them disconnected before the fleet started, as initial states do.
    assert all((fleet.state(name).timestamp_ms or 0) < START * 1000 for name in offline)


def test_shares_hold_with_churn() -> None:
    config = SimulatorConfig(
        things=THINGS, seed=12, disconnected_fraction=0.25, flapping_fraction=0.1
    )
    fleet = Fleet(config, ManualClock(START))
    flapping = [n for n in fleet.thing_names() if fleet.process(n).mean_session_seconds == 60.0]
    assert len(flapping) == THINGS // 10
    assert all(fleet.process(n).mean_offline_seconds == 10.0 for n in flapping)
    # Forced: 1000. The process has offline about 120/3720 of the other 2520 things (81)
    # and 10/70 of the flapping ones (57); a tolerance of about four standard deviations.
    expected = 1000 + 2520 * 120 / 3720 + 400 * 10 / 70
    assert abs(len(offline_with_reason(fleet)) - expected) < 45


def test_the_shares_leave_the_rest_alone() -> None:
    # The shares take things the process would otherwise drive: the untouched ones keep
    # the history a fleet without shares gives them.
    clock_a, clock_b = ManualClock(START), ManualClock(START)
    plain = Fleet(SimulatorConfig(things=500, seed=5), clock_a)
    shared = Fleet(
        SimulatorConfig(things=500, seed=5, disconnected_fraction=0.2, flapping_fraction=0.2),
        clock_b,
    )
    clock_a.advance(3600)
    clock_b.advance(3600)
    plain_events, shared_events = by_thing(plain.ground_truth()), by_thing(shared.ground_truth())
    same = [n for n in plain.thing_names() if plain_events.get(n) == shared_events.get(n)]
    # 500 - 100 flapping - 100 disconnected at the start, and the few of those the process
    # had disconnected anyway (their stream is drawn alike).
    assert 300 <= len(same) <= 310
    assert all(shared.process(n).mean_session_seconds == 3600.0 for n in same)


def by_thing(events: list[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.thing_name, []).append(event)
    return grouped


def test_flapping_things_flap_more_over_an_hour() -> None:
    clock = ManualClock(START)
    fleet = Fleet(SimulatorConfig(things=2000, seed=13, flapping_fraction=0.1), clock)
    clock.advance(3600)
    counts = Counter(e.thing_name for e in fleet.ground_truth(since=START))
    flapping = {n for n in fleet.thing_names() if fleet.process(n).mean_session_seconds == 60.0}
    flapping_counts = [counts[n] for n in flapping]
    other_counts = [counts[n] for n in fleet.thing_names() if n not in flapping]
    # About 2 x 3600 / 70 = 103 events an hour against 2 x 3600 / 3720 = 2.
    assert statistics.mean(flapping_counts) > 80
    assert statistics.mean(other_counts) < 4
    assert min(flapping_counts) > 20


def test_mass_outage_shows_through_boto3_and_in_ground_truth(
    sim: Simulator, clock: ManualClock, make_client: ClientFactory
) -> None:
    iot = make_client(sim)
    clock.advance(60)
    fleet = sim.fleet
    connected = [n for n in fleet.thing_names() if fleet.state(n).connected]
    names = sim.mass_outage(0.5, reason="SERVER_INITIATED_DISCONNECT")
    assert len(names) == round(len(connected) / 2)
    assert names == sorted(names)
    assert set(names) <= set(connected)
    now_ms = math.floor(clock.now() * 1000)
    for name in connected:
        answer = iot.get_thing_connectivity_data(thingName=name)
        if name in names:
            assert answer["connected"] is False
            assert answer["disconnectReason"] == "SERVER_INITIATED_DISCONNECT"
            assert answer["timestamp"].timestamp() * 1000 == pytest.approx(now_ms, abs=1)
        else:
            assert answer["connected"] is True
    outage = [
        e.thing_name
        for e in sim.ground_truth(since=clock.now() - 0.001)
        if e.kind == "disconnect" and e.reason == "SERVER_INITIATED_DISCONNECT"
    ]
    assert outage == names
    # An ordinary disconnect: the process brings the things back.
    clock.advance(3600)
    assert any(fleet.state(n).connected for n in names)


def test_mass_outage_reaches_the_index_after_its_lag(make_client: ClientFactory) -> None:
    clock = ManualClock(START)
    config = SimulatorConfig(
        things=200, seed=3, churn=False, quotas=False, search_index_lag_seconds=30.0
    )
    with Simulator(config, clock=clock) as sim:
        iot = make_client(sim)

        def offline_in_index() -> int:
            answer = iot.get_statistics(queryString="connectivity.connected:false")
            return answer["statistics"]["count"]

        clock.advance(60)
        before = offline_in_index()
        names = sim.mass_outage(0.3)
        assert len(names) == round(0.3 * (200 - before))
        assert offline_in_index() == before
        assert all(not sim.fleet.state(n).connected for n in names)
        clock.advance(30)
        assert offline_in_index() == before + len(names)
        assert sim.internal_errors() == []


def test_mass_outages_of_none_and_all(sim: Simulator) -> None:
    assert sim.mass_outage(0.0) == []
    names = sim.mass_outage(1.0)
    assert names
    assert not any(sim.fleet.state(n).connected for n in sim.fleet.thing_names())
    assert sim.mass_outage(1.0) == []  # nobody is left connected


def admin(sim: Simulator, body: object) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(sim.url + "/_simulator/mass-outage", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_mass_outage_endpoint(sim: Simulator, clock: ManualClock) -> None:
    connected = [n for n in sim.fleet.thing_names() if sim.fleet.state(n).connected]
    status, answer = admin(sim, {"fraction": 1.0, "reason": "API_INITIATED_DISCONNECT"})
    assert status == 200
    assert answer == {"disconnected": len(connected), "reason": "API_INITIATED_DISCONNECT"}
    assert {sim.fleet.state(n).reason for n in connected} == {"API_INITIATED_DISCONNECT"}
    status, answer = admin(sim, {"fraction": 0.5})
    assert (status, answer) == (200, {"disconnected": 0, "reason": "CONNECTION_LOST"})


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"fraction": 1.5}, "fraction"),
        ({"fraction": -0.1}, "fraction"),
        ({"fraction": "half"}, "fraction"),
        ({"fraction": True}, "fraction"),
        ({"fraction": None}, "fraction"),
        ({}, "fraction"),
        ({"fraction": 0.5, "reason": ""}, "reason"),
        ({"fraction": 0.5, "reason": 5}, "reason"),
        ({"fraction": 0.5, "share": 1}, "share"),
    ],
)
def test_mass_outage_endpoint_refuses_bad_values(
    sim: Simulator, body: dict[str, object], named: str
) -> None:
    before = sim.ground_truth()
    status, answer = admin(sim, body)
    assert status == 400
    assert named in answer["message"]
    assert sim.ground_truth() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("disconnected_fraction", -0.1),
        ("disconnected_fraction", 1.5),
        ("disconnected_fraction", math.nan),
        ("flapping_fraction", 2.0),
        ("flapping_fraction", -1.0),
        ("flapping_mean_session_seconds", 0.0),
        ("flapping_mean_session_seconds", math.inf),
        ("flapping_mean_offline_seconds", -5.0),
        ("flapping_mean_offline_seconds", math.nan),
    ],
)
def test_bad_settings_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatorConfig(**{field: value})  # type: ignore[arg-type]


def test_shares_over_one_are_refused() -> None:
    with pytest.raises(ValueError, match="disconnected_fraction \\+ flapping_fraction"):
        SimulatorConfig(
            never_connected_fraction=0.2, disconnected_fraction=0.5, flapping_fraction=0.5
        )


def test_flags(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        [
            "--disconnected-fraction",
            "0.1",
            "--flapping-fraction",
            "0.2",
            "--flapping-mean-session-seconds",
            "30",
            "--flapping-mean-offline-seconds",
            "5",
        ]
    )
    config = config_from_args(args)
    assert (config.disconnected_fraction, config.flapping_fraction) == (0.1, 0.2)
    assert (config.flapping_mean_session_seconds, config.flapping_mean_offline_seconds) == (30, 5)
    with pytest.raises(SystemExit) as exit_info:
        main(["--flapping-fraction", "1.5"])
    assert exit_info.value.code == 2
    assert "flapping_fraction" in capsys.readouterr().err
