"""--demo: a simulated fleet started in-process, and the config that polls it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import yaml

from exporter.config import Config, parse_config
from exporter.simulator import Simulator, SimulatorConfig

DEMO_REGION = "us-east-1"
# The simulator accepts any well-formed signature by default; these keys exist only here.
DEMO_CREDENTIALS = ("AKIADEMODEMODEMODEMO", "demo-secret-key-not-a-real-secret")


@dataclass(frozen=True, slots=True)
class Demo:
    simulator: Simulator
    config: Config
    credentials: tuple[str, str]


def demo_config(endpoint_url: str) -> Config:
    """A config like an operator's: two thing groups found by discovery, one polled live and
    one read from the fleet index, registry labels, and a fleet-wide aggregate."""
    document = {
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
    }
    return parse_config(yaml.safe_dump(document, sort_keys=False), source="<demo>")


@contextmanager
def start_demo() -> Iterator[Demo]:
    simulator = Simulator(SimulatorConfig.demo())
    simulator.start()
    try:
        config = demo_config(simulator.url)
        yield Demo(simulator=simulator, config=config, credentials=DEMO_CREDENTIALS)
    finally:
        simulator.stop()
