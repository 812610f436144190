"""Session details through boto3 against the simulator: live mode, index mode and lifecycle
events read the client ID, keep-alive, clean-session flag and session expiry."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from iot_simulator.model import ThingRecord
from iot_simulator.topic_rule import RuleFaults
from tests.integration.test_events import drained, events_section, rule_for
from tests.support.harness import Harness, HarnessFactory, Samples, quiet, series
from tests.support.sqs import MotoServer, moto

__all__ = ["moto"]

TYPES = ["sensor", "gateway", "controller"]
MODES: dict[str, dict[str, Any]] = {
    "live": {},
    "index": {"mode": "index"},
}


def by_thing(samples: Samples, family: str) -> dict[str, float]:
    return {dict(labels)["thing_name"]: v for labels, v in series(samples, family).items()}


def session_labels(samples: Samples) -> dict[str, tuple[str, str]]:
    """Each thing's iot_thing_session_info (client_id, clean_session)."""
    return {
        dict(labels)["thing_name"]: (dict(labels)["client_id"], dict(labels)["clean_session"])
        for labels in series(samples, "iot_thing_session_info")
    }


def records(h: Harness) -> dict[str, ThingRecord]:
    return {name: h.sim.fleet.record(name) for name in h.sim.fleet.thing_names()}


def sessions_harness(harness: HarnessFactory, mode: str, **metrics: Any) -> Harness:
    index = mode == "index"
    return harness(
        quiet(12, seed=23),
        things=[] if index else None,
        sections={
            "metrics": {"session_details": True, **metrics},
            **({"discovery": {"thing_types": TYPES}, "registry": {}} if index else {}),
        },
        **MODES[mode],
    )


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_connected_thing_shows_its_session_as_aws_reports_it(
    harness: HarnessFactory, mode: str
) -> None:
    h = sessions_harness(harness, mode)
    names = h.sim.fleet.thing_names()
    bound, stranger, offline = names[0], names[1], names[2]
    # One device connects under another client ID with the exclusive thing association,
    # one under another client ID without it (AWS then cannot tell it is this thing).
    h.sim.fleet.set_client_id(bound, f"{bound}-dev", exclusive=True)
    h.sim.fleet.set_client_id(stranger, f"{stranger}-dev")
    for name in (bound, stranger):
        h.sim.fleet.connect(name)
    h.sim.fleet.disconnect(offline, "CONNECTION_LOST")
    samples = h.cycle(advance=1)

    truth = {n: r.session for n, r in records(h).items() if r.session is not None}
    assert bound in truth
    assert stranger not in truth  # connected, but not as far as AWS can tell
    assert offline not in truth
    assert by_thing(samples, "iot_thing_keep_alive_seconds") == {
        n: float(s.keep_alive) for n, s in truth.items()
    }
    assert by_thing(samples, "iot_thing_session_expiry_seconds") == {
        n: float(s.session_expiry) for n, s in truth.items()
    }
    assert session_labels(samples) == {
        n: (s.client_id, "true" if s.clean_session else "false") for n, s in truth.items()
    }
    assert session_labels(samples)[bound][0] == f"{bound}-dev"
    assert series(samples, "iot_things_client_id_mismatch") == {frozenset(): 1.0}


def test_session_details_are_off_unless_asked_for(harness: HarnessFactory) -> None:
    h = harness(quiet(4, seed=23))
    samples = h.cycle()
    assert not series(samples, "iot_thing_keep_alive_seconds")
    assert not series(samples, "iot_thing_session_info")
    assert series(samples, "iot_things_client_id_mismatch") == {frozenset(): 0.0}


def test_the_mismatch_counts_by_segment_with_rollups(harness: HarnessFactory) -> None:
    h = sessions_harness(harness, "index", rollup_by=["thing_type"])
    names = h.sim.fleet.thing_names()
    for name in names[:3]:
        h.sim.fleet.set_client_id(name, f"{name}-dev", exclusive=True)
        h.sim.fleet.connect(name)
    samples = h.cycle(advance=1)
    expected: dict[frozenset[tuple[str, str]], float] = {}
    for name, record in records(h).items():
        key = frozenset({("thing_type", record.type_name or "")})
        mismatched = record.session is not None and record.session.client_id != name
        expected[key] = expected.get(key, 0.0) + mismatched
    assert series(samples, "iot_things_client_id_mismatch") == expected
    assert sum(expected.values()) == 3


def test_events_of_the_exclusive_association_reach_their_thing(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    url, sections = events_section(moto)
    h = harness(quiet(6, seed=29), sections={**sections, "metrics": {"session_details": True}})
    h.cycle()
    names = h.sim.fleet.thing_names()
    bound, stranger = names[0], names[1]
    h.sim.fleet.set_client_id(bound, "device-0001", exclusive=True)
    h.sim.fleet.set_client_id(stranger, "device-0002")
    rule = rule_for(h, moto, url)
    h.clock.advance(1)
    for name in (bound, stranger):
        h.sim.fleet.connect(name)  # the old sessions end with DUPLICATE_CLIENTID first
    h.clock.advance(1)
    h.sim.fleet.disconnect(bound, "CONNECTION_LOST")
    rule.publish()
    drained(h, moto, url, rule)
    disconnects = {
        (dict(labels)["thing_name"], dict(labels)["reason"]): v
        for labels, v in series(h.samples(), "iot_thing_disconnects_total").items()
        if v
    }
    # The bound device's events name their thing; the stranger's client ID maps to none.
    assert disconnects == {
        (bound, "DUPLICATE_CLIENTID"): 1.0,
        (bound, "CONNECTION_LOST"): 1.0,
        (stranger, "DUPLICATE_CLIENTID"): 1.0,
    }
    assert h.live_value("iot_exporter_events_not_targeted_total") == 1  # the stranger's connect


def test_refused_connects_reach_their_things_once_through_duplicates_and_reordering(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    url, sections = events_section(moto)
    h = harness(quiet(6, seed=31), sections=sections)
    h.cycle()
    names = h.sim.fleet.thing_names()
    rule = rule_for(h, moto, url, RuleFaults(duplicate_rate=0.5, reorder_window=5))
    expected: Counter[tuple[str, str]] = Counter()
    for second in range(20):
        h.clock.advance(1)
        name = names[second % 3]
        kind = "AUTHORIZATION_FAILURE" if second % 4 else "THROTTLED"
        h.sim.fleet.fail_connect(name, kind)
        expected[(name, kind)] += 1
    # The exclusive association names the thing; a client of no thing counts for the fleet.
    h.sim.fleet.fail_connect("device-77", thing_name=names[4])
    expected[(names[4], "AUTHORIZATION_FAILURE")] += 1
    h.sim.fleet.fail_connect("intruder 1")
    rule.publish()
    drained(h, moto, url, rule)
    samples = h.samples()
    per_thing = {
        (dict(labels)["thing_name"], dict(labels)["failure_type"]): v
        for labels, v in series(samples, "iot_thing_connect_failures_total").items()
    }
    assert per_thing == {key: float(n) for key, n in expected.items()}
    assert h.live_value("iot_exporter_events_duplicates_total") > 0
    fleet = {
        (dict(labels)["failure_type"], dict(labels)["known_client"]): v
        for labels, v in series(samples, "iot_connect_failures_total").items()
    }
    assert fleet == {
        ("AUTHORIZATION_FAILURE", "true"): 16.0,
        ("THROTTLED", "true"): 5.0,
        ("AUTHORIZATION_FAILURE", "false"): 1.0,
    }
    assert len(rule.failures_published) == 22


def socket_labels(samples: Samples) -> dict[str, dict[str, str]]:
    return {
        dict(labels)["thing_name"]: dict(labels)
        for labels in series(samples, "iot_thing_socket_info")
    }


def test_live_mode_asks_for_the_socket_only_when_told(harness: HarnessFactory) -> None:
    h = harness(quiet(5, seed=37), socket_information=True)
    samples = h.cycle()
    truth = {n: r.session for n, r in records(h).items() if r.session is not None}
    assert truth
    shown = socket_labels(samples)
    assert set(shown) == set(truth)
    for name, session in truth.items():
        labels = shown[name]
        assert labels["source_ip"] == session.source_ip
        assert (labels["target_ip"], labels["target_port"]) == ("203.0.113.10", "8883")
        assert labels["vpc_endpoint_id"] == ""  # the simulator's clients use no VPC endpoint
    # Not asked for: no socket, and the family is not shown at all.
    plain = harness(quiet(5, seed=37))
    assert not series(plain.cycle(), "iot_thing_socket_info")
