"""--demo: a simulated fleet started in-process, and the config that polls it.

With moto installed (a dev dependency), the demo also runs the fleet's topic rule into an
in-process SQS queue, and the exporter counts disconnects from lifecycle events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import yaml

from exporter.config import Config, parse_config
from iot_simulator import Simulator, SimulatorConfig
from iot_simulator.topic_rule import TopicRule

log = logging.getLogger(__name__)

DEMO_REGION = "us-east-1"
# The simulator accepts any well-formed signature by default; these keys exist only here.
DEMO_CREDENTIALS = ("AKIADEMODEMODEMODEMO", "demo-secret-key-not-a-real-secret")
# How often the demo's topic rule sends what the fleet generated.
PUBLISH_INTERVAL = 1.0
EVENTS_HINT = "pip install 'moto[sqs,server]' (or the dev extras) to run the demo with events"


@dataclass(frozen=True, slots=True)
class Demo:
    simulator: Simulator
    config: Config
    credentials: tuple[str, str]


def demo_config(endpoint_url: str, events: dict[str, str] | None = None) -> Config:
    """A config like an operator's: two thing groups found by discovery, one polled live and
    one read from the fleet index, registry labels, counts by type and site, a fleet-wide
    aggregate, and lifecycle events when an SQS queue is at hand."""
    document: dict[str, Any] = {
        "aws": {"region": DEMO_REGION, "endpoint_url": endpoint_url},
        "poll": {"interval": "10s", "max_requests_per_second": 100, "concurrency": 8},
        "labels": {"env": "demo"},
        "discovery": {
            "interval": "30s",
            "thing_groups": [
                {"name": "group-1", "recursive": True},
                {"name": "group-2", "recursive": True, "mode": "index"},
            ],
        },
        "registry": {"attributes": ["site", "firmware"], "promote": ["site"]},
        "aggregates": {"interval": "30s", "queries": [{"name": "all", "by": ["thingTypeName"]}]},
        # Exact counts by type and site in iot_things, beside the per-thing series.
        "metrics": {"rollup_by": ["thing_type", "site"]},
    }
    if events is not None:
        document["events"] = events
    return parse_config(yaml.safe_dump(document, sort_keys=False), path="<demo>")


@contextmanager
def start_demo() -> Iterator[Demo]:
    simulator = Simulator(SimulatorConfig.demo())
    simulator.start()
    try:
        with _events(simulator) as events:
            config = demo_config(simulator.url, events)
            yield Demo(simulator=simulator, config=config, credentials=DEMO_CREDENTIALS)
    finally:
        simulator.stop()


@contextmanager
def _events(simulator: Simulator) -> Iterator[dict[str, str] | None]:
    """An in-process SQS (moto) fed by the fleet's topic rule; None without moto."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - a dev dependency
    except ImportError:
        log.info(f"demo: lifecycle events are off; {EVENTS_HINT}")
        yield None
        return
    # moto's server logs each request at info through werkzeug; its access log would drown
    # the exporter's own lines, so it shows only at --log.level=debug.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stop = threading.Event()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "sqs",
            region_name=DEMO_REGION,
            endpoint_url=endpoint,
            aws_access_key_id=DEMO_CREDENTIALS[0],
            aws_secret_access_key=DEMO_CREDENTIALS[1],
        )
        queue_url = str(client.create_queue(QueueName="iot-lifecycle")["QueueUrl"])
        rule = TopicRule(simulator.fleet, client, queue_url, clock=simulator.clock.now)
        thread = threading.Thread(
            target=_publish, args=(rule, stop), name="demo-topic-rule", daemon=True
        )
        thread.start()
        log.info("demo: lifecycle events on, through an in-process SQS", extra={"queue": queue_url})
        yield {"queue_url": queue_url, "endpoint_url": endpoint}
    finally:
        stop.set()
        server.stop()


def _publish(rule: TopicRule, stop: threading.Event) -> None:
    while not stop.wait(PUBLISH_INTERVAL):
        try:
            rule.publish()
        except Exception:  # the demo's rule must not die on one failed send
            log.exception("demo: publishing lifecycle events failed")
