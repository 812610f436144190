"""Fixtures for the simulator's tests: a started simulator on a manual clock and boto3 clients."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config
from mypy_boto3_iot import IoTClient
from mypy_boto3_sts import STSClient

from iot_simulator import ManualClock, Simulator, SimulatorConfig

REGION = "eu-west-1"
START = 1_700_000_000.0
T = TypeVar("T")

ClientFactory = Callable[..., IoTClient]


@pytest.fixture(scope="session")
def boto_session() -> boto3.Session:
    # One session: its model loader cache makes each further client cheap.
    return boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name=REGION
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[Simulator]:
    # Quotas off: paging tests make many calls quickly; test_sim_quotas covers the buckets.
    config = SimulatorConfig(things=30, seed=7, quotas=False)
    with Simulator(config, clock=clock) as simulator:
        yield simulator
        assert simulator.internal_errors() == []


@pytest.fixture
def make_client(boto_session: boto3.Session) -> ClientFactory:
    """iot client for a simulator: no retries, so every fault surfaces."""

    def make(simulator: Simulator, **config: Any) -> IoTClient:
        return boto_session.client(
            "iot",
            endpoint_url=simulator.url,
            config=Config(retries={"total_max_attempts": 1}, **config),
        )

    return make


@pytest.fixture
def iot(sim: Simulator, make_client: ClientFactory) -> IoTClient:
    return make_client(sim)


@pytest.fixture
def make_sts(boto_session: boto3.Session) -> Callable[[Simulator], STSClient]:
    def make(simulator: Simulator) -> STSClient:
        return boto_session.client(
            "sts",
            endpoint_url=simulator.url,
            config=Config(retries={"total_max_attempts": 1}),
        )

    return make


def _wait_for(condition: Callable[[], T | None], timeout: float = 5.0) -> T:
    """Poll until ``condition`` returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


Poll = Callable[..., Any]


@pytest.fixture
def wait_for() -> Poll:
    return _wait_for
