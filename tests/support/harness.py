"""The integration harness: an in-process exporter polling a simulator through real boto3 over HTTP.

The `harness` fixture is re-exported by `tests/integration/conftest.py`; the helpers
(`parse_samples`, `value`, `series`) are imported from here by any test that reads an exposition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter, Planner
from exporter.aws.clients import make_iot_client, make_sqs_client
from exporter.config import Config, load_config
from exporter.fleet.shards import Shard
from exporter.sources.plan import plan
from iot_simulator import FaultConfig, ManualClock, Simulator, SimulatorConfig

TEST_CREDENTIALS = ("AKIDEXPORTERTEST0001", "exporter-test-secret")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(exposition: bytes) -> Samples:
    """Every sample of an exposition, keyed by (name, labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@dataclass
class Harness:
    """A simulator on a manual clock and an exporter polling it, driven cycle by cycle."""

    sim: Simulator
    clock: ManualClock
    config_path: Path
    exporter: Exporter
    collectors: CollectorRegistry
    document: dict[str, Any] = field(default_factory=dict)

    def live_value(self, name: str, **labels: str) -> float:
        """A metric's value now, not as of the last rendering (which happens per cycle)."""
        found = self.collectors.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def cycle(self, advance: float = 0.0) -> Samples:
        """Advance the clock, run one pass of every source (discovery first), render."""
        if advance:
            self.clock.advance(advance)
        self.exporter.run_all()
        return self.samples()

    def served(self) -> Samples:
        """The exposition as a scrape gets it now, without rendering it first."""
        return parse_samples(self.exporter.payload().plain)

    def samples(self) -> Samples:
        """The exposition as of now: rendered afresh, as the renderer would on a change."""
        self.exporter.render_now()
        return parse_samples(self.exporter.payload().plain)

    def rewrite_config(self, **changes: Any) -> None:
        self.document = {**self.document, **changes}
        self.config_path.write_text(yaml.safe_dump(self.document, sort_keys=False))


def quiet(things: int, *, seed: int, **changes: Any) -> SimulatorConfig:
    """A fleet that changes only when a test says so: every thing connected, none flapping."""
    return SimulatorConfig(
        things=things,
        seed=seed,
        quotas=False,
        never_connected_fraction=0,
        duplicate_clientid_things=0,
        churn=False,
        mean_session_seconds=math.inf,
        mean_offline_seconds=math.inf,
        **changes,
    )


def connected_by_thing(samples: Samples) -> dict[str, float]:
    """iot_thing_connected by thing name."""
    return {
        dict(labels)["thing_name"]: v
        for labels, v in series(samples, "iot_thing_connected").items()
    }


def config_document(sim: Simulator, things: list[Any], **poll: Any) -> dict[str, Any]:
    return {
        "aws": {"region": "eu-west-1", "endpoint_url": sim.url, "read_timeout": "2s"},
        "poll": {"interval": "60s", "max_requests_per_second": 2000, "concurrency": 8, **poll},
        "things": things,
    }


def client_factory(config: Config) -> Any:
    return make_iot_client(config.aws, config.poll.concurrency, static_credentials=TEST_CREDENTIALS)


def sqs_client_factory(config: Config) -> Any:
    assert config.events is not None
    return make_sqs_client(config.aws, config.events, static_credentials=TEST_CREDENTIALS)


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[HarnessFactory]:
    started: list[Harness] = []

    def make(
        sim_config: SimulatorConfig | None = None,
        *,
        things: list[Any] | None = None,
        faults: FaultConfig | None = None,
        aws: Mapping[str, Any] | None = None,
        factory: Callable[[Config], Any] = client_factory,
        sections: Mapping[str, Any] | None = None,
        planner: Planner = plan,
        shard: Shard | None = None,
        sim: Simulator | None = None,
        **poll: Any,
    ) -> Harness:
        """A started simulator and an exporter polling it; `sections` adds top-level config
        sections (discovery, registry, aggregates, ...)."""
        if sim is None:
            clock = ManualClock()
            sim = Simulator(
                sim_config or SimulatorConfig(things=20, seed=3, quotas=False),
                clock=clock,
                faults=faults,
            )
            sim.start()
        else:  # another exporter of the test watches this simulator too (a shard)
            assert isinstance(sim.clock, ManualClock)
            clock = sim.clock
        document = config_document(
            sim, things if things is not None else sim.fleet.thing_names(), **poll
        )
        document["aws"].update(aws or {})
        document.update(sections or {})
        path = tmp_path / ("config.yaml" if not started else f"config-{len(started)}.yaml")
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        collectors = CollectorRegistry()
        exporter = Exporter(
            lambda: load_config(path),
            factory,
            clock=clock.now,
            collectors=collectors,
            sqs_client_factory=sqs_client_factory,
            planner=planner,
            shard=shard,
        )
        made = Harness(
            sim=sim,
            clock=clock,
            config_path=path,
            exporter=exporter,
            collectors=collectors,
            document=document,
        )
        started.append(made)
        return made

    yield make
    for made in started:
        made.exporter.stop()
        made.sim.stop()  # idempotent: shards of one test share a simulator
