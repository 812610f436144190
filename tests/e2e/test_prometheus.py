"""End to end: a real Prometheus scrapes the exporter process while it polls the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from iot_simulator import SimulatorConfig
from tests.support.promstack import http_get, scalar
from tests.support.stack import EXPORTER_JOB, fleet_stack, promtool

pytestmark = pytest.mark.slow


def test_prometheus_sees_the_simulated_fleet(tmp_path: Path) -> None:
    sim_config = SimulatorConfig(
        things=40,
        seed=31,
        churn=False,
        never_connected_fraction=0.1,
        duplicate_clientid_things=0,
    )
    with fleet_stack(tmp_path, things=40, sim_config=sim_config) as stack:
        sim, prometheus = stack.sim, stack.prometheus
        names = sim.fleet.thing_names()
        # Some things are offline before the exporter ever sees them: not counted later.
        for name in names[:3]:
            sim.fleet.disconnect(name, reason="CLIENT_INITIATED_DISCONNECT")

        def truth() -> int:
            return sum(sim.fleet.state(name).connected for name in names)

        expected = truth()
        assert 0 < expected < len(names)
        prometheus.wait_for(
            f'sum(iot_thing_connected{{job="{EXPORTER_JOB}"}})',
            lambda r: bool(r) and scalar(r) == expected,
        )
        assert scalar(prometheus.query("count(iot_thing_connected)")) == len(names)

        # A disconnect caused after start-up shows in increase() over the last minute.
        victim = next(name for name in names if sim.fleet.state(name).connected)
        prometheus.wait_for('iot_disconnects_total{reason="AUTH_ERROR"}')
        sim.fleet.disconnect(victim, reason="AUTH_ERROR")
        prometheus.wait_for(
            'increase(iot_disconnects_total{reason="AUTH_ERROR"}[1m])',
            lambda r: bool(r) and scalar(r) > 0,
        )
        prometheus.wait_for(
            "sum(iot_thing_connected)", lambda r: bool(r) and scalar(r) == expected - 1
        )
        reason = prometheus.query(f'iot_thing_disconnect_reason_info{{thing_name="{victim}"}}')
        assert reason[0]["metric"]["reason"] == "AUTH_ERROR"
        # The exporter's own health is scraped too.
        assert scalar(prometheus.query("iot_exporter_things_targeted")) == len(names)
        assert scalar(prometheus.query("iot_exporter_config_last_reload_successful")) == 1

        # The live exposition passes promtool's lint.
        status, body = http_get(stack.exporter.url + "/metrics")
        assert status == 200
        result = promtool("check", "metrics", stdin=body.decode())
        assert result.returncode == 0, result.stdout + result.stderr
        assert stack.exporter.stop() == 0


def test_prometheus_sees_a_discovered_fleet_with_registry_labels_and_aggregates(
    tmp_path: Path,
) -> None:
    sim_config = SimulatorConfig(
        things=48, seed=32, churn=False, never_connected_fraction=0.0, duplicate_clientid_things=0
    )
    sections = {
        "discovery": {
            "interval": "2s",
            "thing_groups": [{"name": "group-1", "recursive": True}],
        },
        "registry": {"attributes": ["site"], "promote": ["thing_type"]},
        "aggregates": {
            "interval": "2s",
            "queries": [{"name": "group-1", "query": "thingGroupNames:(group-1-1 OR group-1-2)"}],
        },
    }
    with fleet_stack(
        tmp_path, things=48, sim_config=sim_config, config_things=[], sections=sections
    ) as stack:
        sim, prometheus = stack.sim, stack.prometheus
        members = sim.fleet.members("group-1", recursive=True)
        assert len(members) == 24
        prometheus.wait_for(
            "count(iot_thing_connected)", lambda r: bool(r) and scalar(r) == len(members)
        )
        victim = members[0]
        sim.fleet.disconnect(victim, reason="SERVER_INITIATED_DISCONNECT")
        prometheus.wait_for(
            'sum(iot_thing_connected) == on() iot_fleet_things{connected="true",query="group-1"}',
            lambda r: bool(r) and scalar(r) == len(members) - 1,
        )
        # Registry labels join on with group_left; only the promoted one is on connected.
        joined = prometheus.query(
            "iot_thing_connected * on(thing_name) group_left(site) iot_thing_info"
        )
        assert len(joined) == len(members)
        for row in joined:
            metric = row["metric"]
            record = sim.fleet.record(metric["thing_name"])
            assert metric["site"] == record.attributes["site"]
            assert metric["thing_type"] == record.type_name
        prometheus.wait_for(
            'iot_exporter_source_things{source="thing_group:group-1"}',
            lambda r: bool(r) and scalar(r) == len(members),
        )
        status, body = http_get(stack.exporter.url + "/metrics")
        assert status == 200
        lint = promtool("check", "metrics", stdin=body.decode())
        assert lint.returncode == 0, lint.stdout + lint.stderr
