"""The exporter as operators run it: flags, config checks, signals, reload, the demo."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import __version__
from iot_simulator import FaultConfig, Simulator, SimulatorConfig
from tests.support.exporter_process import ExporterProcess
from tests.support.harness import parse_samples, value
from tests.support.paths import REPO_ROOT
from tests.support.promstack import http_get, http_post, wait_until
from tests.support.stack import AWS_TEST_ENV, run_cli, write_exporter_config

BAD_CONFIG = """\
aws:
  region: eu-west-1
poll:
  intervall: 60s
  max_requests_per_second: lots
things:
  - sensor 1
"""


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(things=6, seed=41, quotas=False)) as simulator:
        yield simulator


@pytest.fixture
def config(tmp_path: Path, sim: Simulator) -> Path:
    return write_exporter_config(
        tmp_path / "config.yaml", endpoint_url=sim.url, things=sim.fleet.thing_names()
    )


def metric(url: str, name: str, **labels: str) -> float | None:
    _, body = http_get(url + "/metrics")
    return value(parse_samples(body), name, **labels)


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"iot-connectivity-exporter {__version__}"


def test_help_documents_every_flag() -> None:
    out = run_cli("--help").stdout
    for flag in (
        "--config.file",
        "--config.check",
        "--web.listen-address",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
        "--demo",
        "--version",
        "IOT_EXPORTER_CONFIG_FILE",
        ":9689",
    ):
        assert flag in out


def test_config_check_accepts_the_example() -> None:
    result = run_cli("--config.check", "--config.file", "config.example.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK: config.example.yaml:")


def test_config_check_reports_every_error_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    result = run_cli("--config.check", "--config.file", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f'{bad}: poll.intervall: unknown key (did you mean "interval"?)',
        f'{bad}: poll.max_requests_per_second: expected a number, got "lots"',
        f'{bad}: things[0].name: invalid thing name "sensor 1": '
        "use 1 to 128 letters, digits or : _ -",
    ]


def test_config_file_from_the_environment(tmp_path: Path, config: Path) -> None:
    result = run_cli("--config.check", env={"IOT_EXPORTER_CONFIG_FILE": str(config)})
    assert result.returncode == 0
    assert str(config) in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config.file", "/nonexistent/config.yaml"], "cannot read the file"),
        (["--web.listen-address", "nonsense"], "--web.listen-address: expected [host]:port"),
        (["--web.telemetry-path", "metrics"], "--web.telemetry-path: must start with /"),
        (["--log.level", "loud"], "invalid choice: 'loud'"),
        (
            ["--shard", "3", "--total-shards", "3"],
            "--shard must be between 0 and 2 (--total-shards=3 counts from 0), got 3",
        ),
        (["--shard", "-1"], "--shard: expected a whole number, 0 or more, got '-1'"),
        (["--total-shards", "0"], "expected a whole number, 1 or more, got '0'"),
        (["--total-shards", "300"], "--total-shards must be between 1 and 256, got 300"),
    ],
)
def test_bad_start_up_input_exits_non_zero_without_traceback(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_region_is_a_clear_start_up_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("things: [a]\n")
    result = run_cli("--config.file", str(config), env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert result.returncode == 1
    assert "aws.region: no region configured" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_reported(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_cleanly_within_five_seconds_mid_request(tmp_path: Path, sig: signal.Signals) -> None:
    # AWS takes 30 s to answer and the exporter would wait 20 s for it: a stop must
    # abandon the request in flight, not wait for it.
    faults = FaultConfig(latency=30.0)
    with Simulator(SimulatorConfig(things=4, seed=42, quotas=False), faults=faults) as sim:
        config = write_exporter_config(
            tmp_path / "c.yaml",
            endpoint_url=sim.url,
            things=sim.fleet.thing_names(),
            read_timeout="20s",
        )
        with ExporterProcess(config, env=AWS_TEST_ENV, wait_ready=False) as proc:
            wait_until(
                lambda: sum(sim.request_counts().values()) or None, timeout=10, what="a request"
            )
            started = time.monotonic()
            proc.send_signal(sig)
            # The signal alone must end it: stop() (on leaving the block) would send SIGTERM.
            code = proc.wait(timeout=5)
            assert time.monotonic() - started < 5
            assert code == 0, proc.log_tail()


def test_ready_only_after_the_first_cycle(tmp_path: Path) -> None:
    faults = FaultConfig(latency=1.0)
    with Simulator(SimulatorConfig(things=2, seed=43, quotas=False), faults=faults) as sim:
        config = write_exporter_config(
            tmp_path / "c.yaml", endpoint_url=sim.url, things=sim.fleet.thing_names()
        )
        with ExporterProcess(config, env=AWS_TEST_ENV, wait_ready=False) as proc:
            assert http_get(proc.url + "/-/ready")[0] == 503
            assert http_get(proc.url + "/-/healthy")[0] == 200
            assert http_get(proc.url + "/metrics")[0] == 200
            wait_until(
                lambda: http_get(proc.url + "/-/ready")[0] == 200 or None,
                timeout=15,
                what="readiness",
            )


def test_sighup_and_post_reload(sim: Simulator, config: Path) -> None:
    names = sim.fleet.thing_names()
    with ExporterProcess(config, env=AWS_TEST_ENV) as proc:
        assert metric(proc.url, "iot_exporter_things_targeted") == len(names)
        write_exporter_config(config, endpoint_url=sim.url, things=names[:2])
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: metric(proc.url, "iot_exporter_things_targeted") == 2 or None,
            timeout=10,
            what="SIGHUP reload",
        )
        config.write_text("things: [not a valid name]\n")
        conn = http.client.HTTPConnection(
            proc.address.split(":")[0], int(proc.address.split(":")[1])
        )
        conn.request("POST", "/-/reload")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 500
        assert 'things[0].name: invalid thing name "not a valid name"' in body
        assert metric(proc.url, "iot_exporter_config_last_reload_successful") == 0
        assert metric(proc.url, "iot_exporter_things_targeted") == 2
        assert any(
            r.get("msg") == "config reload failed; keeping the running config"
            for r in proc.log_records()
        )
        assert proc.running


@pytest.mark.parametrize("garbage", ["\x00", "\x1b", "\x0c", "\x1a"])
def test_control_characters_are_clear_errors_at_check_and_start_up(
    tmp_path: Path, garbage: str
) -> None:
    path = write_exporter_config(
        tmp_path / "config.yaml", endpoint_url="http://127.0.0.1:9", things=["a"]
    )
    text = path.read_text() + f"# note{garbage}\n"
    path.write_text(text)
    where = f"line {text.count(chr(10))}, column 7"
    for args in (["--config.check"], ["--web.listen-address", "127.0.0.1:0"]):
        result = run_cli("--config.file", str(path), *args)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{path}: {where}: invalid YAML: " in result.stderr


def test_a_control_character_on_reload_keeps_the_running_config(
    sim: Simulator, config: Path
) -> None:
    with ExporterProcess(config, env=AWS_TEST_ENV) as proc:
        before = metric(proc.url, "iot_exporter_things_targeted")
        config.write_text(config.read_text() + 'labels: {env: "a\x1bb"}\n')
        status, body = http_post(proc.url + "/-/reload")
        assert status == 500
        assert "invalid YAML: ESC U+001B is not allowed" in body.decode()
        assert metric(proc.url, "iot_exporter_config_last_reload_successful") == 0
        assert metric(proc.url, "iot_exporter_things_targeted") == before
        assert proc.running
        assert not any("Traceback" in line for line in proc.log_lines())


def test_json_logs(config: Path) -> None:
    with ExporterProcess(config, env=AWS_TEST_ENV, extra_args=["--log.format", "json"]) as proc:
        wait_until(
            lambda: any("poll cycle finished" in line for line in proc.log_lines()) or None,
            timeout=10,
            what="a cycle log line",
        )
        records = [json.loads(line) for line in proc.log_lines() if line.startswith("{")]
        assert records
        cycle = next(r for r in records if r["msg"] == "poll cycle finished")
        assert {"ts", "level", "logger", "things", "duration_seconds"} <= set(cycle)
        assert not [line for line in proc.log_lines() if line and not line.startswith("{")]


def test_custom_telemetry_path(config: Path) -> None:
    with ExporterProcess(
        config, env=AWS_TEST_ENV, extra_args=["--web.telemetry-path", "/iot"]
    ) as proc:
        assert b"iot_thing_connected" in http_get(proc.url + "/iot")[1]
        assert http_get(proc.url + "/metrics")[0] == 404
        assert b'href="/iot"' in http_get(proc.url + "/")[1]


def test_readme_demo_command_runs_the_product() -> None:
    demo = ExporterProcess(None, python=str(REPO_ROOT / "scripts" / "demo"), start_timeout=120)
    demo.argv = [str(REPO_ROOT / "scripts" / "demo"), "--web.listen-address", "127.0.0.1:0"]
    with demo:
        status, body = http_get(demo.url + "/metrics")
        assert status == 200
        text = body.decode()
        # Both groups discovered: one polled live, one read from the index.
        assert text.count("iot_thing_connected{") >= 250
        assert 'site="group-1-1"' in text
        assert 'iot_thing_info{firmware="1.2.0",site="group-2-1"' in text
        assert 'iot_fleet_things{connected="true",query="all"}' in text

        def events_received() -> bool | None:
            samples = parse_samples(http_get(demo.url + "/metrics")[1])
            received = value(samples, "iot_exporter_events_received_total") or 0.0
            return True if received > 0 else None

        # Traffic through the in-process SQS and simulator has happened by now; the output is
        # still the exporter's own (no access log of either at the default level).
        wait_until(events_received, timeout=60, what="the demo's first lifecycle events")
        loggers = {record.get("logger", "") for record in demo.log_records()}
        assert "exporter.demo" in loggers
        assert all(logger.startswith("exporter") for logger in loggers), loggers
    assert demo.returncode == 0


def test_missing_aws_profile_is_a_clear_start_up_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("aws: {region: eu-west-1, profile: no-such-profile}\nthings: [a]\n")
    result = run_cli("--config.file", str(config))
    assert result.returncode == 1
    assert "aws: The config profile (no-such-profile) could not be found" in result.stderr
    assert "Traceback" not in result.stderr
