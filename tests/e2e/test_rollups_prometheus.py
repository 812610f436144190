"""Rollups as Prometheus reads them: a segment going dark fires IoTFleetSegmentOffline,
and increase(iot_disconnects_total) by segment equals what happened, under `problems`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.support.promstack import Result, scalar
from tests.support.stack import EXPORTER_JOB, fleet_stack, rules_without_for

pytestmark = pytest.mark.slow

NORTH, SOUTH = 14, 10
# Disconnected in the test: 10 of north's 14 (over half) and 2 of south's 10 (not).
DROPS = {
    **{f"thing-{i:05d}": "CONNECTION_LOST" for i in range(1, 7)},
    **{f"thing-{i:05d}": "AUTH_ERROR" for i in range(7, 11)},
    **{f"thing-{i:05d}": "CONNECTION_LOST" for i in range(NORTH + 1, NORTH + 3)},
}


def site_of(index: int) -> str:
    return "north" if index <= NORTH else "south"


def test_a_dark_segment_alerts_and_its_disconnects_add_up(tmp_path: Path) -> None:
    things = [
        {"name": f"thing-{i:05d}", "labels": {"site": site_of(i)}}
        for i in range(1, NORTH + SOUTH + 1)
    ]
    sections = {"metrics": {"per_thing": "problems", "rollup_by": ["site"]}}
    with fleet_stack(
        tmp_path,
        things=NORTH + SOUTH,
        config_things=things,
        sections=sections,
        rule_files=[rules_without_for(tmp_path / "alerts.yaml")],
        ready=f'iot_things{{job="{EXPORTER_JOB}",site="south",connected="true"}} == {SOUTH}',
    ) as stack:
        sim, prometheus = stack.sim, stack.prometheus
        assert prometheus.query("count(iot_thing_connected)") == []  # healthy: no list
        # The counters' history must be long against the scrape interval, so that
        # increase()'s extrapolation to the range's end stays well under one disconnect.
        prometheus.wait_for(
            'count_over_time(iot_disconnects_total{site="north",reason="AUTH_ERROR"}[1h])',
            lambda r: bool(r) and scalar(r) >= 20,
            timeout=60,
        )
        for name, reason in DROPS.items():
            sim.fleet.disconnect(name, reason=reason)

        firing = prometheus.wait_for(
            'ALERTS{alertname="IoTFleetSegmentOffline",alertstate="firing"}', timeout=60
        )
        assert [alert["metric"]["site"] for alert in firing] == ["north"]
        assert prometheus.query('ALERTS{alertname="IoTFleetSegmentOffline",site="south"}') == []

        truth = Counter(
            (site_of(int(name.split("-")[1])), reason) for name, reason in DROPS.items()
        )
        query = "sum by (site, reason) (increase(iot_disconnects_total[10m])) > 0"

        def counted(result: list[Result]) -> dict[tuple[str, str], int]:
            return {
                (s["metric"]["site"], s["metric"]["reason"]): round(float(s["value"][1]))
                for s in result
            }

        # Polled: a poll may see some of the drops a scrape before the others.
        prometheus.wait_for(query, lambda r: counted(r) == dict(truth), timeout=30)
        # The segment counts: north 10 of 14 offline, south 2 of 10.
        offline = 'iot_things{{site="{}",connected="false"}}'
        assert scalar(prometheus.query(offline.format("north"))) == 10
        assert scalar(prometheus.query(offline.format("south"))) == 2
        # And the problem list names exactly the things that dropped.
        listed = prometheus.query("iot_thing_connected == 0")
        assert {s["metric"]["thing_name"] for s in listed} == set(DROPS)
