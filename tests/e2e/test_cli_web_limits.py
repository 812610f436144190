"""The HTTP limit flags: documented in --help, checked, and in force in the real process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from iot_simulator import Simulator, SimulatorConfig
from tests.support.exporter_process import ExporterProcess
from tests.support.promstack import http_get, wait_until
from tests.support.stack import AWS_TEST_ENV, run_cli, write_exporter_config


def test_help_documents_the_limit_flags() -> None:
    out = " ".join(run_cli("--help").stdout.split())
    assert "--web.max-connections MAX_CONNECTIONS most HTTP connections open at once" in out
    assert "--web.read-header-timeout READ_HEADER_TIMEOUT time a client has" in out
    assert "--web.idle-timeout IDLE_TIMEOUT how long a keep-alive connection" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--web.max-connections", "0"], "expected a whole number, 1 or more, got '0'"),
        (["--web.max-connections", "\uff11"], "expected a whole number, 1 or more"),  # fullwidth
        (["--web.read-header-timeout", "10"], "expected a duration such as 10s"),
        (["--web.idle-timeout", "0"], "must be more than 0, got '0'"),
    ],
)
def test_bad_limit_flags_are_refused(args: list[str], message: str) -> None:
    result = run_cli(*args, "--config.check")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_limits_hold_in_the_real_process(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(things=2, seed=9, quotas=False)) as sim:
        config = write_exporter_config(
            tmp_path / "c.yaml", endpoint_url=sim.url, things=sim.fleet.thing_names()
        )
        args = ["--web.max-connections", "3", "--web.read-header-timeout", "1s"]
        with ExporterProcess(config, env=AWS_TEST_ENV, extra_args=args) as proc:
            host, port = proc.address.rsplit(":", 1)
            silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
            # Accepted in the order they connected: the fourth finds the three ahead of it.
            with socket.create_connection((host, int(port)), timeout=5) as extra:
                assert extra.recv(1024).startswith(b"HTTP/1.1 503 ")
            # The header deadline frees the slots; then scrapes go through again.
            wait_until(
                lambda: http_get(f"{proc.url}/-/healthy", timeout=1)[0] == 200 or None,
                timeout=10,
                what="the silent connections to be cut at the header deadline",
            )
            for sock in silent:
                sock.close()


@pytest.mark.parametrize("port", ["\u00b3", "\u0661\u0662"])  # superscript 3; Arabic-Indic 12
def test_listen_address_takes_ascii_digits_only(port: str) -> None:
    # str.isdigit() takes both: one crashed int(), the other listened on port 12.
    result = run_cli("--web.listen-address", f":{port}", "--config.check")
    assert result.returncode == 2
    assert result.stderr == f"--web.listen-address: expected [host]:port, got ':{port}'\n"
