"""A whole fleet stack for end-to-end tests: simulator -> exporter process -> Prometheus."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from iot_simulator import ManualClock, Simulator, SimulatorConfig
from tests.support.exporter_process import ExporterProcess
from tests.support.paths import ALERTS_FILE, REPO_ROOT
from tests.support.promstack import Prometheus, ScrapeTarget

EXPORTER_JOB = "iot-connectivity-exporter"
"""The scrape job name the tests use; the shipped `up` alerts match it by regex."""

# The simulator accepts any well-formed signature; these keep boto3 from looking
# for real credentials or an instance metadata service.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m exporter ARGS` to completion (60 s at most), under AWS_TEST_ENV plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **AWS_TEST_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def require_binary(name: str) -> str:
    """Path of a tool the tests need; fail (never skip) with how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: run scripts/bootstrap (Debian package)")
    return path


def rules_without_for(destination: Path) -> Path:
    """The shipped rules with every `for:` set to 0s, and every group evaluated at the test
    Prometheus's own interval (a second): the durations ride out blips in production, the
    recording rules' minutes keep them cheap there, and waiting either out in a test would
    prove nothing more."""
    shipped = ALERTS_FILE.read_text()
    fast, count = re.subn(r"^(\s+for:)\s*\S+\s*$", r"\1 0s", shipped, flags=re.MULTILINE)
    assert count >= 10, "expected a for: clause on the shipped alerts"
    fast, groups = re.subn(r"^    interval: \S+\n", "", fast, flags=re.MULTILINE)
    assert groups >= 1, "expected an evaluation interval on the recording rules' groups"
    destination.write_text(fast)
    return destination


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run Prometheus's promtool (check metrics, check rules, test rules) and capture it."""
    return subprocess.run(
        [require_binary("promtool"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_exporter_config(
    path: Path,
    *,
    endpoint_url: str,
    things: Sequence[str | Mapping[str, object]],
    interval: str = "1s",
    labels: Mapping[str, str] | None = None,
    max_requests_per_second: float = 50,
    read_timeout: str = "2s",
    sections: Mapping[str, object] | None = None,
) -> Path:
    """Write an exporter config (see docs/configuration.md) polling `endpoint_url`;
    `sections` adds top-level sections (discovery, aggregates, ...)."""
    config = {
        "aws": {
            "region": "eu-west-1",
            "endpoint_url": endpoint_url,
            "connect_timeout": "1s",
            "read_timeout": read_timeout,
        },
        "poll": {"interval": interval, "max_requests_per_second": max_requests_per_second},
        "labels": dict(labels or {}),
        "things": [t if isinstance(t, str) else dict(t) for t in things],
        **(sections or {}),
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class FleetStack:
    """A running simulator, exporter and Prometheus; see `fleet_stack`."""

    sim: Simulator
    clock: ManualClock
    exporter: ExporterProcess
    prometheus: Prometheus


@contextmanager
def fleet_stack(
    workdir: Path,
    *,
    things: int,
    config_things: Sequence[str | Mapping[str, object]] | None = None,
    rule_files: Sequence[Path] = (),
    alertmanager_url: str | None = None,
    sim_config: SimulatorConfig | None = None,
    extra_args: Sequence[str] = (),
    sections: Mapping[str, object] | None = None,
    ready: str = "iot_thing_connected",
) -> Iterator[FleetStack]:
    """Start simulator -> exporter -> Prometheus and wait for the first scrape.

    The simulated fleet does not churn (every thing starts connected and stays
    so until the test acts), and its clock stands one hour in the past: whatever
    a test disconnects now, AWS's data says happened an hour ago, which is how a
    test gets a "long" outage without waiting (the alert thresholds read AWS's
    timestamps). `config_things` defaults to every simulated thing; `sim_config`
    replaces the quiet default fleet; `sections` adds config sections; `ready` is the
    query whose first result means the exporter's series are scraped.
    """
    clock = ManualClock(start=time.time() - 3600)
    sim_config = sim_config or SimulatorConfig(
        things=things,
        seed=7,
        churn=False,
        never_connected_fraction=0.0,
        duplicate_clientid_things=0,
    )
    with ExitStack() as stack:
        sim = stack.enter_context(Simulator(sim_config, clock=clock))
        config = write_exporter_config(
            workdir / "exporter.yaml",
            endpoint_url=sim.url,
            things=config_things if config_things is not None else sim.fleet.thing_names(),
            labels={"env": "test"},
            sections=sections,
        )
        exporter = stack.enter_context(
            ExporterProcess(config, env=AWS_TEST_ENV, extra_args=extra_args)
        )
        prometheus = stack.enter_context(
            Prometheus(
                [ScrapeTarget(EXPORTER_JOB, [exporter.address])],
                rule_files=rule_files,
                alertmanager_url=alertmanager_url,
            )
        )
        prometheus.wait_for(f'up{{job="{EXPORTER_JOB}"}} == 1')
        prometheus.wait_for(ready)
        yield FleetStack(sim=sim, clock=clock, exporter=exporter, prometheus=prometheus)
