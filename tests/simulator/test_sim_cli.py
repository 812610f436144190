"""The command line: flags, --help, and a real ``python -m iot_simulator`` process."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from iot_simulator import SimulatorConfig
from iot_simulator.cli import build_parser, config_from_args, faults_from_args
from tests.support.paths import REPO_ROOT


@pytest.fixture
def process() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iot_simulator",
            "--things",
            "50",
            "--port",
            "0",
            "--manual-clock",
            "1700000000",
            "--rate",
            "ListThings=0",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_runs_prints_its_url_and_stops_on_sigterm(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    url = process.stdout.readline().strip()  # blocks until the server is up
    assert url.startswith("http://127.0.0.1:")
    iot = boto3.Session().client(
        "iot",
        endpoint_url=url,
        region_name="eu-west-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    names = [
        t["thingName"]
        for page in iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 7})
        for t in page["things"]
    ]
    assert len(names) == 50
    request = urllib.request.Request(
        url + "/_simulator/clock/advance", data=b'{"seconds": 60}', method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"now": 1700000060.0}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_help_documents_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "iot_simulator", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    parser = build_parser()
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in result.stdout
        assert action.help, f"{action.option_strings} has no help"


def test_flags_override_the_preset() -> None:
    parser = build_parser()
    config = config_from_args(
        parser.parse_args(
            [
                "--demo",
                "--things",
                "10",
                "--rate",
                "ListThings=0",
                "--rate",
                "SearchIndex=2.5",
                "--reason-weight",
                "AUTH_ERROR=2",
                "--credentials",
                "AKID:secret",
                "--no-churn",
                "--thing-types",
                "a,b",
            ]
        )
    )
    assert config.things == 10
    assert config.mean_session_seconds == 180.0  # from the demo preset
    assert config.churn is False
    assert config.effective_rates()["ListThings"] is None
    assert config.effective_rates()["SearchIndex"] == 2.5
    assert config.effective_rates()["GetThingConnectivityData"] == 350
    assert config.reason_weights == {"AUTH_ERROR": 2.0}
    assert config.credentials == {"AKID": "secret"}
    assert config.thing_types == ("a", "b")
    plain = config_from_args(parser.parse_args([]))
    assert plain.things == 100
    assert plain.churn is True


def test_index_flags() -> None:
    parser = build_parser()
    config = config_from_args(
        parser.parse_args(
            [
                "--search-index-lag-seconds",
                "2.5",
                "--index-disconnect-details-retention-seconds",
                "inf",
                "--rate",
                "GetStatistics=1",
                "--rate",
                "GetBucketsAggregation=0",
            ]
        )
    )
    assert config.search_index_lag_seconds == 2.5
    assert config.index_disconnect_details_retention_seconds == math.inf
    assert config.effective_rates()["GetStatistics"] == 1
    assert config.effective_rates()["GetBucketsAggregation"] is None  # 0 = unlimited
    assert config.effective_rates()["DescribeThingGroup"] == 100
    assert config_from_args(parser.parse_args([])).index_disconnect_details_retention_seconds == (
        3600
    )


def test_every_config_field_has_a_flag() -> None:
    dests = {action.dest for action in build_parser()._actions}
    flag_of = {"reason_weights": "reason_weight", "rates": "rate"}  # repeatable flags
    for field in dataclasses.fields(SimulatorConfig):
        assert flag_of.get(field.name, field.name) in dests, field.name


def test_fault_flags() -> None:
    args = build_parser().parse_args(
        [
            "--latency",
            "0.1",
            "--error-rate",
            "ThrottlingException=0.2",
            "--outage",
            "reset",
            "--malformed",
            "html",
            "--fault-operations",
            "ListThings,SearchIndex",
        ]
    )
    faults = faults_from_args(args)
    assert faults.latency == 0.1
    assert faults.error_rates == {"ThrottlingException": 0.2}
    assert faults.outage == "reset"
    assert faults.malformed == "html"
    assert faults.operations == frozenset({"ListThings", "SearchIndex"})


@pytest.mark.parametrize(
    "argv",
    [
        ["--credentials", "no-colon"],
        ["--error-rate", "Throttling"],
        ["--rate", "ListThings=fast"],
        ["--things", "-1"],
        ["--outage", "sometimes"],
        ["--search-index-lag-seconds", "-1"],
        ["--index-disconnect-details-retention-seconds", "0"],
    ],
)
def test_bad_flags_exit_2(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "iot_simulator", *argv],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr
