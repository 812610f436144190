"""Three shards as Prometheus sees them: together they show the fleet, and a shard started
with another total fires the mismatch alert."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from iot_simulator import ManualClock, Simulator, SimulatorConfig
from tests.support.exporter_process import ExporterProcess
from tests.support.promstack import Prometheus, ScrapeTarget, scalar
from tests.support.stack import (
    AWS_TEST_ENV,
    EXPORTER_JOB,
    rules_without_for,
    write_exporter_config,
)

pytestmark = pytest.mark.slow

THINGS = 60


def test_three_shards_add_up_to_the_fleet_and_a_wrong_total_alerts(tmp_path: Path) -> None:
    clock = ManualClock(start=time.time() - 3600)
    config = SimulatorConfig(
        things=THINGS, seed=9, churn=False, never_connected_fraction=0.0,
        duplicate_clientid_things=0,
    )  # fmt: skip
    with ExitStack() as stack:
        sim = stack.enter_context(Simulator(config, clock=clock))
        names = sim.fleet.thing_names()
        for name in names[:12]:
            sim.fleet.disconnect(name, reason="CONNECTION_LOST")
        path = write_exporter_config(
            tmp_path / "exporter.yaml", endpoint_url=sim.url, things=names, labels={}
        )
        shards = [
            stack.enter_context(
                ExporterProcess(
                    path, env=AWS_TEST_ENV, extra_args=["--shard", str(k), "--total-shards", "3"]
                )
            )
            for k in range(3)
        ]
        # A fourth process, started by mistake with another total: shard 0 of 4.
        stray = stack.enter_context(
            ExporterProcess(path, env=AWS_TEST_ENV, extra_args=["--shard=0", "--total-shards=4"])
        )
        prometheus = stack.enter_context(
            Prometheus(
                [
                    ScrapeTarget(EXPORTER_JOB, [s.address for s in shards]),
                    ScrapeTarget("strayed", [s.address for s in shards] + [stray.address]),
                ],
                rule_files=[rules_without_for(tmp_path / "alerts.yaml")],
            )
        )
        job = f'job="{EXPORTER_JOB}"'
        prometheus.wait_for(
            f"count(iot_thing_connected{{{job}}})", lambda r: bool(r) and scalar(r) == THINGS
        )
        # Each thing on one shard only, and the sums are the fleet's.
        per_thing = prometheus.query(f"count by (thing_name) (iot_thing_connected{{{job}}})")
        assert {s["metric"]["thing_name"] for s in per_thing} == set(names)
        assert {float(s["value"][1]) for s in per_thing} == {1.0}
        assert scalar(prometheus.query(f"sum(iot_thing_connected{{{job}}})")) == THINGS - 12
        assert scalar(prometheus.query(f'sum(iot_things{{{job},connected="false"}})')) == 12
        shares = prometheus.query(f"count by (instance) (iot_thing_connected{{{job}}})")
        assert len(shares) == 3
        assert all(float(s["value"][1]) > 5 for s in shares)
        # The right job is whole and agrees; the job with the stray disagrees.
        firing = prometheus.wait_for(
            'ALERTS{alertname="IoTExporterShardingMismatch",alertstate="firing"}', timeout=60
        )
        assert [alert["metric"]["job"] for alert in firing] == ["strayed"]
        # The whole job has every shard. (The rules run without their `for:`, so a scrape
        # that missed under load may fire it for a moment: it must clear.)
        prometheus.wait_for(
            f'ALERTS{{alertname="IoTExporterShardsMissing",{job}}}', lambda r: r == [], timeout=30
        )
