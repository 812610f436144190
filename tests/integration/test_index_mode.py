"""Index mode through boto3 against the simulator: SearchIndex pages observe the fleet.

The index lags live state; what it shows is right once the lag has passed, and a lagging
answer interleaved with live ones never counts a disconnect twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.app import Exporter
from exporter.config import load_config
from exporter.fleet.connectivity import UNOBSERVED_FLAP
from iot_simulator import SimulatorConfig
from tests.support.harness import (
    Harness,
    HarnessFactory,
    client_factory,
    connected_by_thing,
    parse_samples,
    quiet,
    series,
)


def truth(h: Harness, names: list[str] | None = None) -> dict[str, float]:
    """Each thing's connected flag in the simulator now."""
    return {
        name: 1.0 if h.sim.fleet.state(name).connected else 0.0
        for name in (names if names is not None else h.sim.fleet.thing_names())
    }


def test_index_mode_matches_the_truth_once_the_lag_has_passed(harness: HarnessFactory) -> None:
    h = harness(
        quiet(30, seed=51, search_index_lag_seconds=30.0),
        things=[],
        sections={"discovery": {"thing_types": ["sensor", "gateway", "controller"]}},
        mode="index",
    )
    h.clock.advance(60)
    first = connected_by_thing(h.cycle())
    assert first == truth(h)
    dropped = sorted(first)[:5]
    for name in dropped:
        h.sim.fleet.disconnect(name, "MQTT_KEEP_ALIVE_TIMEOUT")
    lagging = connected_by_thing(h.cycle(advance=10))
    assert all(lagging[name] == 1 for name in dropped)  # the index has not seen it yet
    caught_up = h.cycle(advance=30)
    assert connected_by_thing(caught_up) == truth(h)
    reasons = series(caught_up, "iot_thing_disconnects_total")
    assert sum(reasons.values()) == len(dropped)
    assert {dict(labels)["reason"] for labels in reasons} == {"MQTT_KEEP_ALIVE_TIMEOUT"}
    counts = h.sim.request_counts()
    assert ("GetThingConnectivityData", "ok") not in counts


def test_index_mode_pages_100_things_a_call(harness: HarnessFactory) -> None:
    h = harness(
        quiet(250, seed=52),
        things=[],
        sections={"discovery": {"queries": ["thingName:*"]}},
        mode="index",
    )
    samples = h.cycle()
    names = h.sim.fleet.thing_names()
    assert len(names) == 250
    assert connected_by_thing(samples) == truth(h, names)
    # 100 + 100 + 50: only a page of 100 reads them in three calls (the index allows no more).
    assert h.sim.request_counts()[("SearchIndex", "ok")] == 3
    h.sim.reset_request_counts()
    h.cycle(advance=60)
    assert h.sim.request_counts() == {("SearchIndex", "ok"): 3}


def test_a_static_list_in_index_mode_asks_twelve_names_a_call(harness: HarnessFactory) -> None:
    h = harness(quiet(30, seed=53), things=[f"thing-{i:05d}" for i in range(1, 26)], mode="index")
    h.exporter.run_all()
    samples = h.samples()
    shown = connected_by_thing(samples)
    assert shown == truth(h, sorted(shown))
    assert len(shown) == 25
    assert h.sim.request_counts()[("SearchIndex", "ok")] == 3  # 12 + 12 + 1 names


def test_a_listed_thing_missing_from_the_index_is_a_failed_observation(
    harness: HarnessFactory,
) -> None:
    h = harness(quiet(3, seed=54), things=["thing-00001", "ghost"], mode="index")
    samples = h.cycle()
    assert series(samples, "iot_thing_poll_error_info") == {
        frozenset({("thing_name", "ghost"), ("error_code", "NotIndexed")}): 1.0
    }
    assert "ghost" not in connected_by_thing(samples)


def _live_only_twin(h: Harness, tmp_path: Path) -> Exporter:
    """A second exporter on the same simulator and clock, polling the static list live only."""
    document: dict[str, Any] = {
        "aws": dict(h.document["aws"]),
        "poll": {k: v for k, v in h.document["poll"].items() if k != "mode"},
        "things": h.document["things"],
    }
    path = tmp_path / "live-only.yaml"
    path.write_text(yaml.safe_dump(document))
    return Exporter(
        lambda: load_config(path), client_factory, clock=h.clock.now, collectors=CollectorRegistry()
    )


@pytest.mark.scenario
def test_lagging_index_answers_interleaved_with_live_ones_never_count_twice(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    # Every thing is polled live (the static list) and read from a lagging index (its
    # thing type), over a simulated hour of a lively fleet.
    sim = SimulatorConfig(
        things=40,
        seed=55,
        quotas=False,
        mean_session_seconds=300.0,
        mean_offline_seconds=60.0,
        search_index_lag_seconds=20.0,
    )
    names = [f"thing-{i:05d}" for i in range(1, 41)]
    h = harness(
        sim,
        things=names,
        sections={
            "discovery": {
                "thing_types": [
                    {"name": t, "mode": "index"} for t in ("sensor", "gateway", "controller")
                ]
            }
        },
    )
    twin = _live_only_twin(h, tmp_path)
    start = h.clock.now()
    try:
        for _ in range(60):
            h.clock.advance(60)
            h.exporter.run_all()
            twin.run_all()
        both = h.samples()
        twin.render_now()
        alone = parse_samples(twin.payload().plain)
    finally:
        twin.stop()

    def counted(samples: dict[Any, float]) -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()
        for labels, count in series(samples, "iot_thing_disconnects_total").items():
            found[(dict(labels)["thing_name"], dict(labels)["reason"])] += int(count)
        return found

    def per_thing(by_reason: Counter[tuple[str, str]]) -> Counter[str]:
        return Counter(
            {name: sum(n for (t, _), n in by_reason.items() if t == name) for name in names}
        )

    with_index, live_only = counted(both), counted(alone)
    assert sum(live_only.values()) > 20  # a lively hour
    true_events = [e for e in h.sim.fleet.ground_truth(since=start) if e.kind == "disconnect"]
    true_by_reason = Counter((e.thing_name, e.reason or "") for e in true_events)
    true_per_thing = Counter(e.thing_name for e in true_events)
    index_total, live_total = per_thing(with_index), per_thing(live_only)
    for name in names:
        # More observations split time finer, so they can only find more of the true
        # disconnects (a flap polling alone misses), and never count one twice.
        assert live_total[name] <= index_total[name] <= true_per_thing[name], name
    for (name, reason), count in with_index.items():
        if reason != UNOBSERVED_FLAP:
            assert count <= true_by_reason[(name, reason)], (name, reason)


def test_the_index_dropping_an_old_disconnect_s_details_is_no_new_disconnect(
    harness: HarnessFactory,
) -> None:
    h = harness(
        quiet(6, seed=56),
        things=[],
        sections={"discovery": {"thing_types": ["sensor", "gateway", "controller"]}},
        mode="index",
        interval="1m",
        staleness="1h",
    )
    h.cycle()
    h.sim.fleet.disconnect("thing-00002", "AUTH_ERROR")
    counted = h.cycle(advance=60)
    reason = {"thing_name": "thing-00002", "reason": "AUTH_ERROR"}
    assert series(counted, "iot_thing_disconnects_total") == {frozenset(reason.items()): 1.0}
    stamp = series(counted, "iot_thing_connectivity_timestamp_seconds")
    # Past the hour, the index no longer has the timestamp and reason of thing-00002.
    for _ in range(3):
        later = h.cycle(advance=30 * 60)
    document = h.sim.index_truth.document("thing-00002")
    assert document is not None
    assert "timestamp" not in document["connectivity"]
    assert series(later, "iot_thing_disconnects_total") == {frozenset(reason.items()): 1.0}
    assert connected_by_thing(later)["thing-00002"] == 0
    # What the exporter held stays shown: the disconnect's time and reason.
    assert series(later, "iot_thing_connectivity_timestamp_seconds") == stamp
    assert series(later, "iot_thing_disconnect_reason_info")[frozenset(reason.items())] == 1.0
