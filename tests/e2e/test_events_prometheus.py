"""End to end with lifecycle events: a flap far shorter than the poll interval reaches a real
Prometheus with its real reason, through the simulator's topic rule and moto's SQS."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from iot_simulator import ManualClock, Simulator, SimulatorConfig
from iot_simulator.topic_rule import TopicRule
from tests.support.exporter_process import ExporterProcess
from tests.support.promstack import Prometheus, ScrapeTarget, scalar
from tests.support.sqs import MotoServer
from tests.support.stack import AWS_TEST_ENV, EXPORTER_JOB, write_exporter_config

pytestmark = pytest.mark.slow


def test_a_flap_between_polls_shows_in_increase_with_its_reason(tmp_path: Path) -> None:
    clock = ManualClock(start=time.time())
    sim_config = SimulatorConfig(
        things=5, seed=3, churn=False, never_connected_fraction=0.0, duplicate_clientid_things=0
    )
    with ExitStack() as stack:
        moto = stack.enter_context(MotoServer())
        queue_url = moto.queue("lifecycle")
        sim = stack.enter_context(Simulator(sim_config, clock=clock))
        names = sim.fleet.thing_names()
        path = write_exporter_config(
            tmp_path / "exporter.yaml", endpoint_url=sim.url, things=names, interval="5m"
        )
        document = yaml.safe_load(path.read_text())
        document["events"] = {"queue_url": queue_url, "endpoint_url": moto.url}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        exporter = stack.enter_context(ExporterProcess(path, env=AWS_TEST_ENV))
        prometheus = stack.enter_context(
            Prometheus([ScrapeTarget(EXPORTER_JOB, [exporter.address])])
        )
        reason = "DUPLICATE_CLIENTID"
        prometheus.wait_for(f'iot_disconnects_total{{reason="{reason}"}}')
        rule = TopicRule(sim.fleet, moto.client(), queue_url, clock=clock.now)
        victim = names[0]
        clock.advance(1)
        sim.fleet.disconnect(victim, reason)  # 20 ms offline: no poll in 5 minutes sees it
        clock.advance(0.02)
        sim.fleet.connect(victim)
        rule.publish()
        prometheus.wait_for(
            f'increase(iot_disconnects_total{{reason="{reason}"}}[1m])',
            lambda r: bool(r) and scalar(r) > 0,
        )
        flap = prometheus.query(
            f'iot_thing_disconnects_total{{thing_name="{victim}",reason="{reason}"}}'
        )
        assert scalar(flap) == 1
        assert scalar(prometheus.query(f'iot_thing_connected{{thing_name="{victim}"}}')) == 1
        unseen = prometheus.query('iot_disconnects_total{reason="unobserved_flap"}')
        assert scalar(unseen) == 0
