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
DEMO_SITES = ("plant-a", "plant-b", "warehouse")


@dataclass(frozen=True, slots=True)
class Demo:
    simulator: Simulator
    config: Config
    credentials: tuple[str, str]


def demo_config(endpoint_url: str, thing_names: list[str]) -> Config:
    """A config like an operator's: short interval, a budget, a site label per thing."""
    document = {
        "aws": {"region": DEMO_REGION, "endpoint_url": endpoint_url},
        "poll": {"interval": "10s", "max_requests_per_second": 100, "concurrency": 8},
        "labels": {"env": "demo"},
        "things": [
            {"name": name, "labels": {"site": DEMO_SITES[index % len(DEMO_SITES)]}}
            for index, name in enumerate(thing_names)
        ],
    }
    return parse_config(yaml.safe_dump(document, sort_keys=False), source="<demo>")


@contextmanager
def start_demo() -> Iterator[Demo]:
    simulator = Simulator(SimulatorConfig.demo())
    simulator.start()
    try:
        config = demo_config(simulator.url, simulator.fleet.thing_names())
        yield Demo(simulator=simulator, config=config, credentials=DEMO_CREDENTIALS)
    finally:
        simulator.stop()
